"""Which frames of a video are cropped (by preprocessing) or scored (by ``forensics predict``).

The default follows DeepfakeBench (Yan et al., "DeepfakeBench: A Comprehensive Benchmark of
Deepfake Detection", NeurIPS 2023 Datasets and Benchmarks): 32 frames evenly spaced over the
whole video. A fixed stride and every frame are the other two rules.

Short videos: with ``even``, a video with fewer frames than asked gives every frame it has
(never a frame twice), so its crops are fewer than asked. Preprocessing reports that
shortfall in the run summary (``coverage``); it never pads by repeating frames, which would
silently weight short videos more in training.
"""

from __future__ import annotations

import numpy as np

#: Sampling rules accepted by :func:`sample_indices`.
MODES = ("even", "stride", "all")


def sample_indices(num_frames: int, mode: str = "even", frames: int = 32, stride: int = 1) -> list[int]:
    """Frame indices to crop from a video of ``num_frames`` frames, increasing.

    Args:
        num_frames: frames in the video.
        mode: ``even`` (``frames`` evenly spaced, first and last included), ``stride``
            (every ``stride``-th frame from 0) or ``all``.
        frames: how many frames ``even`` takes.
        stride: the step of ``stride``.
    """
    if num_frames <= 0:
        return []
    if mode == "all":
        return list(range(num_frames))
    if mode == "stride":
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        return list(range(0, num_frames, stride))
    if mode == "even":
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        if num_frames <= frames:
            return list(range(num_frames))
        return [int(i) for i in np.round(np.linspace(0, num_frames - 1, frames)).astype(int)]
    raise ValueError(f"unknown sampling mode {mode!r} (expected one of {', '.join(MODES)})")
