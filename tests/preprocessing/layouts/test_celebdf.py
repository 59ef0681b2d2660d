"""A hand-made Celeb-DF v2 root (synthetic videos under Celeb-DF's names), end to end."""

import pytest

from forensics.errors import ForensicsError
from forensics.synth import fake_path, original_path
from preprocessing.layouts import list_items
from tests.preprocessing.conftest import link, preprocess, read


@pytest.fixture
def celebdf_root(pp_root, tmp_path):
    root = tmp_path / "Celeb-DF-v2"
    link(original_path(pp_root, "c23", "000"), root / "Celeb-real" / "id0_0000.mp4")
    link(original_path(pp_root, "c23", "001"), root / "Celeb-real" / "id1_0000.mp4")
    link(original_path(pp_root, "c23", "002"), root / "YouTube-real" / "00000.mp4")
    link(fake_path(pp_root, "FaceSwap", "c23", "000", "001"), root / "Celeb-synthesis" / "id0_id1_0000.mp4")
    link(fake_path(pp_root, "FaceSwap", "c23", "001", "000"), root / "Celeb-synthesis" / "id1_id0_0000.mp4")
    # Celeb-DF's own convention: 1 is real, 0 is fake.
    (root / "List_of_testing_videos.txt").write_text("1 YouTube-real/00000.mp4\n0 Celeb-synthesis/id1_id0_0000.mp4\n")
    return root


EXPECTED = {  # video -> (label, method, split, original)
    "id0_0000": (0, "original", "train", ""),
    "id1_0000": (0, "original", "train", ""),
    "00000": (0, "original", "test", ""),
    "id0_id1_0000": (1, "Celeb-synthesis", "train", "id0_0000"),
    "id1_id0_0000": (1, "Celeb-synthesis", "test", "id1_0000"),
}


def test_labels_splits_and_originals(celebdf_root):
    items = list_items("celebdf", celebdf_root)
    assert {i.video: (i.label, i.method, i.split, i.original) for i in items} == EXPECTED
    assert {i.compression for i in items} == {"unknown"}


def test_preprocess_gives_the_manifest(celebdf_root, tmp_path):
    out = tmp_path / "out"
    assert preprocess("--layout", "celebdf", "--root", celebdf_root, "--out", out, "--frames", "2",
                      "--workers", "0") == 0
    df = read(out)
    got = {v: (int(g.label.iloc[0]), g.method.iloc[0], g.split.iloc[0], g.original.iloc[0])
           for v, g in df.groupby("video")}
    assert got == EXPECTED
    assert (df.dataset == "celebdf").all() and (df.groupby("video").size() == 2).all()
    # The fakes reuse their original's boxes.
    boxes = df.set_index(["video", "frame"])[["x0", "y0", "x1", "y1"]]
    assert (boxes.loc["id0_id1_0000"].to_numpy() == boxes.loc["id0_0000"].to_numpy()).all()


def test_missing_test_list_and_wrong_root(celebdf_root, tmp_path):
    (celebdf_root / "List_of_testing_videos.txt").unlink()
    with pytest.raises(ForensicsError, match="List_of_testing_videos.txt"):
        list_items("celebdf", celebdf_root)
    (tmp_path / "other").mkdir()
    with pytest.raises(ForensicsError, match="not a Celeb-DF root"):
        list_items("celebdf", tmp_path / "other")


def test_version_and_counts_are_one_line(celebdf_root, caplog):
    import logging

    from preprocessing.layouts.celebdf import guess_version

    with caplog.at_level(logging.INFO):
        list_items("celebdf", celebdf_root)
    lines = [r.getMessage() for r in caplog.records if "partial download" in r.getMessage()]
    assert lines == ["celebdf (v1): partial download (found of official): Celeb-real 2 of 158; YouTube-real 1 of 250; "
                     "Celeb-synthesis 2 of 795; running on what is there"]
    assert guess_version({"Celeb-real": 3}, 518) == "v2"
    assert guess_version({"Celeb-synthesis": 796}, 10) == "v2"
    assert guess_version({"Celeb-synthesis": 795}, 10) == "v1"
