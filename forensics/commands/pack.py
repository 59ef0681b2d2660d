"""``forensics pack CROPS_DIR [OUT]``: copy a crop folder into tar shards (WebDataset layout).

The new folder holds ``shards/crops-NNNNNN.tar`` and a ``manifest.csv`` that is still the
index (every row gains ``shard``, ``key``, ``offset``, ``size``); point ``data.manifest`` of
``forensics train`` or ``--manifest`` of ``forensics evaluate`` at it and they read the same
samples from the shards. See :mod:`forensics.data.shards`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from forensics.errors import ForensicsError

HELP = "pack a crop folder (manifest.csv + PNG crops) into tar shards for clusters"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("crops", help="folder holding manifest.csv (or the manifest file itself)")
    parser.add_argument("out", nargs="?", help="output folder (default: CROPS_DIR-shards beside it)")
    parser.add_argument("--shard-mb", type=float, default=1000.0,
                        help="start a new shard past this many MiB (default: 1000)")


def run(args: argparse.Namespace) -> int:
    from forensics.data.shards import pack_crops

    source = Path(args.crops)
    manifest = source if source.suffix == ".csv" else source / "manifest.csv"
    if args.shard_mb <= 0:
        raise ForensicsError(f"--shard-mb must be positive, got {args.shard_mb}")
    out = Path(args.out) if args.out else manifest.parent.with_name(manifest.parent.name + "-shards")
    packed = pack_crops(manifest, out, shard_mb=args.shard_mb)
    print(f"wrote {packed}")
    return 0
