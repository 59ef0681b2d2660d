"""Two processes under torchrun (gloo, CPU) train and evaluate; their gathered metrics equal a
single-process evaluation of the same checkpoint (padding from DistributedSampler dropped)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from forensics.data.manifest import read_manifest, write_manifest

from .test_train import DEMO, ROOT, tiny


def assert_same_metrics(a, b, path="metrics"):
    """Equal structure; counts equal; floats equal up to float32 noise from other batch shapes."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_metrics(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_torchrun_two_processes_match_single_process_evaluation(crop_manifest, tmp_path):
    # An odd number of test crops over 2 ranks, so DistributedSampler pads one duplicate.
    df = read_manifest(crop_manifest)
    df["path"] = [str(crop_manifest.parent / p) for p in df["path"]]
    test_rows = df.index[df["split"] == "test"]
    if len(test_rows) % 2 == 0:
        df = df.drop(index=test_rows[0])
    n_test = int((df["split"] == "test").sum())
    manifest = tmp_path / "manifest.csv"
    write_manifest(df, manifest)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    overrides = tiny(manifest, out, "data.eval_frames_per_video=null", "train.epochs=1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "forensics", "train", str(DEMO), *overrides],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["test"]["frame"]["n"] == n_test  # every crop once: the padding was dropped
    assert "dropped 1 duplicate" in proc.stderr

    single = tmp_path / "single"
    proc = subprocess.run([sys.executable, "-m", "forensics", "evaluate", "--checkpoint",
                           str(out / "checkpoints" / "best.pt"), "--split", "test", "--out", str(single),
                           "--batch-size", "7", "--num-workers", "0", "--wandb-mode", "disabled"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    evaluated = json.loads((single / "report.json").read_text())["test"]
    assert_same_metrics(report["test"], evaluated)
    assert "video AUC" in proc.stdout
