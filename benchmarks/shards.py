"""Shards vs one file per crop: crops/s read (and decoded) in training order, cold page cache.

On the same crops, in one run, it reads every crop once in the order a training epoch visits
them (``TrainSampler``'s shuffle) through :class:`forensics.data.datasets.CropDataset`:

* **files**: one PNG file per crop, as ``forensics preprocess`` writes them;
* **shards**: the same crops after ``forensics pack`` (tar shards, read by offset);

both as bytes only (the I/O the file system sees) and as decoded crops (what a loader worker
does). Before every pass the page cache of all the files is dropped with
``posix_fadvise(POSIX_FADV_DONTNEED)`` (works for clean pages without root; a network file
system or a cluster's parallel file system, where per-file opens cost milliseconds, is where
shards matter most, and this local measurement understates the gain there).

Usage::

    python benchmarks/shards.py                      # 1024 generated 224x224 crops
    python benchmarks/shards.py --manifest OUT/manifest.csv
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loader import make_crops  # noqa: E402


def drop_cache(paths) -> None:
    """Ask the kernel to forget the cached pages of ``paths``."""
    for path in set(paths):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def reader(dataset, decode: bool):
    """``read(row)``: a crop's stored bytes, or the decoded crop, with columns looked up once."""
    from forensics.data.shards import read_sample

    f = dataset.frames
    files, keys = f["file"].tolist(), f["key"].tolist() if dataset.packed else None
    if decode:
        return dataset.read
    if not dataset.packed:
        def read(row: int) -> bytes:
            with open(files[row], "rb") as handle:
                return handle.read()
        return read
    offsets, sizes = f["offset"].tolist(), f["size"].tolist()
    return lambda row: read_sample(files[row], offsets[row], sizes[row], keys[row])


def passes(datasets: dict, orders: dict, repeat: int) -> dict:
    """Best crops/s of each (what, order, format) over ``repeat`` cold-cache passes; the
    formats take turns, so a burst of load from other jobs hits both alike."""
    best: dict = {}
    for what in ("bytes", "decoded"):
        for order_name, order in orders.items():
            for _ in range(repeat):
                for name, ds in datasets.items():
                    read, rows = reader(ds, what == "decoded"), [int(ds.rows[i]) for i in order]
                    drop_cache(ds.frames["file"])
                    start = time.perf_counter()
                    for row in rows:
                        read(row)
                    rate = len(rows) / (time.perf_counter() - start)
                    key = (what, order_name, name)
                    best[key] = max(best.get(key, 0.0), rate)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", help="crop manifest (default: generate --count crops)")
    parser.add_argument("--count", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import cv2
    import torch

    from forensics.data.datasets import CropDataset, TrainSampler, load_frames
    from forensics.data.shards import pack_crops

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(args.manifest) if args.manifest else make_crops(Path(tmp) / "files", args.count)
        packed = pack_crops(manifest, Path(tmp) / "shards")
        datasets = {}
        for name, path in (("files", manifest), ("shards", packed)):
            frames = load_frames(path, None)
            datasets[name] = CropDataset(frames, frames["label"].to_numpy())
        orders = {"training (shuffled)": list(TrainSampler(datasets["files"], seed=0)),
                  "evaluation (in order)": list(range(len(datasets["files"])))}
        print(f"{len(datasets['files'])} crops, {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}; "
              f"{datasets['shards'].frames['file'].nunique()} shard(s); cold page cache before every pass")
        best = passes(datasets, orders, args.repeat)
        print(f"{'':32s}{'files':>10s}{'shards':>10s}{'ratio':>8s}")
        for what in ("bytes", "decoded"):
            for order_name in orders:
                files, shards = best[what, order_name, "files"], best[what, order_name, "shards"]
                print(f"{what + ', ' + order_name:32s}{files:8.0f}/s{shards:8.0f}/s{shards / files:7.2f}x"
                      + ("   target >= 1.5" if (what, order_name) == ("decoded", "training (shuffled)") else ""))


if __name__ == "__main__":
    main()
