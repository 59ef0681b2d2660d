"""The one training loop and the one evaluation loop, for every task in the project.

``train_one_epoch`` and ``evaluate`` know nothing about faces or labels: batches are dicts,
the model reads ``batch["image"]``, and a *task* (:mod:`forensics.training.tasks`) turns outputs into
a loss, into per-sample predictions, and those into metrics. The detectors and every plug-in
trainer (image-to-image, regression) run through here; there is no second copy of this loop.

The same code runs on CPU, one GPU and under torchrun (the model is then wrapped in
DistributedDataParallel by the caller).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from forensics.training.nonfinite import LossGuard
from forensics.training.freeze import train_mode

if TYPE_CHECKING:
    from torch.optim.swa_utils import AveragedModel

    from forensics.training.tasks import Task

log = logging.getLogger(__name__)

Batch = dict[str, Any]


def autocast(device: torch.device, amp_dtype: torch.dtype | None):
    """Mixed precision context (a null context when ``amp_dtype`` is ``None``)."""
    return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()


def step_seed(seed: int, epoch: int, step: int, rank: int) -> int:
    """A seed for one optimizer step, mixed from its coordinates."""
    return int(np.random.SeedSequence([seed, epoch, step, rank]).generate_state(1, np.uint64)[0] >> 1)


def _progress_bar(progress: bool, loader: Any, accum_steps: int, start_step: int, epoch: int) -> Any:
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=len(loader) // accum_steps + start_step, initial=start_step, desc=f"epoch {epoch}",
                dynamic_ncols=True, leave=False)


def _optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    scaler: torch.amp.GradScaler | None, clip_grad: float | None, ema: AveragedModel | None) -> None:
    """Unscale, clip, step (through the fp16 scaler if any), zero the gradients, step the schedule, update EMA."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    if clip_grad:
        nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], clip_grad)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        scheduler.step()
    if ema is not None:
        ema.update_parameters(model.module if hasattr(model, "module") else model)


def _mean_over_ranks(value: float, device: torch.device) -> float:
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


def _forward_backward(model: nn.Module, task: Task, batch: Batch, device: torch.device,
                      amp_dtype: torch.dtype | None, scaler: torch.amp.GradScaler | None, accum_steps: int,
                      sync: bool) -> torch.Tensor:
    """One micro-batch: forward, loss scaled for accumulation, backward; returns the detached loss."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model.require_backward_grad_sync = sync  # all-reduce once per optimizer step
    with autocast(device, amp_dtype):
        outputs = model(batch["image"])
        loss = task.loss(outputs, batch) / accum_steps
    (scaler.scale(loss) if scaler is not None else loss).backward()
    return loss.detach()


def _report(bar: Any, log_fn: Callable[[dict[str, float]], None] | None, loss: float, rate: float,
            optimizer: torch.optim.Optimizer, epoch: int, step: int) -> None:
    """The progress bar's postfix and the ``log_every`` record of the training loss."""
    if bar is not None:
        bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{rate:.0f}")
    if log_fn is not None:
        log_fn({"train/loss": loss, "train/lr": optimizer.param_groups[0]["lr"], "train/samples_per_s": rate,
                "epoch": epoch, "epoch_step": step})


def train_one_epoch(model: nn.Module, task: Task, loader: Iterable[Batch], optimizer: torch.optim.Optimizer,
                    prepare: Callable[[Batch], Batch], *, epoch: int,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                    scaler: torch.amp.GradScaler | None = None, amp_dtype: torch.dtype | None = None,
                    accum_steps: int = 1, clip_grad: float | None = None, ema: AveragedModel | None = None,
                    seed: int = 0, rank: int = 0, start_step: int = 0, log_every: int = 10,
                    log_fn: Callable[[dict[str, float]], None] | None = None,
                    should_stop: Callable[[], bool] | None = None, progress: bool = False,
                    guard: LossGuard | None = None) -> dict[str, Any]:
    """Train for one epoch (or what is left of it after ``start_step`` optimizer steps).

    Args:
        model: the model, possibly wrapped in DDP.
        task: gives ``loss(outputs, batch)``.
        loader: yields batch dicts; ``prepare`` moves them to the device (and normalises).
        scheduler: stepped after every optimizer step (schedules are defined in steps).
        accum_steps: micro-batches per optimizer step (gradient accumulation).
        clip_grad: max gradient norm, or ``None``.
        ema: an ``AveragedModel`` updated after every optimizer step.
        start_step: optimizer steps of this epoch already done (a resumed run); the loader
            must already skip their batches.
        log_fn: called on every ``log_every``-th step with ``train/loss`` (mean over the
            steps since the last call), ``train/lr``, ``train/samples_per_s``.
        should_stop: polled after every optimizer step; ``True`` ends the epoch early (SIGTERM).
        guard: what to do with a non-finite loss (:mod:`forensics.training.nonfinite`);
            default: stop at the first one.

    Returns:
        ``loss`` (mean over this call's steps; averaged over ranks), ``loss_sum`` (its sum),
        ``steps`` (optimizer steps done in the epoch, counting ``start_step``) and
        ``stopped`` (ended by ``should_stop``).
    """
    device = next(model.parameters()).device
    train_mode(model)
    step, loss_sum, window, window_steps, seen, tic = start_step, 0.0, 0.0, 0, 0, time.perf_counter()
    bar = _progress_bar(progress, loader, accum_steps, start_step, epoch)
    optimizer.zero_grad(set_to_none=True)
    stopped, guard, step_loss = False, guard or LossGuard(), 0.0
    for micro, batch in enumerate(loader):
        if micro % accum_steps == 0:
            # Reseed from (seed, epoch, step): a run resumed mid-epoch then draws the same
            # dropout masks as one that never stopped, with no RNG state to save.
            torch.manual_seed(step_seed(seed, epoch, step, rank))
        batch = prepare(batch)
        last_micro = (micro + 1) % accum_steps == 0
        # micro-batch losses sum to the step's mean loss
        step_loss = step_loss + _forward_backward(model, task, batch, device, amp_dtype, scaler, accum_steps,
                                                  sync=last_micro)
        seen += len(batch["image"])
        if not last_micro:
            continue
        if guard.skip_step(step_loss, epoch, step + 1):
            optimizer.zero_grad(set_to_none=True)  # dropped: it never reaches the weights
            step_loss, step = 0.0, step + 1
            continue
        window, step_loss = window + step_loss, 0.0
        _optimizer_step(model, optimizer, scheduler, scaler, clip_grad, ema)
        step += 1
        window_steps += 1
        if bar is not None:
            bar.update(1)
        if step % log_every == 0 and window_steps:
            window_loss = float(window) / window_steps  # the one GPU sync per log_every steps
            guard.check(window_loss, epoch, step)
            loss_sum, window, window_steps = loss_sum + window_loss * window_steps, 0.0, 0
            _report(bar, log_fn, window_loss, seen / (time.perf_counter() - tic), optimizer, epoch, step)
        if should_stop is not None and should_stop():
            stopped = True
            break
    if bar is not None:
        bar.close()
    loss_sum += float(window)
    guard.check(loss_sum, epoch, step)  # an epoch shorter than log_every is checked too
    loss_sum = _mean_over_ranks(loss_sum, device)
    done = step - start_step
    return {"loss": loss_sum / max(done, 1), "loss_sum": loss_sum, "steps": step, "stopped": stopped}


def gather_predictions(local: dict[str, list[torch.Tensor]]) -> tuple[dict[str, np.ndarray], int]:
    """Concatenate per-sample predictions, gather them from every rank and drop duplicates.

    ``DistributedSampler`` pads the last round by repeating samples so that every rank gets
    as many; each sample carries its dataset ``index``, so the padding is found and dropped
    here, *before* any metric sees it.

    Returns:
        Arrays sorted by ``index`` (one entry per dataset sample), and how many duplicates
        were dropped.
    """
    arrays = {k: (torch.cat(v).numpy() if v else np.zeros(0)) for k, v in local.items()}
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, arrays)
        arrays = {k: np.concatenate([p[k] for p in parts]) for k in arrays}
    index = arrays["index"]
    unique, first = np.unique(index, return_index=True)  # sorted by index, first occurrence
    return {k: v[first] for k, v in arrays.items()}, len(index) - len(unique)


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, loader: Iterable[Batch], prepare: Callable[[Batch], Batch], *,
             amp_dtype: torch.dtype | None = None, meta: Any = None,
             progress: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Predict on every sample of ``loader``, gather across ranks, compute metrics once.

    Args:
        meta: per-sample metadata for ``task.metrics`` (default: ``loader.dataset.meta``).

    Returns:
        ``(metrics, gathered)``: the task's metrics and the gathered per-sample predictions.
    """
    device = next(model.parameters()).device
    model.eval()
    local: dict[str, list[torch.Tensor]] = defaultdict(list)
    batches: Iterable[Batch] = loader
    if progress:
        from tqdm import tqdm

        batches = tqdm(loader, desc="eval", dynamic_ncols=True, leave=False)
    for batch in batches:
        batch = prepare(batch)
        with autocast(device, amp_dtype):
            outputs = model(batch["image"])
        for key, value in task.predictions(outputs, batch).items():
            local[key].append(value.detach().float().cpu())
        local["index"].append(batch["index"].cpu())
    gathered, duplicates = gather_predictions(local)
    if duplicates:
        log.info("dropped %d duplicate sample(s) padded by DistributedSampler before computing metrics", duplicates)
    if meta is None:
        meta = getattr(getattr(loader, "dataset", None), "meta", None)
    return task.metrics(gathered, meta), gathered
