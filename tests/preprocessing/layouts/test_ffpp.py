"""The FaceForensics++ layout on the synthetic dataset: labels, methods, splits, originals, masks."""

import json
import logging

import pytest

from forensics.errors import ForensicsError
from preprocessing.layouts import list_items, select_items
from tests.preprocessing.conftest import preprocess


def test_lists_every_video_with_label_method_split_and_original(pp_root):
    items = list_items("ffpp", pp_root)
    splits = {s: json.loads((pp_root / "splits" / f"{s}.json").read_text()) for s in ("train", "val", "test")}
    split_of = {v: s for s, pairs in splits.items() for pair in pairs for v in pair}
    assert len(items) == 18
    for item in items:
        assert item.dataset == "ffpp" and item.compression == "c23" and item.path.is_file()
        if item.method == "original":
            assert item.label == 0 and item.original == "" and item.mask is None
            assert item.split == split_of[item.video]
        else:
            target, source = item.video.split("_")
            assert item.label == 1 and item.original == target
            assert item.split == split_of[target]  # SelfBlend "a_a" follows its target
            assert item.mask is not None and item.mask.is_file()
            assert (source == target) == (item.method == "SelfBlend")
    assert {i.method for i in items} == {"original", "FaceSwap", "SelfBlend"}


def test_selection_by_method_compression_split(pp_root):
    items = list_items("ffpp", pp_root)
    chosen = select_items(items, methods=["original", "FaceSwap"], splits=["test"])
    assert chosen and {(i.method, i.split) for i in chosen} == {("original", "test"), ("FaceSwap", "test")}
    with pytest.raises(ForensicsError, match="Deepfakes"):
        select_items(items, methods=["Deepfakes"])
    with pytest.raises(ForensicsError, match="c40"):
        select_items(items, compressions=["c40"])


def test_root_of_another_layout_is_refused(tmp_path):
    (tmp_path / "Celeb-real").mkdir()
    with pytest.raises(ForensicsError, match="not a FaceForensics\\+\\+ root"):
        list_items("ffpp", tmp_path)
    with pytest.raises(ForensicsError, match="not a folder"):
        list_items("ffpp", tmp_path / "missing")


def test_missing_split_file_is_an_error_before_any_work(pp_root, tmp_path):
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "train.json").write_text("[]")
    with pytest.raises(ForensicsError, match="val.json"):
        list_items("ffpp", pp_root, splits)
    out = tmp_path / "out"
    assert preprocess("--layout", "ffpp", "--root", pp_root, "--out", out, "--splits", splits) == 2
    assert not (out / "crops").exists()


def test_split_naming_missing_videos_is_a_counted_warning(pp_root, tmp_path, caplog):
    splits = tmp_path / "splits"
    splits.mkdir()
    for name in ("train", "val", "test"):
        pairs = json.loads((pp_root / "splits" / f"{name}.json").read_text())
        if name == "test":
            pairs.append(["098", "099"])
        (splits / f"{name}.json").write_text(json.dumps(pairs))
    with caplog.at_level(logging.WARNING):
        items = list_items("ffpp", pp_root, splits)
    assert len(items) == 18
    # 2 originals, and the FaceSwap fakes 098_099 and 099_098.
    assert "4 videos named by the split files are missing" in caplog.text
    assert "098" in caplog.text
