"""The epoch driver every trainer shares: epochs, the best checkpoint, early stopping, pre-emption.

:mod:`forensics.training.engine` runs one epoch (``train_one_epoch``) and one evaluation
(``evaluate``); :func:`fit` strings epochs together the way torchvision's reference scripts
do: resume from ``last.pt`` (mid-epoch too), evaluate on ``val`` after every epoch, keep
``best.pt`` by the validation metric (never the test split), stop early, and turn SIGTERM
into a checkpoint and exit status 143. What differs between callers (the model, the task,
freezing phases, extra images to log) comes in as arguments, so there is one loop. Opening
and closing the run around it is :mod:`forensics.training.session`'s.
"""

from __future__ import annotations

import logging
import math
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forensics.errors import ConfigError
from forensics.training.metrics import improved as is_improvement
from forensics.training.nonfinite import LossGuard

if TYPE_CHECKING:
    import torch
    import torch.nn as nn
    from torch.optim.swa_utils import AveragedModel
    from torch.utils.data import DataLoader

    from forensics.data.datasets import TrainSampler
    from forensics.distributed import DistEnv
    from forensics.training.runlog import RunLogger
    from forensics.training.schema import LoopConfig, ParamGroupConfig
    from forensics.training.tasks import Task

log = logging.getLogger(__name__)

#: Exit status of a run stopped by SIGTERM after saving ``last.pt`` (128 + SIGTERM).
PREEMPTED = 143


class Preemption:
    """Turns SIGTERM (cluster pre-emption, ``scancel``) into a flag polled after every step."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def should_stop(self, device) -> bool:
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self.requested
        # Every rank must stop after the same step, or the others would wait forever.
        flag = torch.tensor([float(self.requested)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)


@dataclass
class Parts:
    """What a training run is made of, built by :func:`build_parts` and driven by :func:`fit`."""

    model: nn.Module  # the bare model: checkpoints hold its weights
    task: Task
    loader: DataLoader  # over ``dataset`` with ``sampler``
    dataset: Any  # a map-style dataset with ``set_epoch(epoch)``
    sampler: TrainSampler
    prepare: Callable[[dict], dict]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler  # enabled for fp16 only
    ema: AveragedModel | None
    amp_dtype: torch.dtype | None
    steps_per_epoch: int


def build_parts(model: nn.Module, task: Task, dataset: Any, prepare: Callable[[dict], dict], *, data: Any,
                loop: LoopConfig, groups: list[ParamGroupConfig], env: DistEnv, device: torch.device, seed: int,
                ema: AveragedModel | None = None, amp_dtype: torch.dtype | None = None,
                balanced: bool = False) -> Parts:
    """The training side of a run: sampler, loader, optimizer (per-group learning rates),
    per-step schedule and fp16 grad scaler, from the config's ``data`` and ``train`` sections."""
    import torch
    from torch.utils.data import DataLoader

    from forensics.data.datasets import TrainSampler, check_not_empty
    from forensics.training.optim import build_optimizer, build_scheduler

    sampler = TrainSampler(dataset, env.world_size, env.rank, seed, balanced=balanced)
    check_not_empty(dataset, data.batch_size, env.world_size, f"split '{data.train_split}'")
    # drop_last: a last batch of one crop would break batch norm and weigh one crop like 32.
    loader = DataLoader(dataset, batch_size=data.batch_size, sampler=sampler, num_workers=data.num_workers,
                        pin_memory=device.type == "cuda", drop_last=True)
    steps_per_epoch = max(1, (len(sampler) // data.batch_size) // loop.accum_steps)
    optimizer = build_optimizer(model, loop, groups)
    return Parts(model, task, loader, dataset, sampler, prepare, optimizer,
                 build_scheduler(optimizer, loop, steps_per_epoch),
                 torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16), ema, amp_dtype,
                 steps_per_epoch)


def new_best(loop: LoopConfig, best_mode: str) -> dict[str, Any]:
    """The ``best`` record of a run before its first validation."""
    return {"name": loop.best_metric, "mode": best_mode, "value": None, "epoch": None, "bad_epochs": 0, "val": None}


def restore(parts: Parts, state: dict[str, Any]) -> None:
    """Load optimizer, schedule, scaler and EMA of a ``last.pt`` (the model's weights are the caller's)."""
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    parts.scaler.load_state_dict(state["scaler"])
    if parts.ema is not None and state.get("model_ema"):
        parts.ema.module.load_state_dict(state["model_ema"])
        parts.ema.n_averaged.fill_(state.get("ema_updates", 1))
    log.info("resuming from epoch %d, step %d", state["epoch"], state["step"])


def training_state(parts: Parts, epoch: int, step: int, loss_sum: float, best: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of the training state: weights, EMA, optimizer, schedule, scaler, position, best."""
    p = parts
    return {"model": p.model.state_dict(), "model_ema": p.ema.module.state_dict() if p.ema is not None else None,
            "ema_updates": int(p.ema.n_averaged) if p.ema is not None else 0,
            "optimizer": p.optimizer.state_dict(), "scheduler": p.scheduler.state_dict(),
            "scaler": p.scaler.state_dict(), "epoch": epoch, "step": step,
            "global_step": epoch * p.steps_per_epoch + step, "epoch_loss_sum": loss_sum, "metric": best}


def fit(parts: Parts, loop: LoopConfig, *, seed: int, env: DistEnv, device: torch.device, ckpt_dir: Path,
        logger: RunLogger, best_mode: str, evaluate_val: Callable[[nn.Module], dict] | None,
        state: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
        net_for_epoch: Callable[[int], nn.Module] | None = None,
        after_epoch: Callable[[int, nn.Module, int], None] | None = None) -> dict[str, Any]:
    """Train ``loop.epochs`` epochs (or what is left of them), choosing ``best.pt`` on val.

    Args:
        parts: the model, data, optimizer and friends.
        loop: the ``train`` section of the config (epochs, accum_steps, clip_grad, best_metric,
            early_stop_patience, log_every, progress).
        best_mode: ``max`` or ``min`` for ``loop.best_metric``.
        evaluate_val: metrics of a model on the validation split, or ``None`` without one
            (then every epoch counts as the best).
        state: the ``last.pt`` to resume (its model weights already loaded by the caller).
        extra: saved into every checkpoint beside the training state (model info, config, ...).
        net_for_epoch: the module to train in an epoch (e.g. re-wrapped in DDP after a
            freezing phase changed); default: the model, wrapped in DDP when distributed.
        after_epoch: called on rank 0 as ``after_epoch(epoch, evaluated_model, step)``.

    Returns:
        ``status`` (0, or :data:`PREEMPTED` after a SIGTERM), ``best`` (name, mode, value,
        epoch, val metrics) and ``stopped_early``.
    """
    from forensics.distributed import barrier
    from forensics.training.checkpoint import save_checkpoint

    first_epoch, first_step, partial_loss, best = 0, 0, 0.0, new_best(loop, best_mode)
    if state is not None:
        restore(parts, state)
        first_epoch, first_step, best = state["epoch"], state["step"], state["metric"]
        partial_loss = state.get("epoch_loss_sum", 0.0)  # loss summed over the steps already done
    extra = {**(extra or {}), "wandb_id": logger.wandb_id}

    def save(name: str, epoch: int, step: int, loss_sum: float = 0.0) -> None:
        if env.is_main:
            save_checkpoint(training_state(parts, epoch, step, loss_sum, best) | extra, ckpt_dir / name)

    if net_for_epoch is None:
        net = _wrap(parts.model, env, device)
        net_for_epoch = lambda epoch: net  # noqa: E731
    preemption = Preemption()
    # One non-finite-loss policy per run (train.nonfinite); from here the run's record stays.
    guard = LossGuard(loop.nonfinite, loop.max_nonfinite)
    logger.setup_done()
    try:
        for epoch in range(first_epoch, loop.epochs):
            start = first_step if epoch == first_epoch else 0
            stats = _train_epoch(parts, loop, net_for_epoch(epoch), epoch, start, seed=seed, env=env, device=device,
                                 logger=logger, preemption=preemption, guard=guard)
            loss_sum = stats["loss_sum"] + (partial_loss if epoch == first_epoch else 0.0)
            if stats["stopped"]:
                save("last.pt", epoch, stats["steps"], loss_sum)
                log.warning("SIGTERM: saved %s at epoch %d, step %d; continue with --resume",
                            ckpt_dir / "last.pt", epoch, stats["steps"])
                barrier()
                return {"status": PREEMPTED, "best": best, "stopped_early": False}
            improved = _end_epoch(parts, loop, epoch, loss_sum / max(stats["steps"], 1), best, logger=logger,
                                  evaluate_val=evaluate_val, after_epoch=after_epoch if env.is_main else None)
            # best before last: a kill between the two then leaves a best.pt that the resumed
            # run (from the previous last.pt) rewrites identically, never a missing one.
            if improved:
                save("best.pt", epoch + 1, 0)
            save("last.pt", epoch + 1, 0)
            barrier()
            if loop.early_stop_patience is not None and best["bad_epochs"] >= loop.early_stop_patience:
                log.info("early stopping: no improvement of %s for %d epochs", loop.best_metric,
                         loop.early_stop_patience)
                return {"status": 0, "best": best, "stopped_early": True}
    finally:
        preemption.restore()
    return {"status": 0, "best": best, "stopped_early": False}


def _train_epoch(parts: Parts, loop: LoopConfig, net: nn.Module, epoch: int, start: int, *, seed: int, env: DistEnv,
                 device: torch.device, logger: RunLogger, preemption: Preemption,
                 guard: LossGuard | None = None) -> dict[str, Any]:
    """One epoch of :func:`forensics.training.engine.train_one_epoch` from optimizer step ``start``."""
    import sys

    from forensics.training.engine import train_one_epoch

    p, spe = parts, parts.steps_per_epoch
    p.dataset.set_epoch(epoch)
    p.sampler.set_epoch(epoch, start=start * p.loader.batch_size * loop.accum_steps)
    return train_one_epoch(
        net, p.task, p.loader, p.optimizer, p.prepare, epoch=epoch, scheduler=p.scheduler,
        scaler=p.scaler if p.scaler.is_enabled() else None, amp_dtype=p.amp_dtype,
        accum_steps=loop.accum_steps, clip_grad=loop.clip_grad, ema=p.ema, seed=seed, rank=env.rank,
        start_step=start, log_every=loop.log_every,
        log_fn=lambda m: logger.log(m, epoch * spe + int(m["epoch_step"])),
        should_stop=lambda: preemption.should_stop(device),
        progress=loop.progress and env.is_main and sys.stderr.isatty(), guard=guard)


def _end_epoch(parts: Parts, loop: LoopConfig, epoch: int, loss: float, best: dict[str, Any], *, logger: RunLogger,
               evaluate_val: Callable[[nn.Module], dict] | None,
               after_epoch: Callable[[int, nn.Module, int], None] | None) -> bool:
    """Validate the epoch's weights (EMA if kept), log the epoch, update ``best``; whether it improved."""
    from forensics.training.metrics import flatten

    record = {"train/epoch_loss": loss, "epoch": epoch}
    step = (epoch + 1) * parts.steps_per_epoch
    evaluated = parts.ema.module if parts.ema is not None else parts.model
    improved = _validate(evaluated, evaluate_val, loop.best_metric, best, epoch, record, flatten)
    logger.log(record, step)
    if after_epoch is not None:
        after_epoch(epoch, evaluated, step)
    log.info("epoch %d: loss %.4f%s", epoch, loss,
             f", val {loop.best_metric} {record[f'val/{loop.best_metric}']:.4f} "
             f"(best {best['value']} at epoch {best['epoch']})" if evaluate_val else "")
    return improved


def _wrap(model: nn.Module, env: DistEnv, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    if not env.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _validate(model, evaluate_val, metric: str, best: dict, epoch: int, record: dict, flatten) -> bool:
    """Evaluate on val, add the metrics to ``record``, update ``best``; whether it improved."""
    if evaluate_val is None:
        best["epoch"] = epoch
        return True
    metrics = evaluate_val(model)
    flat = flatten(metrics)
    if metric not in flat:
        raise ConfigError(f"train.best_metric '{metric}' is not a validation metric "
                          f"(e.g. {', '.join(k for k in flat if k.count('/') == 1)})")
    value = flat[metric]
    record |= {f"val/{k}": v for k, v in flat.items()}
    # An undefined value (one-class val) never beats a best; the first epoch stands in for
    # best.pt until a defined value comes, so that a run always has one.
    improved = is_improvement(best["value"], value, best["mode"]) or best["epoch"] is None
    if math.isnan(value) and not best.get("warned_undefined"):
        log.warning("val %s is undefined at epoch %d (one class in the split?): it never counts as an "
                    "improvement; warned once", metric, epoch)
        best["warned_undefined"] = True
    if improved:
        best |= {"value": None if math.isnan(value) else value, "epoch": epoch, "bad_epochs": 0, "val": metrics}
    else:
        best["bad_epochs"] += 1
    return improved
