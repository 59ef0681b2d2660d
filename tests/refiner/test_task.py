"""The reconstruction task: loss, per-image predictions and the metrics of input, output and gain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from refiner.task import ReconstructionTask

MEAN, STD = [0.5] * 3, [0.5] * 3


def normalised(x: torch.Tensor) -> torch.Tensor:
    return (x - 0.5) / 0.5


def test_loss_is_l1_in_pixel_units_plus_optional_ssim():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 16, 16)
    output = (target + 0.1).clamp(0, 1)
    batch = {"image": normalised(target), "target": normalised(target)}
    l1 = (output - target).abs().mean()
    assert torch.isclose(ReconstructionTask(MEAN, STD).loss(normalised(output), batch), l1)
    with_ssim = ReconstructionTask(MEAN, STD, ssim_weight=0.5).loss(normalised(output), batch)
    assert with_ssim > l1


def test_paired_metrics_report_input_output_gain_and_methods():
    task = ReconstructionTask(MEAN, STD, paired=True)
    torch.manual_seed(0)
    target = torch.rand(4, 3, 16, 16)
    inputs = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    outputs = (target + 0.02 * torch.randn_like(target)).clamp(0, 1)
    batch = {"image": normalised(inputs), "target": normalised(target), "index": torch.arange(4)}
    predictions = task.predictions(normalised(outputs), batch)
    gathered = {k: v.numpy() for k, v in predictions.items()} | {"index": np.arange(4)}
    meta = pd.DataFrame({"method": ["A", "A", "B", "B"]})
    metrics = task.metrics(gathered, meta)
    assert metrics["n"] == 4
    assert metrics["gain"]["psnr"] > 10 and metrics["gain"]["l1"] > 0 and metrics["gain"]["ssim"] > 0
    assert np.isclose(metrics["gain"]["psnr"], metrics["output"]["psnr"] - metrics["input"]["psnr"])
    assert set(metrics["per_method"]) == {"A", "B"} and metrics["per_method"]["A"]["n"] == 2
    unpaired = ReconstructionTask(MEAN, STD).metrics(
        {k: v for k, v in gathered.items() if not k.startswith("input")}, meta)
    assert set(unpaired) == {"n", "output"}
