"""Tests of forensics/media/video.py: H.264 writing and sequential reading on PyAV."""

from __future__ import annotations

import numpy as np
import pytest

from forensics.errors import ForensicsError
from forensics.media.video import COMPRESSIONS, VideoWriter, read_frames, video_info, write_video


def _frames(n: int = 12, width: int = 96, height: int = 64) -> list[np.ndarray]:
    """Smooth moving gradients (compressible, and different from frame to frame)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for t in range(n):
        r = 128 + 100 * np.sin((x + 3 * t) / 15)
        g = 128 + 100 * np.cos((y - 2 * t) / 11)
        b = (x + y + 5 * t) % 256
        out.append(np.stack([r, g, b], axis=2).astype(np.uint8))
    return out


def test_compressions_are_ffpp_crfs() -> None:
    assert COMPRESSIONS == {"c0": 0, "raw": 0, "c23": 23, "c40": 40}


@pytest.mark.parametrize("crf, tolerance", [(0, 1.0), (23, 6.0)])
def test_roundtrip(tmp_path, crf: int, tolerance: float) -> None:
    frames = _frames()
    path = tmp_path / "v.mp4"
    assert write_video(path, frames, fps=25, crf=crf) == len(frames)
    assert video_info(path) == (len(frames), 25.0, 96, 64)
    decoded = list(read_frames(path))
    assert [i for i, _ in decoded] == list(range(len(frames)))
    for (_, got), want in zip(decoded, frames):
        assert got.dtype == np.uint8 and got.shape == (64, 96, 3)
        assert np.abs(got.astype(int) - want).mean() < tolerance
    # Nothing but the video is left in the folder (no temporary file).
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_lower_crf_is_closer_and_bigger(tmp_path) -> None:
    frames = _frames()
    errors, sizes = [], []
    for crf in (0, 23, 40):
        path = tmp_path / f"{crf}.mp4"
        write_video(path, frames, fps=25, crf=crf)
        got = np.stack([f for _, f in read_frames(path)]).astype(int)
        errors.append(np.abs(got - np.stack(frames)).mean())
        sizes.append(path.stat().st_size)
    assert errors[0] < errors[1] < errors[2]
    assert sizes[0] > sizes[1] > sizes[2]


def test_read_selected_indices(tmp_path) -> None:
    frames = _frames()
    path = tmp_path / "v.mp4"
    write_video(path, frames, fps=10, crf=0)
    got = list(read_frames(path, [7, 2, 2, 50]))  # any order, duplicates, past the end
    assert [i for i, _ in got] == [2, 7]
    whole = dict(read_frames(path))
    for i, frame in got:
        np.testing.assert_array_equal(frame, whole[i])
    assert list(read_frames(path, [])) == []


def test_grey_frames(tmp_path) -> None:
    mask = np.zeros((64, 96), np.uint8)
    mask[10:40, 20:60] = 255
    path = tmp_path / "mask.mp4"
    write_video(path, [mask] * 3, fps=25, crf=0, pix_fmt="yuv420p")
    for _, frame in read_frames(path):
        np.testing.assert_array_equal(frame[..., 0], mask)  # lossless, and grey stays grey
        np.testing.assert_array_equal(frame[..., 1], mask)


def test_writer_is_atomic(tmp_path) -> None:
    path = tmp_path / "v.mp4"
    with pytest.raises(KeyError):
        with VideoWriter(path, fps=25, crf=23) as writer:
            writer.write(_frames(1)[0])
            raise KeyError("interrupted")
    assert list(tmp_path.iterdir()) == []  # neither the video nor a temporary file

    with pytest.raises(ValueError, match="no frames"):
        write_video(path, [], fps=25, crf=23)
    assert list(tmp_path.iterdir()) == []


def test_odd_size_needs_444(tmp_path) -> None:
    frame = np.zeros((63, 95, 3), np.uint8)
    with pytest.raises(ForensicsError, match="even"):
        write_video(tmp_path / "odd.mp4", [frame], fps=25, crf=23)
    # Lossless 4:4:4 has no such constraint.
    write_video(tmp_path / "odd0.mp4", [frame], fps=25, crf=0)
    assert video_info(tmp_path / "odd0.mp4")[2:] == (95, 63)


def test_bad_frames_rejected(tmp_path) -> None:
    with pytest.raises(ValueError):
        write_video(tmp_path / "f.mp4", [np.zeros((8, 8, 3), np.float32)], fps=25, crf=0)
    with pytest.raises(ValueError, match="differs"):
        write_video(tmp_path / "f.mp4", [np.zeros((8, 8, 3), np.uint8),
                                         np.zeros((8, 10, 3), np.uint8)], fps=25, crf=0)


def test_unreadable_files_name_the_file(tmp_path) -> None:
    missing = tmp_path / "missing.mp4"
    with pytest.raises(ForensicsError, match="missing.mp4"):
        video_info(missing)
    with pytest.raises(ForensicsError, match="missing.mp4"):
        list(read_frames(missing))
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    for call in (lambda: video_info(garbage), lambda: list(read_frames(garbage))):
        with pytest.raises(ForensicsError, match="garbage.mp4") as info:
            call()
        assert "\n" not in str(info.value)


def test_batches_group_frames_in_order() -> None:
    from forensics.media.video import batches

    frames = [(i, np.full((2, 2, 3), i, np.uint8)) for i in range(7)]
    grouped = list(batches(iter(frames), 3))
    assert [[i for i, _ in b] for b in grouped] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batches(iter([]), 3)) == []
