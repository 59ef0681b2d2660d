"""``forensics refiner {pretrain,finetune,apply}``: the refiner's command line.

Only argparse is imported here: the dispatcher imports this module to build ``forensics
--help``; torch, pandas and the rest are imported by the subcommand that runs.
"""

from __future__ import annotations

import argparse

HELP = "the refiner: pretrain an autoencoder on real crops, fine-tune it on self-reenactment pairs, apply it"


def _apply_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a fine-tuned refiner checkpoint (checkpoints/best.pt)")
    parser.add_argument("--manifest", required=True, help="the crop manifest holding the fakes to refine")
    parser.add_argument("--method", required=True, help="the manipulation method to refine (e.g. Face2Face)")
    parser.add_argument("--name", help="name of the new method (default: METHOD-refined)")
    parser.add_argument("--splits", nargs="+", metavar="SPLIT", help="refine only these splits (default: all)")
    parser.add_argument("--out", help="output manifest (default: MANIFEST's folder/manifest_NAME.csv)")
    parser.add_argument("--batch-size", type=int, default=32, help="crops per forward pass (default 32)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--overwrite", action="store_true", help="discard refined crops of an earlier run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="refiner_command", metavar="STEP", required=True)
    steps = {
        "pretrain": "stage 1: train the autoencoder to reconstruct real face crops (no skips)",
        "finetune": "stage 2: load stage 1, add skips, freeze, train on (fake, original) pairs",
        "apply": "refine the fakes of one method and write them as a new method with its own manifest rows",
    }
    from forensics.train import add_run_arguments  # already imported by the dispatcher for `train`

    for name, help_text in steps.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == "apply":
            _apply_arguments(cmd)
        else:
            add_run_arguments(cmd, f"configs/refiner/{name}.yaml")


def run(args: argparse.Namespace) -> int:
    if args.refiner_command == "apply":
        from refiner.apply import apply_refiner

        apply_refiner(args.checkpoint, args.manifest, args.method, name=args.name, splits=args.splits,
                      out=args.out, batch_size=args.batch_size, device=args.device, overwrite=args.overwrite)
        return 0
    from refiner.train import run as train_run

    return train_run(args, args.refiner_command)
