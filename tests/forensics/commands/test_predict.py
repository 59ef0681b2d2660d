"""`forensics predict`: scores a real and a fake synthetic video, writes per-frame scores and
annotated copies, and says "no face" (not a made-up 0.5) when there is none."""

import csv
import re

import numpy as np
import pytest

from forensics.cli import main as cli
from forensics.synth import fake_path, original_path
from forensics.media.video import VideoWriter, read_frames, video_info

from .test_train import train


@pytest.fixture(scope="module")
def checkpoint(crop_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict_run")
    assert train(crop_manifest, out, "train.epochs=1", "data.val_split=null") == 0
    return out / "checkpoints" / "best.pt"


def test_scores_real_and_fake_and_annotates(checkpoint, synth_root, tmp_path, capsys):
    real = original_path(synth_root, "c23", "016")
    fake = fake_path(synth_root, "FaceSwap", "c23", "016", "017")
    scores, annotated = tmp_path / "scores.csv", tmp_path / "annotated"
    status = cli(["predict", "--checkpoint", str(checkpoint), str(real), str(fake), "--csv", str(scores),
                  "--annotate", str(annotated), "--device", "cpu"])
    out = capsys.readouterr().out
    assert status == 0, out
    lines = [line for line in out.splitlines() if "fake probability" in line]
    assert len(lines) == 2 and str(real) in lines[0] and str(fake) in lines[1]
    used = []
    for line in lines:
        probability = float(line.split("fake probability")[1].split()[0])
        assert 0.0 <= probability <= 1.0 and ("FAKE" in line or "REAL" in line)
        found, sampled = map(int, re.search(r"(\d+)/(\d+) frames", line).groups())
        assert sampled == 8 and found >= 6  # the frames preprocessing sampled (settings in the checkpoint)
        used.append(found)
    rows = list(csv.DictReader(scores.open()))
    assert sum(r["frame"] != "video" for r in rows) == sum(used)
    assert {r["video"] for r in rows} == {str(real), str(fake)}
    for video in (real, fake):
        copy = annotated / f"{video.stem}.mp4"
        assert sum(1 for _ in read_frames(copy)) == video_info(video)[0]
    # The box is drawn: the annotated frame differs from the source around the face.
    first_src = next(read_frames(real))[1].astype(int)
    first_ann = next(read_frames(annotated / f"{real.stem}.mp4"))[1].astype(int)
    assert np.abs(first_src - first_ann).max() > 100


def test_no_face_is_reported_not_scored(checkpoint, tmp_path, capsys):
    blank = tmp_path / "blank.mp4"
    with VideoWriter(blank, fps=10, crf=23) as writer:
        for i in range(6):
            writer.write(np.full((120, 160, 3), 40 + 10 * i, np.uint8))
    status = cli(["predict", "--checkpoint", str(checkpoint), str(tmp_path), "--csv", str(tmp_path / "s.csv"),
                  "--device", "cpu"])
    out = capsys.readouterr().out
    assert status == 0
    assert "no face" in out and "0/6 frames" in out and "fake probability" not in out
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert rows == [{"video": str(blank), "frame": "video", "x0": "", "y0": "", "x1": "", "y1": "", "score": "no face"}]


def test_unreadable_file_does_not_stop_the_others(checkpoint, synth_root, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    status = cli(["predict", "--checkpoint", str(checkpoint), str(broken),
                  str(original_path(synth_root, "c23", "018")), "--csv", str(tmp_path / "s.csv"), "--device", "cpu"])
    out = capsys.readouterr().out
    assert status == 1
    assert "broken.mp4" in out and "error: cannot open video" in out and "fake probability" in out
