"""The epoch driver that ``forensics train`` and ``forensics refiner`` share.

:mod:`forensics.training.engine` runs one epoch (``train_one_epoch``) and one evaluation
(``evaluate``); :func:`fit` strings epochs together the way torchvision's reference scripts
do: resume from ``last.pt`` (mid-epoch too), evaluate on ``val`` after every epoch, keep
``best.pt`` by the validation metric (never the test split), stop early, and turn SIGTERM
into a checkpoint and exit status 143. What differs between callers (the model, the task,
freezing phases, extra images to log) comes in as arguments, so there is one loop.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forensics.errors import ConfigError

log = logging.getLogger(__name__)

#: Exit status of a run stopped by SIGTERM after saving ``last.pt`` (128 + SIGTERM).
PREEMPTED = 143


def resolve_device(name: str, local_rank: int):
    """``auto``/``cpu``/``cuda``/``cuda:N`` to a ``torch.device``; ``cuda`` is this rank's GPU."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    return torch.device(name)


def start_process(device: str):
    """Join the torchrun process group, if launched by it, and pick this rank's device.

    ``device`` is ``auto`` (CUDA when there is a GPU), ``cpu`` or ``cuda``; ranks other than 0
    log warnings only. Returns ``(DistEnv, torch.device)``.
    """
    import torch

    from forensics.distributed import init_distributed

    name = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    env = init_distributed(name)
    if not env.is_main:
        logging.getLogger().setLevel(logging.WARNING)  # only rank 0 speaks
    return env, resolve_device(device, env.local_rank)


def eval_loader(dataset, batch_size: int, num_workers: int, env, device):
    """A loader that gives each rank every ``world_size``-th sample, in order."""
    from torch.utils.data import DataLoader, DistributedSampler

    # shuffle=False: each rank takes every world_size-th sample; the last round is padded
    # with repeats, which evaluate() drops by sample index before computing metrics.
    sampler = DistributedSampler(dataset, num_replicas=env.world_size, rank=env.rank, shuffle=False)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      pin_memory=device.type == "cuda")


def open_run(ckpt_dir: Path, config: dict[str, Any], *, resume: bool, force: bool, eval_only: bool,
             may_change: tuple[str, ...]) -> dict[str, Any] | None:
    """Decide, before any work, between resuming ``last.pt`` and starting fresh.

    Returns the checkpoint to resume from, or ``None``. Refuses a resume whose config differs
    in keys outside ``may_change`` (unless ``force``), and a fresh run in a folder that holds one.
    """
    from forensics.training.checkpoint import load_checkpoint
    from forensics.config import config_diff

    if resume:
        state = load_checkpoint(ckpt_dir / "last.pt")
        changed = [k for k in config_diff(state["config"], config) if k not in may_change]
        if changed and not force:
            raise ConfigError(f"--resume: the config differs from the interrupted run's in "
                              f"{', '.join(changed)}; restore those values or pass --force")
        return state
    if not eval_only and (ckpt_dir / "last.pt").exists():
        raise ConfigError(f"output_dir {ckpt_dir.parent} already holds a run (checkpoints/last.pt): "
                          "pass --resume to continue it, or choose another output_dir")
    return None


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


def build_scheduler(optimizer, loop, steps_per_epoch: int):
    """A per-step ``LambdaLR``: warm-up, then constant, step (``gamma`` every ``step_epochs``) or cosine."""
    import torch

    warmup = int(loop.warmup_epochs * steps_per_epoch)
    total = loop.epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if loop.schedule == "step":
            return loop.gamma ** (step // (loop.step_epochs * steps_per_epoch))
        if loop.schedule == "cosine":
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            floor = loop.min_lr / loop.lr
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def build_optimizer(model, loop, groups_cfg):
    """Adam, AdamW or SGD over the trainable parameters, with per-group learning rates."""
    import torch

    from forensics.training.freeze import param_groups

    groups = param_groups(model, loop.lr, loop.weight_decay, groups_cfg)
    if loop.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=loop.lr, momentum=loop.momentum)
    cls = torch.optim.AdamW if loop.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=loop.lr)


def autocast_dtype(name: str):
    """``train.amp`` (``none``/``bf16``/``fp16``) as the autocast dtype, or ``None``."""
    import torch

    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def build_ema(model, decay: float | None):
    """An exponential moving average of ``model``'s weights and buffers, or ``None`` without a decay."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


@dataclass
class Parts:
    """What a training run is made of, built by the caller and driven by :func:`fit`."""

    model: Any  # the bare model: checkpoints hold its weights
    task: Any
    loader: Any  # over ``dataset`` with ``sampler`` (a :class:`forensics.data.datasets.TrainSampler`)
    dataset: Any
    sampler: Any
    prepare: Callable[[dict], dict]
    optimizer: Any
    scheduler: Any
    scaler: Any  # a GradScaler, enabled for fp16 only
    ema: Any  # an AveragedModel or None
    amp_dtype: Any
    steps_per_epoch: int


def build_parts(model, task, dataset, prepare, *, data, loop, groups, env, device, seed: int, ema=None,
                amp_dtype=None, balanced: bool = False) -> Parts:
    """The training side of a run: sampler, loader, optimizer (per-group learning rates),
    per-step schedule and fp16 grad scaler, from the config's ``data`` and ``train`` sections."""
    import torch
    from torch.utils.data import DataLoader

    from forensics.data.datasets import TrainSampler, check_not_empty

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


def fit(parts: Parts, loop, *, seed: int, env, device, ckpt_dir: Path, logger, best_mode: str,
        evaluate_val: Callable[[Any], dict] | None, state: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None, net_for_epoch: Callable[[int], Any] | None = None,
        after_epoch: Callable[[int, Any, int], None] | None = None) -> dict[str, Any]:
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
    from forensics.training.checkpoint import save_checkpoint
    from forensics.distributed import barrier
    from forensics.training.engine import train_one_epoch
    from forensics.training.metrics import flatten

    p, spe = parts, parts.steps_per_epoch
    first_epoch, first_step, partial_loss = 0, 0, 0.0
    best = {"name": loop.best_metric, "mode": best_mode, "value": None, "epoch": None, "bad_epochs": 0, "val": None}
    if state is not None:
        p.optimizer.load_state_dict(state["optimizer"])
        p.scheduler.load_state_dict(state["scheduler"])
        p.scaler.load_state_dict(state["scaler"])
        if p.ema is not None and state.get("model_ema"):
            p.ema.module.load_state_dict(state["model_ema"])
            p.ema.n_averaged.fill_(state.get("ema_updates", 1))
        first_epoch, first_step, best = state["epoch"], state["step"], state["metric"]
        partial_loss = state.get("epoch_loss_sum", 0.0)  # loss summed over the steps already done
        log.info("resuming from epoch %d, step %d", first_epoch, first_step)

    def save(name: str, epoch: int, step: int, loss_sum: float = 0.0) -> None:
        if env.is_main:
            save_checkpoint({
                "model": p.model.state_dict(), "model_ema": p.ema.module.state_dict() if p.ema is not None else None,
                "ema_updates": int(p.ema.n_averaged) if p.ema is not None else 0,
                "optimizer": p.optimizer.state_dict(), "scheduler": p.scheduler.state_dict(),
                "scaler": p.scaler.state_dict(), "epoch": epoch, "step": step, "global_step": epoch * spe + step,
                "epoch_loss_sum": loss_sum, "metric": best, "wandb_id": logger.wandb_id, **(extra or {})},
                ckpt_dir / name)

    if net_for_epoch is None:
        net = _wrap(p.model, env, device)
        net_for_epoch = lambda epoch: net  # noqa: E731
    preemption = Preemption()
    try:
        for epoch in range(first_epoch, loop.epochs):
            start = first_step if epoch == first_epoch else 0
            p.dataset.set_epoch(epoch)
            p.sampler.set_epoch(epoch, start=start * p.loader.batch_size * loop.accum_steps)
            stats = train_one_epoch(
                net_for_epoch(epoch), p.task, p.loader, p.optimizer, p.prepare, epoch=epoch, scheduler=p.scheduler,
                scaler=p.scaler if p.scaler.is_enabled() else None, amp_dtype=p.amp_dtype,
                accum_steps=loop.accum_steps, clip_grad=loop.clip_grad, ema=p.ema, seed=seed, rank=env.rank,
                start_step=start, log_every=loop.log_every,
                log_fn=lambda m, e=epoch: logger.log(m, e * spe + int(m["epoch_step"])),
                should_stop=lambda: preemption.should_stop(device),
                progress=loop.progress and env.is_main and sys.stderr.isatty())
            loss_sum = stats["loss_sum"] + (partial_loss if epoch == first_epoch else 0.0)
            if stats["stopped"]:
                save("last.pt", epoch, stats["steps"], loss_sum)
                log.warning("SIGTERM: saved %s at epoch %d, step %d; continue with --resume",
                            ckpt_dir / "last.pt", epoch, stats["steps"])
                barrier()
                return {"status": PREEMPTED, "best": best, "stopped_early": False}

            record = {"train/epoch_loss": loss_sum / max(stats["steps"], 1), "epoch": epoch}
            evaluated = p.ema.module if p.ema is not None else p.model
            improved = _validate(evaluated, evaluate_val, loop.best_metric, best, epoch, record, flatten)
            logger.log(record, (epoch + 1) * spe)
            if after_epoch is not None and env.is_main:
                after_epoch(epoch, evaluated, (epoch + 1) * spe)
            log.info("epoch %d: loss %.4f%s", epoch, record["train/epoch_loss"],
                     f", val {loop.best_metric} {record[f'val/{loop.best_metric}']:.4f} "
                     f"(best {best['value']} at epoch {best['epoch']})" if evaluate_val else "")
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


def _wrap(model, env, device):
    from torch.nn.parallel import DistributedDataParallel

    if not env.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _validate(model, evaluate_val, metric: str, best: dict, epoch: int, record: dict, flatten) -> bool:
    """Evaluate on val, add the metrics to ``record``, update ``best``; whether it improved."""
    from forensics.training.metrics import improved as is_improvement

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
    # -- cross: an undefined value (one-class val) never beats a best; the first epoch stands in
    # for best.pt until a defined value comes, so that a run always has one.
    improved = is_improvement(best["value"], value, best["mode"]) or best["epoch"] is None
    if math.isnan(value) and not best.get("warned_undefined"):
        log.warning("val %s is undefined at epoch %d (one class in the split?): it never counts as an "
                    "improvement; warned once", metric, epoch)
        best["warned_undefined"] = True
    # -- end cross
    if improved:
        best |= {"value": None if math.isnan(value) else value, "epoch": epoch, "bad_epochs": 0, "val": metrics}
    else:
        best["bad_epochs"] += 1
    return improved


def best_report(result: dict[str, Any], ckpt_dir: Path, epochs: int) -> dict[str, Any]:
    """The head of a run's ``report.json``: the checkpoint chosen on val and its val metrics."""
    best = result["best"]
    return {"best": {k: best[k] for k in ("name", "mode", "value", "epoch")}, "checkpoint": str(ckpt_dir / "best.pt"),
            "epochs": epochs, "stopped_early": result["stopped_early"], "val": best.get("val")}


def close_run(report: dict[str, Any], *, env, logger, run_dir: Path, metric: str, artifact: str | None,
              start_time: float) -> int:
    """Write ``report.json`` (rank 0), log the best value and, if named, the checkpoint artifact;
    end the W&B run and the process group. Returns the exit status 0."""
    import time

    from forensics.distributed import cleanup_distributed
    from forensics.training.runlog import write_json

    report["time_s"] = round(time.time() - start_time, 1)
    if env.is_main:
        logger.summary({f"best/val/{metric}": report["best"]["value"], "best/epoch": report["best"]["epoch"]})
        write_json(run_dir / "report.json", report)
        if artifact:
            logger.log_artifact(Path(report["checkpoint"]), artifact)
        log.info("done: %s", run_dir / "report.json")
    logger.finish()
    cleanup_distributed()
    return 0
