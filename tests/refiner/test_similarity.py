"""L1, PSNR and SSIM per image agree with scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from refiner.similarity import MAX_PSNR, l1, psnr, ssim


@pytest.fixture
def images():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 40, 48, dtype=torch.float64)
    return x, (x + 0.08 * torch.randn_like(x)).clamp(0, 1)


def test_psnr_and_l1_match_their_definitions(images):
    x, y = images
    expected = [peak_signal_noise_ratio(x[i].numpy(), y[i].numpy(), data_range=1) for i in range(3)]
    assert np.allclose(psnr(x, y).numpy(), expected)
    assert np.allclose(l1(x, y).numpy(), [(x[i] - y[i]).abs().mean().item() for i in range(3)])
    assert psnr(x, x).tolist() == [MAX_PSNR] * 3


def test_ssim_matches_scikit_image(images):
    x, y = images
    expected = [structural_similarity(x[i].numpy(), y[i].numpy(), gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=1, channel_axis=0) for i in range(3)]
    assert np.allclose(ssim(x, y).numpy(), expected, atol=1e-7)
    assert np.allclose(ssim(x, x).numpy(), 1.0)


def test_ssim_is_differentiable(images):
    x, y = images
    x = x.clone().requires_grad_(True)
    (1 - ssim(x, y)).mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
