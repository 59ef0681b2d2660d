"""The baselines through ``forensics train``: task and input size reach the model at set-up,
and the steganalysis SVM is fitted on cached features and reported like a network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forensics.training.checkpoint import load_checkpoint
from forensics.cli import main as cli
from forensics.config import load_config
from forensics.errors import ForensicsError
from forensics.commands.train import TrainConfig, main, registered_kwargs
from forensics.training.runlog import read_jsonl

ROOT = Path(__file__).resolve().parents[2]


def config(name: str, manifest, out, *extra: str) -> TrainConfig:
    overrides = [f"data.manifest={manifest}", f"output_dir={out}", "data.frames_per_video=2",
                 "data.eval_frames_per_video=2", "data.batch_size=8", "data.num_workers=0", "train.epochs=1",
                 "train.progress=false", "wandb.mode=disabled", *extra]
    return load_config(TrainConfig, ROOT / "configs" / "ffpp" / f"{name}.yaml", overrides)


def test_registered_models_get_task_and_input_size_timm_models_neither():
    assert registered_kwargs("bayar", "binary", 64) == {"task": "binary", "img_size": 64}
    assert registered_kwargs("meso4", "multiclass", None) == {"task": "multiclass"}
    assert registered_kwargs("legacy_xception", "binary", 64) == {}


def test_steganalysis_refuses_multilabel_at_setup(crop_manifest, tmp_path):
    cfg = config("steganalysis", crop_manifest, tmp_path / "run", "task=multilabel")
    with pytest.raises(ForensicsError, match="multilabel"):
        main(cfg)
    assert not (tmp_path / "run" / "features").exists()  # refused before any extraction


def test_bayar_is_built_for_the_configured_input_size(crop_manifest, tmp_path):
    assert main(config("bayar", crop_manifest, tmp_path / "run", "model.input_size=64")) == 0
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert state["model_info"]["img_size"] == 64
    assert state["model_info"]["data_config"]["input_size"][-1] == 64
    # `forensics evaluate` rebuilds the fully connected layers for 64x64 from the checkpoint.
    assert cli(["evaluate", "--checkpoint", str(tmp_path / "run" / "checkpoints" / "best.pt"), "--manifest",
                str(crop_manifest), "--split", "test", "--out", str(tmp_path / "eval"), "--frames-per-video", "2",
                "--wandb-mode", "disabled", "--num-workers", "0"]) == 0
    assert (tmp_path / "eval" / "report.json").is_file()


def test_steganalysis_svm_is_fitted_and_reported_like_a_network(crop_manifest, tmp_path):
    run = tmp_path / "run"
    assert main(config("steganalysis", crop_manifest, run, "model.input_size=64")) == 0
    report = json.loads((run / "report.json").read_text())
    assert {"val", "test", "best"} <= set(report)
    assert 0.0 <= report["test"]["video"]["auc"] <= 1.0
    assert report["best"]["value"] == report["val"]["video"]["auc"]
    assert (run / "features" / "train.npz").is_file()
    assert any("val/video/auc" in row for row in read_jsonl(run / "metrics.jsonl"))
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert bool(best["model"]["fitted"])
    assert (run / "checkpoints" / "last.pt").is_file()

    # A second run on the same data reuses the cached features.
    (run / "checkpoints" / "last.pt").unlink()
    (run / "report.json").unlink()
    assert main(config("steganalysis", crop_manifest, run, "model.input_size=64")) == 0
    assert json.loads((run / "report.json").read_text())["test"] == report["test"]
