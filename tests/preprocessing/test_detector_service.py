"""The detector service in-process: shared-memory requests, batches across workers, per-request answers.

Real MTCNN on small frames; plain in-process queues stand in for the multiprocessing ones
(the service only calls ``get``, ``get_nowait`` and ``put``).
"""

import os
import queue

import numpy as np
import pytest

from preprocessing.detector_service import FrameRequest, drain, serve
from preprocessing.shared_frames import PREFIX, SHM_FOLDER, FrameBlock, attach, sweep

#: This test process's block names (a test run's blocks never collide with a real run's).
TEST_PREFIX = f"{PREFIX}test{os.getpid()}-"


def _blocks() -> list[str]:
    return sorted(p.name for p in SHM_FOLDER.glob(TEST_PREFIX + "*"))


@pytest.fixture(scope="module")
def faces():
    """Frames of two sizes with one face each (the astronaut, shifted and mirrored)."""
    import cv2
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut())  # 512x512, one face
    square = [cv2.resize(f, (160, 160), interpolation=cv2.INTER_AREA)
              for f in (photo, photo[:, ::-1], np.roll(photo, 40, axis=1))]
    wide = [cv2.resize(np.pad(f, ((0, 0), (128, 128), (0, 0))), (192, 128), interpolation=cv2.INTER_AREA)
            for f in (photo, photo[:, ::-1])]
    return square, wide


@pytest.fixture(scope="module")
def detector():
    import torch

    from forensics.media.faces import FaceDetector

    torch.set_num_threads(1)
    return FaceDetector()


class Counting:
    """A detector that records the frames of each ``detect`` call."""

    def __init__(self, detector):
        self.detector, self.calls = detector, []

    def detect(self, frames, landmarks=False):
        self.calls.append([f.shape for f in frames])
        return self.detector.detect(frames, landmarks=landmarks)


def _request(block, slot, number, frames, landmarks):
    name, shape, dtype = block.write(frames)
    return FrameRequest(slot, (0, number), name, shape, dtype, landmarks)


def test_requests_of_two_sizes_drained_together_each_get_their_own_boxes(faces, detector):
    square, wide = faces
    blocks = [FrameBlock(TEST_PREFIX) for _ in range(4)]
    requests, replies = queue.Queue(), [queue.Queue() for _ in blocks]
    asked = [(square[:2], True), (wide, False), (square[2:], True)]
    for slot, (frames, landmarks) in enumerate(asked):
        requests.put(_request(blocks[slot], slot, slot, frames, landmarks))
    # A request whose block is gone (its worker was killed and the block swept) fails alone.
    requests.put(_request(blocks[3], 3, 3, square[:1], False))
    blocks[3].close()
    requests.put(None)
    counting = Counting(detector)
    try:
        serve(counting, requests, replies)
        # One batch of every waiting request: one detect per frame size, 3 + 2 frames.
        assert sorted(len(c) for c in counting.calls) == [2, 3]
        assert {c[0][:2] for c in counting.calls} == {(160, 160), (128, 192)}
        for slot, (frames, landmarks) in enumerate(asked):
            number, status, found = replies[slot].get_nowait()
            assert number == (0, slot) and status == "ok"
            alone = detector.detect(frames, landmarks=landmarks)
            assert len(found) == len(frames) and all(len(d) == 1 for d in found)
            for got, want in zip(found, alone):  # batching across requests changes nothing
                assert got.shape == want.shape == (1, 15 if landmarks else 5)
                np.testing.assert_allclose(got, want, atol=1e-3)
        number, status, message = replies[3].get_nowait()
        assert number == (0, 3) and status == "error" and "FileNotFoundError" in message
    finally:
        for block in blocks:
            block.close()
    assert _blocks() == []


def test_drain_stops_at_the_frame_budget_and_at_stop():
    def request(n):
        return FrameRequest(0, (0, n), "x", (n, 2, 2, 3), "|u1", False)

    requests = queue.Queue()
    for n in (30, 30, 30):
        requests.put(request(n))
    requests.put(None)
    first = requests.get()
    batch, stop = drain(requests, first, 64)
    assert [m.shape[0] for m in batch] == [30, 30, 30] and not stop  # 60 < 64: one more
    batch, stop = drain(requests, request(1), 64)
    assert len(batch) == 1 and stop


def test_blocks_grow_by_reallocation_and_are_unlinked():
    block = FrameBlock(TEST_PREFIX)
    small = [np.full((4, 6, 3), i, np.uint8) for i in range(2)]
    name, shape, dtype = block.write(small)
    assert shape == (2, 4, 6, 3) and _blocks() == [name]
    view = np.ndarray(shape, np.dtype(dtype), buffer=attach(name))
    np.testing.assert_array_equal(view, np.stack(small))
    assert block.write(small[:1])[0] == name  # fits: same block
    bigger, _, _ = block.write(small * 3)
    assert bigger != name and _blocks() == [bigger]  # the old one unlinked (our mapping stays valid)
    np.testing.assert_array_equal(view[1], small[1])
    block.close()
    block.close()
    assert _blocks() == []
    # sweep: only names with the prefix asked for.
    left = FrameBlock(TEST_PREFIX + "dead-")
    left.write(small)
    other = FrameBlock(TEST_PREFIX + "other-")
    other.write(small)
    assert sweep(TEST_PREFIX + "dead-") == [left.name] and _blocks() == [other.name]
    left.close()  # already swept: no error
    other.close()
    assert _blocks() == []
