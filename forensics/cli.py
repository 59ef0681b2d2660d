"""The ``forensics`` command: a dispatcher over subcommands.

Each subcommand lives in the package that owns it and exposes ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Their modules keep module-level imports
light, so ``forensics --help`` answers at once; heavy imports happen inside ``run``.

This is the one place where ``forensics`` names the other packages (``preprocessing``,
``refiner``): dependencies otherwise point into ``forensics``, never out of it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from forensics.errors import ForensicsError

#: subcommand -> module implementing it. Order is the order of ``forensics --help``.
COMMANDS: dict[str, str] = {
    "synth": "forensics.synth.cli",
    "preprocess": "preprocessing.cli",
    "train": "forensics.commands.train",
    "benchmark": "forensics.commands.benchmark",
    "evaluate": "forensics.commands.evaluate",
    "predict": "forensics.commands.predict",
    "weights": "forensics.commands.weights",
    "refiner": "refiner.cli",
    "demo": "demo.cli",
    "keypoints-synth": "keypoints.cli",
}


def _available() -> dict[str, object]:
    modules = {}
    for name, module_name in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and module_name.startswith(error.name):
                continue  # that capability is not part of this installation
            raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (used by ``main`` and by the docs)."""
    parser = argparse.ArgumentParser(
        prog="forensics", description="Face forgery detection: preprocessing, training, evaluation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _available().items():
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``forensics`` console script and ``python -m forensics``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return int(args._run(args) or 0)
    except ForensicsError as error:
        print(f"forensics {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"forensics {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
