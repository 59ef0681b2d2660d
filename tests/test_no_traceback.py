"""Every command, given broken input, answers in one line: no ``Traceback`` reaches the user.

One subprocess per case, the way a user runs them; bad inputs fail fast (before any model or
dataset work), and the cases run a few at a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from forensics.cli import COMMANDS


def _cases(tmp: Path) -> dict[str, list[str]]:
    """A broken input per command (and per refiner step): ``argv`` after ``forensics``."""
    a_file = tmp / "a_file"
    a_file.write_text("not a folder")
    corrupt = tmp / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint")
    missing = tmp / "missing.yaml"
    video = tmp / "clip.mp4"
    video.write_bytes(b"not a video")
    return {
        "synth": ["synth", "--out", str(a_file)],
        "preprocess": ["preprocess", "--layout", "ffpp", "--root", str(tmp / "nowhere"), "--out", str(a_file)],
        "preprocess-root": ["preprocess", "--layout", "ffpp", "--root", str(tmp / "nowhere"), "--out", str(tmp / "o")],
        "train": ["train", str(missing)],
        "train-override": ["train", "configs/demo.yaml", f"data.manifest={tmp / 'm.csv'}", f"output_dir={tmp / 'r'}",
                           "train.optimizer=adamm"],
        "benchmark": ["benchmark", str(missing)],
        "evaluate": ["evaluate", "--checkpoint", str(corrupt)],
        "predict": ["predict", str(video), "--checkpoint", str(corrupt)],
        "refiner": ["refiner", "pretrain", str(missing)],
        "refiner-apply": ["refiner", "apply", "--checkpoint", str(corrupt), "--manifest", str(tmp / "m.csv"),
                          "--method", "FaceSwap"],
        "refiner-video": ["refiner", "video", str(video), "--checkpoint", str(corrupt), "--out", str(a_file)],
        "demo": ["demo", "--out", str(a_file)],
        "keypoints-synth": ["keypoints-synth", "--out", str(a_file)],
        "report": ["report", str(tmp / "not_a_run")],
        "pack": ["pack", str(tmp / "no_crops")],
        "weights": ["weights", "no_such_model"],
    }


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-m", "forensics", *argv], cwd=root, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "WANDB_MODE": "disabled"})


@pytest.mark.slow
def test_every_command_answers_broken_input_in_one_line(tmp_path):
    cases = _cases(tmp_path)
    assert set(COMMANDS) <= {argv[0] for argv in cases.values()}, "a command has no broken-input case"
    with ThreadPoolExecutor(3) as pool:
        results = dict(zip(cases, pool.map(_run, cases.values())))
    for name, proc in results.items():
        command = cases[name][0]
        errors = [line for line in proc.stderr.splitlines() if line.startswith(f"forensics {command}: error:")]
        assert "Traceback" not in proc.stderr, f"{name}:\n{proc.stderr}"
        assert proc.returncode == 2 and len(errors) == 1, f"{name}: status {proc.returncode}\n{proc.stderr}"
    assert "train.optimizer=adamm (command line)" in results["train-override"].stderr
