"""``forensics refiner pretrain|finetune CONFIG [key=value ...]``: the refiner's two training stages.

Stage 1, **pretrain**: an autoencoder (:class:`refiner.model.Refiner`, no skips) learns to
reconstruct real face crops (any manifest: a face-image folder through ``forensics preprocess``,
VGGFace2 with its boxes, the real videos of a video dataset). Stage 2, **finetune**: the
stage-1 weights are loaded strictly, zero-initialised skip connections are added (the output
is unchanged at that moment), the configured parts are frozen, and the network learns to map
each self-reenactment fake to its original's crop at the same frame (:mod:`refiner.pairs`).

Both stages run through the one training engine (:func:`forensics.training.engine.train_one_epoch` and
:func:`~forensics.training.engine.evaluate`) with the reconstruction task (:mod:`refiner.task`), and
open, resume, log and close their runs with the session every trainer shares
(:mod:`forensics.training.session`) and train through the one epoch loop
(:func:`forensics.training.loop.fit`: optimizer, schedule, SIGTERM handling, checkpoints), so
the same command runs on CPU, one GPU and under torchrun::

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import MISSING

from forensics.errors import ConfigError, ForensicsError
from forensics.training.runlog import WandbConfig
from forensics.training.schema import (RESUME_MAY_CHANGE, LoopConfig, ParamGroupConfig, RunConfig, choose_best_mode,
                                       validate_run)
from refiner.model import RefinerArch
from refiner.pairs import PairingConfig

if TYPE_CHECKING:  # for annotations only
    from collections.abc import Callable

    import torch

    from forensics.training.runlog import RunLogger
    from forensics.training.session import Run
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
class PretrainConfig(RunConfig):
    """Stage 1: reconstruct real crops (no skip connections)."""

    data: RefinerDataConfig = field(default_factory=RefinerDataConfig)
    model: RefinerArch = field(default_factory=RefinerArch)
    loss: LossConfig = field(default_factory=LossConfig)
    train: LoopConfig = field(default_factory=_loop)
    freeze: RefinerFreezeConfig = field(default_factory=RefinerFreezeConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    grid_samples: int = 8  # crops in the per-epoch sample grid (0: none)

    def validate(self) -> None:
        validate_run(self.train, self.device, self.data.batch_size)
        if self.loss.l1_weight < 0 or self.loss.ssim_weight < 0 or not (self.loss.l1_weight or self.loss.ssim_weight):
            raise ConfigError("loss.l1_weight and loss.ssim_weight must be >= 0, and not both 0")
        if not 0 <= self.data.hflip_p <= 1:
            raise ConfigError(f"data.hflip_p must be a probability, got {self.data.hflip_p}")
        self.model.validate()
        self.wandb.validate()

    @property
    def best_mode(self) -> str:
        return choose_best_mode(self.train, ("l1", "loss"))


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
# main: the run is opened and closed by forensics.training.session, as forensics train's is
# --------------------------------------------------------------------------------------

@dataclass
class Stage:
    """What both modes of a stage work with: the open run, the datasets, the model and its task."""

    cfg: PretrainConfig
    stage: str
    run: Run
    datasets: dict[str, PairDataset]
    model: Refiner
    task: ReconstructionTask
    trainable: int  # parameters left trainable by freeze.modules
    prepare: Callable[[dict], dict]
    amp_dtype: torch.dtype | None
    eval_loaders: dict[str, Any]

    def evaluate(self, name: str, net: Any = None) -> dict[str, Any]:
        """Metrics of ``net`` (default: the model) on eval split ``name``."""
        from forensics.training.engine import evaluate

        metrics, _ = evaluate(net if net is not None else self.model, self.task, self.eval_loaders[name],
                              self.prepare, amp_dtype=self.amp_dtype,
                              progress=self.cfg.train.progress and self.run.progress)
        return metrics

    def evaluate_and_log(self, name: str, step: int = 0, summary: bool = False) -> dict[str, Any]:
        """Evaluate on ``name``, log the metrics at ``step`` (and to the W&B summary); the metrics."""
        from forensics.training.metrics import flatten

        metrics = self.evaluate(name)
        flat = flatten(metrics)
        self.run.logger.log({f"{name}/{k}": v for k, v in flat.items()}, step)
        if summary:
            self.run.logger.summary({f"{name}/{k}": v for k, v in flat.items() if k.count("/") == 1})
        return metrics


def main(cfg: PretrainConfig, stage: str, resume: bool = False, force: bool = False, eval_only: bool = False,
         checkpoint: str | None = None) -> int:
    """Run stage ``pretrain`` or ``finetune`` as configured; returns the exit status."""
    from forensics.training.session import open_run

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    run = open_run(cfg, resume=resume, force=force, eval_only=eval_only,
                   may_change=RESUME_MAY_CHANGE + ("grid_samples",))
    setup = build(cfg, stage, run)
    if eval_only:
        return evaluate_only(setup, checkpoint or str(run.ckpt_dir / "best.pt"))
    return train(setup)


def build(cfg: PretrainConfig, stage: str, run: Run) -> Stage:
    """Datasets, the model (stage 1 weights first, then skips: output unchanged, then freezing), the logger."""
    from forensics.data.transforms import batch_preparer
    from forensics.training.optim import autocast_dtype
    from forensics.training.session import eval_loader, start_logging
    from refiner.model import Refiner, data_config, freeze
    from refiner.task import ReconstructionTask

    splits = {"train": cfg.data.train_split, "val": cfg.data.val_split, "test": cfg.data.test_split}
    datasets = {name: build_dataset(cfg, stage, split, train=name == "train")
                for name, split in splits.items() if split and not (run.eval_only and name == "train")}
    data_cfg = data_config(cfg.model)
    task = ReconstructionTask(data_cfg["mean"], data_cfg["std"], cfg.loss.l1_weight, cfg.loss.ssim_weight,
                              paired=stage == "finetune")
    model = Refiner(cfg.model)
    if stage == "finetune":
        if run.state is None and not run.eval_only:
            load_stage1(model, cfg.pretrained)
            log.info("loaded stage 1 from %s; adding skip connections", cfg.pretrained)
        model.add_skips(cfg.skips.levels, cfg.skips.kernel, cfg.skips.input_ramp)
    trainable = freeze(model, cfg.freeze.modules)
    model.to(run.device)
    eval_batch = cfg.data.eval_batch_size or 2 * cfg.data.batch_size
    loaders = {name: eval_loader(datasets[name], eval_batch, cfg.data.num_workers, run.env, run.device)
               for name in ("val", "test") if name in datasets}
    start_logging(run, cfg, job_type=stage)
    return Stage(cfg, stage, run, datasets, model, task, trainable,
                 batch_preparer(data_cfg, run.device, keys=("image", "target")), autocast_dtype(cfg.train.amp), loaders)


def evaluate_only(setup: Stage, path: str) -> int:
    """``--eval-only``: load ``path``, evaluate it on val and test, write ``eval_report.json``
    (the run's ``config.yaml`` and ``run.json`` stay those of its training)."""
    from forensics.training.checkpoint import load_checkpoint
    from forensics.training.session import finish_eval_only
    from refiner.model import load_refiner_weights

    load_refiner_weights(setup.model, load_checkpoint(path), path)
    return finish_eval_only(setup.run, {"stage": setup.stage, "checkpoint": path}, setup.eval_loaders,
                            setup.evaluate_and_log)


def train(setup: Stage) -> int:
    """Train the stage through :func:`forensics.training.loop.fit`, then test ``best.pt`` once."""
    from forensics.training.checkpoint import load_checkpoint
    from forensics.training.loop import build_parts, fit
    from forensics.training.optim import build_ema
    from forensics.training.session import best_report, close_run, end_run
    from refiner.model import load_refiner_weights

    cfg, run, model = setup.cfg, setup.run, setup.model
    parts = build_parts(model, setup.task, setup.datasets["train"], setup.prepare, data=cfg.data, loop=cfg.train,
                        groups=cfg.freeze.groups, env=run.env, device=run.device, seed=cfg.seed,
                        ema=build_ema(model, cfg.train.ema_decay), amp_dtype=setup.amp_dtype)
    grids = SampleGrids(setup)
    report: dict[str, Any] = {"stage": setup.stage, "trainable_parameters": setup.trainable}
    val_at_start = starting_point(setup, grids)
    if run.state is not None or "val" in setup.eval_loaders:
        report["val_at_start"] = val_at_start
    log.info("refiner %s: %s; %d trainable parameters%s; on %s, %d process(es)", setup.stage,
             ", ".join(f"{n} {len(d)}" for n, d in setup.datasets.items()), setup.trainable,
             f" (frozen: {', '.join(cfg.freeze.modules)})" if cfg.freeze.modules else "", run.device,
             run.env.world_size)
    result = fit(parts, cfg.train, seed=cfg.seed, env=run.env, device=run.device, ckpt_dir=run.ckpt_dir,
                 logger=run.logger, best_mode=cfg.best_mode,
                 evaluate_val=(lambda net: setup.evaluate("val", net)) if "val" in setup.eval_loaders else None,
                 state=run.state, extra={"model_info": model.info() | {"stage": setup.stage}, "config": run.config,
                                         "val_at_start": val_at_start}, after_epoch=grids.after_epoch)
    if result["status"] != 0:
        return end_run(run, result["status"])
    report |= best_report(result, run.ckpt_dir, cfg.train.epochs)
    if "test" in setup.eval_loaders:
        best = run.ckpt_dir / "best.pt"
        load_refiner_weights(model, load_checkpoint(best), str(best))
        report["test"] = setup.evaluate_and_log("test", cfg.train.epochs * parts.steps_per_epoch, summary=True)
    return close_run(run, report, metric=cfg.train.best_metric,
                     artifact=f"refiner-{setup.stage}-{run.dir.name}" if cfg.wandb.log_checkpoint else None)


def starting_point(setup: Stage, grids: SampleGrids) -> dict[str, Any] | None:
    """Where training starts from on val (the input's distance to its target, and stage 1's),
    measured once: a resumed run reads it from ``last.pt``, which also holds its weights."""
    from forensics.training.metrics import flatten
    from refiner.model import load_refiner_weights

    run = setup.run
    if run.state is not None:
        load_refiner_weights(setup.model, run.state, str(run.ckpt_dir / "last.pt"), prefer_ema=False)
        return run.state.get("val_at_start")
    if "val" not in setup.eval_loaders:
        return None
    metrics = setup.evaluate("val")
    run.logger.log({f"val/{k}": v for k, v in flatten(metrics).items()} | {"epoch": -1}, 0)
    grids.write(setup.model, "start.png", 0)
    return metrics


class SampleGrids:
    """The per-epoch sample grid (input | refined | target | difference) of a few fixed crops, rank 0 only."""

    def __init__(self, setup: Stage) -> None:
        d = setup.datasets
        source = d.get("val") or d.get("test") or d.get("train")
        self.setup = setup
        self.batch = grid_batch(source, setup.cfg.grid_samples) if setup.run.env.is_main else None

    def write(self, model: Any, name: str, step: int) -> None:
        if self.batch is not None:
            s = self.setup
            log_grid(model, s.task, self.batch, s.prepare, s.run.dir / "samples" / name, s.run.logger, step,
                     "val/samples")

    def after_epoch(self, epoch: int, evaluated: Any, step: int) -> None:
        self.write(evaluated, f"epoch_{epoch:03d}.png", step)
