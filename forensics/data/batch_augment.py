"""The training augmentations on whole batches, on the training device (``data.augment.device: gpu``).

With ``device: cpu`` (the default) every loader worker decodes a crop *and* augments it
(:func:`forensics.data.transforms.build_transform`), about 0.5 ms of CPU a crop with the
defaults. With ``device: gpu`` the workers only decode (and resize), and
:class:`BatchAugment` applies the same augmentations with the same probabilities and
parameter ranges to the uint8 batch after it reached the device, in the batch preparer,
so a GPU node needs fewer loader cores per GPU. On a CPU-only run "gpu" simply means "on
the batch, in the training process".

The pixel work is done by the same ``torchvision.transforms.v2.functional`` kernels as the
CPU path (they run on CUDA tensors); only the random draws differ. Each crop's draws come
from its own generator seeded by ``(seed, epoch, index)`` (the ``seed`` that
:class:`forensics.data.datasets.CropDataset` puts in the sample), so the same crop gets the
same augmentation whichever rank, batch or resumed run it lands in, as on the CPU path.

Cheap, frequent ops (flips) are vectorised over the batch; the others touch only the crops
that drew them (30% or fewer of a batch with the defaults).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from forensics.data.transforms import AugmentConfig

#: Uniform draws per crop, one slot per decision, so a crop's draws don't depend on which
#: augmentations it got (see :meth:`BatchAugment.draws`).
SLOTS = 17


class BatchAugment:
    """Apply :class:`~forensics.data.transforms.AugmentConfig`'s augmentations to a uint8 batch.

    Args:
        augment: the probabilities and ranges (``data.augment``).
        side: the model's input side (crops arrive resized to it).
        interpolation: ``bilinear`` or ``bicubic`` (the model's), for the down-then-up resize.
    """

    def __init__(self, augment: AugmentConfig, side: int, interpolation: str = "bilinear") -> None:
        import warnings

        from torchvision.transforms import v2

        # torchvision.io warns on every JPEG call that it moves to TorchCodec; said once in transforms.py.
        warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                                category=DeprecationWarning)
        self.a, self.side = augment, int(side)
        self.interpolation = v2.InterpolationMode.BICUBIC if interpolation == "bicubic" \
            else v2.InterpolationMode.BILINEAR

    def draws(self, seed: int) -> tuple[torch.Tensor, torch.Generator]:
        """The crop's :data:`SLOTS` uniform draws and its generator (for noise and cut-out)."""
        import torch

        g = torch.Generator().manual_seed(int(seed) & (2**63 - 1))
        return torch.rand(SLOTS, generator=g, dtype=torch.float64), g

    def __call__(self, images: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        """``images``: uint8 ``N x C x H x W`` on any device; ``seeds``: one int per crop."""
        import torch

        a = self.a
        drawn = [self.draws(s) for s in seeds.tolist()]
        u = torch.stack([d[0] for d in drawn])
        flip = (u[:, 0] < a.hflip_p).to(images.device).view(-1, 1, 1, 1)
        images = torch.where(flip, images.flip(-1), images)
        out = list(images.unbind(0))
        for i, (row, g) in enumerate(drawn):
            out[i] = self._one(out[i], row.tolist(), g)
        return torch.stack(out)

    def _one(self, image: torch.Tensor, u: list[float], g: torch.Generator) -> torch.Tensor:
        """The per-crop augmentations in the CPU path's order (flip already done)."""
        from torchvision.transforms.v2 import functional as F

        a, side = self.a, self.side
        if u[1] < a.downscale_p:
            low = max(8, int(side * a.downscale_min))
            size = low + min(int(u[2] * (side - low)), side - low - 1) if side > low else side
            image = F.resize(image, [size, size], interpolation=F.InterpolationMode.BILINEAR, antialias=True)
            image = F.resize(image, [side, side], interpolation=self.interpolation, antialias=True)
        if u[3] < a.color_p:
            image = self._color(image, u[4:8], u[8:11])
        if u[11] < a.blur_p:
            sigma = a.blur_sigma[0] + u[12] * (a.blur_sigma[1] - a.blur_sigma[0])
            image = F.gaussian_blur(image, [5, 5], [sigma, sigma])
        if u[13] < a.noise_p:
            image = self._noise(image, g)
        if u[14] < a.jpeg_p:
            low, high = a.jpeg_quality
            image = self._jpeg(image, low + min(int(u[15] * (high - low + 1)), high - low))
        if u[16] < a.cutout_p:
            image = self._cutout(image, g)
        return image

    def _color(self, image: torch.Tensor, factors: list[float], order: list[float]) -> torch.Tensor:
        """Brightness, contrast, saturation (and hue when configured) in a random order, each
        factor uniform in ``[1 - x, 1 + x]`` as ``v2.ColorJitter`` draws them."""
        from torchvision.transforms.v2 import functional as F

        a = self.a
        ops = [(F.adjust_brightness, a.brightness), (F.adjust_contrast, a.contrast),
               (F.adjust_saturation, a.saturation)]
        for k in sorted(range(3), key=lambda k: order[k]):
            fn, x = ops[k]
            if x > 0:
                low = max(0.0, 1.0 - x)
                image = fn(image, low + factors[k] * (1.0 + x - low))
        if a.hue:
            image = F.adjust_hue(image, (2 * factors[3] - 1) * a.hue)
        return image

    def _noise(self, image: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Gaussian noise of ``noise_sigma`` on the [0, 1] scale, clipped, back to uint8."""
        import torch
        from torchvision.transforms.v2 import functional as F

        noisy = F.to_dtype(image, torch.float32, scale=True)
        noisy = noisy + self.a.noise_sigma * torch.randn(noisy.shape, generator=g).to(noisy.device)
        return F.to_dtype(noisy.clamp_(0, 1), torch.uint8, scale=True)

    @staticmethod
    def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
        """JPEG re-compression: nvJPEG for a CUDA tensor, libjpeg on the CPU."""
        from torchvision.io import decode_jpeg, encode_jpeg

        encoded = encode_jpeg(image.contiguous(), quality=quality)
        return decode_jpeg(encoded.cpu(), device=image.device)

    def _cutout(self, image: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Erase a rectangle to 0, drawn as ``v2.RandomErasing`` draws it (area fraction in
        ``cutout_scale``, aspect ratio log-uniform in [0.3, 3.3], ten tries)."""
        import torch
        from torchvision.transforms.v2 import functional as F

        _, height, width = image.shape
        low, high = self.a.cutout_scale
        for _ in range(10):
            r = torch.rand(4, generator=g, dtype=torch.float64).tolist()
            area = height * width * (low + r[0] * (high - low))
            ratio = math.exp(math.log(0.3) + r[1] * (math.log(3.3) - math.log(0.3)))
            h, w = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if h < height and w < width:
                i, j = int(r[2] * (height - h + 1)), int(r[3] * (width - w + 1))
                return F.erase(image, min(i, height - h), min(j, width - w), h, w,
                               torch.zeros((), dtype=image.dtype, device=image.device))
        return image


def batch_augment(data_cfg: dict, augment: AugmentConfig | None) -> BatchAugment | None:
    """The batch augmentation of ``data.augment`` when its ``device`` is ``gpu``, else ``None``."""
    if augment is None or augment.device != "gpu":
        return None
    return BatchAugment(augment, int(data_cfg["input_size"][-1]), data_cfg.get("interpolation", "bilinear"))
