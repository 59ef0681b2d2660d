"""`forensics benchmark` on the synthetic crops: a 2-detector x 2-cell grid end to end, its
tables, a re-run that skips finished cells, and a failing cell recorded while the rest run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from forensics.commands.benchmark import BenchmarkConfig, main
from forensics.cli import main as cli
from forensics.config import load_config
from forensics.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]

GRID = """\
base_config: {demo}
detectors:
  - {{name: mobilenetv3_small_050}}
  - {{name: meso4, config: {meso4}}}
  - {{name: nosuchmodel}}
methods: [FaceSwap, all]
compressions: [c23]
overrides: [model.input_size=32, train.epochs=1, data.frames_per_video=2, data.eval_frames_per_video=2,
            data.batch_size=8, data.num_workers=0, train.progress=false, wandb.mode=disabled]
"""


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def grid(tmp_path) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(GRID.format(demo=ROOT / "configs" / "demo.yaml", meso4=ROOT / "configs" / "ffpp" / "meso4.yaml"))
    return path


def test_grid_tables_resume_and_failed_cell(crop_manifest, grid, tmp_path):
    out = tmp_path / "bench"
    args = ["benchmark", str(grid), f"manifest={crop_manifest}", f"output_dir={out}"]
    assert cli(args) == 1  # the unknown model's cells failed

    rows = read_csv(out / "results.csv")
    assert [(r["detector"], r["method"]) for r in rows] == [
        (d, m) for d in ("mobilenetv3_small_050", "meso4", "nosuchmodel") for m in ("FaceSwap", "all")]
    status = {(r["detector"], r["method"]): r["status"] for r in rows}
    assert [s for (d, _), s in status.items() if d != "nosuchmodel"] == ["done"] * 4
    failed = [r for r in rows if r["detector"] == "nosuchmodel"]
    assert all(r["status"] == "failed" and "unknown model 'nosuchmodel'" in r["error"] for r in failed)
    for r in rows:
        if r["status"] == "done":
            assert 0.0 <= float(r["frame/acc"]) <= 1.0
            assert (Path(r["run_dir"]) / "report.json").is_file()

    for name in ("frame_acc", "frame_auc"):
        table = list(csv.reader(open(out / f"{name}.csv")))
        assert table[0] == ["detector", "c23 FaceSwap", "c23 all"]
        assert [row[0] for row in table[1:]] == ["mobilenetv3_small_050", "meso4", "nosuchmodel"]
        assert table[3][1:] == ["failed", "failed"]
    markdown = (out / "tables.md").read_text()
    assert "## frame/acc" in markdown and "## frame/auc" in markdown
    assert "| nosuchmodel | failed | failed |" in markdown

    # A re-run reads the finished cells instead of training them again.
    reports = {r["run_dir"]: (Path(r["run_dir"]) / "report.json").stat().st_mtime_ns
               for r in rows if r["status"] == "done"}
    assert main(load_config(BenchmarkConfig, grid, [f"manifest={crop_manifest}", f"output_dir={out}"])) == 1
    again = read_csv(out / "results.csv")
    assert [r["status"] for r in again if r["detector"] != "nosuchmodel"] == ["skipped"] * 4
    assert {r["run_dir"]: (Path(r["run_dir"]) / "report.json").stat().st_mtime_ns
            for r in again if r["status"] == "skipped"} == reports
    assert [r["frame/auc"] for r in again][:4] == [r["frame/auc"] for r in rows][:4]


def test_shipped_benchmark_configs_load():
    ffpp = load_config(BenchmarkConfig, ROOT / "configs" / "ffpp" / "benchmark.yaml", ["manifest=m", "output_dir=o"])
    assert [d.name for d in ffpp.detectors] == ["steganalysis", "cozzolino", "bayar", "rahmouni", "meso4",
                                                "mesoinception4"]
    assert ffpp.compressions == ["raw", "c23", "c40"]
    for detector in ffpp.detectors:
        assert (ROOT / detector.config).is_file()
    demo = load_config(BenchmarkConfig, ROOT / "configs" / "benchmark-demo.yaml", ["manifest=m", "output_dir=o"])
    assert demo.methods == ["FaceSwap", "SelfBlend", "all"] and demo.compressions == ["c23"]


def test_detector_without_config_needs_a_base_config(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("detectors: [{name: meso4}]\n")
    with pytest.raises(ConfigError, match="base_config"):
        load_config(BenchmarkConfig, path, ["manifest=m", "output_dir=o"])


# --------------------------------------------------------------------------------------
# The cross-dataset table
# --------------------------------------------------------------------------------------

CROSS_DEMO = ROOT / "configs" / "cross" / "demo.yaml"
#: The "unseen" dataset: another seed, identities never trained on, a method never trained on.
UNSEEN = dict(originals=6, seconds=0.4, fps=20, width=320, height=240, seed=1, methods=("SelfBlend",))


@pytest.fixture(scope="module")
def unseen_manifest(tmp_path_factory) -> Path:
    from tests.pipeline import synth_crops

    return synth_crops(tmp_path_factory, "unseen", UNSEEN, 4)


#: The demo config, smaller still: 32x32 inputs, 1 epoch, 2 frames per video, W&B off.
TINY = ("overrides=[model.input_size=32,train.epochs=1,data.frames_per_video=2,data.eval_frames_per_video=2,"
        "data.batch_size=8,data.num_workers=0,train.progress=false]", "wandb.mode=disabled")


def cross_args(manifest, unseen, out, *extra: str) -> list[str]:
    return [f"manifest={manifest}", f"manifests.unseen={unseen}", f"output_dir={out}",
            f"base_config={ROOT / 'configs' / 'demo.yaml'}", *extra]


@pytest.mark.slow
def test_cross_dataset_table_seen_unseen_checkpoint_and_published(crop_manifest, unseen_manifest, tmp_path):
    out = tmp_path / "cross"
    assert cli(["benchmark", str(CROSS_DEMO), *cross_args(crop_manifest, unseen_manifest, out, *TINY)]) == 0
    [row] = read_csv(out / "cross_dataset.csv")
    assert row["detector"] == "mobilenetv3_small_050" and row["trained_on"] == "FaceSwap, c23"
    for test_set in ("seen", "unseen"):
        assert row[f"{test_set} status"] == "done"
        for metric in ("frame/auc", "video/auc", "frame/eer", "frame/ap", "frame/bal_acc", "video/bal_acc"):
            assert 0.0 <= float(row[f"{test_set} {metric}"]) <= 1.0, (test_set, metric)
    run = out / "runs" / "mobilenetv3_small_050" / "c23" / "FaceSwap"
    unseen = json.loads((run / "cross" / "unseen" / "report.json").read_text())
    assert unseen["manifest"] == str(unseen_manifest) and unseen["checkpoint"] == str(run / "checkpoints" / "best.pt")
    assert unseen["filters"]["methods"] == {"values": None, "from": "command line"}  # not the training run's
    assert set(unseen["test"]["per_method"]) == {"original", "SelfBlend"}  # a method never trained on
    assert float(row["unseen frame/auc"]) == pytest.approx(unseen["test"]["frame"]["auc"], abs=1e-6)
    seen = json.loads((run / "cross" / "seen" / "report.json").read_text())
    assert set(seen["test"]["per_method"]) == {"original", "FaceSwap"}
    markdown = (out / "cross_dataset.md").read_text()
    cell = f"{100 * unseen['test']['frame']['auc']:.2f} / {100 * unseen['test']['video']['auc']:.2f}"
    assert "| detector | trained on | seen (test) | unseen (test) |" in markdown and cell in markdown
    assert "published" not in markdown.splitlines()[4]  # no published numbers were given

    # Again with the trained best.pt given as a checkpoint, and a published number: the
    # trained cells are read, the checkpoint is scored to the same numbers, and the published
    # value sits in its own, sourced column.
    given = (f"detectors=[{{name: mobilenetv3_small_050}}, {{name: given, checkpoint: {run / 'checkpoints' / 'best.pt'},"
             " published: [{test_set: unseen, value: 0.4321, source: 'Someone et al. 2099, Table 9'}]}]")
    cfg = load_config(BenchmarkConfig, CROSS_DEMO, cross_args(crop_manifest, unseen_manifest, out, *TINY, given))
    assert main(cfg) == 0
    trained, checkpoint = read_csv(out / "cross_dataset.csv")
    assert trained["seen status"] == trained["unseen status"] == "skipped"
    assert checkpoint["detector"] == "given" and checkpoint["trained_on"] == "checkpoint"
    for test_set in ("seen", "unseen"):
        assert checkpoint[f"{test_set} status"] == "done"
        assert checkpoint[f"{test_set} frame/auc"] == trained[f"{test_set} frame/auc"] == row[f"{test_set} frame/auc"]
    assert checkpoint["unseen published frame/auc"] == "0.432100" and trained["unseen published frame/auc"] == ""
    assert checkpoint["unseen published frame/auc source"] == "Someone et al. 2099, Table 9"
    markdown = (out / "cross_dataset.md").read_text()
    assert "| unseen published frame/auc |" in markdown and "| 43.21 [1] |" in markdown
    assert "1. Someone et al. 2099, Table 9" in markdown


def test_bad_test_sets_stop_before_training(crop_manifest, tmp_path, capsys):
    out = tmp_path / "cross"
    missing = tmp_path / "nowhere" / "manifest.csv"
    assert cli(["benchmark", str(CROSS_DEMO), *cross_args(crop_manifest, missing, out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"test set 'unseen': {missing}: manifest not found" in err
    no_split = ('test_sets=[{name: later, manifest: "' + str(crop_manifest) + '", split: holdout}]')
    assert cli(["benchmark", str(CROSS_DEMO), *cross_args(crop_manifest, crop_manifest, out, no_split)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"test set 'later': {crop_manifest}: no split 'holdout' (it has test, train, val)" in err
    no_rows = 'test_sets=[{name: x, manifest: "' + str(crop_manifest) + '", methods: [Deepfakes]}]'
    assert cli(["benchmark", str(CROSS_DEMO), *cross_args(crop_manifest, crop_manifest, out, no_rows)]) == 2
    assert "no rows in split 'test' with methods=['Deepfakes']" in capsys.readouterr().err
    assert not (out / "runs").exists()  # nothing trained


def test_shipped_cross_configs_and_the_all_cell():
    from forensics.commands.benchmark import cell_overrides

    cfg = load_config(BenchmarkConfig, ROOT / "configs" / "cross" / "ffpp_c23.yaml",
                      ["manifest=ffpp.csv", "manifests.celebdf=cdf.csv", "manifests.dfd=dfd.csv",
                       "manifests.dfdc=dfdc.csv", "output_dir=o"])
    assert [t.name for t in cfg.test_sets] == ["ffpp_c23", "celebdf_v2", "dfd", "dfdc"]
    assert [t.manifest for t in cfg.test_sets] == ["ffpp.csv", "cdf.csv", "dfd.csv", "dfdc.csv"]
    assert [t.datasets for t in cfg.test_sets] == [["ffpp"], ["celebdf"], ["dfd"], ["dfdc"]]
    xception = {(p.test_set, p.metric): p.value for p in cfg.detectors[0].published}
    assert xception[("ffpp_c23", "frame/auc")] == 0.9637 and xception[("celebdf_v2", "frame/auc")] == 0.7365
    for detector in cfg.detectors:
        assert (ROOT / detector.config).is_file()
        assert all(p.source for p in detector.published)
    overrides = cell_overrides(cfg, cfg.detectors[0], "all", "c23", Path("run"))
    assert "data.methods=null" in overrides  # FF++'s four: FaceShifter is opt-in (OPT_IN_METHODS)
    assert "data.datasets=[ffpp]" in overrides
    with pytest.raises(ConfigError, match="manifests.celebdf"):
        load_config(BenchmarkConfig, ROOT / "configs" / "cross" / "ffpp_c23.yaml", ["manifest=m", "output_dir=o"])

    grid = load_config(BenchmarkConfig, ROOT / "configs" / "ffpp" / "benchmark.yaml", ["manifest=m", "output_dir=o"])
    assert "data.methods=null" in cell_overrides(grid, grid.detectors[0], "all", "c23", Path("run"))
    assert "data.methods=[original,FaceSwap]" in cell_overrides(grid, grid.detectors[0], "FaceSwap", "c23", Path("run"))
    demo = load_config(BenchmarkConfig, CROSS_DEMO, ["manifest=m", "manifests.unseen=u", "output_dir=o"])
    assert [(t.name, t.manifest) for t in demo.test_sets] == [("seen", "m"), ("unseen", "u")]


def test_cross_dataset_table_reaches_wandb(tmp_path):
    from forensics.commands.benchmark import log_summary
    from forensics.commands.cross_dataset import PublishedConfig, Scored
    from tests.wandb_offline import wandb_history

    cfg = load_config(BenchmarkConfig, CROSS_DEMO, ["manifest=m", "manifests.unseen=u", f"output_dir={tmp_path}",
                                                    "wandb.mode=offline"])
    detectors = [Scored("net", tmp_path / "best.pt", tmp_path, "FaceSwap, c23",
                        [PublishedConfig(test_set="unseen", value=0.61, source="a paper")])]
    cross = [{"detector": "net", "test_set": name, "status": "done", "frame/auc": auc, "video/auc": auc + 0.1}
             for name, auc in (("seen", 0.9), ("unseen", 0.55))]
    log_summary(cfg, [], tmp_path, (detectors, cross))
    import wandb

    # W&B's service process may still be writing the offline run when finish() returns;
    # teardown waits for it, as the end of a `forensics benchmark` process does.
    wandb.teardown()
    keys = {key.split("/")[0] for record in wandb_history(tmp_path / "summary") for key in record}
    assert {"cross_dataset", "results"} <= keys
    [table] = (tmp_path / "summary").glob("wandb/offline-run-*/files/media/table/cross_dataset_*.table.json")
    assert json.loads(table.read_text()) == {
        "columns": ["detector", "trained_on", "seen frame/auc", "seen video/auc", "unseen frame/auc",
                    "unseen video/auc", "unseen published frame/auc"],
        "data": [["net", "FaceSwap, c23", 0.9, 1.0, 0.55, 0.65, 0.61]]}
