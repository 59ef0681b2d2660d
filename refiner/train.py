"""``forensics refiner pretrain|finetune CONFIG [key=value ...]``: the refiner's two training stages.

Stage 1, **pretrain**: an autoencoder (:class:`refiner.model.Refiner`, no skips) learns to
reconstruct real face crops (any manifest: a face-image folder through ``forensics preprocess``,
VGGFace2 with its boxes, the real videos of a video dataset). Stage 2, **finetune**: the
stage-1 weights are loaded strictly, zero-initialised skip connections are added (the output
is unchanged at that moment), the configured parts are frozen, and the network learns to map
each self-reenactment fake to its original's crop at the same frame (:mod:`refiner.pairs`).

Both stages run through the one training engine (:func:`forensics.training.engine.train_one_epoch` and
:func:`~forensics.training.engine.evaluate`) with the reconstruction task (:mod:`refiner.task`), and
reuse the detector trainer's building blocks (optimizer, schedule, SIGTERM handling,
checkpoints, run folder, W&B), so the same command runs on CPU, one GPU and under torchrun::

    forensics refiner pretrain configs/refiner/pretrain.yaml data.manifest=crops/manifest.csv output_dir=runs/ae
    torchrun --nproc_per_node=2 -m forensics refiner finetune configs/refiner/finetune.yaml \\
        data.manifest=crops/manifest.csv pretrained=runs/ae/checkpoints/best.pt output_dir=runs/refiner

A run folder holds ``config.yaml``, ``run.json``, ``metrics.jsonl`` (per epoch: train loss, and
validation L1/PSNR/SSIM of output vs target, for fine-tuning also of input vs target and the
gain), ``samples/epoch_NNN.png`` (input | refined | target | |difference|, also sent to W&B),
``checkpoints/{last,best}.pt`` (best on ``train.best_metric`` over the validation split) and
``report.json`` with the best checkpoint's metrics on the test split.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import MISSING

from forensics.errors import ConfigError, ForensicsError
from forensics.commands.train import RESUME_MAY_CHANGE, LoopConfig, ParamGroupConfig
from forensics.training.runlog import WandbConfig
from refiner.model import RefinerArch
from refiner.pairs import PairingConfig

if TYPE_CHECKING:  # for annotations only
    from collections.abc import Callable

    from forensics.training.runlog import RunLogger
    from refiner.data import PairDataset
    from refiner.model import Refiner
    from refiner.task import ReconstructionTask

log = logging.getLogger(__name__)

STAGES = ("pretrain", "finetune")


@dataclass
class RefinerDataConfig:
    manifest: str = MISSING
    datasets: list[str] | None = None
    compressions: list[str] | None = None
    methods: list[str] | None = None  # finetune: the fake methods to pair (default: every fake method)
    train_split: str = "train"
    val_split: str | None = "val"  # empty: no validation, best.pt is the last epoch
    test_split: str | None = "test"
    batch_size: int = 16  # per process
    eval_batch_size: int | None = None  # default: 2 x batch_size
    num_workers: int = 2
    hflip_p: float = 0.5  # the one augmentation, applied to input and target alike
    check_files: bool = True


@dataclass
class LossConfig:
    l1_weight: float = 1.0
    ssim_weight: float = 0.0  # adds ssim_weight * (1 - SSIM); see refiner/task.py for the default


@dataclass
class SkipConfig:
    levels: list[int] | None = None  # levels given a skip connection (default: all)
    kernel: int | None = None  # default: model.skip_kernel
    input_ramp: int | None = 100  # input skip blended in over this many batches (empty: none; see refiner/model.py)


@dataclass
class RefinerFreezeConfig:
    modules: list[str] = field(default_factory=list)  # e.g. [encoder], [decoder.levels.4]
    groups: list[ParamGroupConfig] = field(default_factory=list)  # per-prefix learning rates


def _loop() -> LoopConfig:
    return LoopConfig(epochs=20, lr=1e-3, best_metric="output/psnr", best_mode="max", log_every=10)


@dataclass
class PretrainConfig:
    """Stage 1: reconstruct real crops (no skip connections)."""

    output_dir: str = MISSING
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    data: RefinerDataConfig = field(default_factory=RefinerDataConfig)
    model: RefinerArch = field(default_factory=RefinerArch)
    loss: LossConfig = field(default_factory=LossConfig)
    train: LoopConfig = field(default_factory=_loop)
    freeze: RefinerFreezeConfig = field(default_factory=RefinerFreezeConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    grid_samples: int = 8  # crops in the per-epoch sample grid (0: none)

    def validate(self) -> None:
        t = self.train
        choices = [("train.optimizer", t.optimizer, ("adam", "adamw", "sgd")),
                   ("train.schedule", t.schedule, ("constant", "step", "cosine")),
                   ("train.amp", t.amp, ("none", "bf16", "fp16")),
                   ("train.best_mode", t.best_mode, (None, "max", "min")),
                   ("device", self.device, ("auto", "cpu", "cuda"))]
        for key, value, allowed in choices:
            if value not in allowed:
                raise ConfigError(f"{key} must be one of {', '.join(map(str, allowed))}, got '{value}'")
        for key, value in [("train.epochs", t.epochs), ("data.batch_size", self.data.batch_size),
                           ("train.accum_steps", t.accum_steps), ("train.log_every", t.log_every)]:
            if value < 1:
                raise ConfigError(f"{key} must be at least 1, got {value}")
        if t.lr <= 0:
            raise ConfigError(f"train.lr must be positive, got {t.lr}")
        if self.loss.l1_weight < 0 or self.loss.ssim_weight < 0 or not (self.loss.l1_weight or self.loss.ssim_weight):
            raise ConfigError("loss.l1_weight and loss.ssim_weight must be >= 0, and not both 0")
        if not 0 <= self.data.hflip_p <= 1:
            raise ConfigError(f"data.hflip_p must be a probability, got {self.data.hflip_p}")
        self.model.validate()
        self.wandb.validate()

    @property
    def best_mode(self) -> str:
        return self.train.best_mode or ("min" if self.train.best_metric.split("/")[-1] in ("l1", "loss") else "max")


@dataclass
class FinetuneConfig(PretrainConfig):
    """Stage 2: load stage 1, add skips, freeze, train on (fake, original) pairs."""

    pretrained: str = MISSING  # the stage-1 checkpoint (runs/<pretrain>/checkpoints/best.pt)
    skips: SkipConfig = field(default_factory=SkipConfig)
    pairs: PairingConfig = field(default_factory=PairingConfig)


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------

def build_dataset(cfg: PretrainConfig, stage: str, split: str, train: bool) -> PairDataset:
    """The :class:`refiner.data.PairDataset` of one split: real crops (pretrain) or pairs (finetune)."""
    from refiner.data import PairDataset, load_pairs, load_reals

    d = cfg.data
    if stage == "pretrain":
        rows = load_reals(d.manifest, split, datasets=d.datasets, compressions=d.compressions,
                          check_files=d.check_files)
    else:
        rows = load_pairs(d.manifest, split, cfg.pairs, methods=d.methods, datasets=d.datasets,
                          compressions=d.compressions, check_files=d.check_files)
    return PairDataset(rows, cfg.model.input_size, hflip_p=d.hflip_p if train else 0.0, seed=cfg.seed)


def load_stage1(model: Refiner, path: str) -> dict[str, Any]:
    """Load a stage-1 (pretrain) checkpoint into ``model`` strictly; returns the checkpoint."""
    from forensics.training.checkpoint import load_checkpoint
    from refiner.model import load_refiner_weights

    state = load_checkpoint(path)
    info = state.get("model_info") or {}
    if info.get("name") != "refiner":
        raise ForensicsError(f"{path}: not a refiner checkpoint (model {info.get('name')!r}): "
                             "pretrained must be a checkpoint of 'forensics refiner pretrain'")
    if info.get("skips") is not None:
        raise ForensicsError(f"{path}: a fine-tuned refiner (skips at levels {info['skips']}): "
                             "pretrained must be a stage-1 checkpoint, without skips")
    load_refiner_weights(model, state, path, prefer_ema=True)
    return state


def grid_batch(dataset: PairDataset, count: int) -> dict[str, Any] | None:
    """``count`` evenly spaced samples of ``dataset`` as one batch (for the sample grids)."""
    import numpy as np
    from torch.utils.data import default_collate

    if count <= 0 or len(dataset) == 0:
        return None
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int))
    return default_collate([dataset[int(i)] for i in picks])


def log_grid(model: Refiner, task: ReconstructionTask, batch: dict[str, Any], prepare: Callable, path: Path,
             logger: RunLogger, step: int, key: str) -> None:
    """Write the sample grid of ``batch`` to ``path`` and send it to W&B."""
    import torch

    from refiner.grid import COLUMNS, make_grid, save_grid

    was_training = model.training
    model.eval()
    with torch.no_grad():
        prepared = prepare(batch)
        outputs = model(prepared["image"])
    model.train(was_training)
    grid = make_grid(task.to_unit(prepared["image"]).clamp(0, 1), task.to_unit(outputs.float()),
                     task.to_unit(prepared["target"]).clamp(0, 1))
    save_grid(grid, path)
    if logger.run is not None:
        import wandb

        logger.run.log({key: wandb.Image(str(path), caption=" | ".join(COLUMNS))}, step=step)


# --------------------------------------------------------------------------------------
# Command line (arguments in refiner/cli.py)
# --------------------------------------------------------------------------------------

def run(args: argparse.Namespace, stage: str) -> int:
    from forensics.config import load_config

    cfg = load_config(PretrainConfig if stage == "pretrain" else FinetuneConfig, args.config, args.overrides)
    return main(cfg, stage, resume=args.resume, force=args.force, eval_only=args.eval_only,
                checkpoint=args.checkpoint)


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------

def main(cfg: PretrainConfig, stage: str, resume: bool = False, force: bool = False, eval_only: bool = False,
         checkpoint: str | None = None) -> int:
    """Run stage ``pretrain`` or ``finetune`` as configured; returns the exit status."""
    import numpy as np
    import torch

    from forensics.training.checkpoint import load_checkpoint
    from forensics.config import to_dict, write_run_info
    from forensics.distributed import cleanup_distributed
    from forensics.training.engine import evaluate
    from forensics.training.loop import (autocast_dtype, best_report, build_ema, build_parts, close_run, eval_loader, fit,
                               open_run, start_process)
    from forensics.training.metrics import flatten
    from forensics.data.transforms import batch_preparer
    from forensics.training.runlog import RunLogger, write_json
    from refiner.model import Refiner, data_config, freeze, load_refiner_weights
    from refiner.task import ReconstructionTask

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    start_time = time.time()
    env, device = start_process(cfg.device)
    run_dir = Path(cfg.output_dir)
    ckpt_dir = run_dir / "checkpoints"
    config = to_dict(cfg)

    # Resume or start fresh: decided before any work.
    state = open_run(ckpt_dir, config, resume=resume, force=force, eval_only=eval_only,
                     may_change=RESUME_MAY_CHANGE + ("grid_samples",))
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)

    # ---- data ----
    splits = {"train": cfg.data.train_split, "val": cfg.data.val_split, "test": cfg.data.test_split}
    datasets = {name: build_dataset(cfg, stage, split, train=name == "train")
                for name, split in splits.items() if split and not (eval_only and name == "train")}
    data_cfg = data_config(cfg.model)
    task = ReconstructionTask(data_cfg["mean"], data_cfg["std"], cfg.loss.l1_weight, cfg.loss.ssim_weight,
                              paired=stage == "finetune")

    # ---- model: stage 1 weights first, then skips (output unchanged), then freezing ----
    model = Refiner(cfg.model)
    if stage == "finetune":
        if state is None and not eval_only:
            load_stage1(model, cfg.pretrained)
            log.info("loaded stage 1 from %s; adding skip connections", cfg.pretrained)
        model.add_skips(cfg.skips.levels, cfg.skips.kernel, cfg.skips.input_ramp)
    trainable = freeze(model, cfg.freeze.modules)
    model.to(device)
    info = model.info() | {"stage": stage}
    prepare = batch_preparer(data_cfg, device, keys=("image", "target"))
    amp_dtype = autocast_dtype(cfg.train.amp)
    ema = build_ema(model, cfg.train.ema_decay)
    eval_batch = cfg.data.eval_batch_size or 2 * cfg.data.batch_size
    eval_loaders = {name: eval_loader(datasets[name], eval_batch, cfg.data.num_workers, env, device)
                    for name in ("val", "test") if name in datasets}
    grid_source = datasets.get("val") or datasets.get("test") or datasets.get("train")
    grids = grid_batch(grid_source, cfg.grid_samples) if env.is_main else None
    logger = RunLogger(run_dir, enabled=env.is_main, config=config, wandb_cfg=cfg.wandb,
                       wandb_id=state.get("wandb_id") if state else None,
                       keep_until_step=state["global_step"] if state else None,
                       job_type="eval" if eval_only else stage,
                       metrics_file="eval_metrics.jsonl" if eval_only else "metrics.jsonl")
    if env.is_main:
        write_run_info(cfg, run_dir)

    def run_eval(name: str, net) -> dict[str, Any]:
        metrics, _ = evaluate(net, task, eval_loaders[name], prepare, amp_dtype=amp_dtype,
                              progress=cfg.train.progress and env.is_main and sys.stderr.isatty())
        return metrics

    if eval_only:
        path = checkpoint or str(ckpt_dir / "best.pt")
        load_refiner_weights(model, load_checkpoint(path), path)
        report: dict[str, Any] = {"stage": stage, "checkpoint": path}
        for name in eval_loaders:
            report[name] = run_eval(name, model)
            logger.log({f"{name}/{k}": v for k, v in flatten(report[name]).items()}, 0)
        if env.is_main:
            write_json(run_dir / "eval_report.json", report)
        logger.finish()
        cleanup_distributed()
        return 0

    # ---- training set-up ----
    train_set = datasets["train"]
    parts = build_parts(model, task, train_set, prepare, data=cfg.data, loop=cfg.train, groups=cfg.freeze.groups,
                        env=env, device=device, seed=cfg.seed, ema=ema, amp_dtype=amp_dtype)
    steps_per_epoch = parts.steps_per_epoch
    report = {"stage": stage, "trainable_parameters": trainable}
    if state is not None:
        load_refiner_weights(model, state, str(ckpt_dir / "last.pt"), prefer_ema=False)
        report["val_at_start"] = state.get("val_at_start")
    elif "val" in eval_loaders:
        # Where fine-tuning starts from: the input's distance to its target, and stage 1's.
        report["val_at_start"] = run_eval("val", model)
        logger.log({f"val/{k}": v for k, v in flatten(report["val_at_start"]).items()} | {"epoch": -1}, 0)
        if grids is not None:
            log_grid(model, task, grids, prepare, run_dir / "samples" / "start.png", logger, 0, "val/samples")
    log.info("refiner %s: %s; %d trainable parameters%s; on %s, %d process(es)", stage,
             ", ".join(f"{n} {len(d)}" for n, d in datasets.items()), trainable,
             f" (frozen: {', '.join(cfg.freeze.modules)})" if cfg.freeze.modules else "", device, env.world_size)

    def after_epoch(epoch: int, evaluated, step: int) -> None:
        if grids is not None:
            log_grid(evaluated, task, grids, prepare, run_dir / "samples" / f"epoch_{epoch:03d}.png", logger,
                     step, "val/samples")

    result = fit(parts, cfg.train, seed=cfg.seed, env=env, device=device, ckpt_dir=ckpt_dir, logger=logger,
                 best_mode=cfg.best_mode, evaluate_val=(lambda net: run_eval("val", net))
                 if "val" in eval_loaders else None, state=state,
                 extra={"model_info": info, "config": config, "val_at_start": report.get("val_at_start")},
                 after_epoch=after_epoch)
    if result["status"] != 0:
        logger.finish()
        cleanup_distributed()
        return result["status"]

    # ---- test the checkpoint chosen on val, once ----
    report |= best_report(result, ckpt_dir, cfg.train.epochs)
    if "test" in eval_loaders:
        load_refiner_weights(model, load_checkpoint(ckpt_dir / "best.pt"), str(ckpt_dir / "best.pt"))
        report["test"] = run_eval("test", model)
        if env.is_main:
            flat = flatten(report["test"])
            logger.log({f"test/{k}": v for k, v in flat.items()}, cfg.train.epochs * steps_per_epoch)
            logger.summary({f"test/{k}": v for k, v in flat.items() if k.count("/") == 1})
    return close_run(report, env=env, logger=logger, run_dir=run_dir, metric=cfg.train.best_metric,
                     artifact=f"refiner-{stage}-{run_dir.name}" if cfg.wandb.log_checkpoint else None,
                     start_time=start_time)
