"""A miniature *full* FaceForensics++ download: YouTube originals, the four methods, FaceShifter,
and the DeepFakeDetection actors and fakes, made of the synthetic videos under the real names.

Layout discovery only (no face detection), except one small end-to-end run.
"""

import json
import logging

import pandas as pd
import pytest

from forensics.commands.benchmark import ALL, BenchmarkConfig, DetectorConfig, cell_overrides
from forensics.data.datasets import load_frames
from forensics.data.manifest import write_manifest
from forensics.errors import ForensicsError
from forensics.synth import fake_path, original_path
from preprocessing.layouts import list_items
from tests.preprocessing.conftest import link, preprocess, read

PAPER = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
COMP = "c23"


@pytest.fixture
def full_root(pp_root, tmp_path):
    """6 YouTube originals, 6 fakes of each of the 4 methods and FaceShifter, 3 actors, 4 DFD fakes."""
    root = tmp_path / "FaceForensics++"
    (root / "splits").mkdir(parents=True)
    for name in ("train", "val", "test"):
        (root / "splits" / f"{name}.json").write_text((pp_root / "splits" / f"{name}.json").read_text())
    pairs = [p for s in ("train", "val", "test") for p in json.loads((pp_root / "splits" / f"{s}.json").read_text())]
    for a, b in pairs:
        for vid in (a, b):
            link(original_path(pp_root, COMP, vid), original_path(root, COMP, vid))
        for method in PAPER + ["FaceShifter"]:
            for target, source in ((a, b), (b, a)):
                link(fake_path(pp_root, "FaceSwap", COMP, target, source), fake_path(root, method, COMP, target, source))
    actors = root / "original_sequences" / "actors" / COMP / "videos"
    dfd = root / "manipulated_sequences" / "DeepFakeDetection" / COMP / "videos"
    for i, name in enumerate(["01__walking_down_street", "02__kitchen_pan", "03__outside_talking_still"]):
        link(original_path(pp_root, COMP, f"{i:03d}"), actors / f"{name}.mp4")
    for name in ["01_02__walking_down_street__YVGY8LOK", "02_01__kitchen_pan__8DTEGQ54",
                 "03_01__outside_talking_still__ZZYDK6QE", "04_01__hugging_happy__ABCDEFGH"]:
        link(fake_path(pp_root, "FaceSwap", COMP, "000", "001"), dfd / f"{name}.mp4")
    return root


def _manifest(items, path):
    """A one-row-per-video manifest of the listed items (what preprocessing would write, minus the crops)."""
    rows = [{"path": f"crops/{i.key}/0000.png", "dataset": i.dataset, "video": i.video, "frame": 0, "label": i.label,
             "method": i.method, "compression": i.compression, "split": i.split, "original": i.original,
             "x0": 0.0, "y0": 0.0, "x1": 1.0, "y1": 1.0, "score": 1.0} for i in items]
    write_manifest(pd.DataFrame(rows), path)
    return path


def test_ffpp_is_youtube_originals_and_its_methods(full_root, caplog):
    with caplog.at_level(logging.INFO):
        items = list_items("ffpp", full_root)
    assert {i.dataset for i in items} == {"ffpp"}
    reals = [i for i in items if i.label == 0]
    assert len(reals) == 6 and all("/youtube/" in i.path.as_posix() for i in reals)
    test_reals = [i for i in reals if i.split == "test"]
    assert [i.video for i in test_reals] == ["004", "005"]
    assert {i.method for i in items if i.label} == set(PAPER) | {"FaceShifter"}
    assert not any("actors" in i.path.as_posix() or "DeepFakeDetection" in i.path.as_posix() for i in items)
    # Counted against the official download, in one line naming the partial parts.
    partial = [r for r in caplog.records if "partial download" in r.getMessage()]
    assert len(partial) == 1 and "original/c23 6 of 1,000" in partial[0].getMessage()
    assert "FaceShifter/c23 6 of 1,000" in partial[0].getMessage()
    assert "--layout dfd" in caplog.text


def test_dfd_is_its_own_dataset_with_fakes_paired_to_actors(full_root):
    items = list_items("dfd", full_root)
    assert {i.dataset for i in items} == {"dfd"} and {i.split for i in items} == {"test"}
    assert sorted(i.video for i in items if i.label == 0) == [
        "01__walking_down_street", "02__kitchen_pan", "03__outside_talking_still"]
    originals = {i.video: i.original for i in items if i.label == 1}
    assert originals == {"01_02__walking_down_street__YVGY8LOK": "01__walking_down_street",
                         "02_01__kitchen_pan__8DTEGQ54": "02__kitchen_pan",
                         "03_01__outside_talking_still__ZZYDK6QE": "03__outside_talking_still",
                         "04_01__hugging_happy__ABCDEFGH": ""}  # actor 04's scene is not in the download
    assert {i.method for i in items if i.label} == {"DeepFakeDetection"}


def test_all_is_the_four_methods_and_faceshifter_only_when_named(full_root, tmp_path):
    manifest = _manifest(list_items("ffpp", full_root), tmp_path / "manifest.csv")
    # The benchmark's "all" cell trains and tests with data.methods=null ...
    cfg = BenchmarkConfig(output_dir=str(tmp_path), manifest=str(manifest), base_config="x.yaml",
                          detectors=[DetectorConfig(name="meso4")])
    assert "data.methods=null" in cell_overrides(cfg, cfg.detectors[0], ALL, COMP, tmp_path / "run")
    # ... which is the four paper methods and the reals.
    for split in ("train", "test"):
        frames = load_frames(manifest, split, check_files=False)
        assert set(frames.method) == {"original", *PAPER}
    named = load_frames(manifest, "test", methods=["original", "FaceShifter"], check_files=False)
    assert set(named.method) == {"original", "FaceShifter"}


def test_ffpp_asked_of_a_dfd_only_download_points_to_dfd(full_root):
    import shutil

    shutil.rmtree(full_root / "original_sequences" / "youtube")
    for method in PAPER + ["FaceShifter"]:
        shutil.rmtree(full_root / "manipulated_sequences" / method)
    with pytest.raises(ForensicsError, match="its DeepFakeDetection videos are --layout dfd"):
        list_items("ffpp", full_root)
    assert len(list_items("dfd", full_root)) == 7


def test_dfd_asked_of_a_root_without_actors_is_one_line(pp_root, tmp_path):
    with pytest.raises(ForensicsError, match=r"original_sequences/actors: not found"):
        list_items("dfd", pp_root)
    out = tmp_path / "out"
    assert preprocess("--layout", "dfd", "--root", pp_root, "--out", out) == 2
    assert not out.exists()


@pytest.mark.slow
def test_preprocess_test_split_reals_are_youtube_only(full_root, tmp_path):
    out = tmp_path / "out"
    assert preprocess("--layout", "ffpp", "--root", full_root, "--out", out, "--only-splits", "test",
                      "--methods", "original", "Deepfakes", "FaceShifter", "--frames", "2", "--workers", "0") == 0
    df = read(out)
    assert set(df[df.label == 0].video) == {"004", "005"} and set(df.dataset) == {"ffpp"}
    assert set(load_frames(out / "manifest.csv", "test").method) == {"original", "Deepfakes"}
