"""Every command in the README's code blocks parses: its subcommand, flags and config overrides
exist. The ones that can run here (synth, preprocess, train, evaluate, predict, the refiner's)
also run in ``forensics demo`` (tests/pipeline_demo/test_cli.py); this keeps the others (FaceForensics++,
Celeb-DF, torchrun) from rotting when a flag or a config key is renamed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from forensics.cli import build_parser
from forensics.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[list[str]]:
    """The commands of the README's bash blocks, one argv each.

    ``&&`` separates commands, a trailing ``\\`` continues one, ``#`` starts a comment."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                commands.append(words[:cut])
                words = words[cut + 1:]
    return [c for c in commands if c]


def forensics_argv(words: list[str]) -> list[str] | None:
    """The ``forensics`` arguments of a command, also under ``torchrun -m forensics``; else None."""
    if words[0] == "forensics":
        return words[1:]
    if words[0] == "torchrun" and "-m" in words and words[words.index("-m") + 1] == "forensics":
        return words[words.index("-m") + 2:]
    return None


COMMANDS = readme_commands()


def test_the_readme_has_its_commands():
    names = {tuple(c[:2]) for c in COMMANDS}
    assert ("forensics", "demo") in names and ("forensics", "preprocess") in names
    assert any(c[0] == "torchrun" for c in COMMANDS)


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_readme_command_parses(words):
    if words[0] in ("pip", "pytest"):  # what .ci/run itself runs
        return
    argv = forensics_argv(words)
    assert argv is not None, f"README command not checked by this test: {' '.join(words)}"
    args = build_parser().parse_args(argv)  # unknown subcommands and flags exit here
    if args.command == "train":
        from forensics.commands.train import TrainConfig

        # Placeholders (`...`) stand for the user's paths; every key must exist and validate.
        overrides = [o.replace("...", "x") for o in args.overrides]
        load_config(TrainConfig, ROOT / args.config, overrides)
    if args.command == "refiner" and args.refiner_command in ("pretrain", "finetune"):
        from refiner.train import FinetuneConfig, PretrainConfig

        config = FinetuneConfig if args.refiner_command == "finetune" else PretrainConfig
        load_config(config, ROOT / args.config, [o.replace("...", "x") for o in args.overrides])
