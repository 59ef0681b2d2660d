"""Keypoint coordinates in pixels and in the model's normalised units (see :mod:`keypoints.task`)."""

from __future__ import annotations

import torch


def half_sides(batch: dict[str, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """``[W/2, H/2, W/2, H/2, ...]`` of the batch's images, shaped like one output row."""
    h, w = batch["image"].shape[-2:]
    return torch.tensor([w / 2, h / 2], device=like.device, dtype=like.dtype).repeat(like.shape[-1] // 2)


def to_unit(pixels: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates to the model's normalised ones (``half``: half the image side per coordinate)."""
    return pixels / half - 1


def to_pixels(unit: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """The model's normalised coordinates to pixels."""
    return (unit + 1) * half
