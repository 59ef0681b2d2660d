"""Benchmark of ``forensics preprocess`` against the ceiling and a naive pipeline.

On the same videos and sampled frames, in one run, it measures:

* **decode only**: frames/s of just decoding the sampled frames (the ceiling), with as many
  processes as the pipeline has workers;
* **naive**: what users usually write: facenet-pytorch ``MTCNN()`` called on each
  full-resolution frame, ``faces[0]`` taken, cropped and saved as PNG; run in as many
  processes as ours has workers, so both use the same cores;
* **ours**: ``forensics preprocess`` (workers, batched detection, box reuse for fakes) and,
  to show where the speed comes from, the same with ``--no-box-reuse``; with
  ``--shared-detector`` also ours with one detector process serving all workers (the
  ``--device cuda`` arrangement: frames through shared memory, batches across workers), on
  the benchmark's ``--device``;
* **box agreement**: the fraction of frames whose subject box has IoU >= 0.9 with the naive
  pipeline's box (all frames, and originals only: a fake reuses its original's box, which the
  naive pipeline re-detects on the manipulated face);
* **peak memory** (max RSS) of each phase's main process and of its largest worker.

Usage::

    python benchmarks/preprocess.py                        # makes the default synthetic dataset
    python benchmarks/preprocess.py --root DATA --layout ffpp --limit 40
    python benchmarks/preprocess.py --shared-detector --device cuda   # on a GPU node
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("benchmark")


def _maxrss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in os.listdir(f"/proc/{p}/task") if os.path.isdir(f"/proc/{p}/task") else []:
            try:
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids = [int(c) for c in f.read().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def _peak_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return 0.0


def _phase(fn, args, queue):
    """Run a phase; watch the peak memory of its workers (grandchildren under a fork server)."""
    import threading

    peak, done = [0.0], threading.Event()

    def watch():
        while not done.wait(0.1):
            peak[0] = max([peak[0]] + [_peak_rss_mb(p) for p in _descendants(os.getpid())])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    result = fn(*args)
    done.set()
    watcher.join()
    queue.put((result, _maxrss_mb(resource.RUSAGE_SELF), max(peak[0], _maxrss_mb(resource.RUSAGE_CHILDREN))))


def _in_child(fn, *args):
    """Run ``fn(*args)`` in a fresh process; return its result and peak memory (its own, its workers')."""
    ctx = mp.get_context("spawn")  # fresh: no memory or thread pools from the previous phases
    queue = ctx.Queue()
    proc = ctx.Process(target=_phase, args=(fn, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def _decode_one(job):
    from forensics.media.video import read_frames

    path, indices = job
    return sum(1 for _ in read_frames(path, indices))


def decode_only(jobs, workers):
    import concurrent.futures as cf

    start = time.perf_counter()
    if workers > 0:
        with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            frames = sum(pool.map(_decode_one, jobs))
    else:
        frames = sum(map(_decode_one, jobs))
    return frames, time.perf_counter() - start


def _naive_part(jobs, out):
    import cv2
    import numpy as np
    import torch
    from facenet_pytorch import MTCNN

    from forensics.media.crops import crop_face
    from forensics.media.video import read_frames

    torch.set_num_threads(1)
    mtcnn = MTCNN(keep_all=True)  # select_largest=True: boxes[0] is the largest face
    boxes, frames = {}, 0
    for key, path, indices in jobs:
        folder = Path(out) / key
        folder.mkdir(parents=True, exist_ok=True)
        for index, frame in read_frames(path, indices):
            frames += 1
            found, _ = mtcnn.detect(frame)
            if found is None:
                continue
            box = np.asarray(found, dtype=float)[0]
            boxes[f"{key}/{index}"] = box.tolist()
            cv2.imwrite(str(folder / f"{index:04d}.png"), cv2.cvtColor(crop_face(frame, box), cv2.COLOR_RGB2BGR))
    return frames, boxes


def naive(jobs, out, workers):
    """One MTCNN call per full-resolution frame, faces[0], crop, PNG: the usual script.

    It gets the same cores as ours: ``workers`` processes of one PyTorch thread each, over
    interleaved slices of the videos. (One process with one thread per core is what the
    script does by default; on a busy machine its OpenMP threads can be 20x slower.)
    """
    import concurrent.futures as cf

    start = time.perf_counter()
    parts = [jobs[k::max(workers, 1)] for k in range(max(workers, 1))]
    with cf.ProcessPoolExecutor(len(parts), mp_context=mp.get_context("spawn")) as pool:
        results = list(pool.map(_naive_part, parts, [out] * len(parts)))
    seconds = time.perf_counter() - start
    boxes = {k: v for _, b in results for k, v in b.items()}
    return sum(f for f, _ in results), seconds, boxes


def ours(items, out, workers, reuse, frames, shared=None, device="cpu"):
    from preprocessing.pipeline import Settings
    from preprocessing.runner import run_preprocess

    start = time.perf_counter()
    summary = run_preprocess(items, out, Settings(frames=frames, reuse_boxes=reuse), workers=workers, progress=False,
                             shared_detector=shared, device=device)
    seconds = time.perf_counter() - start
    import pandas as pd

    df = pd.read_csv(Path(out) / "manifest.csv", dtype={"video": str})
    boxes = {f"{r.dataset}/{r.method}/{r.compression}/{r.video}/{r.frame}": [r.x0, r.y0, r.x1, r.y1]
             for r in df.itertuples() if r.face == 0}
    return summary["frames"]["sampled"], seconds, (boxes, summary["stage_seconds"])


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _torch_version() -> str:
    import torch

    return torch.__version__


def agreement(ours_boxes, naive_boxes, keys):
    from forensics.media.faces import box_iou

    keys = [k for k in keys if k in naive_boxes]
    if not keys:
        return float("nan"), 0
    good = sum(1 for k in keys if k in ours_boxes and box_iou(ours_boxes[k], naive_boxes[k]) >= 0.9)
    return good / len(keys), len(keys)


def _shared_figures(shared, ours_boxes, ours_fps, keys, device) -> dict:
    """Print and return the shared-detector phase's frames/s, against ours, and its box agreement with ours."""
    from forensics.media.faces import box_iou

    frames, seconds, (boxes, stages) = shared
    fps = frames / seconds
    same = [k for k in keys if k in ours_boxes]
    close = sum(1 for k in same if k in boxes and box_iou(boxes[k], ours_boxes[k]) >= 0.99)
    print(f"ours, shared detector on {device}  {fps:8.1f} frames/s   {fps / ours_fps:.2f}x ours "
          f"(one detector process, frames through shared memory); box IoU >= 0.99 with ours: "
          f"{close / max(len(same), 1):.1%} of {len(same)} frames")
    return {"device": device, "fps": round(fps, 1), "vs_ours": round(fps / ours_fps, 2),
            "iou_ge_0.99_with_ours": round(close / max(len(same), 1), 4), "stage_seconds": stages}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="dataset root (default: make `forensics synth`'s default dataset)")
    parser.add_argument("--layout", default="ffpp")
    parser.add_argument("--frames", type=int, default=32, help="frames per video (default 32)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--limit", type=int, help="at most this many videos (originals first)")
    parser.add_argument("--shared-detector", action="store_true",
                        help="also measure ours with one detector process serving all workers (on --device)")
    parser.add_argument("--device", default="cpu", help="device of the shared-detector phase (default cpu)")
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("preprocessing").setLevel(logging.WARNING)

    from preprocessing.layouts import list_items
    from forensics.media.sampling import sample_indices
    from forensics.media.video import video_info

    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        root = args.root
        if root is None:
            from forensics.synth import SynthConfig, make_dataset

            root = str(Path(tmp) / "synth")
            log.info("making the default synthetic dataset in %s ...", root)
            make_dataset(root, SynthConfig())
        items = list_items(args.layout, root)
        items = sorted(items, key=lambda i: (i.label, i.key))[:args.limit]
        jobs = [(i.key, str(i.path), sample_indices(video_info(i.path)[0], "even", args.frames)) for i in items]
        n_frames = sum(len(j[2]) for j in jobs)
        info = video_info(items[0].path)
        log.info("%d videos (%d originals), %d sampled frames, %dx%d; %d workers", len(items),
                 sum(i.label == 0 for i in items), n_frames, info[2], info[3], args.workers)

        (dec_frames, dec_s), dec_rss, dec_child = _in_child(decode_only, [(p, ix) for _, p, ix in jobs], args.workers)
        (nv_frames, nv_s, nv_boxes), _, nv_child = _in_child(naive, jobs, str(Path(tmp) / "naive"), args.workers)
        (ou_frames, ou_s, (ou_boxes, ou_stages)), ou_rss, ou_child = _in_child(ours, items, str(Path(tmp) / "ours"),
                                                                   args.workers, True, args.frames)
        (nr_frames, nr_s, (nr_boxes, nr_stages)), nr_rss, nr_child = _in_child(ours, items, str(Path(tmp) / "noreuse"),
                                                                   args.workers, False, args.frames)
        shared = _in_child(ours, items, str(Path(tmp) / "shared"), args.workers, True, args.frames, True,
                           args.device)[0] if args.shared_detector else None

    keys = [f"{k}/{i}" for k, _, ix in jobs for i in ix]
    real_keys = [f"{k}/{i}" for (k, _, ix), item in zip(jobs, items) if item.label == 0 for i in ix]
    agree_all, n_all = agreement(ou_boxes, nv_boxes, keys)
    agree_real, n_real = agreement(ou_boxes, nv_boxes, real_keys)
    agree_noreuse, _ = agreement(nr_boxes, nv_boxes, keys)
    fps = {"decode_only": dec_frames / dec_s, "naive": nv_frames / nv_s, "ours": ou_frames / ou_s,
           "ours_no_reuse": nr_frames / nr_s}
    figures = {
        "machine": f"{_cpu_name()}, {len(os.sched_getaffinity(0))} cores usable "
                   f"({os.cpu_count()} online), load average {os.getloadavg()[0]:.1f} at the end, "
                   f"Python {platform.python_version()}, torch {_torch_version()}",
        "videos": len(items), "frames": n_frames, "workers": args.workers,
        "fps": {k: round(v, 1) for k, v in fps.items()},
        "ours_vs_naive": round(fps["ours"] / fps["naive"], 2),
        "ours_no_reuse_vs_naive": round(fps["ours_no_reuse"] / fps["naive"], 2),
        "decode_only_vs_ours": round(fps["decode_only"] / fps["ours"], 2),
        "iou_ge_0.9": {"all_frames": round(agree_all, 4), "originals": round(agree_real, 4),
                       "no_reuse_all_frames": round(agree_noreuse, 4), "frames_compared": n_all},
        "ours_stage_seconds": ou_stages, "ours_no_reuse_stage_seconds": nr_stages,
        "peak_rss_mb": {"decode_only_worker": round(dec_child), "naive_worker": round(nv_child),
                        "ours_main": round(ou_rss), "ours_worker": round(ou_child)},
    }
    print(f"machine: {figures['machine']}")
    print(f"videos: {len(items)}, sampled frames: {n_frames}, workers: {args.workers}")
    print(f"decode only     {fps['decode_only']:8.1f} frames/s   (ceiling)")
    print(f"naive           {fps['naive']:8.1f} frames/s   (MTCNN per full-res frame, faces[0]; "
          f"{args.workers} processes)")
    print(f"ours            {fps['ours']:8.1f} frames/s   {figures['ours_vs_naive']:.2f}x naive, "
          f"decode-only is {figures['decode_only_vs_ours']:.2f}x ours")
    print(f"ours, no reuse  {fps['ours_no_reuse']:8.1f} frames/s   {figures['ours_no_reuse_vs_naive']:.2f}x naive "
          f"(every fake detected too)")
    total = sum(ou_stages.values()) or 1.0
    print("ours, worker time: " + ", ".join(f"{k} {v / total:.0%}" for k, v in ou_stages.items())
          + f" (of {total:.1f} s); ms per frame: "
          + ", ".join(f"{k} {1000 * v / ou_frames:.1f}" for k, v in ou_stages.items()))
    print(f"box IoU >= 0.9 vs naive: {agree_all:.1%} of {n_all} frames ({agree_real:.1%} of {n_real} original "
          f"frames; {agree_noreuse:.1%} without reuse)")
    print(f"peak RSS: naive {nv_child:.0f} MB per process; ours main {ou_rss:.0f} MB + {ou_child:.0f} MB per worker; "
          f"decode-only worker {dec_child:.0f} MB")
    if shared is not None:
        figures["shared_detector"] = _shared_figures(shared, ou_boxes, fps["ours"], keys, args.device)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
