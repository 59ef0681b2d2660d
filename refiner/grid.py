"""Sample grids: one row per crop, columns input | refined | target | |refined - target|.

The difference column is multiplied by :data:`DIFF_GAIN` so that errors of a few grey
levels, which is what a good refiner leaves, are visible at all.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from forensics.atomic import atomic_path
from forensics.media.crops import write_png

DIFF_GAIN = 4.0
COLUMNS = ("input", "refined", "target", f"|refined - target| x{DIFF_GAIN:g}")


def make_grid(inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor, gap: int = 2) -> np.ndarray:
    """``N x 3 x H x W`` images in [0, 1] to one uint8 ``H' x W' x 3`` grid."""
    diff = ((outputs - targets).abs() * DIFF_GAIN).clamp(0, 1)
    columns = [inputs, outputs.clamp(0, 1), targets, diff]
    n, _, h, w = inputs.shape
    grid = np.full((n * (h + gap) - gap, 4 * (w + gap) - gap, 3), 255, np.uint8)
    for c, images in enumerate(columns):
        pixels = (images.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for r in range(n):
            grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = pixels[r]
    return grid


def save_grid(grid: np.ndarray, path: str | os.PathLike) -> None:
    """Write a grid as PNG, atomically."""
    with atomic_path(path) as tmp:
        write_png(tmp, grid)
