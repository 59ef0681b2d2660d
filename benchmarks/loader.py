"""Loader throughput: face crops per second per worker, with the default training augmentations.

The target is 1,000 crops/s per CPU core for 224x224 PNG crops: at that rate 8 loader cores
feed a GPU training an EfficientNet-B4 at ~8,000 crops/s... more than it can use.

It measures, on the same crops:

1. the decode-only ceiling (PNG to uint8 tensor) in one process;
2. decode + default augmentations in one process: crops/s per core;
3. decode in the worker with ``data.augment.device: gpu`` (augmentation moved to the batch on
   the device), and that batch augmentation's cost on CPU tensors where no GPU is at hand;
4. self-blended images (``data.pseudo_fakes=sbi``, :mod:`forensics.data.sbi`): decode + blend
   + augmentations of the pseudo-fake twins alone, in one process, beside 2.;
5. the real ``DataLoader`` (``CropDataset`` + ``TrainSampler``, batch 32) with 1..N workers:
   crops/s in all and per worker (``--sbi``: with a self-blended twin of every real crop).

Usage::

    python benchmarks/loader.py                       # 1024 generated 224x224 PNG crops
    python benchmarks/loader.py --manifest OUT/manifest.csv --workers 1 2 4
    python benchmarks/loader.py --sbi                 # the DataLoader with SBI twins

Without a manifest, crops are cut from scikit-image's astronaut photo with random shifts,
scales and colour, and written as preprocessing writes them (lossless PNG, zlib level 1;
``--png-compression 0`` for stored, uncompressed PNG).

Decoding dominates: a 224x224 PNG at zlib level 1 takes ~1.3-1.6 ms of CPU to decode. The
default augmentations (``forensics/data/augment.py``: OpenCV kernels, one fused callable) add
~0.45-0.55 ms when the machine is otherwise quiet and ~0.8-0.9 ms under heavy load (decoding
and augmenting then evict each other's caches): 0.71-0.76x the decode-only rate per CPU second
at load 2-3 on 2 cores, 0.57-0.65x at load 4-8, against 0.40-0.50x and 0.35-0.41x for the
torchvision v2 pipeline it replaced. JPEG re-compression and colour jitter are ~70% of what
remains.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def make_crops(folder: Path, count: int, size: int = 224, compression: int = 1) -> Path:
    """``count`` face-like PNG crops and their manifest in ``folder``."""
    import cv2
    import numpy as np
    import pandas as pd
    from skimage import data

    from forensics.data.manifest import LANDMARK_COLUMNS, write_manifest
    from forensics.media.crops import crop_face, points_to_crop, write_png

    photo = data.astronaut()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        box = np.array([175, 40, 300, 190], float) + rng.uniform(-15, 15, 4)
        crop = crop_face(photo, box, size=size).astype(np.float32)
        crop = np.clip(crop * rng.uniform(0.8, 1.2, 3) + rng.normal(0, 2, crop.shape), 0, 255).astype(np.uint8)
        rel = f"crops/{i // 32:03d}/{i % 32:04d}.png"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        write_png(folder / rel, crop, compression=compression)
        # Landmarks where the face's features are, relative to its box (for the SBI rates).
        points = points_to_crop(box[:2] + np.asarray(RELATIVE_LANDMARKS) * (box[2:] - box[:2]), box, size)
        rows.append(dict(path=rel, dataset="bench", video=f"{i // 32:03d}", frame=i % 32, label=i % 2,
                         method="FaceSwap" if i % 2 else "original", compression="c23", split="train",
                         original="", x0=0.0, y0=0.0, x1=1.0, y1=1.0, score=float("nan"),
                         **dict(zip(LANDMARK_COLUMNS, points.reshape(-1)))))
    write_manifest(pd.DataFrame(rows), folder / "manifest.csv")
    cv2.setNumThreads(0)
    return folder / "manifest.csv"


#: Eyes, nose and mouth corners as fractions of a face box (those of the synthetic faces).
RELATIVE_LANDMARKS = [[0.28, 0.376], [0.72, 0.376], [0.5, 0.595], [0.31, 0.778], [0.69, 0.778]]


def rate(fn, items, repeat: int = 2) -> tuple[float, float]:
    """Items per wall-clock second and per CPU second of ``fn`` over ``items`` (best of ``repeat``).

    On a machine shared with other jobs the wall-clock rate drops with the load; the rate per
    CPU second (``time.process_time``) is what one core does when it is ours.
    """
    wall = cpu = 0.0
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        for item in items:
            fn(item)
        wall = max(wall, len(items) / (time.perf_counter() - start))
        cpu = max(cpu, len(items) / (time.process_time() - start_cpu))
    return wall, cpu


def sbi_rate(frames, manifest: str, size: int, transform, required: bool):
    """Print the one-core rate of self-blended twins; the frames with twins (``None`` without landmarks)."""
    import numpy as np

    from forensics.data.datasets import CropDataset
    from forensics.data.manifest import landmarks_of
    from forensics.data.sbi import SOURCE, add_pseudo_fakes

    if landmarks_of(frames) is None:
        if required:
            raise SystemExit(f"{manifest}: no landmark columns: --sbi needs a manifest made by forensics preprocess")
        return None
    blended = add_pseudo_fakes(frames, "sbi", manifest, size)
    twins = CropDataset(blended, blended["label"].to_numpy(), transform)
    wall, cpu = rate(twins.__getitem__, list(np.flatnonzero(blended[SOURCE].to_numpy() >= 0)))
    print(f"{'SBI twin + augmentations (one core)':34s}{wall:11.0f} /s {cpu:13.0f} /s")
    return blended


def batch_augment_rate(files: list[str], worker_only, cfg: dict, batch_size: int) -> None:
    """CPU rate of ``data.augment.device=gpu``'s batch augmentation, run here on CPU tensors."""
    import torch

    from forensics.data.batch_augment import BatchAugment
    from forensics.data.datasets import read_crop
    from forensics.data.transforms import AugmentConfig

    batch = torch.stack([worker_only(read_crop(f)) for f in files[:256]])
    augment = BatchAugment(AugmentConfig(device="gpu"), int(cfg["input_size"][-1]), cfg.get("interpolation", "bilinear"))
    start = time.process_time()
    for i in range(0, len(batch), batch_size):
        augment(batch[i:i + batch_size], torch.arange(i, i + len(batch[i:i + batch_size])))
    print(f"{'batch augmentation on CPU tensors':34s}{'':16s}{len(batch) / (time.process_time() - start):13.0f} /s"
          "   (no GPU here: the pixel work a GPU would do)")


def loader_rates(dataset, worker_counts: list[int], batch_size: int) -> None:
    """Steady-state crops/s of a DataLoader over ``dataset``, wall clock and per worker CPU second."""
    import resource

    from torch.utils.data import DataLoader

    from forensics.data.datasets import TrainSampler

    for workers in worker_counts:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        # Persistent workers here: we measure the steady state, not the ~1 s of worker start-up
        # that an epoch of a real dataset (minutes) amortises.
        loader = DataLoader(dataset, batch_size=batch_size, sampler=TrainSampler(dataset), num_workers=workers,
                            drop_last=True, persistent_workers=True, prefetch_factor=4)
        for _ in loader:  # warm-up: worker start, page cache
            pass
        start, count = time.perf_counter(), 0
        for _ in range(2):
            for batch in loader:
                count += len(batch["image"])
        total = count / (time.perf_counter() - start)
        del loader  # joins the workers: their CPU time is then counted
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        worker_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        per_cpu = 3 * count / 2 / worker_cpu  # three passes ran in the workers (warm-up included)
        print(f"{f'DataLoader, {workers} worker(s)':34s}{total:11.0f} /s {per_cpu:13.0f} /s per worker CPU second"
              f"  ({total / workers:.0f} /s per worker, wall clock)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", help="crop manifest (default: generate --count crops)")
    parser.add_argument("--count", type=int, default=1024)
    parser.add_argument("--png-compression", type=int, default=1,
                        help="zlib level of generated crops (1: what preprocessing writes; 0 decodes ~2x faster)")
    parser.add_argument("--model", default="mobilenetv3_small_100", help="its pretrained config sets input size")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sbi", action="store_true", help="DataLoader with a self-blended twin of every real crop")
    args = parser.parse_args()

    import cv2
    import torch

    from forensics.data.datasets import CropDataset, load_frames, read_crop
    from forensics.data.transforms import AugmentConfig, build_transform
    from forensics.models import create_model, data_config

    torch.set_num_threads(1)  # one core per process, as in a DataLoader worker
    cv2.setNumThreads(1)
    tmp = None
    if args.manifest is None:
        tmp = tempfile.TemporaryDirectory()
        manifest = make_crops(Path(tmp.name), args.count, compression=args.png_compression)
    else:
        manifest = Path(args.manifest)
    frames = load_frames(manifest, None)
    files = list(frames["file"])
    size = cv2.imread(files[0]).shape[0]
    cfg = data_config(create_model(args.model, num_classes=1))
    transform = build_transform(cfg, AugmentConfig(), crop_size=size)
    print(f"{len(files)} crops of {size}x{size}, model input {cfg['input_size']}, "
          f"{os.cpu_count()} CPU(s), torch {torch.__version__}")

    print(f"load average {os.getloadavg()[0]:.1f}: wall-clock rates fall with other jobs, CPU-time rates don't")
    print(f"{'':34s}{'wall clock':>16s}{'per CPU second':>18s}")
    # data.augment.device=gpu: the worker only decodes (and resizes); the batch is augmented
    # on the device. Here there is no GPU, so the batch augmentation runs on CPU tensors: its
    # figure is the pixel work a GPU takes over, not the (small) launch cost it leaves the CPU.
    worker_only = build_transform(cfg, None, crop_size=size)
    rates = {}
    for name, fn in (("decode only (one core)", read_crop),
                     ("decode + augmentations (one core)", lambda f: transform(read_crop(f))),
                     ("decode, augment on device (worker)", lambda f: worker_only(read_crop(f)))):
        rates[name] = wall, cpu = rate(fn, files)
        print(f"{name:34s}{wall:11.0f} /s {cpu:13.0f} /s" + ("   target >= 1000" if name.startswith("decode + aug") else ""))
    decode_cpu = rates["decode only (one core)"][1]
    print(f"per-core rate, default augmentations / decode only: "
          f"{rates['decode + augmentations (one core)'][1] / decode_cpu:.2f}x (target >= 0.7)")
    print(f"worker CPU per crop, augmentation on the device / decode only: "
          f"{decode_cpu / rates['decode, augment on device (worker)'][1]:.2f}x (target <= 1.2)")
    batch_augment_rate(files, worker_only, cfg, args.batch_size)

    blended = sbi_rate(frames, str(manifest), size, transform, args.sbi)

    served = blended if args.sbi else frames
    loader_rates(CropDataset(served, served["label"].to_numpy(), transform), args.workers, args.batch_size)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
