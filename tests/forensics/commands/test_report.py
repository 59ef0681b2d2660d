"""`forensics report RUN_DIR`: a run folder to one self-contained HTML file, offline."""

import base64
import json
import re
import shutil

from forensics.cli import main as cli


def test_report_of_a_training_run_is_one_self_contained_file(explained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(explained_run, run)
    assert cli(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert f"report: {run / 'report.html'}" in capsys.readouterr().out
    # Self-contained: no file or URL is fetched; every image is inline.
    assert not re.search(r"""(src|href)=['"](?!data:)""", page) and "<script" not in page
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    pngs = sorted(run.glob("*.png"))
    assert len(pngs) >= 2 and len(images) == len(pngs) + 1  # the run's figures + the training curves
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    report = json.loads((run / "report.json").read_text())
    assert f"{report['test']['video']['auc']:.4f}" in page and "test split" in page and "val split" in page
    assert report["lineage"]["digest"] in page and report["lineage"]["files"] > 0
    assert "FaceSwap" in page and "output_dir:" in page  # per-method table, config


def test_report_of_an_eval_only_folder_and_of_no_run(explained_run, tmp_path, capsys):
    folder = tmp_path / "eval"
    folder.mkdir()
    shutil.copy(explained_run / "report.json", folder / "eval_report.json")
    assert cli(["report", str(folder), "--out", str(tmp_path / "r.html")]) == 0
    assert "test split" in (tmp_path / "r.html").read_text()
    assert cli(["report", str(tmp_path / "nothing")]) == 2
    assert "not a run folder" in capsys.readouterr().err
