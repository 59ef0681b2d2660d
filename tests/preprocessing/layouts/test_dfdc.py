"""A hand-made DFDC root (metadata.json in two parts), end to end."""

import json

import pytest

from forensics.errors import ForensicsError
from forensics.synth import fake_path, original_path
from preprocessing.layouts import list_items
from tests.preprocessing.conftest import link, preprocess, read


@pytest.fixture
def dfdc_root(pp_root, tmp_path):
    root = tmp_path / "dfdc"
    part0, part1 = root / "dfdc_train_part_0", root / "dfdc_train_part_1"
    link(original_path(pp_root, "c23", "003"), part0 / "aaaa.mp4")
    link(fake_path(pp_root, "SelfBlend", "c23", "003", "003"), part0 / "bbbb.mp4")
    link(original_path(pp_root, "c23", "004"), part1 / "cccc.mp4")
    (part0 / "metadata.json").write_text(json.dumps({
        "aaaa.mp4": {"label": "REAL", "split": "train", "original": None},
        "bbbb.mp4": {"label": "FAKE", "split": "train", "original": "aaaa.mp4"},
        "gone.mp4": {"label": "REAL", "split": "train"}}))
    (part1 / "metadata.json").write_text(json.dumps({"cccc.mp4": {"label": "REAL", "split": "val"}}))
    return root


EXPECTED = {"aaaa": (0, "original", "train", ""), "bbbb": (1, "DFDC", "train", "aaaa"),
            "cccc": (0, "original", "val", "")}


def test_labels_splits_and_originals(dfdc_root, caplog):
    items = list_items("dfdc", dfdc_root)
    assert {i.video: (i.label, i.method, i.split, i.original) for i in items} == EXPECTED
    assert "1 videos named by the split files are missing: gone.mp4" in caplog.text
    with pytest.raises(ForensicsError, match=r"--val-fraction must be in \[0, 1\), got 1"):
        list_items("dfdc", dfdc_root, val_fraction=1)


def test_preprocess_gives_the_manifest(dfdc_root, tmp_path):
    out = tmp_path / "out"
    assert preprocess("--layout", "dfdc", "--root", dfdc_root, "--out", out, "--frames", "2", "--workers", "0",
                      "--val-fraction", "0.1") == 0
    assert json.loads((out / "summary.json").read_text())["val_fraction"] == 0.1
    df = read(out)
    got = {v: (int(g.label.iloc[0]), g.method.iloc[0], g.split.iloc[0], g.original.iloc[0])
           for v, g in df.groupby("video")}
    assert got == EXPECTED


def test_bad_metadata_is_an_error(dfdc_root, tmp_path):
    (dfdc_root / "dfdc_train_part_1" / "metadata.json").write_text(json.dumps({"cccc.mp4": {"label": "MAYBE"}}))
    with pytest.raises(ForensicsError, match="REAL or FAKE"):
        list_items("dfdc", dfdc_root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ForensicsError, match="not a DFDC root"):
        list_items("dfdc", tmp_path / "empty")
