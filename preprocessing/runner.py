"""A preprocessing run: which items, in what order, on which processes, and the run's outputs.

* **Resume.** An item whose record is committed (:func:`preprocessing.pipeline.read_record`) is
  skipped and its rows reused; temporaries a killed run left are removed; everything else is
  (re)done.
* **Order.** Originals go first and a fake waits for its original, so that it can reuse the
  original's boxes (:mod:`preprocessing.pipeline`).
* **Processes.** Worker processes decode, crop and write. On CPU each worker runs its own
  one-thread MTCNN (a core is the device). With ``cuda`` one detector process per GPU serves
  every worker's batches of frames, so the GPUs hold one model each and the CPU cores do
  the decoding; frames travel through shared memory and are batched across workers
  (:mod:`preprocessing.detector_service`). A worker that dies (a decoder crash) fails only
  the video it was on: the videos in flight with it are retried one at a time to find the
  culprit.
* **Shards.** ``--shard K/N`` (or torchrun's/SLURM's rank and world size) takes a disjoint,
  deterministic slice of the items. An original and its fakes are one unit of the slice, so
  box reuse, and therefore every crop, is the same whether the dataset is processed in one
  run or in shards.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing as mp
import os
import queue
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pandas as pd

from forensics.distributed import shard
from forensics.errors import ForensicsError
from forensics.lifetime import guard_worker
from forensics.data.manifest import COLUMNS, LANDMARK_COLUMNS, write_manifest
from forensics.data.digest import manifest_digest
from preprocessing.detector_service import RemoteDetector, make_detector, start_detectors
from preprocessing.layouts import MediaItem
from preprocessing.pipeline import (Outcome, Settings, check_settings, clean_stale, process_item, read_record,
                                    record_path, rows_from_record)
from preprocessing.shared_frames import block_prefix, sweep
from preprocessing.summary import build_summary, write_summary

log = logging.getLogger(__name__)

#: Manifest extras written by preprocessing: the mask crop (or "") and the face index (0: subject).
EXTRA_COLUMNS = ("mask", "face", *LANDMARK_COLUMNS)
SORT_COLUMNS = ["dataset", "method", "compression", "video", "frame", "face"]


def shard_items(items: Sequence[MediaItem], rank: int, world_size: int) -> list[MediaItem]:
    """This shard's items: whole groups (an original with its fakes), dealt round-robin."""
    groups: dict[str, list[MediaItem]] = {}
    for item in items:
        anchor = item.original if item.label == 1 and item.original else item.video
        groups.setdefault(f"{item.dataset}/{anchor}", []).append(item)
    mine = shard(sorted(groups), rank, world_size)
    return sorted((item for g in mine for item in groups[g]), key=lambda i: i.key)


def output_names(rank: int, world_size: int) -> tuple[str, str]:
    """File names of the manifest and summary of shard ``rank`` (plain names for one shard)."""
    if world_size == 1:
        return "manifest.csv", "summary.json"
    return f"manifest.shard-{rank}-of-{world_size}.csv", f"summary.shard-{rank}-of-{world_size}.json"


def resolve_devices(device: str, local_rank: int = 0, distributed: bool = False) -> list[str]:
    """``cpu`` -> ``["cpu"]``; ``cuda`` -> every visible GPU (this rank's under torchrun); ``cuda:N`` as is."""
    if device == "cpu":
        return ["cpu"]
    if device == "cuda" or device.startswith("cuda:"):
        import torch

        if not torch.cuda.is_available():
            raise ForensicsError(f"--device {device}: no CUDA GPU is visible")
        if device != "cuda":
            return [device]
        if distributed:
            return [f"cuda:{local_rank % torch.cuda.device_count()}"]
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    raise ForensicsError(f"--device must be cpu, cuda or cuda:N, got {device!r}")


def default_workers() -> int:
    """One worker per CPU core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# ----------------------------------------------------------------------------- workers

_STATE: dict[str, Any] = {}
#: Modules a fresh worker needs: imported once by the fork server, inherited by every worker.
_PRELOAD = ["forensics.forkserver_guard", "numpy", "cv2", "av", "torch", "torchvision", "facenet_pytorch",
            "preprocessing.runner"]


def worker_context() -> mp.context.BaseContext:
    """How worker processes start: from a fork server (or spawned where there is none).

    Never a plain fork of the calling process: a process that has used OpenCV's (or
    OpenMP's) thread pool and then forks gives children whose pool locks are held by threads
    that do not exist in them, and the first OpenCV call there can hang forever. The fork
    server is a fresh interpreter that only imports :data:`_PRELOAD`, so workers start clean
    and fast (no re-import of PyTorch per worker).
    """
    if "forkserver" in mp.get_all_start_methods():
        context = mp.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    return mp.get_context("spawn")


def _init_worker(settings: Settings, out: Path, devices: list[str], servers: list[Any] | None,
                 replies: list[Any] | None, slots: Any | None, threads: int | None, owner: int | None = None) -> None:
    """Set up a worker process (or the main process when running inline).

    ``servers``, ``replies``, ``slots``: with a shared detector, each slot's request and reply
    pipe and the queue of free slots (:class:`preprocessing.detector_service.DetectorService`).
    ``owner``: pid of the command process; a worker dies with it (:func:`forensics.lifetime.guard_worker`).
    """
    if owner is not None:
        guard_worker(owner)
    # A fresh worker has no logging set up; its warnings (a mask it can't read) should look
    # like the main process's. In the main process (inline) this does nothing.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    if threads is not None:
        import cv2
        import torch

        # Workers share the cores: one thread each, or N workers would run N x cores threads.
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
    _STATE.update(settings=settings, out=out)
    if servers is None:
        _STATE["detector_factory"] = lambda: make_detector(settings, devices[0])
    else:
        slot = slots.get(timeout=60)
        prefix = block_prefix(owner if owner is not None else os.getpid())
        _STATE["detector_factory"] = lambda: RemoteDetector(servers[slot], replies[slot], slot, prefix)
    _STATE.pop("detector", None)


def _run_job(item: MediaItem, original: dict[str, Any] | None) -> Outcome:
    if original is None or not original.get("tracks"):
        if "detector" not in _STATE:  # loaded on first need: fakes reusing boxes never need it
            _STATE["detector"] = _STATE["detector_factory"]()
        detector = _STATE["detector"]
    else:
        detector = None
    return process_item(item, _STATE["settings"], _STATE["out"], detector, original)


# ----------------------------------------------------------------------------- scheduling

class _Schedule:
    """Ready items in order (originals first), fakes parked until their original is committed."""

    def __init__(self, items: Sequence[MediaItem], out: Path, complete: set[str], reuse: bool = True) -> None:
        self.out = out
        self.ready: deque[tuple[MediaItem, str | None]] = deque()
        self.waiting: dict[str, list[MediaItem]] = {}
        originals: dict[tuple[str, str], list[MediaItem]] = {}
        for item in items:
            if item.label == 0:
                originals.setdefault((item.dataset, item.video), []).append(item)
        for item in sorted(items, key=lambda i: (i.label, i.key)):
            if item.key in complete:
                continue
            if item.label == 0 or not item.original or not reuse:
                self.ready.append((item, None))
                continue
            candidates = originals.get((item.dataset, item.original), [])
            same = [o for o in candidates if o.compression == item.compression]
            source = (same or candidates or [None])[0]
            if source is not None and source.key not in complete:
                self.waiting.setdefault(source.key, []).append(item)
            else:
                self.ready.append((item, source.key if source is not None else self._on_disk(item)))

    def _on_disk(self, item: MediaItem) -> str | None:
        """An original committed by an earlier run (same compression preferred), if any."""
        base = self.out / "tracks" / item.dataset / "original"
        names = [item.compression] + sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        for comp in names:
            key = f"{item.dataset}/original/{comp}/{item.original}"
            if record_path(self.out, key).is_file():
                return key
        return None

    def finished(self, key: str) -> None:
        """``key`` is over (done or failed): its fakes become ready."""
        for fake in self.waiting.pop(key, []):
            self.ready.append((fake, key))


def _original_record(out: Path, key: str | None) -> dict[str, Any] | None:
    return read_record(out, key) if key else None


def _failed(item: MediaItem, error: BaseException | str) -> Outcome:
    reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return Outcome(item.key, "failed", reason)


def _execute(schedule: _Schedule, out: Path, workers: int, initargs: tuple, on_outcome: Callable[[Outcome], None]) -> None:
    """Run every ready item (and the fakes they release) on ``workers`` processes (0: inline)."""
    if workers == 0:
        import cv2
        import torch

        threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
        # One thread, as in a worker: OpenMP threads spinning on a busy machine can make
        # MTCNN's many small operations 20x slower.
        _init_worker(*initargs[:6], 1)
        try:
            _run_inline(schedule, out, on_outcome)
        finally:
            torch.set_num_threads(threads)
            cv2.setNumThreads(cv2_threads)
        return
    _run_pool(schedule, out, workers, initargs, on_outcome)


def _run_inline(schedule: _Schedule, out: Path, on_outcome: Callable[[Outcome], None]) -> None:
    while schedule.ready:
        item, source = schedule.ready.popleft()
        try:
            outcome = _run_job(item, _original_record(out, source))
        except Exception as error:  # a bug on one odd video must not stop a day-long run
            log.exception("%s: unexpected error", item.key)
            outcome = _failed(item, error)
        on_outcome(outcome)
        schedule.finished(item.key)


def _refill(slots: Any, workers: int) -> None:
    """Put back exactly one of each reply slot (workers may not all have started and taken theirs)."""
    while True:
        try:
            slots.get_nowait()
        except queue.Empty:
            break
    for slot in range(workers):
        slots.put(slot)


def _run_pool(schedule: _Schedule, out: Path, workers: int, initargs: tuple,
              on_outcome: Callable[[Outcome], None]) -> None:
    context = worker_context()
    suspects: deque[tuple[MediaItem, str | None]] = deque()  # in flight when a worker died
    crashes: dict[str, int] = {}
    pool = cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=initargs)
    inflight: dict[cf.Future, tuple[MediaItem, str | None]] = {}
    try:
        while schedule.ready or suspects or inflight:
            # Suspects run alone, so that a second crash names its video for sure.
            while suspects and not inflight:
                job = suspects.popleft()
                inflight[pool.submit(_run_job, job[0], _original_record(out, job[1]))] = job
            while schedule.ready and not suspects and len(inflight) < 2 * workers:
                job = schedule.ready.popleft()
                inflight[pool.submit(_run_job, job[0], _original_record(out, job[1]))] = job
            if not inflight:
                continue
            done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
            broken = False
            for future in done:
                item, source = inflight.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    broken = True
                    crashes[item.key] = crashes.get(item.key, 0) + 1
                    if crashes[item.key] >= 2 or len(done) + len(inflight) == 1:
                        outcome = _failed(item, "the worker process died on this video (decoder crash?)")
                    else:
                        suspects.append((item, source))
                        continue
                except Exception as error:
                    log.error("%s: unexpected error: %s", item.key, error)
                    outcome = _failed(item, error)
                on_outcome(outcome)
                schedule.finished(item.key)
            if broken:
                for future, job in list(inflight.items()):
                    crashes[job[0].key] = crashes.get(job[0].key, 0) + 1
                    suspects.append(job)
                inflight.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                slots = initargs[5]
                if slots is not None:  # the new workers need the reply slots the old ones held
                    _refill(slots, workers)
                    sweep(block_prefix(os.getpid()))  # the dead workers' frame blocks
                log.warning("a worker process died; restarting workers, retrying %d videos one at a time",
                            len(suspects))
                pool = cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                              initargs=initargs)
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def _stop_pool(pool: cf.ProcessPoolExecutor, timeout: float = 10.0) -> None:
    """Abandon the queued and running items (SIGTERM, Ctrl-C, an error): stop every worker now.

    A worker stopped mid-video leaves only temporaries, which the next run removes
    (:func:`preprocessing.pipeline.clean_stale`); committed records are never touched.
    ``shutdown`` alone would let running items finish first, which can take minutes.
    """
    # Python 3.14 has ProcessPoolExecutor.terminate_workers(); before it, the pool's processes.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for proc in processes:
        proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + timeout
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()


# ----------------------------------------------------------------------------- the run

def _completed(out: Path, mine: Sequence[MediaItem]) -> tuple[list[Outcome], set[str]]:
    """Outcomes (``skipped``) and keys of the items already complete in ``out``; stale partial output removed."""
    outcomes: list[Outcome] = []
    complete: set[str] = set()
    for item in mine:
        clean_stale(out, item)
        record = read_record(out, item.key)
        if record is not None:
            complete.add(item.key)
            outcomes.append(Outcome(item.key, "skipped", "", record.get("sampled_count", 0),
                                    record.get("decoded_count", 0), record.get("faces", 0),
                                    record.get("asked", 0), rows=rows_from_record(record),
                                    cuts=list(record.get("cuts", []))))
    return outcomes, complete


def run_preprocess(items: Sequence[MediaItem], out: str | os.PathLike, settings: Settings, *,
                   device: str = "cpu", workers: int | None = None, shard_rank: int = 0, shard_count: int = 1,
                   local_rank: int = 0, progress: bool = True, shared_detector: bool | None = None,
                   context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Preprocess ``items`` (this shard's part of them) into ``out``; return the run summary.

    Args:
        items: every item of the run (all shards); this call takes shard ``shard_rank`` of
            ``shard_count``.
        out: output folder.
        settings: crop, sampling and detection settings; must match those already in ``out``.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        workers: worker processes; ``None`` one per core, 0 runs inline (debugging).
        local_rank: GPU index of this rank on its node (``cuda`` under torchrun).
        progress: show a progress bar with ETA.
        shared_detector: one detector process per device serving all workers (default: on
            for CUDA, off for CPU, where each worker's own detector is faster).
        context: extra fields for the summary (layout, root, selection).

    Returns:
        The summary, also written to ``out/summary.json`` (``summary.shard-K-of-N.json``).
    """
    from tqdm import tqdm

    out = Path(out)
    started = time.time()
    devices = resolve_devices(device, local_rank, shard_count > 1)
    check_settings(out, settings)
    mine = shard_items(items, shard_rank, shard_count)
    workers = default_workers() if workers is None else int(workers)
    if shared_detector is None:
        shared_detector = devices[0] != "cpu"
    log.info("%d items in this run%s; %d worker processes, detector on %s", len(mine),
             f" (shard {shard_rank} of {shard_count}, {len(items)} in all)" if shard_count > 1 else "",
             workers, ", ".join(devices))

    outcomes, complete = _completed(out, mine)
    if complete:
        log.info("%d items already complete in %s: skipped", len(complete), out)

    bar = tqdm(total=len(mine), initial=len(complete), unit="video", desc="preprocess", disable=not progress,
               dynamic_ncols=True, mininterval=1.0)
    failures = 0

    def on_outcome(outcome: Outcome) -> None:
        nonlocal failures
        outcomes.append(outcome)
        if outcome.status == "failed":
            failures += 1
            log.warning("%s failed: %s", outcome.key, outcome.reason)
        bar.update(1)
        bar.set_postfix(failed=failures, refresh=False)

    service = start_detectors(settings, devices, workers) if shared_detector and workers > 0 else None
    channels = (service.requests, service.replies, service.slots) if service else (None, None, None)
    initargs = (settings, out, devices, *channels, None if workers == 0 else 1, os.getpid())
    schedule = _Schedule(mine, out, complete, settings.reuse_boxes)
    try:
        _execute(schedule, out, workers, initargs, on_outcome)
    finally:
        bar.close()
        if service is not None:
            service.stop()
            # Workers that exited normally unlinked their own frame blocks; a killed one (SIGKILL,
            # or the SIGTERM of _stop_pool) could not.
            sweep(block_prefix(os.getpid()))

    manifest_name, summary_name = output_names(shard_rank, shard_count)
    write_manifest(manifest_frame([row for o in outcomes if o.status != "failed" for row in o.rows]),
                   out / manifest_name)
    summary = build_summary(outcomes, settings, time.time() - started,
                            dict(context or {}, shard=[shard_rank, shard_count], workers=workers, devices=devices))
    summary["lineage"] = manifest_digest(out / manifest_name)  # what training runs will trace back to
    write_summary(out / summary_name, summary)
    return summary


def manifest_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a manifest table, in a canonical order (so equal runs give equal files)."""
    columns = list(COLUMNS) + list(EXTRA_COLUMNS)
    df = pd.DataFrame(list(rows), columns=columns)
    df["mask"] = df["mask"].fillna("")
    df["face"] = df["face"].fillna(0).astype(int)
    return df.sort_values(SORT_COLUMNS, kind="stable").reset_index(drop=True)
