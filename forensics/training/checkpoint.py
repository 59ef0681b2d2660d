"""Checkpoints: plain dicts written atomically and read with ``torch.load(weights_only=True)``.

A training checkpoint holds::

    {"model": state_dict, "model_ema": state_dict | None,
     "optimizer": ..., "scheduler": ..., "scaler": ...,
     "epoch": epochs completed, "step": optimizer steps done in the current epoch (0 at an epoch boundary),
     "global_step": ..., "metric": {"name", "value", "best", "best_epoch", "bad_epochs"},
     "model_info": {"name", "task", "classes", "num_classes", "in_chans", "data_config"},
     "config": the resolved run config, "wandb_id": ...}

There are no RNG states to save: training draws its random numbers from generators seeded
by ``(seed, epoch, step)`` (dropout) and ``(seed, epoch, sample)`` (augmentations, frame
choice), so a resumed run, even one stopped mid-epoch, redraws exactly what an
uninterrupted run draws, whatever the number of data workers.

Only tensors and Python containers of numbers and strings go in, so ``weights_only=True``
(no arbitrary code run on load) reads every checkpoint we write. ``model_info`` is what
``forensics evaluate``/``predict`` rebuild the model and its transforms from.

Loading weights for evaluation is strict: ``module.`` (DistributedDataParallel) and
``_orig_mod.`` (``torch.compile``) prefixes are stripped, EMA weights are preferred when the
checkpoint has them, and a checkpoint of another architecture or task stops with one line
saying what differs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from forensics.atomic import atomic_path
from forensics.errors import ForensicsError

PREFIXES = ("module.", "_orig_mod.")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` atomically (a crash leaves the previous file intact)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``).

    Raises:
        ForensicsError: the file is missing, truncated, not a checkpoint, or holds objects
            that ``weights_only`` refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise ForensicsError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # a damaged file fails anywhere in unzipping or unpickling
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ForensicsError(f"{path}: not a readable checkpoint (corrupt or truncated?): {reason}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ForensicsError(f"{path}: not a forensics checkpoint (no 'model' entry)")
    return state


def strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ``module.`` / ``_orig_mod.`` prefixes left by DDP and ``torch.compile``."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def model_weights(state: dict[str, Any], prefer_ema: bool = True) -> dict[str, torch.Tensor]:
    """The model's state dict from a checkpoint (EMA weights when present and preferred)."""
    weights = state.get("model_ema") if prefer_ema and state.get("model_ema") else state["model"]
    return strip_prefixes(weights)


def check_compatible(state: dict[str, Any], expected: dict[str, Any], source: str) -> None:
    """Refuse a checkpoint whose architecture, task or classes differ from ``expected``."""
    info = state.get("model_info") or {}
    for key in ("name", "task", "num_classes", "classes", "in_chans"):
        if key in expected and key in info and expected[key] is not None and info[key] != expected[key]:
            raise ForensicsError(f"{source}: checkpoint is for {key} {info[key]!r}, but this run uses "
                                 f"{expected[key]!r}")


def load_weights(model: nn.Module, state: dict[str, Any], source: str = "checkpoint",
                 prefer_ema: bool = True) -> None:
    """Load a checkpoint's weights into ``model`` strictly, with a clear error on mismatch."""
    weights = model_weights(state, prefer_ema)
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    mismatched = [k for k in own if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            k = mismatched[0]
            parts.append(f"{len(mismatched)} tensor(s) of another shape (e.g. {k}: "
                         f"{tuple(weights[k].shape)} vs {tuple(own[k].shape)})")
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        name = (state.get("model_info") or {}).get("name", "?")
        raise ForensicsError(f"{source}: weights (architecture {name!r}) don't fit this model: " + "; ".join(parts))
    model.load_state_dict(weights)
