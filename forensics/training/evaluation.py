"""Scoring a trained checkpoint on a manifest split: the code of ``forensics evaluate``.

It lives here, not in the command, because ``forensics benchmark`` scores its detectors on
its test sets through the very same :func:`score` (a cross-dataset cell is exactly a
``forensics evaluate`` run) and one command never imports another. :func:`add_arguments` is
that command's flags, so the benchmark builds its arguments with the same parser.

The training run's dataset, method and compression filters are kept, on any manifest, unless
the command names others (``all`` drops a filter): :func:`applied_filters`. Plug-in tasks
use it too, for their own evaluation (``TaskSpec.evaluate``).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

log = logging.getLogger(__name__)

#: The word that drops a filter on the command line (``--methods all``).
ALL = "all"
FILTERS = ("datasets", "methods", "compressions")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``forensics evaluate``."""
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by forensics train")
    parser.add_argument("--manifest", help="crop manifest (default: the one the checkpoint was trained on)")
    parser.add_argument("--split", default="test", help="split to score: train, val, test, or 'all' (default: test)")
    parser.add_argument("--out", help="output folder (default: RUN/eval/<split>)")
    parser.add_argument("--datasets", nargs="+", help="keep only these datasets (default: the training run's; "
                        "'all': every one)")
    parser.add_argument("--methods", nargs="+", help="keep only these methods, name 'original' to keep reals "
                        "(default: the training run's; 'all': every one but the opt-in ones, e.g. FaceShifter)")
    parser.add_argument("--compressions", nargs="+", help="keep only these compressions (default: the training "
                        "run's; 'all': every one)")
    parser.add_argument("--frames-per-video", type=int, help="K evenly spaced frames per video (default: all)")
    parser.add_argument("--video-strategy", choices=("mean", "median", "confident"),
                        help="how a video's score is made from its frames (default: as in training)")
    parser.add_argument("--batch-size", type=int, help="default: the training run's evaluation batch size")
    parser.add_argument("--num-workers", type=int, help="default: the training run's data.num_workers")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--wandb-mode", choices=("online", "offline", "disabled"),
                        help="default: online with an API key, else offline")
    parser.add_argument("--wandb-name", help="W&B run name (default: the training run's, '-eval-<split>' added)")


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """``forensics evaluate``'s arguments from a command line (without the command name)."""
    parser = argparse.ArgumentParser(prog="forensics evaluate")
    add_arguments(parser)
    return parser.parse_args(argv)


def applied_filters(args: Any, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The dataset/method/compression filters of an evaluation and where each comes from.

    A filter named on the command line wins (``all``: none); otherwise the training run's is
    kept, whichever manifest is scored: a model trained on FaceForensics++ c23 is then not
    silently scored on c40 crops of the same manifest too.
    """
    out = {}
    for key in FILTERS:
        named = getattr(args, key, None)
        if named:
            out[key] = {"values": None if named == [ALL] else list(named), "from": "command line"}
        else:
            out[key] = {"values": data.get(key), "from": "training run"}
    return out


def _loader_defaults(args: Any, data: dict[str, Any]) -> None:
    """Unset loader flags take the training run's values (a cluster's worker count, its batch)."""
    if args.batch_size is None:
        args.batch_size = data.get("eval_batch_size") or 2 * data.get("batch_size", 32)
    if args.num_workers is None:
        args.num_workers = data.get("num_workers", 4)


def score(args: Any) -> dict[str, Any] | None:
    """Evaluate ``args.checkpoint`` as ``forensics evaluate`` does (``args``: its flags).

    Returns:
        The report (``report.json``, in ``args.out``, which an unset ``--out`` is set to) on rank 0; ``None`` on other ranks and for a plug-in
        task's checkpoint, which its own evaluation scores and reports.

    Raises:
        ForensicsError: a checkpoint not written by ``forensics train``, no manifest, a
            plug-in evaluation that returns a failing status.
    """
    from forensics.data.datasets import CropDataset, crop_size_on_disk, load_frames
    from forensics.data.transforms import batch_preparer, build_transform
    from forensics.distributed import cleanup_distributed
    from forensics.errors import ForensicsError
    from forensics.training.checkpoint import load_checkpoint
    from forensics.training.engine import evaluate
    from forensics.training.gradcam import sample_explainer
    from forensics.training.lineage import log_dataset
    from forensics.training.session import eval_loader, eval_model, eval_run
    from forensics.training.tasks import create_task, task_spec

    state = load_checkpoint(args.checkpoint)
    info, config = state.get("model_info"), state.get("config") or {}
    if not info:
        raise ForensicsError(f"{args.checkpoint}: no model_info: not written by forensics train")
    data = config.get("data", {})
    _loader_defaults(args, data)
    plugin_evaluate = task_spec(info["task"]).evaluate
    if plugin_evaluate is not None:
        status = plugin_evaluate(args, state)
        if status:
            raise ForensicsError(f"{args.checkpoint}: the {info['task']} evaluation ended with status {status}")
        return None
    env, device, model = eval_model(args, state)
    task = create_task(info["task"], info["classes"], args.video_strategy or info.get("video_strategy", "mean"))

    manifest = args.manifest or data.get("manifest")
    if not manifest:
        raise ForensicsError("--manifest is needed: the checkpoint names no training manifest")
    filters = applied_filters(args, data)
    frames = load_frames(manifest, None if args.split == "all" else args.split,
                         **{key: f["values"] for key, f in filters.items()},
                         on_corrupt=data.get("on_corrupt", "stop"))
    data_cfg = info["data_config"]
    dataset = CropDataset(frames, task.encode(frames), build_transform(data_cfg, None, crop_size_on_disk(frames)),
                          args.frames_per_video)
    loader = eval_loader(dataset, args.batch_size, args.num_workers, env, device)

    out, wandb_cfg, logger = eval_run(args, config, manifest, env)
    args.out = str(out)  # the command names the report it wrote
    lineage = log_dataset(logger, manifest)  # the data's digest: report.json and W&B
    logger.explainer = sample_explainer(model, task, build_transform(data_cfg, None), batch_preparer(data_cfg, device))
    metrics, gathered = evaluate(model, task, loader, batch_preparer(data_cfg, device))
    report = None
    if env.is_main:
        report = {"checkpoint": str(args.checkpoint), "manifest": str(manifest), "split": args.split,
                  "filters": filters, "epoch": state.get("epoch"), "lineage": lineage, args.split: metrics}
        _write_outputs(args, out, report, gathered, dataset.meta, logger, wandb_cfg.samples)
    logger.finish()
    cleanup_distributed()
    return report


def _write_outputs(args: Any, out, report: dict[str, Any], gathered: dict, meta, logger, samples: int) -> None:
    """``predictions.csv``, the W&B/run-folder evaluation and ``report.json``."""
    import pandas as pd

    from forensics.training.detection import log_final
    from forensics.training.runlog import write_json

    metrics = report[args.split]
    scored = meta.iloc[gathered["index"]]
    predictions = pd.DataFrame({"path": scored["path"].to_numpy(), "video_key": scored["video_key"].to_numpy(),
                                "frame": scored["frame"].to_numpy(), "label": scored["label"].to_numpy(),
                                "method": scored["method"].to_numpy(), "score": gathered["score"]})
    predictions.to_csv(out / "predictions.csv", index=False)
    log_final(logger, args.split, metrics, gathered, meta, samples)
    write_json(out / "report.json", report)


def summary(report: dict[str, Any]) -> str:
    """The one-line summary of an evaluation report that ``forensics evaluate`` prints."""
    split = report["split"]
    video, frame = report[split]["video"], report[split]["frame"]
    return (f"{split}: {video['n']} videos, {frame['n']} crops | video AUC {_fmt(video['auc'])} "
            f"acc {_fmt(video['acc'])} bal. acc {_fmt(video['bal_acc'])} | frame AUC {_fmt(frame['auc'])} "
            f"acc {_fmt(frame['acc'])} bal. acc {_fmt(frame['bal_acc'])}"
            + (f" | {video['note']}" if video.get("note") else ""))


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"
