"""`forensics refiner video`: refined crops pasted back into every frame, re-encoded."""

from __future__ import annotations

import numpy as np
import pytest

from forensics.cli import main as cli
from forensics.synth import fake_path, mask_path, original_path, split_pairs
from forensics.media.video import read_frames, video_info
from refiner.video import fade_window, paste_correction

from .conftest import REENACT_SYNTH, SIZE


def _frames(path) -> np.ndarray:
    return np.stack([frame for _, frame in read_frames(path)]).astype(np.float64)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255 ** 2 / np.mean((a - b) ** 2)))


@pytest.mark.slow  # shares the minutes-long run of test_train.py's learning check
def test_refined_video_is_closer_to_its_original(reenact_synth, reenact_run, tmp_path):
    """A held-out self-reenactment, refined frame by frame, comes closer to its original video
    inside the manipulated region, and stays the fake video everywhere else."""
    target = split_pairs(REENACT_SYNTH["originals"])["test"][0][0]
    fake = fake_path(reenact_synth, "SelfReenact", "c23", target, target)
    out = tmp_path / "refined"
    assert cli(["refiner", "video", str(fake), "--checkpoint", str(reenact_run / "checkpoints" / "best.pt"),
                "--out", str(out), "--crop-size", str(SIZE), "--crf", "0", "--device", "cpu"]) == 0
    refined_path = out / fake.name
    assert video_info(refined_path)[0::2] == video_info(fake)[0::2]  # frame count and width
    refined, unrefined = _frames(refined_path), _frames(fake)
    original = _frames(original_path(reenact_synth, "c23", target))
    inside = _frames(mask_path(reenact_synth, "SelfReenact", target, target))[..., 0] > 127
    # Measured +1.6 dB (30.1 -> 31.7); the crops themselves gain about 2 dB (test_train.py).
    assert _psnr(refined[inside], original[inside]) > _psnr(unrefined[inside], original[inside]) + 0.5
    # Far from the face (the frame's top corners), only the lossless re-encode's rounding.
    corners = np.zeros(inside.shape[1:], bool)
    corners[:20, :40] = corners[:20, -40:] = True
    assert np.abs(refined[:, corners] - unrefined[:, corners]).mean() < 0.5


def test_missing_video_is_one_line_and_writes_nothing(refiner_run, tmp_path, capsys):
    checkpoint = str(refiner_run / "checkpoints" / "best.pt")
    assert cli(["refiner", "video", str(tmp_path / "nope.mp4"), "--checkpoint", checkpoint, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(f"no such video: {tmp_path / 'nope.mp4'}")
    assert not list(tmp_path.iterdir())  # nothing written


def test_paste_fades_the_correction_into_the_frame():
    frame = np.full((60, 80, 3), 100, np.uint8)
    box = (30.0, 20.0, 50.0, 40.0)  # a 20 px face: its crop square is 26 px, from (27, 17)
    assert np.array_equal(paste_correction(frame, box, np.zeros((64, 64, 3), np.float32), 1.3), frame)
    pasted = paste_correction(frame, box, np.full((64, 64, 3), 10, np.float32), 1.3).astype(int) - 100
    assert pasted[30, 40].tolist() == [10, 10, 10]  # the middle gets the whole correction
    assert 0 < pasted[30, 28, 0] < 10 and pasted[30, 26, 0] == 0 and pasted[16, 40, 0] == 0  # faded, then nothing
    # A square hanging over the frame's edge is pasted where it is inside.
    edge = paste_correction(frame, (-5.0, -5.0, 15.0, 15.0), np.full((64, 64, 3), 10, np.float32), 1.3)
    assert edge[5, 5, 0] == 110 and edge[30, 30, 0] == 100


@pytest.mark.parametrize("side", [8, 26, 101])
def test_fade_window_is_one_inside_and_falls_to_the_border(side):
    window = fade_window(side)
    assert window.shape == (side, side) and window.max() == pytest.approx(1.0)
    assert np.allclose(window, window.T) and np.allclose(window, window[::-1, ::-1])
    assert 0 < window[0, 0] < window[0, side // 2] <= 0.5 < window[side // 2, side // 2]
