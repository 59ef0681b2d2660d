"""`forensics demo --fast` from a clean folder: every artefact exists and is well formed."""

import json
import re
import subprocess
import sys

import pytest

from forensics.cli import main
from forensics.media.video import video_info
from tests.wandb_offline import wandb_history


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    result = subprocess.run([sys.executable, "-m", "forensics", "demo", "--fast", "--out", str(out)],
                            capture_output=True, text=True, env=_env())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


def _env():
    import os

    env = dict(os.environ)
    env.pop("WANDB_API_KEY", None)  # the demo must pick offline mode by itself
    env.pop("WANDB_MODE", None)
    return env


def test_every_stage_prints_its_command(demo):
    _, stdout = demo
    for stage in ("synth", "preprocess", "train", "evaluate", "predict", "refiner pretrain", "refiner finetune",
                  "refiner apply"):
        assert re.search(rf"\] {stage}: forensics {stage} ", stdout), stage
    assert re.search(r"\] evaluate refined: forensics evaluate .*SelfReenact-refined", stdout)
    assert "video-level AUC" in stdout and "frame-level AUC" in stdout and "wandb sync" in stdout


def test_report_json_and_html(demo):
    out, _ = demo
    report = json.loads((out / "report.json").read_text())
    for level in ("video", "frame"):
        assert {"auc", "acc", "ap", "eer", "log_loss", "n"} <= set(report["test"][level])
    # The detector learns from and is scored on FaceSwap and SelfBlend; SelfReenact is the refiner's.
    assert set(report["test"]["per_method"]) == {"original", "FaceSwap", "SelfBlend"}
    assert report["training"]["epochs"] >= 1 and len(report["predict"]) == 2
    assert set(report["seconds"]) == {"synth", "preprocess", "train", "evaluate", "predict", "refiner pretrain",
                                      "refiner finetune", "refiner apply", "evaluate refined"}
    refiner = report["refiner"]
    assert refiner["pairs"] == 2 * 6  # the 2 test videos' SelfReenact fakes, 6 frames each
    assert refiner["gain"]["psnr"] == pytest.approx(refiner["output"]["psnr"] - refiner["input"]["psnr"])
    assert set(refiner["detector"]) == {"SelfReenact", "SelfReenact-refined"}
    assert all(d["frames"] == 12 and 0 <= d["frames_caught"] <= 1 for d in refiner["detector"].values())
    html = (out / "report.html").read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) == 5 and all(len(b) > 1000 for b in images)
    for title in ("ROC curve", "Accuracy per method", "Training curves", "Test crops and their scores",
                  "Refiner on val pairs", "The detector on refined fakes"):
        assert title in html


def test_annotated_videos_decode(demo):
    out, _ = demo
    videos = sorted((out / "predict").glob("*.mp4"))
    assert len(videos) == 2
    for video in videos:
        frames, _, width, height = video_info(video)
        assert frames > 0 and (width, height) == (320, 240)


def test_wandb_offline_run_holds_the_metrics(demo):
    out, _ = demo
    rows = wandb_history(out / "run")
    logged = {key for row in rows for key in row}
    assert "train/loss" in logged and "val/video/auc" in logged
    metrics = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    last_val = [m for m in metrics if "val/video/auc" in m][-1]
    assert any(row.get("val/video/auc") == last_val["val/video/auc"] for row in rows)


def test_rerun_reuses_completed_stages(demo, capsys):
    out, _ = demo
    assert main(["demo", "--fast", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("already complete, reusing") == 9


def test_refuses_foreign_folder_and_missing_gpu(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("mine")
    assert main(["demo", "--fast", "--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err and (tmp_path / "thesis.tex").exists()
    import torch

    if not torch.cuda.is_available():
        assert main(["demo", "--fast", "--device", "cuda", "--out", str(tmp_path / "new")]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_report_of_a_run_without_the_refiner_stages(demo, tmp_path):
    import shutil

    from pipeline_demo.report import write_report

    out, _ = demo
    copy = tmp_path / "out"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("refiner*", "eval_refined", "wandb", "synth"))
    report = write_report(copy)
    html = (copy / "report.html").read_text()
    assert report["refiner"] is None and "Refiner" not in html and html.count("data:image/png") == 4
