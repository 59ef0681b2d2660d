"""Users' own data: real/ and fake/ folders, any depth, optional split folders."""

import pytest

from forensics.errors import ForensicsError
from forensics.synth import fake_path, original_path
from preprocessing.layouts import list_items
from tests.preprocessing.conftest import link, preprocess, read


@pytest.fixture
def folder_root(pp_root, tmp_path):
    root = tmp_path / "mine"
    link(original_path(pp_root, "c23", "000"), root / "real" / "a.mp4")
    link(original_path(pp_root, "c23", "001"), root / "real" / "day2" / "b.mp4")
    link(fake_path(pp_root, "FaceSwap", "c23", "000", "001"), root / "fake" / "FaceSwap" / "c.mp4")
    link(fake_path(pp_root, "SelfBlend", "c23", "001", "001"), root / "fake" / "d.mp4")
    (root / "real" / "notes.txt").write_text("not a video")
    return root


EXPECTED = {"a": (0, "original", "test"), "day2/b": (0, "original", "test"),
            "c": (1, "FaceSwap", "test"), "d": (1, "fake", "test")}


def test_labels_methods_and_split(folder_root, tmp_path):
    items = list_items("folder", folder_root)
    assert {i.video: (i.label, i.method, i.split) for i in items} == EXPECTED
    out = tmp_path / "out"
    assert preprocess("--layout", "folder", "--root", folder_root, "--out", out, "--frames", "2", "--workers", "0") == 0
    df = read(out)
    assert {v: (int(g.label.iloc[0]), g.method.iloc[0], g.split.iloc[0]) for v, g in df.groupby("video")} == EXPECTED
    assert (out / "crops" / "folder" / "original" / "unknown" / "day2" / "b").is_dir()


def test_split_folders(pp_root, tmp_path):
    root = tmp_path / "mine"
    link(original_path(pp_root, "c23", "000"), root / "train" / "real" / "a.mp4")
    link(original_path(pp_root, "c23", "001"), root / "val" / "fake" / "b.mp4")
    assert {i.video: i.split for i in list_items("folder", root)} == {"a": "train", "b": "val"}
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ForensicsError, match="real/ and fake/"):
        list_items("folder", tmp_path / "nothing")
