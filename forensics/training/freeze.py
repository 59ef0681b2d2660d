"""Freezing and per-group learning rates, the two ways the field fine-tunes a backbone.

* ``requires_grad=False`` on chosen parts: the head alone for the first K epochs, then
  everything (FaceForensics++: 3 epochs head-only, then the whole network), or every
  parameter before a named layer (``freeze_until="blocks.3"``). No gradient is computed for
  them, and their batch-norm layers are kept in eval mode so that their running statistics
  don't drift either: a frozen backbone really is unchanged.
* Parameter groups handed to the optimizer: each group matches parameter names by prefix
  and gets its own learning rate; a group with ``lr: 0`` is not handed to the optimizer at
  all.

The head is whatever ``model.get_classifier()`` returns (timm's head contract).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn as nn

from forensics.errors import ConfigError

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def head_parameter_names(model: nn.Module) -> set[str]:
    """Names of the classifier's parameters, as in ``model.named_parameters()``."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, nn.Module):
        raise ConfigError(f"{type(model).__name__} has no get_classifier(): can't train the head alone")
    ids = {id(p) for p in head.parameters()}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def set_trainable(model: nn.Module, head_only: bool = False, freeze_until: str | None = None) -> int:
    """Set ``requires_grad``: everything, the head only, or all parameters after ``freeze_until``.

    Returns:
        The number of trainable parameters.
    """
    names = [name for name, _ in model.named_parameters()]
    if head_only:
        trainable = head_parameter_names(model)
    elif freeze_until:
        starts = [i for i, n in enumerate(names) if n == freeze_until or n.startswith(freeze_until + ".")]
        if not starts:
            raise ConfigError(f"freeze.until: no parameter named '{freeze_until}' (e.g. {names[len(names) // 2]})")
        trainable = set(names[starts[0]:])
    else:
        trainable = set(names)
    count = 0
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable)
        count += p.numel() if name in trainable else 0
    return count


def train_mode(model: nn.Module) -> None:
    """``model.train()``, except normalisation layers whose parameters are all frozen stay in eval."""
    model.train()
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if isinstance(module, _NORMS) and params and not any(p.requires_grad for p in params):
            module.eval()


def param_groups(model: nn.Module, base_lr: float, weight_decay: float,
                 groups: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Optimizer parameter groups: one per ``groups`` entry (``prefix``, ``lr``), the rest at ``base_lr``.

    A parameter joins the first group whose prefix matches its name (``head`` names the
    classifier). Biases and normalisation weights get no weight decay. Groups with ``lr == 0``
    are left out of the optimizer.
    """
    head = head_parameter_names(model) if any(g.prefix == "head" for g in groups) else set()
    buckets: dict[tuple[float, bool], list] = {}
    for name, p in model.named_parameters():
        lr = base_lr
        for g in groups:
            if (g.prefix == "head" and name in head) or name == g.prefix or name.startswith(g.prefix + "."):
                lr = g.lr
                break
        if lr == 0:
            continue
        decay = p.ndim > 1  # no weight decay on biases and norm scales
        buckets.setdefault((lr, decay), []).append(p)
    return [{"params": ps, "lr": lr, "weight_decay": weight_decay if decay else 0.0}
            for (lr, decay), ps in buckets.items()]
