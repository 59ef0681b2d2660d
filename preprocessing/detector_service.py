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
most ``timeout`` seconds, and fails at once if the detector process is gone; a batch that
fails is retried request by request, so that one bad request fails alone and the service
goes on; the service ignores Ctrl-C (the command stops it) and dies with the command
(:func:`forensics.lifetime.die_with_parent`). Workers and detector talk through one pair of
pipes per worker slot, not queues (:class:`DetectorService` says why).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait
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

    slot: int  #: the worker's slot: its request and reply pipes
    request: tuple[int, int]  #: (worker pid, number): matches the answer to the question
    block: str  #: shared-memory block holding the frames
    shape: tuple[int, ...]  #: ``N x H x W x 3``
    dtype: str
    landmarks: bool


def make_detector(settings: Settings, device: str, batch_size: int = 32) -> FaceDetector:
    """The face detector of ``settings`` on ``device``, running its cascade on up to ``batch_size`` frames."""
    return FaceDetector(device=device, min_face_size=settings.min_face_size, thresholds=settings.thresholds,
                        min_score=settings.min_score, batch_size=batch_size)


def serve_detector(settings: Settings, device: str, inbox: dict[int, Any], replies: dict[int, Any], stop: Any) -> None:
    """Process entry point: detect faces for the workers on ``device`` until the command says stop."""
    # Spawned by the command itself: dies with it rather than waiting forever for requests.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    # Batches as large as the gathered requests (FaceDetector still bounds them by memory).
    serve(make_detector(settings, device, batch_size=FRAME_BUDGET), inbox, replies, stop)


def serve(detector: Any, inbox: dict[int, Any], replies: dict[int, Any], stop: Any, budget: int = FRAME_BUDGET) -> None:
    """Answer the workers' :class:`FrameRequest` s until a message arrives on ``stop`` and no request waits.

    Args:
        detector: anything with :meth:`FaceDetector.detect`.
        inbox: reply slot -> the receiving end of that worker's request pipe.
        replies: reply slot -> the sending end of that worker's reply pipe; each answer is
            ``(request, "ok", boxes)`` or ``(request, "error", message)``.
        stop: receiving end of the command's stop pipe.
        budget: frames gathered across waiting requests before detecting.
    """
    attachments = Attachments()
    try:
        while True:
            ready = wait([stop, *inbox.values()])
            if ready == [stop]:
                break
            answer(detector, gather(list(inbox.values()), budget), replies, attachments)
    finally:
        attachments.close()


def gather(inbox: Sequence[Any], budget: int) -> list[FrameRequest]:
    """The requests waiting on ``inbox``, one per worker a round, until ``budget`` frames (never blocks)."""
    batch: list[FrameRequest] = []
    frames = 0
    while frames < budget and (ready := wait(inbox, timeout=0)):
        for connection in ready:
            message = connection.recv()
            batch.append(message)
            frames += message.shape[0]
            if frames >= budget:
                break
    return batch


def answer(detector: Any, batch: Sequence[FrameRequest], replies: dict[int, Any], attachments: Attachments) -> None:
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


def _detect_group(detector: Any, members: list[tuple[FrameRequest, np.ndarray]], replies: dict[int, Any]) -> None:
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


def _reply(replies: dict[int, Any], message: FrameRequest, status: str, result: Any) -> None:
    replies[message.slot].send((message.request, status, result))


class RemoteDetector:
    """A worker's handle on a detector process (same ``detect`` as :class:`FaceDetector`).

    Args:
        request: sending end of this slot's request pipe.
        reply: receiving end of this slot's reply pipe.
        slot: the slot (the worker's pipes and, with the pid, its requests' numbers).
        prefix: name prefix of this worker's shared-memory block
            (:func:`preprocessing.shared_frames.block_prefix` of the command).
        timeout: seconds to wait for an answer.
    """

    def __init__(self, request: Any, reply: Any, slot: int, prefix: str, timeout: float = 600.0) -> None:
        from multiprocessing.util import Finalize

        self.request, self.reply, self.slot, self.timeout = request, reply, slot, timeout
        self.block = FrameBlock(prefix)
        self._count = 0
        # Pool workers leave through os._exit: atexit would not run, multiprocessing's finalisers do.
        Finalize(self, self.block.close, exitpriority=10)

    def detect(self, frames: Sequence[np.ndarray], landmarks: bool = False) -> list[np.ndarray]:
        """Boxes of ``frames`` (all of one size), computed by the detector process."""
        if len(frames) == 0:
            return []
        # Requests are numbered: the slot may have served a worker that died, and a late
        # answer to its last request must not be taken for ours.
        self._count += 1
        number = (os.getpid(), self._count)
        # Full-resolution frames travel: MTCNN's refinement stages crop them (see forensics.media.faces).
        # The previous request was answered (or abandoned after the timeout, its answer to be
        # ignored), so the block is ours to overwrite.
        name, shape, dtype = self.block.write(frames)
        deadline = time.monotonic() + self.timeout
        try:
            self.request.send(FrameRequest(self.slot, number, name, shape, dtype, landmarks))
            while True:
                if not self.reply.poll(max(0.0, deadline - time.monotonic())):
                    raise RuntimeError(f"detector process did not answer in {self.timeout:.0f} s")
                answered, status, result = self.reply.recv()
                if answered == number:
                    break
        except (EOFError, BrokenPipeError):
            raise RuntimeError("the detector process is gone") from None
        if status != "ok":
            raise RuntimeError(f"detector process: {result}")
        return result

    def close(self) -> None:
        """Unlink this worker's block now (it is also unlinked when the worker exits)."""
        self.block.close()


@dataclass
class DetectorService:
    """The detector processes of a run and the pipes of each worker slot.

    Pipes, not ``multiprocessing`` queues: a queue's reader holds a lock shared by all its
    readers while it waits, and a writer holds one while its feeder thread writes, so a
    worker killed at that moment (a decoder segfault) would leave the lock taken for every
    later worker. A pipe has one writer and one reader, and a request (a few hundred bytes,
    under ``PIPE_BUF``) is written in one atomic write.
    """

    requests: list[Any]  #: slot -> sending end of its request pipe (for the worker)
    replies: list[Any]  #: slot -> receiving end of its reply pipe (for the worker)
    slots: Any  #: queue of free slots, taken by each worker as it starts
    stops: list[Any] = field(default_factory=list)  #: sending ends of each detector process's stop pipe
    procs: list[Any] = field(default_factory=list)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the detector processes (terminated if they do not finish within ``timeout``)."""
        for stop in self.stops:
            try:
                stop.send(None)
            except OSError:  # that detector process is already gone
                pass
        for proc in self.procs:
            proc.join(timeout=timeout)
            if proc.is_alive():
                proc.terminate()


def start_detectors(settings: Settings, devices: list[str], workers: int) -> DetectorService:
    """One detector process per device, serving the worker slots ``slot % len(devices) == device``."""
    spawn = mp.get_context("spawn")  # a CUDA context can't cross a fork
    requests = [spawn.Pipe(duplex=False) for _ in range(workers)]  # (receive, send)
    replies = [spawn.Pipe(duplex=False) for _ in range(workers)]
    slots = spawn.Queue()
    for slot in range(workers):
        slots.put(slot)
    service = DetectorService([send for _, send in requests], [receive for receive, _ in replies], slots)
    for d, device in enumerate(devices):
        mine = range(d, workers, len(devices))
        stop_receive, stop_send = spawn.Pipe(duplex=False)
        proc = spawn.Process(target=serve_detector, daemon=True,
                             args=(settings, device, {s: requests[s][0] for s in mine},
                                   {s: replies[s][1] for s in mine}, stop_receive))
        proc.start()
        # The detector's ends live in its process now. Closing our copies makes its death
        # visible to the workers (a broken pipe, end of file) instead of a 600 s timeout.
        for s in mine:
            requests[s][0].close()
            replies[s][1].close()
        stop_receive.close()
        service.stops.append(stop_send)
        service.procs.append(proc)
    return service
