"""One face-detector process per device serving every worker (the ``--device cuda`` arrangement).

On a GPU node the CPU cores decode, crop and write while each GPU holds one MTCNN. Workers
hand their frames over through shared memory (:mod:`preprocessing.shared_frames`: no
pickling of frames, only a short message), and the detector process batches across workers:
it takes whatever requests are waiting, up to :data:`FRAME_BUDGET` frames, runs one
``detect`` per frame size on all of them and answers each worker with its own boxes. MTCNN
treats every image of a batch on its own (one non-maximum suppression per image), so the
boxes are those of per-request detection up to float rounding (tested).

What keeps a long run alive: requests are numbered (a reply slot may have served a worker
that died, and its late answer must not be taken for the next worker's); a worker waits at
most ``timeout`` seconds; a batch that fails is retried request by request so that one bad
request fails alone and the service goes on; the service ignores Ctrl-C (the command stops
it) and dies with the command (:func:`forensics.lifetime.die_with_parent`).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from forensics.lifetime import die_with_parent
from forensics.media.faces import FaceDetector
from preprocessing.pipeline import Settings
from preprocessing.shared_frames import Attachments, FrameBlock

log = logging.getLogger(__name__)

#: Frames the detector process gathers across workers' requests before detecting. A worker
#: sends at most one chunk (``preprocessing.pipeline.CHUNK`` = 32 frames) at a time, so this is
#: about two workers' chunks; ``FaceDetector.detect`` splits large frames further to bound the
#: memory of its integral images.
FRAME_BUDGET = 64


class FrameRequest(NamedTuple):
    """What a worker sends for one batch: its frames stay in its shared-memory block."""

    slot: int  #: the worker's reply queue
    request: tuple[int, int]  #: (worker pid, number): matches the answer to the question
    block: str  #: shared-memory block holding the frames
    shape: tuple[int, ...]  #: ``N x H x W x 3``
    dtype: str
    landmarks: bool


def make_detector(settings: Settings, device: str) -> FaceDetector:
    """The face detector of ``settings`` on ``device``."""
    return FaceDetector(device=device, min_face_size=settings.min_face_size, thresholds=settings.thresholds,
                        min_score=settings.min_score)


def serve_detector(settings: Settings, device: str, requests: Any, replies: Sequence[Any]) -> None:
    """Process entry point: detect faces for the workers on ``device`` until told to stop (``None``)."""
    # Spawned by the command itself: dies with it rather than waiting forever for requests.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    serve(make_detector(settings, device), requests, replies)


def serve(detector: Any, requests: Any, replies: Sequence[Any], budget: int = FRAME_BUDGET) -> None:
    """Answer :class:`FrameRequest` s from ``requests`` on ``replies[slot]`` until a ``None`` arrives.

    Args:
        detector: anything with :meth:`FaceDetector.detect`.
        requests: queue of :class:`FrameRequest` (``None`` stops the service).
        replies: one queue per worker slot; each answer is ``(request, "ok", boxes)`` or
            ``(request, "error", message)``.
        budget: frames gathered across waiting requests before detecting.
    """
    attachments = Attachments()
    try:
        stop = False
        while not stop and (first := requests.get()) is not None:
            batch, stop = drain(requests, first, budget)
            answer(detector, batch, replies, attachments)
    finally:
        attachments.close()


def drain(requests: Any, first: FrameRequest, budget: int) -> tuple[list[FrameRequest], bool]:
    """``first`` and the requests already waiting, up to ``budget`` frames; and whether a stop came."""
    batch, frames = [first], first.shape[0]
    while frames < budget:
        try:
            message = requests.get_nowait()
        except queue.Empty:
            break
        if message is None:
            return batch, True
        batch.append(message)
        frames += message.shape[0]
    return batch, False


def answer(detector: Any, batch: Sequence[FrameRequest], replies: Sequence[Any], attachments: Attachments) -> None:
    """Detect the frames of ``batch`` (one ``detect`` per frame size) and answer each request."""
    groups: dict[tuple[int, ...], list[tuple[FrameRequest, np.ndarray]]] = {}
    for message in batch:
        try:
            frames = attachments.frames(message.slot, message.block, message.shape, message.dtype)
        except Exception as error:  # its worker died and its block was swept, or a malformed request
            _reply(replies, message, "error", f"{type(error).__name__}: {error}")
            continue
        groups.setdefault(frames.shape[1:], []).append((message, frames))
    for members in groups.values():
        _detect_group(detector, members, replies)


def _detect_group(detector: Any, members: list[tuple[FrameRequest, np.ndarray]], replies: Sequence[Any]) -> None:
    """One ``detect`` on the frames of several requests (one size); each request gets its part."""
    try:
        # Landmarks for all: they are extra columns, the boxes are the same either way.
        found = detector.detect([frame for _, frames in members for frame in frames], landmarks=True)
    except Exception as error:  # a bad batch must not take the device down for everyone
        if len(members) > 1:  # find the culprit: the others still get their boxes
            for member in members:
                _detect_group(detector, [member], replies)
        else:
            _reply(replies, members[0][0], "error", f"{type(error).__name__}: {error}")
        return
    start = 0
    for message, frames in members:
        part = found[start:start + len(frames)]
        start += len(frames)
        _reply(replies, message, "ok", part if message.landmarks else [d[:, :5] for d in part])


def _reply(replies: Sequence[Any], message: FrameRequest, status: str, result: Any) -> None:
    replies[message.slot].put((message.request, status, result))


class RemoteDetector:
    """A worker's handle on a detector process (same ``detect`` as :class:`FaceDetector`).

    Args:
        requests: the detector process's request queue.
        reply: this worker's reply queue.
        slot: index of ``reply`` among the detector's reply queues.
        prefix: name prefix of this worker's shared-memory block
            (:func:`preprocessing.shared_frames.block_prefix` of the command).
        timeout: seconds to wait for an answer.
    """

    def __init__(self, requests: Any, reply: Any, slot: int, prefix: str, timeout: float = 600.0) -> None:
        from multiprocessing.util import Finalize

        self.requests, self.reply, self.slot, self.timeout = requests, reply, slot, timeout
        self.block = FrameBlock(prefix)
        self._count = 0
        # Pool workers leave through os._exit: atexit would not run, multiprocessing's finalisers do.
        Finalize(self, self.block.close, exitpriority=10)

    def detect(self, frames: Sequence[np.ndarray], landmarks: bool = False) -> list[np.ndarray]:
        """Boxes of ``frames`` (all of one size), computed by the detector process."""
        if len(frames) == 0:
            return []
        # Requests are numbered: the reply slot may have served a worker that died, and a late
        # answer to its last request must not be taken for ours.
        self._count += 1
        request = (os.getpid(), self._count)
        # Full-resolution frames travel: MTCNN's refinement stages crop them (see forensics.media.faces).
        # The previous request was answered (or abandoned after the timeout, its answer to be
        # ignored), so the block is ours to overwrite.
        name, shape, dtype = self.block.write(frames)
        self.requests.put(FrameRequest(self.slot, request, name, shape, dtype, landmarks))
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                answered, status, result = self.reply.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"detector process did not answer in {self.timeout:.0f} s") from None
            if answered == request:
                break
        if status != "ok":
            raise RuntimeError(f"detector process: {result}")
        return result

    def close(self) -> None:
        """Unlink this worker's block now (it is also unlinked when the worker exits)."""
        self.block.close()


def start_detectors(settings: Settings, devices: list[str], workers: int) -> tuple[list, list, Any, list]:
    """One detector process per device serving every worker: request queues, reply queues, free slots, processes."""
    spawn = mp.get_context("spawn")  # a CUDA context can't cross a fork
    servers = [spawn.Queue(maxsize=4 * workers) for _ in devices]
    replies = [spawn.Queue() for _ in range(workers)]
    slots = spawn.Queue()
    for slot in range(workers):
        slots.put(slot)
    procs = [spawn.Process(target=serve_detector, args=(settings, d, q, replies), daemon=True)
             for d, q in zip(devices, servers)]
    for proc in procs:
        proc.start()
    return servers, replies, slots, procs
