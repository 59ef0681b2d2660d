"""``forensics train CONFIG [key=value ...]``: train a detector on face crops, on CPU, one GPU or many.

The same command trains the facial keypoint regressor (``task: keypoints``, see
:mod:`keypoints` and ``docs/keypoints.md``): only its data set-up and final figures
differ, in the branches marked ``keypoints`` below.

The same command runs everywhere::

    forensics train configs/demo.yaml data.manifest=data/crops/manifest.csv output_dir=runs/demo
    torchrun --nproc_per_node=4 -m forensics train configs/ffpp/xception.yaml ...

``main(cfg)`` reads like torchvision's reference script: set up (distributed, data, model,
optimizer), resume if asked, then ``train_one_epoch`` / ``evaluate`` every epoch, keep
``last.pt`` and the ``best.pt`` chosen on the **validation** split, and evaluate ``best.pt``
once on the test split at the end. The test split never influences training or the choice
of checkpoint.

A run folder (``output_dir``) holds ``config.yaml`` and ``run.json`` (resolved config, git
commit), ``metrics.jsonl``, ``report.json``, ``checkpoints/{last,best}.pt``, ROC and sample
PNGs and the W&B run (``wandb/``).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from forensics.errors import ConfigError
from keypoints.config import KeypointConfig
from forensics.data.transforms import AugmentConfig
from forensics.training.runlog import WandbConfig

log = logging.getLogger(__name__)

HELP = "train a detector on face crops, or a facial keypoint regressor (CPU, one GPU, or torchrun)"

#: Metrics where lower is better (``train.best_mode`` defaults from this).
LOWER_IS_BETTER = ("eer", "log_loss", "loss", "mse", "rmse")
#: Top-level metrics of the keypoints task (``train.best_metric`` must be one of them).
KEYPOINT_METRICS = ("mse", "rmse", "score", "per_keypoint")
#: Keys a resumed run may change: they don't change what is computed.
RESUME_MAY_CHANGE = ("data.num_workers", "data.eval_batch_size", "train.log_every", "train.progress",
                     "wandb.mode", "wandb.tags", "wandb.log_checkpoint")


@dataclass
class DataConfig:
    manifest: str = MISSING
    datasets: list[str] | None = None
    methods: list[str] | None = None  # exact list: name "original" to keep the reals
    compressions: list[str] | None = None
    train_split: str = "train"
    val_split: str | None = "val"  # empty: no validation, best.pt is the last epoch
    test_split: str | None = "test"
    frames_per_video: int | None = 8  # training: K random frames per video, redrawn every epoch
    eval_frames_per_video: int | None = None  # val/test: K evenly spaced frames (empty: all)
    balance: str = "loss_weight"  # loss_weight | sampler | none (see forensics/data/datasets.py)
    batch_size: int = 32  # per process
    eval_batch_size: int | None = None  # default: 2 x batch_size
    num_workers: int = 4
    check_files: bool = True
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ModelConfig:
    name: str = "mobilenetv3_small_100"  # any timm model or registered baseline
    pretrained: bool = False
    pretrained_file: str | None = None  # local ImageNet weights (offline clusters)
    checkpoint: str | None = None  # forensics checkpoint to start from (strict)
    in_chans: int | None = None
    input_size: int | None = None  # default: the model's pretrained config
    drop_rate: float | None = None
    sync_bn: bool = False  # SyncBatchNorm under multi-GPU DDP
    compile: bool = False  # torch.compile
    # On CUDA, NHWC memory layout: cuDNN's fast convolution kernels want it (Xception trains
    # 1.9x faster on an H200: benchmarks/train_step.py --channels-last). Ignored on CPU.
    channels_last: bool = True


@dataclass
class ParamGroupConfig:
    prefix: str = MISSING  # parameter-name prefix ("head" names the classifier)
    lr: float = MISSING  # 0: not handed to the optimizer


@dataclass
class FreezeConfig:
    head_only_epochs: int = 0  # train only the classifier for the first K epochs
    until: str | None = None  # freeze every parameter before this one (e.g. "blocks.3")
    groups: list[ParamGroupConfig] = field(default_factory=list)  # per-group learning rates


@dataclass
class LoopConfig:
    epochs: int = 10
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 2e-4
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd
    schedule: str = "constant"  # constant | step | cosine
    step_epochs: int = 7  # step: multiply lr by gamma every step_epochs
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    min_lr: float = 0.0  # cosine floor
    amp: str = "none"  # none | bf16 | fp16
    accum_steps: int = 1
    clip_grad: float | None = None
    ema_decay: float | None = None  # e.g. 0.999: evaluate and keep EMA weights
    best_metric: str = "video/auc"  # chosen on the validation split
    best_mode: str | None = None  # max | min (default from the metric's name)
    early_stop_patience: int | None = None  # epochs without improvement before stopping
    video_strategy: str = "mean"  # mean | median | confident
    log_every: int = 10
    progress: bool = True


@dataclass
class TrainConfig:
    output_dir: str = MISSING
    task: str = "binary"  # binary | multiclass | multilabel | keypoints
    classes: list[str] | None = None  # multiclass/multilabel; default: methods in the train split
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    keypoints: KeypointConfig = field(default_factory=KeypointConfig)  # task: keypoints only

    def validate(self) -> None:
        from forensics.data.datasets import BALANCE
        from forensics.training.metrics import VIDEO_STRATEGIES
        from forensics.training.tasks import TASKS

        choices = [("task", self.task, TASKS), ("data.balance", self.data.balance, BALANCE),
                   ("train.optimizer", self.train.optimizer, ("adam", "adamw", "sgd")),
                   ("train.schedule", self.train.schedule, ("constant", "step", "cosine")),
                   ("train.amp", self.train.amp, ("none", "bf16", "fp16")),
                   ("train.video_strategy", self.train.video_strategy, tuple(VIDEO_STRATEGIES)),
                   ("train.best_mode", self.train.best_mode, (None, "max", "min"))]
        for key, value, allowed in choices:
            if value not in allowed:
                raise ConfigError(f"{key} must be one of {', '.join(map(str, allowed))}, got '{value}'")
        positive = [("train.epochs", self.train.epochs), ("data.batch_size", self.data.batch_size),
                    ("train.accum_steps", self.train.accum_steps), ("train.log_every", self.train.log_every)]
        for key, value in positive:
            if value < 1:
                raise ConfigError(f"{key} must be at least 1, got {value}")
        if self.freeze.head_only_epochs and self.freeze.until:
            raise ConfigError("freeze.head_only_epochs and freeze.until are exclusive: pick one")
        if self.train.lr <= 0:
            raise ConfigError(f"train.lr must be positive, got {self.train.lr}")
        self.data.augment.validate()
        self.wandb.validate()
        if self.task == "keypoints":
            self.keypoints.validate()
            if self.data.balance == "sampler":
                raise ConfigError("data.balance=sampler draws classes: the keypoints task has none")
            if self.train.best_metric.split("/")[0] not in KEYPOINT_METRICS:
                raise ConfigError(f"train.best_metric '{self.train.best_metric}' is not a keypoints metric: "
                                  f"use one of {', '.join(KEYPOINT_METRICS[:3])} (e.g. train.best_metric=mse)")

    @property
    def best_mode(self) -> str:
        return self.train.best_mode or ("min" if self.train.best_metric.split("/")[-1] in LOWER_IS_BETTER else "max")


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    add_run_arguments(parser, "configs/demo.yaml, configs/ffpp/xception.yaml, ...")


def add_run_arguments(parser, example: str) -> None:
    """The flags every config-driven training command takes (train, refiner pretrain/finetune)."""
    parser.add_argument("config", help=f"YAML config ({example})")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. data.manifest=crops/manifest.csv output_dir=runs/x")
    parser.add_argument("--resume", action="store_true", help="continue the run in output_dir from checkpoints/last.pt")
    parser.add_argument("--force", action="store_true", help="resume even though the config changed")
    parser.add_argument("--eval-only", action="store_true",
                        help="evaluate checkpoints/best.pt (or --checkpoint) on val and test, then stop")
    parser.add_argument("--checkpoint", help="with --eval-only: the checkpoint to evaluate")


def run(args) -> int:
    from forensics.config import load_config

    cfg = load_config(TrainConfig, args.config, args.overrides)
    return main(cfg, resume=args.resume, force=args.force, eval_only=args.eval_only, checkpoint=args.checkpoint)


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------

def read_preprocess_settings(manifest: str) -> dict[str, Any]:
    """Crop settings of the preprocessing run that wrote ``manifest`` (``settings.json`` beside it).

    ``forensics predict`` crops faces with these, so that it feeds the model what training saw.
    """
    import json

    path = Path(manifest).parent / "settings.json"
    try:
        settings = json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    plain = (int, float, str, bool, type(None))
    return {k: v for k, v in settings.items()
            if isinstance(v, plain) or (isinstance(v, list) and all(isinstance(x, plain) for x in v))}


def registered_kwargs(name: str, task: str, input_size: int | None) -> dict[str, Any]:
    """``task`` and ``img_size`` for our registered models that take them; nothing for timm's.

    ``task`` lets an architecture refuse a head it can't have (the SVM and multilabel) at
    set-up rather than after feature extraction; ``img_size`` matters where layers are built
    for the input (Bayar & Stamm's fully connected layers). timm models take neither.
    """
    from forensics.models import is_registered, model_arguments

    if not is_registered(name):
        return {}
    accepted = model_arguments(name)
    return {k: v for k, v in (("task", task), ("img_size", input_size)) if k in accepted and v is not None}


def model_info(cfg: TrainConfig, task, data_cfg: dict[str, Any]) -> dict[str, Any]:
    """What evaluate/predict need to rebuild the model and its inputs from a checkpoint alone."""
    return {"name": cfg.model.name, "task": task.kind, "classes": list(task.classes),
            "num_classes": task.num_outputs, "in_chans": cfg.model.in_chans, "drop_rate": cfg.model.drop_rate,
            "img_size": registered_kwargs(cfg.model.name, cfg.task, cfg.model.input_size).get("img_size"),
            "data_config": data_cfg, "video_strategy": cfg.train.video_strategy,
            "preprocess": read_preprocess_settings(cfg.data.manifest)}


def samples_for_grid(meta, gathered, count: int) -> list[tuple[str, int, float]]:
    """Up to ``count`` crops for the W&B grid: the most confident and the worst of each class."""
    import numpy as np

    if count <= 0 or meta is None or len(gathered["index"]) == 0:
        return []
    rows = meta.iloc[gathered["index"]]
    labels, scores = rows["label"].to_numpy(), gathered["score"]
    chosen: list[int] = []
    for label in (0, 1):
        idx = np.flatnonzero(labels == label)
        order = idx[np.argsort(scores[idx] if label == 0 else -scores[idx])]
        half = count // 4
        chosen += list(order[:half]) + list(order[::-1][:half])
    chosen = list(dict.fromkeys(chosen))[:count]
    return [(rows["file"].iat[i], int(labels[i]), float(scores[i])) for i in chosen]


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------

def main(cfg: TrainConfig, resume: bool = False, force: bool = False, eval_only: bool = False,
         checkpoint: str | None = None) -> int:
    """Train (or, with ``eval_only``, evaluate) as configured; returns the exit status."""
    import numpy as np
    import torch
    import torch.nn as nn
    from torch.nn.parallel import DistributedDataParallel

    from forensics.training.checkpoint import check_compatible, load_checkpoint, load_weights, save_checkpoint
    from forensics.config import to_dict, write_run_info
    from forensics.data.datasets import CropDataset, crop_size_on_disk, load_frames
    from forensics.distributed import cleanup_distributed
    from forensics.training.engine import evaluate
    from forensics.training.loop import (autocast_dtype, best_report, build_ema, build_parts, close_run, eval_loader, fit,
                               open_run, start_process)
    from forensics.training.freeze import set_trainable
    from forensics.training.metrics import flatten
    from forensics.models import create_model, data_config
    from forensics.training.tasks import create_task, default_classes
    from forensics.data.transforms import batch_preparer, build_transform
    from forensics.training.runlog import RunLogger, write_json

    start_time = time.time()
    env, device = start_process(cfg.device)
    run_dir = Path(cfg.output_dir)
    ckpt_dir = run_dir / "checkpoints"
    config = to_dict(cfg)

    # Resume or start fresh: decided before any work.
    state = open_run(ckpt_dir, config, resume=resume, force=force, eval_only=eval_only, may_change=RESUME_MAY_CHANGE)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)

    # ---- data ----
    filters = dict(datasets=cfg.data.datasets, methods=cfg.data.methods, compressions=cfg.data.compressions,
                   check_files=cfg.data.check_files)
    if cfg.task == "keypoints":
        from keypoints.data import load_keypoint_data

        keypoint_data = load_keypoint_data(
            cfg.data.manifest, cfg.keypoints, {"train": cfg.data.train_split, "val": cfg.data.val_split,
                                               "test": cfg.data.test_split}, **filters)
        task = create_task(cfg.task, keypoint_data.names)
    else:
        train_frames = load_frames(cfg.data.manifest, cfg.data.train_split, **filters)
        classes = cfg.classes or default_classes(cfg.task, train_frames["method"])
        task = create_task(cfg.task, classes, cfg.train.video_strategy)
        train_targets = task.encode(train_frames)
    model = create_model(cfg.model.name, num_classes=task.num_outputs, pretrained=cfg.model.pretrained,
                         pretrained_file=cfg.model.pretrained_file, in_chans=cfg.model.in_chans,
                         drop_rate=cfg.model.drop_rate, **registered_kwargs(cfg.model.name, cfg.task,
                                                                            cfg.model.input_size))
    data_cfg = data_config(model, cfg.model.input_size)
    info = model_info(cfg, task, data_cfg)
    if cfg.model.checkpoint:
        initial = load_checkpoint(cfg.model.checkpoint)
        check_compatible(initial, info, cfg.model.checkpoint)
        load_weights(model, initial, cfg.model.checkpoint)
    if cfg.task == "keypoints":
        train_set, eval_sets = keypoint_data.datasets(data_cfg, cfg.keypoints.augment, cfg.seed)
        train_rows = len(train_set)
    else:
        crop_size = crop_size_on_disk(train_frames)
        train_set = CropDataset(train_frames, train_targets, build_transform(data_cfg, cfg.data.augment, crop_size),
                                cfg.data.frames_per_video, resample=True, seed=cfg.seed)
        if cfg.data.balance == "loss_weight":
            task.fit_weights(train_set.targets[train_set.rows])
        eval_transform = build_transform(data_cfg, None, crop_size)
        eval_sets = {}
        for name, split in (("val", cfg.data.val_split), ("test", cfg.data.test_split)):
            if split:
                frames = load_frames(cfg.data.manifest, split, **filters)
                eval_sets[name] = CropDataset(frames, task.encode(frames), eval_transform,
                                              cfg.data.eval_frames_per_video)
        train_rows = len(train_frames)
    eval_batch = cfg.data.eval_batch_size or 2 * cfg.data.batch_size
    eval_loaders = {name: eval_loader(ds, eval_batch, cfg.data.num_workers, env, device)
                    for name, ds in eval_sets.items()}

    channels_last = cfg.model.channels_last and device.type == "cuda"
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    if cfg.model.sync_bn and env.distributed and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    prepare = batch_preparer(data_cfg, device, channels_last=channels_last)
    amp_dtype = autocast_dtype(cfg.train.amp)
    ema = build_ema(model, cfg.train.ema_decay)
    logger = RunLogger(run_dir, enabled=env.is_main, config=config, wandb_cfg=cfg.wandb,
                       wandb_id=state.get("wandb_id") if state else None,
                       keep_until_step=state["global_step"] if state else None,
                       job_type="eval" if eval_only else "train",
                       metrics_file="eval_metrics.jsonl" if eval_only else "metrics.jsonl")
    if env.is_main and not eval_only:  # eval-only leaves the training run's provenance as it is
        write_run_info(cfg, run_dir)

    def run_eval(name: str, net) -> tuple[dict, dict]:
        return evaluate(net, task, eval_loaders[name], prepare, amp_dtype=amp_dtype,
                        progress=cfg.train.progress and env.is_main and sys.stderr.isatty())

    def log_split(name: str, metrics: dict, gathered: dict, step: int | None = None) -> None:
        if cfg.task == "keypoints":
            from keypoints.plot import log_keypoint_evaluation

            log_keypoint_evaluation(logger, name, metrics, gathered, eval_sets[name], cfg.wandb.samples, step=step)
        else:
            log_final(logger, name, metrics, gathered, eval_sets[name].meta, cfg.wandb.samples, step=step)

    if eval_only:
        path = checkpoint or cfg.model.checkpoint or str(ckpt_dir / "best.pt")
        evaluated = load_checkpoint(path)
        check_compatible(evaluated, info, path)
        load_weights(model, evaluated, path)
        report = {"checkpoint": str(path), "epoch": evaluated.get("epoch")}
        for name in eval_loaders:
            metrics, gathered = run_eval(name, model)
            report[name] = metrics
            log_split(name, metrics, gathered)
        if env.is_main:
            write_json(run_dir / "eval_report.json", report)
        logger.finish()
        cleanup_distributed()
        return 0

    def finish(result: dict[str, Any], steps_per_epoch: int) -> int:
        """Test the checkpoint chosen on val, once; write report.json and close the run."""
        report = best_report(result, ckpt_dir, cfg.train.epochs)
        if "test" in eval_loaders:
            load_weights(model, load_checkpoint(ckpt_dir / "best.pt"), str(ckpt_dir / "best.pt"))
            test_metrics, gathered = run_eval("test", model)
            report["test"] = test_metrics
            log_split("test", test_metrics, gathered, step=cfg.train.epochs * steps_per_epoch)
        if cfg.task == "keypoints":
            report["data"] = keypoint_data.stats  # per split: rows, missing, outside, dropped
        return close_run(report, env=env, logger=logger, run_dir=run_dir, metric=cfg.train.best_metric,
                         artifact=f"model-{run_dir.name}" if cfg.wandb.log_checkpoint else None,
                         start_time=start_time)

    if hasattr(model, "fit"):
        # The steganalysis SVM is fitted once on features, not trained by gradient descent:
        # the same data, evaluation, checkpoints and report as a network, no training loop.
        # So is the keypoints floor (dummy): it keeps the first training sample's keypoints.
        if cfg.task == "keypoints":
            keypoint_data.fit_floor(model)
            best = {"name": cfg.train.best_metric, "mode": cfg.best_mode, "value": None, "epoch": 0,
                    "bad_epochs": 0, "val": None}
        else:
            best = fit_on_features(model, train_frames, train_targets, eval_transform, prepare, cfg,
                                   run_dir / "features")
        if "val" in eval_loaders:
            val_metrics, _ = run_eval("val", model)
            best["val"] = val_metrics
            best["value"] = flatten(val_metrics).get(cfg.train.best_metric)
            logger.log({f"val/{k}": v for k, v in flatten(val_metrics).items()}, 1)
        if env.is_main:
            state = {"model": model.state_dict(), "model_ema": None, "epoch": 1, "step": 0, "global_step": 1,
                     "metric": best, "model_info": info, "config": config, "wandb_id": logger.wandb_id}
            save_checkpoint(state, ckpt_dir / "best.pt")
            save_checkpoint(state, ckpt_dir / "last.pt")
        return finish({"best": best, "stopped_early": False}, 1)

    # ---- training set-up ----
    parts = build_parts(model, task, train_set, prepare, data=cfg.data, loop=cfg.train, groups=cfg.freeze.groups,
                        env=env, device=device, seed=cfg.seed, ema=ema, amp_dtype=amp_dtype,
                        balanced=cfg.data.balance == "sampler")
    steps_per_epoch = parts.steps_per_epoch
    if state is not None:
        load_weights(model, state, str(ckpt_dir / "last.pt"), prefer_ema=False)
    log.info("%s: %d train crops (%d per epoch), %s; %s on %s, %d process(es)", cfg.model.name, train_rows,
             len(train_set), ", ".join(f"{n} {len(d)}" for n, d in eval_sets.items()), task.kind, device,
             env.world_size)
    phase: list[Any] = [None, None]  # (head_only, freeze_until) of the net in phase[1]

    def net_for_epoch(epoch: int):
        head_only = epoch < cfg.freeze.head_only_epochs
        if (head_only, cfg.freeze.until) != phase[0]:
            phase[0] = (head_only, cfg.freeze.until)
            count = set_trainable(model, head_only=head_only, freeze_until=cfg.freeze.until)
            log.info("epoch %d: %d trainable parameters%s", epoch, count, " (head only)" if head_only else "")
            # DDP records which parameters need gradients when it is built: re-wrap on change.
            net = torch.compile(model) if cfg.model.compile else model
            if env.distributed:
                net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
            phase[1] = net
        return phase[1]

    result = fit(parts, cfg.train, seed=cfg.seed, env=env, device=device, ckpt_dir=ckpt_dir, logger=logger,
                 best_mode=cfg.best_mode, evaluate_val=(lambda net: run_eval("val", net)[0])
                 if "val" in eval_loaders else None, state=state,
                 extra={"model_info": info, "config": config}, net_for_epoch=net_for_epoch)
    if result["status"] != 0:
        logger.finish()
        cleanup_distributed()
        return result["status"]
    return finish(result, steps_per_epoch)


def log_final(logger, name: str, metrics: dict, gathered: dict, meta, samples: int = 16,
              step: int | None = None) -> None:
    """A final evaluation to the run folder and W&B: metrics, ROC, per-method table, sample grid."""
    from forensics.training.metrics import flatten

    if not logger.enabled:
        return
    flat = flatten(metrics)
    logger.log({f"{name}/{k}": v for k, v in flat.items()}, step if step is not None else 0)
    logger.summary({f"{name}/{k}": v for k, v in flat.items() if k.count("/") == 1})
    labels = meta.iloc[gathered["index"]]["label"].to_numpy()
    logger.log_evaluation(name, metrics, labels, gathered["score"], samples_for_grid(meta, gathered, samples),
                          step=step)


def fit_on_features(model, frames, targets, transform, prepare, cfg: TrainConfig,
                    cache_dir: Path) -> dict[str, Any]:
    """Fit a model with a ``fit(features, targets)`` method (the steganalysis SVM) on the train split.

    Features of the train crops (K evenly spaced frames per video, no augmentation) are
    extracted once with ``model.forward_features`` and cached in ``cache_dir``, so that a
    re-run after a failed fit doesn't extract them again.

    Returns:
        The ``best`` record of a training run (epoch 0, no validation value yet).
    """
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from forensics.atomic import atomic_path
    from forensics.data.datasets import CropDataset

    dataset = CropDataset(frames, targets, transform, cfg.data.frames_per_video)
    cache = cache_dir / f"{cfg.data.train_split}.npz"
    files = dataset.meta["file"].astype(str).tolist()
    cached = dict(np.load(cache)) if cache.is_file() else None
    if cached is not None and cached["files"].tolist() == files:
        features, labels = cached["features"], cached["targets"]
        log.info("%s: %d cached train features from %s", cfg.model.name, len(features), cache)
    else:
        loader = DataLoader(dataset, batch_size=cfg.data.eval_batch_size or 2 * cfg.data.batch_size,
                            num_workers=cfg.data.num_workers)
        batches = loader
        if cfg.train.progress and sys.stderr.isatty():
            from tqdm import tqdm

            batches = tqdm(loader, desc="features", dynamic_ncols=True, leave=False)
        chunks, label_chunks = [], []
        with torch.no_grad():
            for batch in batches:
                batch = prepare(batch)
                chunks.append(model.forward_features(batch["image"]).float().cpu().numpy())
                label_chunks.append(batch["target"].cpu().numpy())
        features, labels = np.concatenate(chunks), np.concatenate(label_chunks)
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, features=features, targets=labels, files=np.array(files))
    log.info("%s: fitting on %d train crops (%d features)", cfg.model.name, len(features), features.shape[1])
    # cross: calibration folds by video, and data.balance honoured
    model.fit(features, labels.astype(np.int64), groups=dataset.meta["video_key"].to_numpy(),
              balance=cfg.data.balance)
    return {"name": cfg.train.best_metric, "mode": cfg.best_mode, "value": None, "epoch": 0, "bad_epochs": 0,
            "val": None}
