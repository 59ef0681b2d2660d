"""The ``forensics`` command: a dispatcher over subcommands.

Each subcommand lives in the package that owns it and exposes ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Their modules keep module-level imports
light, so ``forensics --help`` answers at once; heavy imports happen inside ``run``.

The core's commands are listed in :data:`COMMANDS`; packages outside the core add theirs
through the ``forensics.commands`` entry-point group (``name = "package.module"`` in their
``pyproject.toml``), so ``forensics`` never names them. A plug-in module may set ``AFTER``
to the command it follows in ``forensics --help`` (default: the end of the list).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from types import ModuleType

from forensics.errors import ForensicsError
from forensics.lifetime import exit_status, handle_termination
from forensics import provisional
from forensics.outputs import check_output_dir, describe_os_error

#: The core's subcommands -> modules implementing them, in the order of ``forensics --help``.
COMMANDS: dict[str, str] = {
    "synth": "forensics.synth.cli",
    "pack": "forensics.commands.pack",
    "train": "forensics.commands.train",
    "benchmark": "forensics.commands.benchmark",
    "evaluate": "forensics.commands.evaluate",
    "predict": "forensics.commands.predict",
    "weights": "forensics.commands.weights",
    "report": "forensics.commands.report",
}


def _import(module_name: str) -> ModuleType | None:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            return None  # that capability is not part of this installation
        raise


def _available() -> dict[str, ModuleType]:
    """Every command's module: the core's, then the plug-ins' (each after its ``AFTER``)."""
    modules = {name: module for name, module in ((n, _import(m)) for n, m in COMMANDS.items()) if module}
    for entry in sorted(entry_points(group="forensics.commands"), key=lambda e: e.name):
        module = _import(entry.value)
        if module is None or entry.name in modules:
            continue
        names = list(modules)
        after = getattr(module, "AFTER", None)
        at = names.index(after) + 1 if after in modules else len(names)
        modules = dict([*list(modules.items())[:at], (entry.name, module), *list(modules.items())[at:]])
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
        cmd.set_defaults(_run=module.run, _output_dirs=getattr(module, "OUTPUT_DIRS", ()),
                         _on_stop=getattr(module, "ON_STOP", "outputs finished before are kept"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``forensics`` console script and ``python -m forensics``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # SLURM pre-emption and `kill` send SIGTERM: clean up as for Ctrl-C, then exit 143.
    try:
        with handle_termination(), provisional.scope():
            for name in args._output_dirs:
                if getattr(args, name, None):
                    check_output_dir(getattr(args, name), f"--{name.replace('_', '-')}")
            return int(args._run(args) or 0)
    except ForensicsError as error:
        print(f"forensics {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        status = exit_status(stop)
        what = "terminated (SIGTERM)" if status == 143 else "interrupted"
        print(f"forensics {args.command}: {what}; {args._on_stop}", file=sys.stderr)
        return status
    except OSError as error:
        line = describe_os_error(error)
        if line is None:
            raise
        print(f"forensics {args.command}: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
