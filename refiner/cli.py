"""``forensics refiner {pretrain,finetune,apply,video}``: the refiner's command line.

Only argparse is imported here: the dispatcher imports this module to build ``forensics
--help``; torch, pandas and the rest are imported by the subcommand that runs.
"""

from __future__ import annotations

import argparse

HELP = "the refiner: pretrain an autoencoder on real crops, fine-tune it on self-reenactment pairs, apply it"
AFTER = "predict"  # its place in `forensics --help`


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


def _video_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="videos whose faces to refine")
    parser.add_argument("--checkpoint", required=True, help="a fine-tuned refiner checkpoint (checkpoints/best.pt)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the refined videos (same names)")
    parser.add_argument("--crop-size", type=int, help="side of the crops the refiner was trained on (default 224)")
    parser.add_argument("--crop-scale", type=float, help="their crop square relative to the face box (default 1.3)")
    parser.add_argument("--crf", type=int, default=23, help="libx264 CRF of the output (default 23, FF++'s c23)")
    parser.add_argument("--batch-size", type=int, default=32, help="frames per detection and refinement batch")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--overwrite", action="store_true", help="redo videos already in --out")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="refiner_command", metavar="STEP", required=True)
    steps = {
        "pretrain": "stage 1: train the autoencoder to reconstruct real face crops (no skips)",
        "finetune": "stage 2: load stage 1, add skips, freeze, train on (fake, original) pairs",
        "apply": "refine the fakes of one method and write them as a new method with its own manifest rows",
        "video": "refine the face in every frame of videos and re-encode them (refined crops pasted back)",
    }
    arguments = {"apply": _apply_arguments, "video": _video_arguments}
    from forensics.training.session import add_run_arguments  # light: the heavy imports are inside functions

    for name, help_text in steps.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name in arguments:
            arguments[name](cmd)
        else:
            add_run_arguments(cmd, f"configs/refiner/{name}.yaml")


def run(args: argparse.Namespace) -> int:
    from forensics.outputs import check_output_dir, check_output_file

    if args.refiner_command == "apply" and args.out:
        check_output_file(args.out)
    elif args.refiner_command == "video":
        check_output_dir(args.out)
    if args.refiner_command == "apply":
        from refiner.apply import apply_refiner

        apply_refiner(args.checkpoint, args.manifest, args.method, name=args.name, splits=args.splits,
                      out=args.out, batch_size=args.batch_size, device=args.device, overwrite=args.overwrite)
        return 0
    if args.refiner_command == "video":
        from refiner.video import refine_videos

        refine_videos(args.checkpoint, args.videos, args.out, crop_size=args.crop_size, crop_scale=args.crop_scale,
                      crf=args.crf, batch_size=args.batch_size, device=args.device, overwrite=args.overwrite)
        return 0
    from refiner.train import run as train_run

    return train_run(args, args.refiner_command)
