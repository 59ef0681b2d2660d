"""A video that cuts from one person to another at the same place: the subject's crops stay in one shot."""

import json

import pytest

from forensics.media.faces import box_distance
from forensics.media.video import read_frames, video_info, write_video
from forensics.synth import original_path
from tests.preprocessing.conftest import preprocess, read


@pytest.fixture(scope="module")
def two_shots(pp_root, tmp_path_factory):
    """Synthetic originals 000 then 001 (20 frames each, different people, faces at about the same place)."""
    frames = []
    for vid in ("000", "001"):
        path = original_path(pp_root, "c23", vid)
        frames += [f for _, f in read_frames(path, range(video_info(path)[0]))]
    root = tmp_path_factory.mktemp("two-shots")
    write_video(root / "real" / "cut.mp4", frames, fps=20, crf=18)
    return root


@pytest.mark.slow
def test_tracks_split_at_the_shot_cut(two_shots, tmp_path):
    out = tmp_path / "out"
    assert preprocess("--layout", "folder", "--root", two_shots, "--out", out, "--frames", "8", "--all-faces",
                      "--workers", "0") == 0
    record = json.loads((out / "tracks" / "folder" / "original" / "unknown" / "cut.json").read_text())
    assert record["sampled"] == [0, 6, 11, 17, 22, 28, 33, 39] and record["cuts"] == [22]
    first, second = record["tracks"][0], record["tracks"][1]
    shots = sorted([sorted(map(int, first)), sorted(map(int, second))])
    assert shots == [[0, 6, 11, 17], [22, 28, 33, 39]]
    # Without the cut test these two would be one track: same place, same size.
    last, after = first[str(max(map(int, first)))], second[str(min(map(int, second)))]
    if min(map(int, first)) > min(map(int, second)):
        last, after = second[str(max(map(int, second)))], first[str(min(map(int, first)))]
    assert box_distance(last, after) < 1.0
    df = read(out)
    subject = df[df.face.astype(int) == 0]
    assert sorted(subject.frame) in shots and len(df) == 8  # the other shot's person is face 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"]["with_cuts"] == 1
    assert summary["cuts"] == [{"video": "folder/original/unknown/cut", "frames": [22]}]
