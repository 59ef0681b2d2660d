"""The reconstruction task: how the one training engine (:mod:`forensics.training.engine`) trains the refiner.

The engine asks a task for ``loss``, ``predictions`` and ``metrics`` (see
:class:`forensics.training.tasks.Task`); the batch holds the normalised ``image`` (the input crop) and
``target`` (the crop the output should equal), and the model's output is a normalised image.

Loss: L1 by default, optionally plus ``ssim_weight * (1 - SSIM)``. L1 is the default because
what the refiner must get right is the pixel values: the manipulations it undoes are largely
colour and brightness shifts, to which SSIM is nearly blind (its luminance term barely moves
for a shift of a few levels, its structure terms not at all), while L1 penalises them in
proportion; L1 also costs nothing next to the network, whereas SSIM's five Gaussian filters
are a noticeable share of a CPU step. L1 rather than L2 because it does not over-weight the
few large errors at blending seams and gives sharper reconstructions (Zhao et al., "Loss
Functions for Image Restoration with Neural Networks", IEEE TCI 2017).

Metrics (per image, averaged over the split): L1, PSNR and SSIM of ``output`` vs target; for
pairs (``paired``) also of ``input`` vs target and the ``gain`` (output minus input, so a
positive PSNR gain means the refiner brought the fakes closer to their originals), overall and
per manipulation method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from refiner.similarity import l1, psnr, ssim

MEASURES = ("l1", "psnr", "ssim")


@dataclass
class ReconstructionTask:
    """Image-to-image regression on normalised images (``mean``/``std`` per channel)."""

    mean: list[float]
    std: list[float]
    l1_weight: float = 1.0
    ssim_weight: float = 0.0
    paired: bool = False  # inputs differ from targets: also measure the input, and the gain
    kind: str = "reconstruction"
    classes: list[str] = field(default_factory=list)

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images back to [0, 1] (not clamped)."""
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return x * std + mean

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.to_unit(outputs.float())
        target = self.to_unit(batch["target"].float())
        loss = self.l1_weight * (out - target).abs().mean()
        if self.ssim_weight:
            loss = loss + self.ssim_weight * (1 - ssim(out, target)).mean()
        return loss

    def predictions(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        target = self.to_unit(batch["target"].float())
        images = {"output": self.to_unit(outputs.float()).clamp(0, 1)}
        if self.paired:
            images["input"] = self.to_unit(batch["image"].float())
        out = {}
        for name, image in images.items():
            out[f"{name}_l1"] = l1(image, target)
            out[f"{name}_psnr"] = psnr(image, target)
            out[f"{name}_ssim"] = ssim(image, target)
        return out

    def _summary(self, gathered: dict[str, np.ndarray], rows: np.ndarray | slice) -> dict[str, Any]:
        report: dict[str, Any] = {}
        for name in ("output", "input") if self.paired else ("output",):
            report[name] = {m: float(np.mean(gathered[f"{name}_{m}"][rows])) for m in MEASURES}
        if self.paired:
            report["gain"] = {m: report["output"][m] - report["input"][m] for m in ("psnr", "ssim")}
            report["gain"]["l1"] = report["input"]["l1"] - report["output"]["l1"]  # positive = better
        return report

    def metrics(self, gathered: dict[str, np.ndarray], meta: pd.DataFrame | None) -> dict[str, Any]:
        n = len(gathered["index"])
        if n == 0:
            return {"n": 0, "note": "no samples"}
        report = {"n": n, **self._summary(gathered, slice(None))}
        if self.paired and meta is not None and "method" in meta.columns:
            methods = meta["method"].to_numpy()[gathered["index"]]
            if len(set(methods)) > 1:
                report["per_method"] = {m: {"n": int((methods == m).sum()),
                                            **self._summary(gathered, methods == m)}
                                        for m in sorted(set(methods))}
        return report
