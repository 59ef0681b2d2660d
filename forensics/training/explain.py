"""Figures that explain one video's verdict: when in the video, and where in the face.

``forensics predict --explain`` writes, per video, a score-over-time plot (the fake
probability of every scored frame) and a strip of the most and least fake frames, each crop
beside its Grad-CAM overlay (:mod:`forensics.training.gradcam`). When a W&B run is active in
the process, both go to it as well.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from forensics.atomic import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    return plt


def save_score_plot(scores: Mapping[int, float], path: str | os.PathLike, *, fps: float, threshold: float = 0.5,
                    video_score: float | None = None, title: str = "") -> None:
    """Fake probability of each scored frame against time, with the threshold and the video's score."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 2.6), dpi=100)
    frames = sorted(scores)
    seconds = [f / (fps or 25.0) for f in frames]
    values = [scores[f] for f in frames]
    ax.plot(seconds, values, marker="o", markersize=3, color="tab:red", label="frame")
    ax.axhline(threshold, color="grey", linestyle=":", label=f"threshold {threshold:g}")
    if video_score is not None:
        ax.axhline(video_score, color="black", linestyle="--", linewidth=1, label=f"video {video_score:.3f}")
    ax.set(xlabel="time (s)", ylabel="p(fake)", ylim=(-0.02, 1.02), title=title)
    ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def save_frame_strip(crops: Mapping[int, np.ndarray], cams: Mapping[int, np.ndarray], scores: Mapping[int, float],
                     path: str | os.PathLike, count: int = 4, title: str = "") -> None:
    """Two rows, the ``count`` most fake frames and the ``count`` least fake, each as crop | heat map."""
    from forensics.media.heatmap import overlay

    plt = _plt()
    order = sorted(crops, key=lambda f: -scores[f])
    k = max(1, min(count, (len(order) + 1) // 2))
    rows = [("most fake", order[:k]), ("least fake", order[::-1][:k])]
    fig, axes = plt.subplots(2, k, figsize=(2.6 * k, 3.4), dpi=100, squeeze=False)
    for r, (label, frames) in enumerate(rows):
        for c in range(k):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(frames):
                f = frames[c]
                ax.imshow(np.hstack([crops[f], overlay(crops[f], cams[f])]))
                ax.set_title(f"frame {f}: p(fake) {scores[f]:.2f}", fontsize=8,
                             color="tab:red" if scores[f] >= 0.5 else "tab:green")
        axes[r, 0].text(-0.04, 0.5, label, transform=axes[r, 0].transAxes, rotation=90, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def log_to_active_run(name: str, files: Mapping[str, str | os.PathLike], scores: Mapping[int, float],
                      fps: float) -> bool:
    """Log one video's figures (and its scores as a W&B line plot) to the W&B run active in
    this process, if any (``forensics predict`` opens none). Returns whether it logged."""
    wandb = sys.modules.get("wandb")  # never imported: no run can be active
    run = getattr(wandb, "run", None) if wandb is not None else None
    if run is None:
        return False
    table = wandb.Table(columns=["time_s", "p_fake"], data=[[f / (fps or 25.0), scores[f]] for f in sorted(scores)])
    payload = {f"predict/{name}/{key}": wandb.Image(str(Path(path))) for key, path in files.items()}
    payload[f"predict/{name}/score_over_time"] = wandb.plot.line(table, "time_s", "p_fake",
                                                                 title=f"{name}: p(fake) over time")
    run.log(payload)
    return True
