"""`forensics benchmark` on the synthetic crops: a 2-detector x 2-cell grid end to end, its
tables, a re-run that skips finished cells, and a failing cell recorded while the rest run."""

from __future__ import annotations

import csv
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
