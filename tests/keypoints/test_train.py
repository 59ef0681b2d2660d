"""``forensics train`` / ``forensics evaluate`` on the keypoints task, through the one training path.

A small CNN trained for a few seconds on the generated set must beat the ``dummy`` floor's
validation MSE by a wide margin; the run folder, metrics, W&B and ``forensics evaluate`` must
carry the keypoint metrics; a Kaggle CSV without a split column trains as well.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forensics.config import load_config
from forensics.errors import ConfigError
from forensics.commands.train import TrainConfig, main
from forensics.training.runlog import read_jsonl
from tests.keypoints.conftest import kaggle_frame, write_kaggle
from tests.wandb_offline import wandb_history

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "keypoints-synth.yaml"


def quick(data, out, *extra: str) -> list[str]:
    """Overrides for a run of seconds on one CPU thread."""
    return [f"data.manifest={data}", f"output_dir={out}", "data.num_workers=0", "train.epochs=12",
            "train.progress=false", "wandb.mode=disabled", "device=cpu", *extra]


def train(data, out, *extra: str, **flags) -> int:
    return main(load_config(TrainConfig, CONFIG, quick(data, out, *extra)), **flags)


@pytest.fixture(scope="module")
def runs(keypoint_csv, tmp_path_factory):
    """The dummy floor and a trained keypoint_cnn on the generated set."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("kp-runs")
    assert train(keypoint_csv, root / "dummy", "model.name=dummy") == 0
    assert train(keypoint_csv, root / "cnn", "wandb.mode=offline", "wandb.samples=8") == 0
    import wandb

    # W&B's service process may still be writing the offline run when finish() returns (about
    # one run in four here); teardown waits for it, as the end of a `forensics train` process does.
    wandb.teardown()
    return root


def test_trained_cnn_beats_the_dummy_floor_by_a_wide_margin(runs):
    dummy = json.loads((runs / "dummy" / "report.json").read_text())
    cnn = json.loads((runs / "cnn" / "report.json").read_text())
    assert dummy["best"]["epoch"] == 0 and cnn["best"]["name"] == "mse" and cnn["best"]["mode"] == "min"
    floor, trained = dummy["val"]["mse"], cnn["val"]["mse"]
    assert trained < floor / 3, (trained, floor)  # about 24 vs 117 pixels²
    assert cnn["val"]["score"] == pytest.approx(1 / (2 * trained)) and cnn["val"]["score"] > 3 * dummy["val"]["score"]
    assert cnn["test"]["mse"] < dummy["test"]["mse"] / 3
    for report in (dummy, cnn):
        assert report["data"]["train"]["kept"] == 280 and report["data"]["val"]["missing_keypoints"] == 0
        assert set(report["test"]["per_keypoint"]) == {"left_eye_center", "right_eye_center", "nose_tip",
                                                       "mouth_left_corner", "mouth_right_corner"}


def test_run_folder_metrics_and_wandb_hold_mse_and_score_per_split(runs):
    out = runs / "cnn"
    for name in ("config.yaml", "run.json", "metrics.jsonl", "report.json", "checkpoints/best.pt",
                 "checkpoints/last.pt", "keypoints_test.png"):
        assert (out / name).is_file(), name
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in records if "val/mse" in r] == list(range(12))
    assert any("train/loss" in r for r in records)
    final = [r for r in records if "test/mse" in r]
    assert len(final) == 1 and "test/score" in final[0] and "test/per_keypoint/nose_tip" in final[0]
    history = wandb_history(out)
    logged = {k: v for row in history for k, v in row.items()}
    for key in ("train/loss", "val/mse", "val/score", "test/mse", "test/score"):
        assert key in logged, key
    assert logged["test/keypoints/_type"] == "image-file"  # the grid of faces
    report = json.loads((out / "report.json").read_text())
    assert logged["test/mse"] == pytest.approx(report["test"]["mse"])


def test_evaluate_rescores_the_checkpoint(runs, capsys):
    from forensics.cli import main as cli

    out = runs / "cnn"
    assert cli(["evaluate", "--checkpoint", str(out / "checkpoints" / "best.pt"), "--split", "val",
                "--num-workers", "0", "--wandb-mode", "disabled"]) == 0
    assert "val: 60 faces | MSE" in capsys.readouterr().out
    report = json.loads((out / "eval" / "val" / "report.json").read_text())
    trained = json.loads((out / "report.json").read_text())
    assert report["val"]["mse"] == pytest.approx(trained["val"]["mse"], rel=1e-6)
    assert (out / "eval" / "val" / "keypoints_val.png").is_file()
    predictions = (out / "eval" / "val" / "predictions.csv").read_text().splitlines()
    assert len(predictions) == 61 and "true_nose_tip_x" in predictions[0] and "pred_nose_tip_x" in predictions[0]


def test_kaggle_csv_without_split_column_trains_with_missing_keypoints_masked(tmp_path):
    df = kaggle_frame(rows=40)
    df.loc[:19, ["mouth_center_bottom_lip_x", "mouth_center_bottom_lip_y"]] = float("nan")
    path = write_kaggle(tmp_path / "training.csv", df)
    out = tmp_path / "run"
    cfg = load_config(TrainConfig, ROOT / "configs" / "keypoints.yaml",
                      quick(path, out, "train.epochs=1", "data.batch_size=8", "train.warmup_epochs=0"))
    assert main(cfg) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["train"]["rows"] == 32 and report["data"]["train"]["rows_with_missing"] > 0
    assert report["data"]["train"]["dropped"] == 0  # masked, not dropped
    assert len(report["test"]["per_keypoint"]) == 15 and report["test"]["n"] == 4


def test_config_refuses_a_detector_metric_for_keypoints(keypoint_csv, tmp_path):
    with pytest.raises(ConfigError, match="not a keypoints metric"):
        load_config(TrainConfig, CONFIG, quick(keypoint_csv, tmp_path, "train.best_metric=video/auc"))
    with pytest.raises(ConfigError, match="keypoints.missing must be one of mask, drop"):
        load_config(TrainConfig, CONFIG, quick(keypoint_csv, tmp_path, "keypoints.missing=zero"))
