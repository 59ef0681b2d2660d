"""A miniature DFDC: two train parts and the public test folder with labels.csv (layout discovery only)."""

import json
import logging

import pytest

from forensics.errors import ForensicsError
from forensics.synth import original_path
from preprocessing.layouts import list_items
from tests.preprocessing.conftest import link, preprocess

ORIGINALS = [f"real{i:02d}" for i in range(12)]


@pytest.fixture
def dfdc_full(pp_root, tmp_path):
    """Parts 0 and 1: 6 reals each, 2 fakes per real (in its part); test/: 3 labelled videos."""
    video = original_path(pp_root, "c23", "000")
    root = tmp_path / "dfdc"
    for p, names in enumerate((ORIGINALS[:6], ORIGINALS[6:])):
        part = root / f"dfdc_train_part_{p}"
        meta = {}
        for name in names:
            link(video, part / f"{name}.mp4")
            meta[f"{name}.mp4"] = {"label": "REAL", "split": "train", "original": None}
            for k in range(2):
                link(video, part / f"fake{k}_{name}.mp4")
                meta[f"fake{k}_{name}.mp4"] = {"label": "FAKE", "split": "train", "original": f"{name}.mp4"}
        (part / "metadata.json").write_text(json.dumps(meta))
    for name in ("aaqaifqrwn", "abofeumbvv", "acqfdwsrhi"):
        link(video, root / "test" / f"{name}.mp4")
    (root / "test" / "labels.csv").write_text("filename,label\naaqaifqrwn.mp4,1\nabofeumbvv.mp4,0\nacqfdwsrhi.mp4,1\n")
    return root


def test_test_split_comes_from_labels_csv(dfdc_full, caplog):
    with caplog.at_level(logging.INFO):
        items = list_items("dfdc", dfdc_full)
    test = {i.video: (i.label, i.method) for i in items if i.split == "test"}
    assert test == {"aaqaifqrwn": (1, "DFDC"), "abofeumbvv": (0, "original"), "acqfdwsrhi": (1, "DFDC")}
    assert "train_parts 2 of 50; test 3 of 5,000" in caplog.text


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5])
def test_no_original_fake_pair_straddles_train_and_val(dfdc_full, fraction):
    items = [i for i in list_items("dfdc", dfdc_full, val_fraction=fraction) if i.split != "test"]
    split_of = {i.video: i.split for i in items if i.label == 0}
    fakes = [i for i in items if i.label == 1]
    assert len(fakes) == 24 and all(f.split == split_of[f.original] for f in fakes)
    assert {i.split for i in items} == {"train", "val"}
    # Deterministic, and more val as the fraction grows (the same hash, a higher cut).
    again = {i.video: i.split for i in list_items("dfdc", dfdc_full, val_fraction=fraction)}
    assert again == {i.video: i.split for i in list_items("dfdc", dfdc_full, val_fraction=fraction)}
    smaller = {i.video for i in list_items("dfdc", dfdc_full, val_fraction=fraction / 2) if i.split == "val"}
    assert smaller <= {v for v, s in again.items() if s == "val"}


@pytest.mark.parametrize("csv_text, message", [
    ("filename,label\naaqaifqrwn.mp4,2\n", r"labels.csv: line 2: label must be 1 \(fake\) or 0 \(real\), got '2'"),
    ("filename,label\naaqaifqrwn.mp4,FAKE\n", r"labels.csv: line 2: label must be"),
    ("name,fake\naaqaifqrwn.mp4,1\n", r"labels.csv: expected the columns filename,label"),
    ("filename,label\nnotes.txt,1\n", r"labels.csv: line 2: filename 'notes.txt' is not a video file name"),
    ("filename,label\nzzzz.mp4,1\nyyyy.mp4,0\n", r"labels.csv: none of its 2 files is under"),
])
def test_bad_labels_csv_is_one_line_before_work(dfdc_full, tmp_path, capsys, csv_text, message):
    (dfdc_full / "test" / "labels.csv").write_text(csv_text)
    with pytest.raises(ForensicsError, match=message):
        list_items("dfdc", dfdc_full)
    out = tmp_path / "out"
    assert preprocess("--layout", "dfdc", "--root", dfdc_full, "--out", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "labels.csv" in err[0] and not out.exists()


def test_preview_splits_by_identity_folder(pp_root, tmp_path, caplog):
    root = tmp_path / "dfdcp"
    video = original_path(pp_root, "c23", "000")
    index = {}
    for ident in ("1000", "1001", "1002", "1003", "1004", "1005"):
        link(video, root / "original_videos" / ident / "a.mp4")
        index[f"original_videos/{ident}/a.mp4"] = {"label": "real", "set": "train"}
        link(video, root / "method_A" / ident / f"{ident}_A" / "b.mp4")
        index[f"method_A/{ident}/{ident}_A/b.mp4"] = {"label": "fake", "set": "train", "target_id": ident}
    index["method_B/1005/1005_B/c.mp4"] = {"label": "fake", "set": "test", "target_id": "1005"}
    link(video, root / "method_B" / "1005" / "1005_B" / "c.mp4")
    (root / "dataset.json").write_text(json.dumps(index))
    items = list_items("dfdcp", root, val_fraction=0.5)
    assert {i.dataset for i in items} == {"dfdcp"}
    by_ident: dict[str, set[str]] = {}
    for i in items:
        if i.split != "test":
            by_ident.setdefault(i.video.split("/")[1], set()).add(i.split)
    assert all(len(s) == 1 for s in by_ident.values()) and {"train", "val"} == set().union(*by_ident.values())
    assert [(i.method, i.split) for i in items if i.split == "test"] == [("method_B", "test")]
    assert "dfdcp: partial download (found of official): original 6 of 1,131; fake 7 of 4,113" in caplog.text
