"""Image transforms: per-crop augmentation on uint8 in the loader, normalisation on the device.

Two stages, as timm's ``PrefetchLoader`` does it:

1. :func:`build_transform` (in the DataLoader workers): uint8 ``C x H x W`` in, uint8 out at
   the model's input size, with the configured augmentations (one fused callable on OpenCV and
   numpy kernels, :mod:`forensics.data.augment`). Staying in uint8 keeps the workers cheap
   and sends 4x less data between processes.
2. :func:`batch_preparer` (in the training process, on the device): uint8 to float, minus mean,
   over std. Mean, std and input size come from the model's pretrained config
   (:func:`forensics.models.data_config`), never from constants, so Xception gets 299 and
   mean/std 0.5 while EfficientNet gets 224 and ImageNet statistics.

Augmentations (each applied with its own probability; 0 turns it off) are the ones
deepfake detectors rely on to survive real-world video: horizontal flips, JPEG
re-compression at a random quality, Gaussian blur, Gaussian noise, colour jitter, an
isotropic down-then-up resize (resolution loss) and cut-out. With the defaults they cost
a third to a half of a PNG decode per crop (``benchmarks/loader.py``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

# The config lives beside the augmentations; configs and callers import it from here too.
from forensics.data.augment import AugmentConfig, CropAugment, draw_seed

if TYPE_CHECKING:  # torch and torchvision are imported where used: configs import this module
    import torch

__all__ = ["AugmentConfig", "CropTransform", "batch_preparer", "build_transform", "normalize"]

log = logging.getLogger(__name__)


class CropTransform:
    """The training transform of :func:`build_transform`: the resize of a crop of another size,
    the fused augmentations (:class:`forensics.data.augment.CropAugment`), then grey for a
    one-channel model.

    Call it on a uint8 ``C x H x W`` crop, or :meth:`pair` on a crop and its ``1 x H x W`` mask
    (self-blended images): the mask follows the flip and the resizes, not the pixel steps.
    The crop's augmentation seed is one draw from ``torch``'s default generator, which
    :class:`forensics.data.datasets.CropDataset` seeds per ``(seed, epoch, index)``.
    """

    def __init__(self, augment: Any, resize: Any = None, grayscale: bool = False) -> None:
        self.augment, self.resize, self.grayscale = augment, resize, grayscale

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.pair(image, None)[0]

    def pair(self, image: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``image`` and ``mask`` (or ``None``) augmented together."""
        import numpy as np
        import torch
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as F

        if self.resize is not None:
            if mask is None:
                image = self.resize(image)
            else:
                image, mask = self.resize(image, tv_tensors.Mask(mask))
                mask = mask.as_subclass(torch.Tensor)
        seed = draw_seed()  # from the default generator, which the dataset seeds per sample
        # A decoded crop is a C x H x W view of H x W x C memory: this is that memory, no copy.
        # (numpy's views, not torch's: a torch call costs more than these small steps.)
        array = np.ascontiguousarray(image.numpy().transpose(1, 2, 0))
        plane = None if mask is None else np.ascontiguousarray(mask.numpy()[0])
        out, moved = self.augment.apply(array, seed, plane)
        if out is not array:
            image = torch.from_numpy(out.transpose(2, 0, 1))
        if moved is not plane:
            mask = torch.from_numpy(moved[None])
        if self.grayscale:
            image = F.rgb_to_grayscale(image, num_output_channels=1)
        return image, mask


def build_transform(data_cfg: dict[str, Any], augment: AugmentConfig | None = None,
                    crop_size: int | None = None):
    """The per-crop transform: uint8 ``C x H x W`` crop in, uint8 at the model's input size out.

    Args:
        data_cfg: from :func:`forensics.models.data_config` (``input_size``, ``interpolation``).
        augment: training augmentations (a :class:`CropTransform`), ``None`` for evaluation
            (deterministic: a ``torchvision.transforms.v2`` transform).
        crop_size: side of the crops on disk, when known; a size other than the model's input
            is resized (once per crop, announced in one line).
    """
    from torchvision.transforms import v2

    channels, side = int(data_cfg["input_size"][0]), int(data_cfg["input_size"][-1])
    interpolation = v2.InterpolationMode.BICUBIC if data_cfg.get("interpolation") == "bicubic" \
        else v2.InterpolationMode.BILINEAR
    resize = None
    if crop_size is None or crop_size != side:
        if crop_size is not None:
            log.info("crops are %dx%d, the model expects %dx%d: resizing each crop", crop_size, crop_size, side, side)
        resize = v2.Resize((side, side), interpolation=interpolation, antialias=True)
    if augment is not None:
        return CropTransform(CropAugment(augment, side, data_cfg.get("interpolation", "bilinear")), resize,
                             grayscale=channels == 1)
    steps = [] if resize is None else [resize]
    if channels == 1:
        steps.append(v2.Grayscale(num_output_channels=1))
    return v2.Compose(steps) if steps else v2.Identity()


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (or [0, 1] float) ``N x C x H x W`` images to normalised floats; ``mean``/``std`` shaped ``1 x C x 1 x 1``."""
    import torch

    if images.dtype == torch.uint8:
        images = images.float().div_(255.0)
    return (images - mean) / std


def batch_preparer(data_cfg: dict[str, Any], device: torch.device | str, keys: tuple[str, ...] = ("image",),
                   channels_last: bool = False, augment: Any = None):
    """A ``prepare(batch)`` for the engine: tensors to ``device``, uint8 images normalised there
    (and laid out NHWC when ``channels_last``, to match a model converted to it).

    ``augment``: a :class:`forensics.data.batch_augment.BatchAugment` applied to the uint8
    ``image`` batch on the device before normalising (the batch then carries ``seed``)."""
    import torch

    layout = torch.channels_last if channels_last else torch.contiguous_format
    mean = torch.tensor(data_cfg["mean"], dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data_cfg["std"], dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def prepare(batch: dict[str, Any]) -> dict[str, Any]:
        out = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
        if augment is not None:
            out["image"] = augment(out["image"], batch["seed"])
        for key in keys:
            out[key] = normalize(out[key], mean, std).contiguous(memory_format=layout)
        return out

    return prepare
