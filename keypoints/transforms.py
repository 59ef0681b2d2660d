"""Keypoint-aware transforms: the image and its keypoints move together.

Geometry is torchvision.transforms.v2's: a :class:`torchvision.tv_tensors.KeyPoints` passed
beside the image goes through the same resize, flip and affine map (rotation, shift, scale),
so no geometry is written here. What torchvision can't know is ours: after a horizontal flip
the subject's left eye is where the right eye was, so the keypoints are re-indexed by
:func:`keypoints.table.flip_permutation` (``left_*`` <-> ``right_*``).

Coordinates are pixel indices, as in the Kaggle data and torchvision: a flip maps ``x`` to
``W - 1 - x``. Keypoints that augmentation moves outside the image are kept (they are still
right, and the loss can use them); missing ones (NaN) stay NaN.

Like :mod:`forensics.data.transforms`, the transform works on uint8 ``C x H x W`` images in the
loader, at the model's input size; normalisation happens on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from forensics.errors import ConfigError

if TYPE_CHECKING:  # configs import this module: torch is imported where used
    import torch


@dataclass
class KeypointAugmentConfig:
    """Training augmentations of the keypoints task; every ``*_p`` is a probability (0 turns it off)."""

    hflip_p: float = 0.5  # mirror, swapping left and right keypoints
    affine_p: float = 0.8  # one random rotation + shift + scale
    degrees: float = 15.0  # rotation in [-degrees, degrees]
    translate: float = 0.08  # shift up to this fraction of the side, each axis
    scale: list[float] = field(default_factory=lambda: [0.9, 1.1])
    color_p: float = 0.5  # brightness and contrast jitter (grayscale-safe)
    brightness: float = 0.3
    contrast: float = 0.3

    def validate(self) -> None:
        for name, value in vars(self).items():
            if name.endswith("_p") and not 0.0 <= value <= 1.0:
                raise ConfigError(f"keypoints.augment.{name} must be a probability in [0, 1], got {value}")
        if not (len(self.scale) == 2 and 0 < self.scale[0] <= self.scale[1]):
            raise ConfigError(f"keypoints.augment.scale must be [low, high] with 0 < low <= high, got {self.scale}")
        if not 0 <= self.translate < 1 or self.degrees < 0:
            raise ConfigError("keypoints.augment: translate must be in [0, 1) and degrees >= 0")


class KeypointTransform:
    """``(image, points) -> (image, points)``: uint8 ``C x H x W`` and ``K x 2`` pixels in, the same at the model's input out.

    Args:
        data_cfg: from :func:`forensics.models.data_config` (``input_size``, ``interpolation``).
        names: the keypoint names (left/right pairs are swapped by a flip).
        augment: training augmentations; ``None`` for evaluation (only the resize).
    """

    def __init__(self, data_cfg: dict[str, Any], names: Sequence[str],
                 augment: KeypointAugmentConfig | None = None) -> None:
        import torch
        from torchvision.transforms import v2

        from keypoints.table import flip_permutation

        self.channels, self.side = int(data_cfg["input_size"][0]), int(data_cfg["input_size"][-1])
        self.interpolation = (v2.InterpolationMode.BICUBIC if data_cfg.get("interpolation") == "bicubic"
                              else v2.InterpolationMode.BILINEAR)
        self.hflip_p = augment.hflip_p if augment is not None else 0.0
        self.flip = torch.as_tensor(flip_permutation(names)) if self.hflip_p > 0 else None
        steps: list = []
        if augment is not None:
            a = augment
            if a.affine_p > 0:
                # Bilinear whatever the model's resize uses: torchvision's affine warp of a
                # tensor has no bicubic mode (timm's configs ask for bicubic).
                affine = v2.RandomAffine(degrees=a.degrees, translate=(a.translate, a.translate),
                                         scale=tuple(a.scale), interpolation=v2.InterpolationMode.BILINEAR)
                steps.append(affine if a.affine_p >= 1 else v2.RandomApply([affine], p=a.affine_p))
            if a.color_p > 0:
                color = v2.ColorJitter(brightness=a.brightness, contrast=a.contrast)
                steps.append(color if a.color_p >= 1 else v2.RandomApply([color], p=a.color_p))
        self.augment = v2.Compose(steps) if steps else None

    def __call__(self, image: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch
        from torchvision import tv_tensors
        from torchvision.transforms import v2
        from torchvision.transforms.v2 import functional as F

        if image.shape[0] == 3 and self.channels == 1:
            image = F.rgb_to_grayscale(image, num_output_channels=1)
        elif image.shape[0] == 1 and self.channels == 3:
            image = image.expand(3, -1, -1)
        image = tv_tensors.Image(image)
        kp = tv_tensors.KeyPoints(points.float(), canvas_size=tuple(image.shape[-2:]))
        if tuple(image.shape[-2:]) != (self.side, self.side):
            image, kp = v2.Resize((self.side, self.side), interpolation=self.interpolation, antialias=True)(image, kp)
        if self.flip is not None and torch.rand(()) < self.hflip_p:
            image, kp = F.horizontal_flip(image), F.horizontal_flip(kp)
            kp = tv_tensors.wrap(kp.as_subclass(torch.Tensor)[self.flip], like=kp)
        if self.augment is not None:
            image, kp = self.augment(image, kp)
        return image.as_subclass(torch.Tensor), kp.as_subclass(torch.Tensor)
