"""Optimisation of a training run: optimizer, learning-rate schedule, EMA weights, mixed precision.

Parameter freezing and per-group learning rates are in :mod:`forensics.training.freeze`,
which :func:`build_optimizer` reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    import torch.nn as nn
    from torch.optim.swa_utils import AveragedModel

    from forensics.training.schema import LoopConfig, ParamGroupConfig


def build_scheduler(optimizer: torch.optim.Optimizer, loop: LoopConfig,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
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


def build_optimizer(model: nn.Module, loop: LoopConfig,
                    groups_cfg: Sequence[ParamGroupConfig]) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD over the trainable parameters, with per-group learning rates."""
    import torch

    from forensics.training.freeze import param_groups

    groups = param_groups(model, loop.lr, loop.weight_decay, groups_cfg)
    if loop.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=loop.lr, momentum=loop.momentum)
    cls = torch.optim.AdamW if loop.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=loop.lr)


def autocast_dtype(name: str) -> torch.dtype | None:
    """``train.amp`` (``none``/``bf16``/``fp16``) as the autocast dtype, or ``None``."""
    import torch

    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def build_ema(model: nn.Module, decay: float | None) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights and buffers, or ``None`` without a decay."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
