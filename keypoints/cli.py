"""``forensics keypoints-synth --out DIR [--count N]``: write a labelled keypoint set.

Renders the project's synthetic faces to 96x96 grayscale with MTCNN's five landmarks as
labels, in the Kaggle CSV format (:mod:`keypoints.synth`). Only argparse is
imported at module level: the dispatcher imports every subcommand's module for ``--help``.
"""

from __future__ import annotations

import argparse

HELP = "generate a labelled facial keypoint set (Kaggle CSV format, 5 MTCNN landmarks) from synthetic faces"
AFTER = "demo"  # its place in `forensics --help`
#: Output folders the dispatcher checks before running (a file or a read-only folder: one line).
OUTPUT_DIRS = ("out",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write keypoints.csv into")
    parser.add_argument("--count", type=int, default=600, metavar="N", help="faces to render (default 600)")
    parser.add_argument("--identities", type=int, default=24, metavar="K",
                        help="distinct people, split 70/15/15 %% into train/val/test (default 24)")
    parser.add_argument("--size", type=int, default=96, help="image side in pixels (default 96, as Kaggle's)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from keypoints.synth import make_keypoint_dataset

    path = make_keypoint_dataset(args.out, count=args.count, identities=args.identities, size=args.size,
                                 seed=args.seed)
    print(f"keypoint set: {path}")
    return 0
