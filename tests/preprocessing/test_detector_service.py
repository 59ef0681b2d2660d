"""The detector service in-process: shared-memory requests, batches across workers, per-request answers.

Real MTCNN on small frames, real pipes (both ends in this process).
"""

import multiprocessing as mp
import os

import numpy as np
import pytest

from preprocessing.detector_service import FrameRequest, RemoteDetector, gather, serve
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


def _pipes(n):
    """``n`` one-way pipes: (receiving ends, sending ends)."""
    pairs = [mp.Pipe(duplex=False) for _ in range(n)]
    return [r for r, _ in pairs], [w for _, w in pairs]


def test_requests_of_two_sizes_gathered_together_each_get_their_own_boxes(faces, detector):
    square, wide = faces
    blocks = [FrameBlock(TEST_PREFIX) for _ in range(4)]
    (inbox, outbox), (answers, replies) = _pipes(4), _pipes(4)
    asked = [(square[:2], True), (wide, False), (square[2:], True)]
    for slot, (frames, landmarks) in enumerate(asked):
        outbox[slot].send(_request(blocks[slot], slot, slot, frames, landmarks))
    # A request whose block is gone (its worker was killed and the block swept) fails alone.
    outbox[3].send(_request(blocks[3], 3, 3, square[:1], False))
    blocks[3].close()
    stop_receive, stop_send = mp.Pipe(duplex=False)
    stop_send.send(None)  # the service answers what waits, then stops
    counting = Counting(detector)
    try:
        serve(counting, dict(enumerate(inbox)), dict(enumerate(replies)), stop_receive)
        # One batch of every waiting request: one detect per frame size, 3 + 2 frames.
        assert sorted(len(c) for c in counting.calls) == [2, 3]
        assert {c[0][:2] for c in counting.calls} == {(160, 160), (128, 192)}
        for slot, (frames, landmarks) in enumerate(asked):
            number, status, found = answers[slot].recv()
            assert number == (0, slot) and status == "ok"
            alone = detector.detect(frames, landmarks=landmarks)
            assert len(found) == len(frames) and all(len(d) == 1 for d in found)
            for got, want in zip(found, alone):  # batching across requests changes nothing
                assert got.shape == want.shape == (1, 15 if landmarks else 5)
                np.testing.assert_allclose(got, want, atol=1e-3)
        number, status, message = answers[3].recv()
        assert number == (0, 3) and status == "error" and "FileNotFoundError" in message
        assert not any(a.poll() for a in answers)
    finally:
        for block in blocks:
            block.close()
    assert _blocks() == []


def test_gather_stops_at_the_frame_budget_and_never_blocks():
    inbox, outbox = _pipes(3)
    for slot, n in enumerate((30, 30, 30)):
        outbox[slot].send(FrameRequest(slot, (0, n), "x", (n, 2, 2, 3), "|u1", False))
    batch = gather(inbox, 64)
    assert [m.shape[0] for m in batch] == [30, 30, 30]  # 60 < 64: one more
    assert gather(inbox, 64) == []
    for slot in (0, 0, 1):
        outbox[slot].send(FrameRequest(slot, (0, 1), "x", (40, 2, 2, 3), "|u1", False))
    assert len(gather(inbox, 64)) == 2 and len(gather(inbox, 64)) == 1


@pytest.mark.parametrize("dies", ["before the request", "before the answer"])
def test_a_dead_detector_fails_the_request_at_once(dies):
    (inbox, outbox), (answers, replies) = _pipes(1), _pipes(1)
    # Without the fix a worker waits its whole timeout and then says "did not answer".
    remote = RemoteDetector(outbox[0], answers[0], 0, TEST_PREFIX, timeout=30)
    if dies == "before the request":
        inbox[0].close()
    replies[0].close()  # the detector process's ends close when it dies (the command holds no copy)
    with pytest.raises(RuntimeError, match="the detector process is gone"):
        remote.detect([np.zeros((4, 4, 3), np.uint8)])
    remote.close()
    assert _blocks() == []


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
