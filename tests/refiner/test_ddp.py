"""Fine-tuning under torchrun: two CPU processes (gloo) train, evaluate on gathered pairs, and only
rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from forensics.training.runlog import read_jsonl

from .conftest import CONFIGS, ROOT, finetune_overrides


#: torch 2.14, gloo: now and then a rank aborts in interpreter shutdown, after its work is done
#: and the process group destroyed (a 15-line DDP script does it in about 1 run of 15).
EXIT_ABORT = "terminate called without an active exception"


@pytest.mark.slow
def test_torchrun_two_processes_fine_tune(refiner_manifest, stage1_run, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for attempt in range(2):
        out = tmp_path / f"ddp{attempt}"
        overrides = finetune_overrides(refiner_manifest, stage1_run, out, "train.epochs=2")
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                               "-m", "forensics", "refiner", "finetune", str(CONFIGS / "synth_finetune.yaml"),
                               *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode == 0 or EXIT_ABORT not in proc.stderr:
            break
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 process(es)" in proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["test"]["n"] == 16 and report["val"]["n"] == 16  # every pair once, gathered from both ranks
    epochs = [r for r in read_jsonl(out / "metrics.jsonl") if "train/epoch_loss" in r]
    assert [r["epoch"] for r in epochs] == [0, 1]  # one writer
    assert (out / "checkpoints" / "best.pt").is_file() and (out / "samples" / "epoch_001.png").is_file()
