"""``forensics evaluate --checkpoint C [--manifest M] [--split test]``: score a trained detector.

Everything needed to rebuild the model and its inputs (architecture, head, classes, input
size, mean/std) comes from the checkpoint, so any manifest can be scored: the training
manifest's test split by default, or another dataset's manifest for cross-dataset
evaluation. Writes into ``--out`` (default ``RUN/eval/<split>``): ``report.json``
(frame/video metrics, per method, per compression), ``roc_<split>.png``,
``samples_<split>.png``, ``predictions.csv`` (one score per crop) and a W&B run. Runs under
torchrun too; scores are gathered from every rank before any metric is computed. A checkpoint
of a plug-in task is scored by that task's own evaluation (its ``TaskSpec.evaluate``).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

HELP = "evaluate a checkpoint on a manifest split: frame/video metrics, ROC, W&B"
#: Output folders the dispatcher checks before running (a file or a read-only folder: one line).
OUTPUT_DIRS = ("out",)


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by forensics train")
    parser.add_argument("--manifest", help="crop manifest (default: the one the checkpoint was trained on)")
    parser.add_argument("--split", default="test", help="split to score: train, val, test, or 'all' (default: test)")
    parser.add_argument("--out", help="output folder (default: RUN/eval/<split>)")
    parser.add_argument("--methods", nargs="+", help="keep only these methods (name 'original' to keep reals)")
    parser.add_argument("--compressions", nargs="+", help="keep only these compressions")
    parser.add_argument("--frames-per-video", type=int, help="K evenly spaced frames per video (default: all)")
    parser.add_argument("--video-strategy", choices=("mean", "median", "confident"),
                        help="how a video's score is made from its frames (default: as in training)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=4)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--wandb-mode", choices=("online", "offline", "disabled"),
                        help="default: online with an API key, else offline")


def run(args) -> int:
    import pandas as pd

    from forensics.data.datasets import CropDataset, crop_size_on_disk, load_frames
    from forensics.data.transforms import batch_preparer, build_transform
    from forensics.distributed import cleanup_distributed
    from forensics.errors import ForensicsError
    from forensics.training.checkpoint import load_checkpoint
    from forensics.training.detection import log_final
    from forensics.training.engine import evaluate
    from forensics.training.gradcam import sample_explainer
    from forensics.training.lineage import log_dataset
    from forensics.training.runlog import write_json
    from forensics.training.session import eval_loader, eval_model, eval_run
    from forensics.training.tasks import create_task, task_spec

    state = load_checkpoint(args.checkpoint)
    info, config = state.get("model_info"), state.get("config") or {}
    if not info:
        raise ForensicsError(f"{args.checkpoint}: no model_info: not written by forensics train")
    plugin_evaluate = task_spec(info["task"]).evaluate
    if plugin_evaluate is not None:
        return plugin_evaluate(args, state)
    env, device, model = eval_model(args, state)
    task = create_task(info["task"], info["classes"], args.video_strategy or info.get("video_strategy", "mean"))

    data = config.get("data", {})
    manifest = args.manifest or data.get("manifest")
    if not manifest:
        raise ForensicsError("--manifest is needed: the checkpoint names no training manifest")
    same_manifest = args.manifest is None
    frames = load_frames(manifest, None if args.split == "all" else args.split,
                         datasets=data.get("datasets") if same_manifest else None,
                         methods=args.methods or (data.get("methods") if same_manifest else None),
                         compressions=args.compressions or (data.get("compressions") if same_manifest else None),
                         on_corrupt=data.get("on_corrupt", "stop"))
    data_cfg = info["data_config"]
    dataset = CropDataset(frames, task.encode(frames), build_transform(data_cfg, None, crop_size_on_disk(frames)),
                          args.frames_per_video)
    loader = eval_loader(dataset, args.batch_size, args.num_workers, env, device)

    out, wandb_cfg, logger = eval_run(args, config, manifest, env)
    lineage = log_dataset(logger, manifest)  # the data's digest: report.json and W&B
    logger.explainer = sample_explainer(model, task, build_transform(data_cfg, None), batch_preparer(data_cfg, device))
    metrics, gathered = evaluate(model, task, loader, batch_preparer(data_cfg, device))

    if env.is_main:
        meta = dataset.meta.iloc[gathered["index"]]
        predictions = pd.DataFrame({"path": meta["path"].to_numpy(), "video_key": meta["video_key"].to_numpy(),
                                    "frame": meta["frame"].to_numpy(), "label": meta["label"].to_numpy(),
                                    "method": meta["method"].to_numpy(), "score": gathered["score"]})
        predictions.to_csv(out / "predictions.csv", index=False)
        log_final(logger, args.split, metrics, gathered, dataset.meta, wandb_cfg.samples)
        report = {"checkpoint": str(args.checkpoint), "manifest": str(manifest), "split": args.split,
                  "epoch": state.get("epoch"), "lineage": lineage, args.split: metrics}
        write_json(out / "report.json", report)
        video, frame = metrics["video"], metrics["frame"]
        print(f"{args.split}: {video['n']} videos, {frame['n']} crops | video AUC {_fmt(video['auc'])} "
              f"acc {_fmt(video['acc'])} | frame AUC {_fmt(frame['auc'])} acc {_fmt(frame['acc'])}"
              + (f" | {video['note']}" if video.get("note") else ""))
        print(f"report: {out / 'report.json'}")
    logger.finish()
    cleanup_distributed()
    return 0


def _fmt(value) -> str:
    return "undefined" if value is None else f"{value:.4f}"
