"""``forensics preprocess``: dataset videos to 224x224 face crops and a crop manifest.

Usage is documented in ``docs/preprocessing.md``. Module-level imports stay light so that
``forensics --help`` answers at once; the pipeline is imported inside :func:`run`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from forensics.errors import ForensicsError
from preprocessing.layouts import layout_names  # light: each layout's module is imported when used

log = logging.getLogger(__name__)

HELP = ("crop faces from a video dataset (FaceForensics++, DeepFakeDetection, Celeb-DF, DFDC, folders, face images) "
        "into a manifest")
AFTER = "synth"  # its place in `forensics --help`
#: Output folders the dispatcher checks before running (a file or a read-only folder: one line).
OUTPUT_DIRS = ("out",)
ON_STOP = "videos committed before are kept; run the same command again to resume"


def _names(values: list[str] | None) -> list[str] | None:
    """``--methods A B`` and ``--methods A,B`` both work."""
    if values is None:
        return None
    return [v for value in values for v in value.split(",") if v]


def options_context(options: dict[str, object]) -> dict[str, object]:
    """Layout options worth recording in the summary (the DFDC val fraction decides the split)."""
    return {"val_fraction": options["val_fraction"]} if "val_fraction" in options else {}


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N (shard K of N, K from 0), got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"shard {k}/{n}: K must be in 0..N-1")
    return k, n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``forensics preprocess`` options."""
    io = parser.add_argument_group("dataset and output")
    io.add_argument("--layout", choices=layout_names(), help="dataset layout")
    io.add_argument("--root", metavar="DIR", help="dataset root")
    io.add_argument("--out", required=True, metavar="DIR", help="output folder (crops, manifest.csv, summary.json)")
    io.add_argument("--splits", metavar="DIR", help="folder of the split files (ffpp: DIR/{train,val,test}.json, "
                    "default ROOT/splits; celebdf: DIR/List_of_testing_videos.txt, default ROOT; dfdc: the test "
                    "folder holding labels.csv, default the one folder of ROOT that has it)")
    io.add_argument("--val-fraction", type=float, metavar="F",
                    help="dfdc, dfdcp: share of the train originals put in val (default 0.1; fakes follow "
                         "their original)")
    io.add_argument("--boxes", metavar="CSV", help="images layout: face boxes 'NAME_ID, X, Y, W, H' (VGGFace2 style)")
    io.add_argument("--methods", nargs="+", metavar="M", help="only these methods ('original' for the reals)")
    io.add_argument("--compressions", nargs="+", metavar="C", help="only these compressions (c0, c23, c40, ...)")
    io.add_argument("--only-splits", nargs="+", metavar="S", help="only these splits (train, val, test)")

    frames = parser.add_argument_group("frames and crops")
    sampling = frames.add_mutually_exclusive_group()
    sampling.add_argument("--frames", type=int, default=32, metavar="N",
                          help="N evenly spaced frames per video (default 32; shorter videos give all theirs)")
    sampling.add_argument("--stride", type=int, metavar="S", help="every S-th frame instead")
    sampling.add_argument("--all-frames", action="store_true", help="every frame instead")
    frames.add_argument("--crop-size", type=int, default=224, metavar="PX", help="crop side (default 224)")
    frames.add_argument("--crop-scale", type=float, default=1.3, metavar="X",
                        help="crop square side / larger side of the face box (default 1.3, FaceForensics++)")
    frames.add_argument("--no-box-reuse", action="store_true",
                        help="detect faces on fakes too, instead of reusing their original's boxes")
    frames.add_argument("--all-faces", action="store_true",
                        help="also crop the other people's faces (<frame>_face<k>.png), not only the subject")

    det = parser.add_argument_group("face detection")
    det.add_argument("--device", default="cpu", help="cpu, cuda (every GPU; this rank's under torchrun) or cuda:N")
    det.add_argument("--min-face-size", type=float, metavar="PX",
                     help="smallest face searched, in frame pixels (default: 1/8 of the frame's short side)")
    det.add_argument("--thresholds", type=float, nargs=3, default=[0.6, 0.7, 0.7], metavar=("P", "R", "O"),
                     help="MTCNN stage thresholds (default 0.6 0.7 0.7)")
    det.add_argument("--min-score", type=float, default=0.9, help="drop faces scoring below this (default 0.9)")

    run = parser.add_argument_group("execution")
    run.add_argument("--workers", type=int, metavar="N", help="worker processes (default: one per CPU core; 0: inline)")
    run.add_argument("--shard", type=_shard, metavar="K/N",
                     help="process shard K of N (K from 0; default: torchrun's or SLURM's rank/world size)")
    run.add_argument("--merge", action="store_true",
                     help="merge OUT/manifest.shard-*-of-N.csv into OUT/manifest.csv and stop")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``forensics preprocess``; 1 if some videos failed, 0 otherwise."""
    if args.merge:
        from preprocessing.merge import merge_shards

        merge_shards(args.out)
        return 0
    if not args.layout or not args.root:
        raise ForensicsError("--layout and --root are required (unless --merge)")
    if args.boxes and args.layout != "images":
        raise ForensicsError("--boxes is for --layout images only")
    if args.val_fraction is not None and args.layout not in ("dfdc", "dfdcp"):
        raise ForensicsError("--val-fraction is for --layout dfdc and dfdcp only")

    from forensics.distributed import dist_env
    from preprocessing.layouts import list_items, select_items
    from preprocessing.pipeline import Settings
    from preprocessing.runner import run_preprocess

    if args.all_frames:
        sampling = dict(sampling="all")
    elif args.stride is not None:
        sampling = dict(sampling="stride", stride=args.stride)
    else:
        sampling = dict(sampling="even", frames=args.frames)
    settings = Settings(crop_size=args.crop_size, crop_scale=args.crop_scale, min_face_size=args.min_face_size,
                        thresholds=tuple(args.thresholds), min_score=args.min_score, all_faces=args.all_faces,
                        reuse_boxes=not args.no_box_reuse,
                        **sampling)
    options: dict[str, object] = {"boxes": Path(args.boxes)} if args.boxes else {}
    if args.val_fraction is not None:
        options["val_fraction"] = args.val_fraction
    items = list_items(args.layout, args.root, args.splits, **options)
    items = select_items(items, _names(args.methods), _names(args.compressions), _names(args.only_splits))
    if not items:
        raise ForensicsError("the selection matches no video")
    env = dist_env()
    rank, world = args.shard if args.shard is not None else (env.rank, env.world_size)
    summary = run_preprocess(
        items, args.out, settings, device=args.device, workers=args.workers, shard_rank=rank, shard_count=world,
        local_rank=env.local_rank, progress=not args.no_progress,
        context={"layout": args.layout, "root": str(Path(args.root).resolve()),
                 "selection": {"methods": _names(args.methods), "compressions": _names(args.compressions),
                               "splits": _names(args.only_splits)}, **options_context(options)})
    videos, frames = summary["videos"], summary["frames"]
    log.info("%d videos: %d done, %d skipped (already complete), %d failed, %d without a face; "
             "%d frames sampled, %d with a face; %.1f frames/s", videos["total"], videos["done"],
             videos["skipped"], videos["failed"], videos["no_face"], frames["sampled"], frames["faces"],
             summary["throughput"]["frames_per_s"])
    if summary["truncated"]:
        log.warning("%d videos decoded only in part (truncated?): kept with the frames that decoded; "
                    "listed under 'truncated' in the summary", len(summary["truncated"]))
    if world > 1:
        log.info("shard %d of %d done; when every shard is, run: forensics preprocess --merge --out %s",
                 rank, world, args.out)
    if videos["failed"]:
        for failure in summary["failed"][:10]:
            log.error("failed: %s: %s", failure["video"], failure["reason"])
        log.error("%d videos failed (listed in %s)", videos["failed"], Path(args.out) / "summary*.json")
        return 1
    return 0
