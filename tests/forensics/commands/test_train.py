"""`forensics train` end to end on the synthetic crops: run folder, W&B offline, resume (after
SIGKILL and SIGTERM) with identical results, refusal of a changed config, eval-only, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from forensics.training.checkpoint import load_checkpoint
from forensics.config import load_config
from forensics.errors import ConfigError, ForensicsError
from forensics.data.manifest import read_manifest, write_manifest
from forensics.commands.train import TrainConfig, main
from forensics.training.runlog import read_jsonl
from tests.wandb_offline import wandb_history

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "configs" / "demo.yaml"


def tiny(manifest, out, *extra: str) -> list[str]:
    """Overrides for a run of a few seconds: 32x32 inputs, 2 frames per video, 2 epochs."""
    return [f"data.manifest={manifest}", f"output_dir={out}", "model.input_size=32", "data.frames_per_video=2",
            "data.eval_frames_per_video=2", "data.batch_size=8", "data.num_workers=0", "train.epochs=2",
            "train.log_every=2", "train.progress=false", "wandb.mode=disabled", *extra]


def train(manifest, out, *extra: str, **flags) -> int:
    return main(load_config(TrainConfig, DEMO, tiny(manifest, out, *extra)), **flags)


def cli(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "forensics", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}, **kwargs)


def test_run_folder_and_wandb_offline(crop_manifest, tmp_path):
    out = tmp_path / "run"
    proc = cli("train", str(DEMO), *tiny(crop_manifest, out, "wandb.mode=offline", "wandb.samples=4",
                                                "wandb.log_checkpoint=true"))
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, log
    for name in ("config.yaml", "run.json", "metrics.jsonl", "report.json", "checkpoints/last.pt",
                 "checkpoints/best.pt", "roc_test.png", "samples_test.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "run.json").read_text())["git"].keys() == {"commit", "dirty"}
    report = json.loads((out / "report.json").read_text())
    assert report["best"]["name"] == "frame/auc" and report["test"]["video"]["n"] == 12  # configs/demo.yaml
    records = read_jsonl(out / "metrics.jsonl")
    val = [r for r in records if "val/video/auc" in r]
    assert [r["epoch"] for r in val] == [0, 1]
    assert any("train/loss" in r for r in records) and any("test/video/auc" in r for r in records)
    # The W&B offline run on disk holds the same metric names and values.
    history = wandb_history(out)
    logged = {k: v for row in history for k, v in row.items()}
    for key in ("train/loss", "train/lr", "val/video/auc", "val/frame/acc", "test/video/auc", "test/frame/eer"):
        assert key in logged, key
    wandb_val = [row["val/video/auc"] for row in history if "val/video/auc" in row]
    assert wandb_val == pytest.approx([r["val/video/auc"] for r in val])
    assert logged["test/video/auc"] == pytest.approx(report["test"]["video"]["auc"])


def test_checkpoint_contents_and_eval_only(crop_manifest, tmp_path):
    out = tmp_path / "run"
    assert train(crop_manifest, out, "train.ema_decay=0.9") == 0
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["epoch"] == 2 and state["step"] == 0
    for key in ("model", "model_ema", "optimizer", "scheduler", "scaler", "metric", "config", "model_info"):
        assert key in state
    assert state["model_info"]["data_config"]["input_size"] == [3, 32, 32]
    report = json.loads((out / "report.json").read_text())
    assert train(crop_manifest, out, "train.ema_decay=0.9", eval_only=True) == 0
    evaluated = json.loads((out / "eval_report.json").read_text())
    assert evaluated["test"]["video"]["auc"] == pytest.approx(report["test"]["video"]["auc"])
    assert evaluated["test"]["frame"]["log_loss"] == pytest.approx(report["test"]["frame"]["log_loss"], rel=1e-5)


def test_existing_run_and_changed_config_are_refused(crop_manifest, tmp_path):
    out = tmp_path / "run"
    assert train(crop_manifest, out, "train.epochs=1") == 0
    with pytest.raises(ConfigError, match="already holds a run"):
        train(crop_manifest, out, "train.epochs=1")
    with pytest.raises(ConfigError, match=r"differs .* in data\.batch_size, train\.lr; .*--force"):
        train(crop_manifest, out, "train.epochs=1", "train.lr=0.5", "data.batch_size=4", resume=True)
    # Keys that don't change results may differ; --force accepts the others.
    assert train(crop_manifest, out, "train.epochs=1", "data.num_workers=1", resume=True) == 0
    assert train(crop_manifest, out, "train.epochs=2", resume=True, force=True) == 0
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 2


def test_corrupt_checkpoint_on_resume(crop_manifest, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(ForensicsError, match="last.pt: not a readable checkpoint"):
        train(crop_manifest, out, resume=True)


def test_checkpoint_of_another_task_or_architecture(crop_manifest, tmp_path):
    out = tmp_path / "multi"
    assert train(crop_manifest, out, "task=multiclass", "train.epochs=1", "data.val_split=null",
                 "data.test_split=null") == 0
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["model_info"]["classes"] == ["original", "FaceSwap", "SelfBlend"]
    with pytest.raises(ForensicsError, match="checkpoint is for task 'multiclass', but this run uses 'binary'"):
        train(crop_manifest, tmp_path / "b", f"model.checkpoint={out / 'checkpoints' / 'last.pt'}")
    with pytest.raises(ForensicsError, match="checkpoint is for name 'mobilenetv3_small_050'"):
        train(crop_manifest, tmp_path / "c", "task=multiclass", "model.name=resnet10t",
              f"model.checkpoint={out / 'checkpoints' / 'last.pt'}")


def test_one_class_split_reports_auc_undefined(crop_manifest, tmp_path):
    df = read_manifest(crop_manifest)
    df["path"] = [str(crop_manifest.parent / p) for p in df["path"]]
    df = df[(df["split"] != "test") | (df["label"] == 0)]  # the test split holds reals only
    write_manifest(df, tmp_path / "manifest.csv")
    out = tmp_path / "run"
    assert train(tmp_path / "manifest.csv", out, "train.epochs=1") == 0
    test = json.loads((out / "report.json").read_text())["test"]
    assert test["video"]["auc"] is None and "one class" in test["video"]["note"]
    assert test["video"]["acc"] is not None


def test_bad_config_stops_before_work(crop_manifest, tmp_path):
    proc = cli("train", str(DEMO), *tiny(crop_manifest, tmp_path / "r", "train.optimizer=adagrad"))
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 2
    assert "train.optimizer must be one of adam, adamw, sgd" in log and not (tmp_path / "r").exists()


# ---- interrupted runs resume to the same result ---------------------------------------------

RESUME = ("train.epochs=3", "train.log_every=1", "data.num_workers=1", "data.frames_per_video=3",
          "train.ema_decay=0.8")


def assert_same_run(a: Path, b: Path) -> None:
    ra, rb = (json.loads((d / "report.json").read_text()) for d in (a, b))
    assert ra["test"] == rb["test"] and ra["best"] == rb["best"]
    wa, wb = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (a, b))
    for key in wa["model"]:
        assert torch.equal(wa["model"][key], wb["model"][key]), key
    steps = [[(r["step"], r.get("train/loss")) for r in read_jsonl(d / "metrics.jsonl")] for d in (a, b)]
    assert steps[0] == steps[1]  # the resumed run's log has no gap and no duplicate


def wait_for(predicate, proc, timeout=240.0):
    start = time.time()
    while not predicate():
        assert proc.poll() is None, "the run ended before it could be interrupted:\n" + proc.stdout.read()
        assert time.time() - start < timeout
        time.sleep(0.02)


@pytest.mark.slow  # two minutes: four training processes, real signals
def test_sigterm_and_sigkill_then_resume_give_the_same_result(crop_manifest, tmp_path):
    """SIGTERM mid-epoch saves and exits; SIGKILL loses the epoch under way; both resume exactly."""
    out = tmp_path / "run"
    args = ("train", str(DEMO), *tiny(crop_manifest, out, *RESUME))
    proc = cli(*args)
    metrics, last = out / "metrics.jsonl", out / "checkpoints" / "last.pt"
    wait_for(lambda: any(r.get("epoch") == 1 and "train/loss" in r for r in read_jsonl(metrics)), proc)
    proc.send_signal(signal.SIGTERM)
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, log
    state = load_checkpoint(last)
    assert "SIGTERM: saved" in log and (state["epoch"], state["step"] > 0) == (1, True)

    proc = cli(*args, "--resume")
    wait_for(lambda: load_checkpoint(last)["epoch"] == 2, proc)  # epoch 2 under way
    proc.kill()
    proc.communicate()
    proc = cli(*args, "--resume")
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, log

    # The reference runs in a fresh process too: earlier tests in this process may have changed
    # process-wide state (torch's thread count), which changes float results.
    reference = tmp_path / "uninterrupted"
    proc = cli("train", str(DEMO), *tiny(crop_manifest, reference, *RESUME))
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, log
    assert_same_run(reference, out)


# ---- the pipeline learns --------------------------------------------------------------------

def test_small_model_learns(learn_manifest, tmp_path):
    """MobileNetV3-small (0.5x) from scratch on CPU for under a minute, checkpoint chosen on
    val: on the test split's unseen identities (6 reals, 12 fakes) it reaches video-level
    AUC >= 0.9. The pipeline learns the forgery, not the people."""
    out = tmp_path / "learn"
    overrides = [f"data.manifest={learn_manifest}", f"output_dir={out}", "model.input_size=112",
                 "data.frames_per_video=10", "data.batch_size=16", "data.num_workers=0", "train.epochs=15",
                 "train.progress=false", "wandb.mode=disabled"]
    assert main(load_config(TrainConfig, DEMO, overrides)) == 0
    report = json.loads((out / "report.json").read_text())
    losses = [r["train/epoch_loss"] for r in read_jsonl(out / "metrics.jsonl") if "train/epoch_loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    assert report["test"]["video"]["n_real"] == 6 and report["test"]["video"]["n_fake"] == 12
    assert report["test"]["video"]["auc"] >= 0.9, report["test"]["video"]
    assert report["test"]["frame"]["auc"] >= 0.85, report["test"]["frame"]


def test_shipped_configs_load():
    ffpp = load_config(TrainConfig, ROOT / "configs" / "ffpp" / "xception.yaml", ["data.manifest=m", "output_dir=o"])
    assert (ffpp.model.name, ffpp.model.input_size, ffpp.train.optimizer, ffpp.train.lr) == \
        ("legacy_xception", 299, "adam", 2e-4)
    assert (ffpp.data.batch_size, ffpp.freeze.head_only_epochs, ffpp.train.epochs) == (32, 3, 18)
    assert ffpp.data.val_split == "val" and ffpp.model.pretrained
    demo = load_config(TrainConfig, DEMO, ["data.manifest=m", "output_dir=o"])
    assert not demo.model.pretrained


def test_head_only_epochs_leave_the_backbone_unchanged(crop_manifest, tmp_path):
    from forensics.models import create_model

    out = tmp_path / "run"
    assert train(crop_manifest, out, "freeze.head_only_epochs=1", "train.epochs=1", "data.test_split=null") == 0
    torch.manual_seed(0)  # the run's seed: the same initial weights
    initial = create_model("mobilenetv3_small_050", num_classes=1).state_dict()
    trained = load_checkpoint(out / "checkpoints" / "last.pt")["model"]
    changed = {k for k in initial if not torch.equal(initial[k], trained[k])}
    assert changed == {"classifier.weight", "classifier.bias"}  # batch-norm statistics included


def test_early_stopping_amp_and_multilabel(crop_manifest, tmp_path):
    # video/n never improves after the first epoch: patience 1 stops after epoch 1 of 5.
    out = tmp_path / "early"
    assert train(crop_manifest, out, "train.epochs=5", "train.best_metric=video/n", "train.early_stop_patience=1",
                 "train.amp=bf16", "task=multilabel") == 0
    report = json.loads((out / "report.json").read_text())
    assert report["stopped_early"] and report["best"]["epoch"] == 0
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 2
    assert set(report["test"]["labels"]["per_label_auc"]) == {"FaceSwap", "SelfBlend"}
    assert report["test"]["video"]["n"] == 12


def test_one_class_val_keeps_the_first_best_and_warns_once(crop_manifest, tmp_path, caplog):
    # A val split of reals only: its AUC is undefined every epoch, so no epoch improves on the
    # first (which stands in for best.pt), and the warning comes once, not every epoch.
    df = read_manifest(crop_manifest)
    df["path"] = [str(crop_manifest.parent / p) for p in df["path"]]
    write_manifest(df[(df["split"] != "val") | (df["label"] == 0)], tmp_path / "manifest.csv")
    out = tmp_path / "run"
    with caplog.at_level("WARNING", logger="forensics.training.loop"):
        assert train(tmp_path / "manifest.csv", out, "train.epochs=3") == 0
    best = json.loads((out / "report.json").read_text())["best"]
    assert best["epoch"] == 0 and best["value"] is None
    assert load_checkpoint(out / "checkpoints" / "best.pt")["epoch"] == 1  # saved after epoch 0
    warnings = [r for r in caplog.records if "undefined" in r.getMessage()]
    assert len(warnings) == 1 and "never counts as an improvement" in warnings[0].getMessage()
