"""Per-image similarity of two batches of images in [0, 1]: L1, PSNR and SSIM.

Each function returns one value per image (first dimension = batch), so that evaluation can
gather them from every rank and average once. SSIM is Wang et al. (IEEE TIP 2004) with an
11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, averaged over the pixels whose
window lies inside the image and over channels: the same number as
``skimage.metrics.structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=0)``. It is written in torch so that
it also serves as a differentiable loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: PSNR of two identical images (instead of infinity).
MAX_PSNR = 100.0


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference per image."""
    return (x - y).abs().flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB (capped at :data:`MAX_PSNR`)."""
    mse = (x - y).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-30))).clamp(max=MAX_PSNR)


def _gaussian(size: int, sigma: float, device, dtype) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image (``N x C x H x W`` in, ``N`` out)."""
    c = x.shape[1]
    g = _gaussian(window, sigma, x.device, x.dtype)
    # Separable Gaussian: a row pass then a column pass, one depthwise kernel per channel.
    kx = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kx, groups=c), ky, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)
