"""``forensics evaluate --checkpoint C [--manifest M] [--split test]``: score a trained detector.

Everything needed to rebuild the model and its inputs (architecture, head, classes, input
size, mean/std) comes from the checkpoint, so any manifest can be scored: the training
manifest's test split by default, or another dataset's manifest for cross-dataset
evaluation. The training run's dataset, method and compression filters are kept, on any
manifest, unless the command names others (``--datasets``, ``--methods``, ``--compressions``;
``all`` drops a filter): ``report.json`` records which were applied and where each came from.
Writes into ``--out`` (default ``RUN/eval/<split>``): ``report.json``
(frame/video metrics, per method, per compression), ``roc_<split>.png``,
``samples_<split>.png``, ``predictions.csv`` (one score per crop) and a W&B run. Runs under
torchrun too; scores are gathered from every rank before any metric is computed. A keypoints
checkpoint is scored by :mod:`keypoints.evaluate` (MSE and score per face).
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

HELP = "evaluate a checkpoint on a manifest split: frame/video metrics, ROC, W&B"


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by forensics train")
    parser.add_argument("--manifest", help="crop manifest (default: the one the checkpoint was trained on)")
    parser.add_argument("--split", default="test", help="split to score: train, val, test, or 'all' (default: test)")
    parser.add_argument("--out", help="output folder (default: RUN/eval/<split>)")
    parser.add_argument("--datasets", nargs="+", help="keep only these datasets (default: the training run's; "
                        "'all': every one)")
    parser.add_argument("--methods", nargs="+", help="keep only these methods, name 'original' to keep reals "
                        "(default: the training run's; 'all': every one)")
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


#: The word that drops a filter on the command line (``--methods all``).
ALL = "all"


def applied_filters(args, data: dict) -> dict[str, dict]:
    """The dataset/method/compression filters of an evaluation and where each comes from.

    A filter named on the command line wins (``all``: none); otherwise the training run's is
    kept, whichever manifest is scored: a model trained on FaceForensics++ c23 is then not
    silently scored on c40 crops of the same manifest too.
    """
    out = {}
    for key in ("datasets", "methods", "compressions"):
        named = getattr(args, key, None)
        if named:
            out[key] = {"values": None if named == [ALL] else list(named), "from": "command line"}
        else:
            out[key] = {"values": data.get(key), "from": "training run"}
    return out


def run(args) -> int:
    score(args)
    return 0


def score(args) -> dict | None:
    """Evaluate ``args.checkpoint`` as ``forensics evaluate`` does; the report on rank 0, else ``None``.

    ``forensics benchmark`` scores its detectors on its test sets through this function, so
    that a cross-dataset cell is exactly a ``forensics evaluate`` run.
    """
    import pandas as pd

    from forensics.training.checkpoint import load_checkpoint
    from forensics.data.datasets import CropDataset, crop_size_on_disk, load_frames
    from forensics.distributed import cleanup_distributed
    from forensics.training.engine import evaluate
    from forensics.errors import ForensicsError
    from forensics.training.loop import eval_loader
    from forensics.training.tasks import create_task
    from forensics.commands.train import log_final
    from forensics.data.transforms import batch_preparer, build_transform
    from forensics.training.runlog import write_json

    state = load_checkpoint(args.checkpoint)
    info, config = state.get("model_info"), state.get("config") or {}
    if not info:
        raise ForensicsError(f"{args.checkpoint}: no model_info: not written by forensics train")
    data = config.get("data", {})
    # Unset loader flags take the training run's values (a cluster's worker count, its batch).
    if args.batch_size is None:
        args.batch_size = data.get("eval_batch_size") or 2 * data.get("batch_size", 32)
    if args.num_workers is None:
        args.num_workers = data.get("num_workers", 4)
    if info.get("task") == "keypoints":
        from keypoints.evaluate import run_keypoints

        run_keypoints(args, state)
        return None
    env, device, model = eval_model(args, state)
    task = create_task(info["task"], info["classes"], args.video_strategy or info.get("video_strategy", "mean"))

    manifest = args.manifest or data.get("manifest")
    if not manifest:
        raise ForensicsError("--manifest is needed: the checkpoint names no training manifest")
    filters = applied_filters(args, data)
    frames = load_frames(manifest, None if args.split == "all" else args.split,
                         **{key: f["values"] for key, f in filters.items()})
    data_cfg = info["data_config"]
    dataset = CropDataset(frames, task.encode(frames), build_transform(data_cfg, None, crop_size_on_disk(frames)),
                          args.frames_per_video)
    loader = eval_loader(dataset, args.batch_size, args.num_workers, env, device)

    out, wandb_cfg, logger = eval_run(args, config, manifest, env)
    metrics, gathered = evaluate(model, task, loader, batch_preparer(data_cfg, device))

    if env.is_main:
        meta = dataset.meta.iloc[gathered["index"]]
        predictions = pd.DataFrame({"path": meta["path"].to_numpy(), "video_key": meta["video_key"].to_numpy(),
                                    "frame": meta["frame"].to_numpy(), "label": meta["label"].to_numpy(),
                                    "method": meta["method"].to_numpy(), "score": gathered["score"]})
        predictions.to_csv(out / "predictions.csv", index=False)
        log_final(logger, args.split, metrics, gathered, dataset.meta, wandb_cfg.samples)
        report = {"checkpoint": str(args.checkpoint), "manifest": str(manifest), "split": args.split,
                  "filters": filters, "epoch": state.get("epoch"), args.split: metrics}
        write_json(out / "report.json", report)
        video, frame = metrics["video"], metrics["frame"]
        print(f"{args.split}: {video['n']} videos, {frame['n']} crops | video AUC {_fmt(video['auc'])} "
              f"acc {_fmt(video['acc'])} bal. acc {_fmt(video['bal_acc'])} | frame AUC {_fmt(frame['auc'])} "
              f"acc {_fmt(frame['acc'])} bal. acc {_fmt(frame['bal_acc'])}"
              + (f" | {video['note']}" if video.get("note") else ""))
        print(f"report: {out / 'report.json'}")
    logger.finish()
    cleanup_distributed()
    return report if env.is_main else None


def _fmt(value) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def eval_run(args, config: dict, manifest, env):
    """Output folder (``--out``, or ``RUN/eval/<split>``), W&B settings (the training run's,
    with ``--wandb-mode``) and run logger of an evaluation of ``args.checkpoint``."""
    from forensics.training.runlog import RunLogger, WandbConfig

    run = Path(args.checkpoint).resolve().parent.parent
    out = Path(args.out) if args.out else run / "eval" / args.split
    wandb_cfg = WandbConfig(**{k: v for k, v in config.get("wandb", {}).items() if k in WandbConfig.__dataclass_fields__})
    wandb_cfg.mode = args.wandb_mode or wandb_cfg.mode
    wandb_cfg.name = getattr(args, "wandb_name", None) or f"{wandb_cfg.name or run.name}-eval-{args.split}"
    logger = RunLogger(out, enabled=env.is_main, config={"checkpoint": str(args.checkpoint), "manifest": str(manifest),
                                                         "split": args.split, "train_config": config},
                       wandb_cfg=wandb_cfg, job_type="eval")
    return out, wandb_cfg, logger


def eval_model(args, state: dict):
    """The process group (torchrun or one process), this rank's device (``--device``) and the
    checkpoint's model with its weights on it."""
    from forensics.training.checkpoint import load_weights
    from forensics.training.loop import start_process
    from forensics.models import create_model

    env, device = start_process(args.device)
    info = state["model_info"]
    model = create_model(info["name"], num_classes=info["num_classes"], in_chans=info.get("in_chans"),
                         drop_rate=info.get("drop_rate"), img_size=info.get("img_size"))
    load_weights(model, state, args.checkpoint)
    return env, device, model.to(device)
