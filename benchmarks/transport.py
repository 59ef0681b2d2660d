"""Benchmark of the frame transport from a worker to the detector process and back, without detection.

A worker hands batches of decoded frames (32 frames of 1280x720x3 by default: one chunk of a
720p video) to the shared detector process and waits for a boxes-sized answer (one ``1 x 15``
array per frame). Two transports, each measured in the same run on the same frames:

* **pickled queue**: what ``preprocessing.runner`` did before: ``np.stack(frames)`` put on a
  ``multiprocessing`` queue (pickled, written through a pipe by a feeder thread, unpickled);
* **shared memory**: :class:`preprocessing.detector_service.RemoteDetector` writes the frames
  into its shared-memory block and sends the block's name; the detector process's real
  service loop (:func:`preprocessing.detector_service.serve`) maps the block and hands the
  frames on in place.

The detector is a stub that reads no pixel and answers at once, so only the transport is
timed. It prints frames/s (wall clock) and frames per CPU second of both processes together
(the fairer figure on a shared machine), and the ratios.

Usage::

    python benchmarks/transport.py                   # 20 batches of 32 x 1280x720
    python benchmarks/transport.py --batches 40 --size 1920x1080
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

WARMUP = 2  #: batches sent before timing (first mappings, first pickles)


class StubDetector:
    """Answers every frame with one boxes-sized row, reading no pixel."""

    def detect(self, frames, landmarks=False):
        return [np.zeros((1, 15 if landmarks else 5)) for _ in frames]


def _pickled_service(requests, replies, cpu) -> None:
    """The service loop as it was before shared memory: frames arrive pickled in the message."""
    start, detector = time.process_time(), StubDetector()
    while (message := requests.get()) is not None:
        slot, request, batch, landmarks = message
        replies[slot].put((request, "ok", detector.detect(batch, landmarks=landmarks)))
    cpu.put(time.process_time() - start)


def _shared_service(inbox, replies, stop, cpu) -> None:
    from preprocessing.detector_service import serve

    start = time.process_time()
    serve(StubDetector(), inbox, replies, stop)
    cpu.put(time.process_time() - start)


def pickled(frames: list[np.ndarray], batches: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (both processes) of ``batches`` round trips through a pickled queue."""
    spawn = mp.get_context("spawn")
    requests, reply, cpu = spawn.Queue(maxsize=4), spawn.Queue(), spawn.Queue()
    proc = spawn.Process(target=_pickled_service, args=(requests, [reply], cpu), daemon=True)
    proc.start()
    try:
        for k in range(WARMUP + batches):
            if k == WARMUP:
                wall, mine = time.perf_counter(), time.process_time()
            requests.put((0, (os.getpid(), k), np.stack(frames), True))
            assert reply.get()[0] == (os.getpid(), k)
        wall, mine = time.perf_counter() - wall, time.process_time() - mine
    finally:
        requests.put(None)
    theirs = cpu.get()
    proc.join()
    return wall, mine + theirs


def shared(frames: list[np.ndarray], batches: int) -> tuple[float, float]:
    """The same through :class:`RemoteDetector` and the service's shared-memory path."""
    from preprocessing.detector_service import RemoteDetector
    from preprocessing.shared_frames import block_prefix, sweep

    spawn = mp.get_context("spawn")
    (inbox, outbox), (answers, replies), (stop_in, stop_out) = (spawn.Pipe(duplex=False) for _ in range(3))
    cpu = spawn.Queue()
    proc = spawn.Process(target=_shared_service, args=({0: inbox}, {0: replies}, stop_in, cpu), daemon=True)
    proc.start()
    remote = RemoteDetector(outbox, answers, 0, block_prefix(os.getpid()))
    try:
        for k in range(WARMUP + batches):
            if k == WARMUP:
                wall, mine = time.perf_counter(), time.process_time()
            assert len(remote.detect(frames, landmarks=True)) == len(frames)
        wall, mine = time.perf_counter() - wall, time.process_time() - mine
    finally:
        stop_out.send(None)
        remote.close()
    theirs = cpu.get()
    proc.join()
    sweep(block_prefix(os.getpid()))
    return wall, mine + theirs


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20, help="timed batches per transport (default 20)")
    parser.add_argument("--frames", type=int, default=32, help="frames per batch (default 32: one chunk)")
    parser.add_argument("--size", default="1280x720", help="frame size WxH (default 1280x720)")
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(args.frames)]
    n = args.batches * args.frames
    results = {"pickled_queue": pickled(frames, args.batches), "shared_memory": shared(frames, args.batches)}
    figures = {"machine": f"{len(os.sched_getaffinity(0))} cores usable, load average {os.getloadavg()[0]:.1f}",
               "batch": f"{args.frames} x {width}x{height}x3 uint8", "batches": args.batches}
    for name, (wall, cpu) in results.items():
        figures[name] = {"frames_per_s": round(n / wall, 1), "frames_per_cpu_s": round(n / cpu, 1),
                         "ms_per_batch": round(1000 * wall / args.batches, 2)}
        print(f"{name:14s} {n / wall:9.1f} frames/s  {n / cpu:9.1f} frames per CPU s  "
              f"({1000 * wall / args.batches:.1f} ms per batch of {args.frames})")
    old, new = figures["pickled_queue"], figures["shared_memory"]
    figures["ratio_frames_per_s"] = round(new["frames_per_s"] / old["frames_per_s"], 2)
    figures["ratio_frames_per_cpu_s"] = round(new["frames_per_cpu_s"] / old["frames_per_cpu_s"], 2)
    print(f"shared memory vs pickled queue: {figures['ratio_frames_per_s']:.2f}x frames/s, "
          f"{figures['ratio_frames_per_cpu_s']:.2f}x frames per CPU second ({figures['machine']})")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
