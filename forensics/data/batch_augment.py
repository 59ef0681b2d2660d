"""The training augmentations on whole batches, on the training device (``data.augment.device: gpu``).

With ``device: cpu`` (the default) every loader worker decodes a crop *and* augments it
(:func:`forensics.data.transforms.build_transform`), a third to a half of a PNG decode
of CPU a crop with the defaults. With ``device: gpu`` the workers only decode (and resize), and
:class:`BatchAugment` applies the same augmentations to the uint8 batch after it reached the
device, in the batch preparer, so a GPU node needs fewer loader cores per GPU. On a CPU-only
run "gpu" simply means "on the batch, in the training process".

Both paths take each crop's decisions and parameters from
:func:`forensics.data.augment.decide`, seeded by ``(seed, epoch, index)`` (the ``seed`` that
:class:`forensics.data.datasets.CropDataset` puts in the sample), so the same crop gets the
same augmentation whichever rank, batch or resumed run it lands in. The pixel work here is
done by ``torchvision.transforms.v2.functional`` kernels (they run on CUDA tensors); for a
given seed they give the CPU path's pixels for flips, colour, noise, JPEG and cut-out, and
differ by the kernel for blur (a level at most) and the down-then-up resize (antialiased
bilinear here, area averaging on the CPU path).

Cheap, frequent ops (flips) are vectorised over the batch; the others touch only the crops
that drew them (30% or fewer of a batch with the defaults).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forensics.data.augment import BRIGHTNESS, CONTRAST, SLOTS, TO_UINT8, Decisions, decide, draw_seed, noise

if TYPE_CHECKING:
    import torch

    from forensics.data.augment import AugmentConfig

__all__ = ["SLOTS", "BatchAugment", "batch_augment"]


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

        # torchvision.io warns on every JPEG call that it will move to TorchCodec (torchvision
        # 0.29); the functions themselves are current, so we say it once here.
        warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                                category=DeprecationWarning)
        self.a, self.side = augment, int(side)
        self.interpolation = v2.InterpolationMode.BICUBIC if interpolation == "bicubic" \
            else v2.InterpolationMode.BILINEAR

    def __call__(self, images: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        """``images``: uint8 ``N x C x H x W`` on any device; ``seeds``: one int per crop (the
        sample's ``seed``)."""
        import torch

        seeds = [draw_seed(s) for s in seeds.tolist()]  # what the CPU path draws for these samples
        decisions = [decide(self.a, self.side, s) for s in seeds]
        flip = torch.tensor([d.flip for d in decisions], device=images.device).view(-1, 1, 1, 1)
        images = torch.where(flip, images.flip(-1), images)
        out = list(images.unbind(0))
        for i, (d, seed) in enumerate(zip(decisions, seeds)):
            out[i] = self._one(out[i], d, seed)
        return torch.stack(out)

    def _one(self, image: torch.Tensor, d: Decisions, seed: int) -> torch.Tensor:
        """The per-crop augmentations in the CPU path's order (flip already done)."""
        import torch
        from torchvision.transforms.v2 import functional as F

        if d.size is not None:
            image = F.resize(image, [d.size, d.size], interpolation=F.InterpolationMode.BILINEAR, antialias=True)
            image = F.resize(image, [self.side, self.side], interpolation=self.interpolation, antialias=True)
        if d.color is not None:
            image = self._color(image, d)
        if d.sigma is not None:
            image = F.gaussian_blur(image, [5, 5], [d.sigma, d.sigma])
        if d.noise:
            field = noise(seed, (*image.shape[1:], image.shape[0]), self.a.noise_sigma)
            noisy = image.float() + field.permute(2, 0, 1).to(image.device)
            image = noisy.clamp_(0, 255).mul_(TO_UINT8).to(torch.uint8)
        if d.quality is not None:
            image = self._jpeg(image, d.quality)
        if d.erase is not None:
            top, left, h, w = d.erase
            image = F.erase(image, top, left, h, w, torch.zeros((), dtype=image.dtype, device=image.device))
        return image

    @staticmethod
    def _color(image: torch.Tensor, d: Decisions) -> torch.Tensor:
        """The drawn colour steps with torchvision's kernels (hue last, when configured)."""
        from torchvision.transforms.v2 import functional as F

        kernels = {BRIGHTNESS: F.adjust_brightness, CONTRAST: F.adjust_contrast}
        for op, factor in d.color:
            image = kernels.get(op, F.adjust_saturation)(image, factor)
        return F.adjust_hue(image, d.hue) if d.hue else image

    @staticmethod
    def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
        """JPEG re-compression: nvJPEG for a CUDA tensor, libjpeg on the CPU."""
        from torchvision.io import decode_jpeg, encode_jpeg

        encoded = encode_jpeg(image.contiguous(), quality=quality)
        return decode_jpeg(encoded.cpu(), device=image.device)


def batch_augment(data_cfg: dict, augment: AugmentConfig | None) -> BatchAugment | None:
    """The batch augmentation of ``data.augment`` when its ``device`` is ``gpu``, else ``None``."""
    if augment is None or augment.device != "gpu":
        return None
    return BatchAugment(augment, int(data_cfg["input_size"][-1]), data_cfg.get("interpolation", "bilinear"))
