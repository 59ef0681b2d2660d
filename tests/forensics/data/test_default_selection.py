"""What training and evaluation load by default: no opt-in method, only each video's subject."""

import logging

import pandas as pd
import pytest

from forensics.data.datasets import load_frames
from forensics.data.manifest import write_manifest


def _row(video, method, frame, face, dataset="ffpp", split="test"):
    label = int(method != "original")
    return {"path": f"crops/{method}/{video}/{frame:04d}" + (f"_face{face}" if face else "") + ".png",
            "dataset": dataset, "video": video, "frame": frame, "label": label, "method": method,
            "compression": "c23", "split": split, "original": video.split("_")[0] if label else "",
            "x0": 0.0, "y0": 0.0, "x1": 1.0, "y1": 1.0, "score": 1.0, "mask": "", "face": face}


@pytest.fixture
def manifest(tmp_path):
    rows = [_row("000", "original", f, 0) for f in (0, 5)] + [_row("000", "original", 5, 1)]
    rows += [_row("000_001", "Deepfakes", f, 0) for f in (0, 5)] + [_row("000_001", "Deepfakes", 5, 1)]
    rows += [_row("000_001", "FaceShifter", f, 0) for f in (0, 5)]
    rows += [_row("000_001", "FaceShifter", 0, 0, dataset="folder")]  # another dataset's method of that name
    return write_manifest(pd.DataFrame(rows), tmp_path / "manifest.csv") or tmp_path / "manifest.csv"


def test_other_faces_of_all_faces_runs_are_left_out_by_default(manifest, caplog):
    with caplog.at_level(logging.INFO):
        frames = load_frames(manifest, "test", check_files=False)
    assert (frames.face.astype(int) == 0).all()
    # The bystander in fake video 000_001 is a real face: never scored as a fake by default.
    assert not ((frames.video == "000_001") & (frames.frame == 5) & (frames.path.str.contains("_face1"))).any()
    assert "left out 2 crops of faces other than each video's subject" in caplog.text
    everything = load_frames(manifest, "test", check_files=False, all_faces=True)
    assert sorted(everything.face.astype(int)) == [0] * 5 + [1, 1]  # (FaceShifter of ffpp still left out)


def test_faceshifter_of_ffpp_is_used_only_when_named(manifest, caplog):
    with caplog.at_level(logging.INFO):
        frames = load_frames(manifest, "test", check_files=False)
    assert set(zip(frames.dataset, frames.method)) == {("ffpp", "original"), ("ffpp", "Deepfakes"),
                                                        ("folder", "FaceShifter")}
    assert "left out 2 crops of FaceShifter" in caplog.text
    named = load_frames(manifest, "test", methods=["original", "FaceShifter"], datasets=["ffpp"], check_files=False)
    assert set(named.method) == {"original", "FaceShifter"}


def test_a_manifest_from_before_dataset_dfd_is_flagged(tmp_path, caplog):
    rows = [_row("000", "original", 0, 0), _row("01__walking_down_street", "original", 0, 0)]
    write_manifest(pd.DataFrame(rows), tmp_path / "old.csv")
    load_frames(tmp_path / "old.csv", "test", check_files=False)
    assert "1 ffpp crops are DeepFakeDetection videos (ids like 01__walking_down_street)" in caplog.text
