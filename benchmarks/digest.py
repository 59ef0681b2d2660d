"""Lineage digest cost: a stat digest against a content digest and against reading the manifest.

``forensics preprocess`` and every training run digest the manifest and its crops
(:mod:`forensics.data.digest`). The stat digest (size and modification time of each crop) must
cost about as much as reading the manifest, so that it is never a reason to skip it; the
content digest (SHA-256 of every crop's bytes) is there for copies that lose modification times.

Measured on the same files, in one run, as ratios to ``read_manifest``::

    python benchmarks/digest.py                        # 20,000 generated 70 KB files
    python benchmarks/digest.py --manifest OUT/manifest.csv

The generated files have the size of real crops (~70 KB: 224x224 PNG at zlib level 1) and
random bytes (no image is decoded by either digest). On the first pass the page cache is warm
(the files were just written); a cold network file system makes every stat a round trip,
which is why the stats run on threads.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def make_files(folder: Path, count: int, size: int = 70_000) -> Path:
    """``count`` files of ``size`` random bytes and a manifest listing them."""
    import pandas as pd

    from forensics.data.manifest import write_manifest

    rows = []
    block = os.urandom(size)
    for i in range(count):
        rel = f"crops/{i // 1000:03d}/{i:06d}.png"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(block[i % 97:] + block[:i % 97])
        rows.append(dict(path=rel, dataset="bench", video=f"{i // 32:05d}", frame=i % 32, label=i % 2,
                         method="FaceSwap" if i % 2 else "original", compression="c23", split="train",
                         original="", x0=0.0, y0=0.0, x1=1.0, y1=1.0, score=1.0))
    write_manifest(pd.DataFrame(rows), folder / "manifest.csv")
    return folder / "manifest.csv"


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", help="an existing manifest (default: generated files)")
    parser.add_argument("--count", type=int, default=20_000, help="generated files")
    args = parser.parse_args()

    from forensics.data.digest import manifest_digest
    from forensics.data.manifest import read_manifest

    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(args.manifest) if args.manifest else make_files(Path(tmp), args.count)
        files = manifest_digest(manifest)["files"]
        read = timed(lambda: read_manifest(manifest))
        stat = timed(lambda: manifest_digest(manifest, "stat"))
        content = timed(lambda: manifest_digest(manifest, "content"), repeat=1)
    print(f"{files} crops: read_manifest {read:.3f} s")
    print(f"stat digest    {stat:.3f} s  ({stat / read:.2f}x read_manifest, {stat / files * 1e6:.1f} us a crop)")
    print(f"content digest {content:.3f} s  ({content / read:.2f}x read_manifest, {content / stat:.1f}x the stat digest)")


if __name__ == "__main__":
    main()
