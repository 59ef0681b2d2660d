"""Image transforms: per-crop augmentation on uint8 in the loader, normalisation on the device.

Two stages, as timm's ``PrefetchLoader`` does it:

1. :func:`build_transform` (in the DataLoader workers): uint8 ``C x H x W`` in, uint8 out at
   the model's input size, with the configured augmentations (torchvision.transforms.v2).
   Staying in uint8 keeps the workers cheap and sends 4x less data between processes.
2. :func:`batch_preparer` (in the training process, on the device): uint8 to float, minus mean,
   over std. Mean, std and input size come from the model's pretrained config
   (:func:`forensics.models.data_config`), never from constants, so Xception gets 299 and
   mean/std 0.5 while EfficientNet gets 224 and ImageNet statistics.

Augmentations (each applied with its own probability; 0 turns it off) are the ones
deepfake detectors rely on to survive real-world video: horizontal flips, JPEG
re-compression at a random quality, Gaussian blur, Gaussian noise, colour jitter, an
isotropic down-then-up resize (resolution loss) and cut-out. The defaults are light enough
for the loader to keep up with a GPU (see ``benchmarks/loader.py``).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from forensics.errors import ConfigError

if TYPE_CHECKING:  # torch and torchvision are imported where used: configs import this module
    import torch

log = logging.getLogger(__name__)


@dataclass
class AugmentConfig:
    """Training augmentations; every ``*_p`` is the probability of applying that one."""

    hflip_p: float = 0.5
    jpeg_p: float = 0.3
    jpeg_quality: list[int] = field(default_factory=lambda: [60, 100])
    blur_p: float = 0.02  # ~2 ms a crop when applied (a 5x5 convolution): rare by default
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 1.5])
    noise_p: float = 0.02  # ~2 ms a crop when applied (float round trip): rare by default
    noise_sigma: float = 0.02  # on the [0, 1] scale
    color_p: float = 0.3
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.0  # hue jitter costs 5x the rest of the colour jitter
    downscale_p: float = 0.1  # isotropic down-then-up resize
    downscale_min: float = 0.5  # smallest scale factor
    cutout_p: float = 0.1
    cutout_scale: list[float] = field(default_factory=lambda: [0.02, 0.15])
    # cpu: per crop in the loader workers; gpu: per batch on the training device, so the
    # workers only decode (forensics/data/batch_augment.py; same probabilities and ranges).
    device: str = "cpu"

    def validate(self) -> None:
        if self.device not in ("cpu", "gpu"):
            raise ConfigError(f"data.augment.device must be cpu or gpu, got {self.device!r}")
        for name, value in vars(self).items():
            if name.endswith("_p") and not 0.0 <= value <= 1.0:
                raise ConfigError(f"data.augment.{name} must be a probability in [0, 1], got {value}")
        if not (len(self.jpeg_quality) == 2 and 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100):
            raise ConfigError(f"data.augment.jpeg_quality must be [low, high] within 1..100, got {self.jpeg_quality}")
        if not 0.0 < self.downscale_min <= 1.0:
            raise ConfigError(f"data.augment.downscale_min must be in (0, 1], got {self.downscale_min}")


def _maybe(p: float, transform):
    from torchvision.transforms import v2

    if p <= 0:
        return []
    return [transform] if p >= 1 else [v2.RandomApply([transform], p=p)]


def build_transform(data_cfg: dict[str, Any], augment: AugmentConfig | None = None,
                    crop_size: int | None = None):
    """The per-crop transform: uint8 ``C x H x W`` crop in, uint8 at the model's input size out.

    Args:
        data_cfg: from :func:`forensics.models.data_config` (``input_size``, ``interpolation``).
        augment: training augmentations, ``None`` for evaluation (deterministic).
        crop_size: side of the crops on disk, when known; a size other than the model's input
            is resized (once per crop, announced in one line).
    """
    import torch
    from torchvision.transforms import v2

    channels, side = int(data_cfg["input_size"][0]), int(data_cfg["input_size"][-1])
    interpolation = v2.InterpolationMode.BICUBIC if data_cfg.get("interpolation") == "bicubic" \
        else v2.InterpolationMode.BILINEAR
    steps: list = []
    if crop_size is None or crop_size != side:
        if crop_size is not None:
            log.info("crops are %dx%d, the model expects %dx%d: resizing each crop", crop_size, crop_size, side, side)
        steps.append(v2.Resize((side, side), interpolation=interpolation, antialias=True))
    if augment is not None:
        a = augment
        steps += _maybe(a.hflip_p, v2.RandomHorizontalFlip(p=1.0))
        # Isotropic: both sides shrink by the same factor, then back up: detail is lost, shape kept.
        steps += _maybe(a.downscale_p, v2.Compose([
            v2.RandomResize(max(8, int(side * a.downscale_min)), side, antialias=True),
            v2.Resize((side, side), interpolation=interpolation, antialias=True)]))
        steps += _maybe(a.color_p, v2.ColorJitter(a.brightness, a.contrast, a.saturation, a.hue or None))
        steps += _maybe(a.blur_p, v2.GaussianBlur(kernel_size=5, sigma=tuple(a.blur_sigma)))
        # v2.GaussianNoise wants floats: round-trip through them.
        steps += _maybe(a.noise_p, v2.Compose([v2.ToDtype(torch.float32, scale=True),
                                               v2.GaussianNoise(sigma=a.noise_sigma),
                                               v2.ToDtype(torch.uint8, scale=True)]))
        # JPEG after the pixel-level changes: its block artefacts are what real uploads add last.
        # v2.JPEG encodes with torchvision.io, which warns on every call that it will move to
        # TorchCodec (torchvision 0.29); the transform itself is current, so we say it once here.
        warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                                category=DeprecationWarning)
        steps += _maybe(a.jpeg_p, v2.JPEG(quality=tuple(a.jpeg_quality)))
        steps += _maybe(a.cutout_p, v2.RandomErasing(p=1.0, scale=tuple(a.cutout_scale), value=0))
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
