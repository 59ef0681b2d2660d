"""``forensics synth``: write a synthetic FaceForensics++-style dataset.

Only argparse is imported at module level: the dispatcher imports every subcommand's module
to build ``forensics --help``.
"""

from __future__ import annotations

import argparse

HELP = "generate a small synthetic FaceForensics++-style dataset (real videos, fakes, masks, splits)"
#: Output folders the dispatcher checks before running (a file or a read-only folder: one line).
OUTPUT_DIRS = ("out",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``synth`` flags to ``parser``."""
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset root to write")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--originals", type=int, default=12, metavar="N",
                        help="number of real videos, even, >= 6 (default 12)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help="manipulation methods: FaceSwap, SelfBlend, SelfReenact (default FaceSwap SelfBlend; "
                             "SelfReenact makes pixel-aligned self-reenactment pairs)")
    parser.add_argument("--seconds", type=float, default=3.0, help="video length (default 3)")
    parser.add_argument("--fps", type=int, default=25, help="frame rate (default 25)")
    parser.add_argument("--width", type=int, default=640, help="frame width, up to 1280 (default 640)")
    parser.add_argument("--height", type=int, default=480, help="frame height, up to 720 (default 480)")
    parser.add_argument("--compression", nargs="+", default=["c23"], metavar="LEVEL",
                        help="one or several of c0 (alias raw), c23, c40: libx264 CRF 0/23/40 "
                             "like FaceForensics++ (default c23)")
    parser.add_argument("--faces", metavar="DIR", default=None,
                        help="folder of your own face photos to use instead of the bundled faces")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the dataset in a non-empty --out (only the dataset folders "
                             "and synth.json are deleted)")


def run(args: argparse.Namespace) -> int:
    """Generate the dataset described by ``args``; return the exit status."""
    import logging

    from forensics.synth import DEFAULT_METHODS, SynthConfig, make_dataset

    config = SynthConfig(
        seed=args.seed,
        originals=args.originals,
        methods=tuple(args.methods) if args.methods else DEFAULT_METHODS,
        seconds=args.seconds,
        fps=args.fps,
        width=args.width,
        height=args.height,
        compressions=tuple(args.compression),
        faces=args.faces,
    )
    out = make_dataset(args.out, config, overwrite=args.overwrite, progress=True)
    logging.getLogger(__name__).info("synthetic dataset ready in %s", out)
    return 0
