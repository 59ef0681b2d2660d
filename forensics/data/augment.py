"""The training augmentations of one crop: what to apply, decided once, and the loader's CPU kernels.

Two paths apply :class:`AugmentConfig`'s augmentations (``data.augment``): the loader
workers, per crop (``data.augment.device: cpu``, :class:`CropAugment` here), and the training
process, per batch on the device (``gpu``, :mod:`forensics.data.batch_augment`). Both take the
crop's decisions from :func:`decide`, so for the same seed they flip, resize, jitter, blur,
add noise, re-compress and erase alike, with the same parameters; only the pixel kernels
differ where a device needs its own (torchvision's on CUDA tensors, OpenCV/numpy here).

:class:`CropAugment` is the fused CPU path: it works on the ``H x W x C`` uint8 array under the
crop's tensor (the decoded PNG's own layout: no copy), applies only the steps the crop drew, and
uses kernels that cost a fraction of torchvision's ``v2`` transforms on one small image (per
224x224 crop, one core, loaded machine: JPEG via OpenCV ~0.7 ms vs ~1.3 for the same bytes,
colour jitter ~0.55 vs ~2.2, down-then-up ~0.6 vs ~1.2, blur ~0.2 vs ~2.3, no per-step
``RandomApply`` overhead; ``benchmarks/loader.py`` measures the whole). The decisions come
from a plain-Python SplitMix64 stream (:class:`Uniforms`), not a torch generator: a torch call
costs more than most steps here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from forensics.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where used: configs import this module
    import torch


@dataclass
class AugmentConfig:
    """Training augmentations; every ``*_p`` is the probability of applying that one."""

    hflip_p: float = 0.5
    jpeg_p: float = 0.3
    jpeg_quality: list[int] = field(default_factory=lambda: [60, 100])
    # Costs: one 224x224 crop, one core, when the step applies (loader path, loaded machine):
    # flip ~0.03 ms, JPEG ~0.7, colour ~0.55, down-then-up ~0.6, blur ~0.2, noise ~1.2, cut-out ~0.04.
    blur_p: float = 0.02
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 1.5])
    noise_p: float = 0.02  # a normal draw per value: the costliest step, rare by default
    noise_sigma: float = 0.02  # on the [0, 1] scale
    color_p: float = 0.3
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.0  # hue jitter (torchvision's kernel) costs ~14x the rest of the colour jitter
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


#: Uniform draws per crop, one slot per decision, so a crop's draws don't depend on which
#: augmentations it got (see :func:`decide`).
SLOTS = 17

#: ITU-R 601 luma weights, as torchvision's ``rgb_to_grayscale`` uses them.
LUMA = (0.2989, 0.587, 0.114)

BRIGHTNESS, CONTRAST, SATURATION = 0, 1, 2


@dataclass(frozen=True)
class Decisions:
    """What one crop gets; ``None`` (or ``False``) where it doesn't get that augmentation.

    Attributes:
        flip: horizontal flip.
        size: side of the intermediate image of the down-then-up resize.
        color: ``(op, factor)`` pairs in the order applied (:data:`BRIGHTNESS`,
            :data:`CONTRAST`, :data:`SATURATION`), as ``v2.ColorJitter`` draws them.
        hue: hue shift in ``[-hue, hue]`` (applied after the other three); 0 for none.
        sigma: Gaussian blur sigma (5x5 kernel).
        noise: Gaussian noise (drawn by :func:`noise` from the crop's seed).
        quality: JPEG quality.
        erase: ``(top, left, height, width)`` of the cut-out rectangle.
    """

    flip: bool = False
    size: int | None = None
    color: tuple[tuple[int, float], ...] | None = None
    hue: float = 0.0
    sigma: float | None = None
    noise: bool = False
    quality: int | None = None
    erase: tuple[int, int, int, int] | None = None


def draw_seed(sample_seed: int | None = None) -> int:
    """A crop's augmentation seed: the first draw of torch's default generator, or of a
    generator seeded by ``sample_seed``.

    :class:`forensics.data.datasets.CropDataset` seeds the default generator with the sample's
    ``(seed, epoch, index)`` seed before the loader's transform draws from it, and puts the same
    seed in the sample for the batch path: both paths then draw the same augmentation seed."""
    import torch

    g = None if sample_seed is None else torch.Generator().manual_seed(int(sample_seed) & (2**63 - 1))
    return int(torch.randint(0, 2**63 - 1, (), generator=g))


def decide(a: AugmentConfig, side: int, seed: int) -> Decisions:
    """The augmentations of the crop of ``seed`` (a ``side`` x ``side`` image), with their parameters.

    Each decision reads its own slots of :data:`SLOTS` uniform draws from a stream seeded by
    ``seed``; the cut-out rectangle, which may need several tries, draws from the same stream
    after them.
    """
    stream = Uniforms(seed)
    u = [stream() for _ in range(SLOTS)]
    size = sigma = quality = erase = color = None
    if u[1] < a.downscale_p:
        # v2.RandomResize(low, side)'s draw: an integer side in [low, side).
        low = max(8, int(side * a.downscale_min))
        size = low + min(int(u[2] * (side - low)), side - low - 1) if side > low else side
    if u[3] < a.color_p:
        color = _color_steps(a, u[4:7], u[8:11])
    if u[11] < a.blur_p:
        sigma = a.blur_sigma[0] + u[12] * (a.blur_sigma[1] - a.blur_sigma[0])
    if u[14] < a.jpeg_p:
        low, high = a.jpeg_quality
        quality = low + min(int(u[15] * (high - low + 1)), high - low)
    if u[16] < a.cutout_p:
        erase = _erase_box(side, side, a.cutout_scale, stream)
    hue = (2 * u[7] - 1) * a.hue if color is not None and a.hue else 0.0
    return Decisions(flip=u[0] < a.hflip_p, size=size, color=color, hue=hue, sigma=sigma,
                     noise=u[13] < a.noise_p, quality=quality, erase=erase)


class Uniforms:
    """Uniform floats in [0, 1) from a 64-bit seed: SplitMix64 (Steele, Lea and Flood, "Fast
    splittable pseudorandom number generators", OOPSLA 2014), the generator Java's
    ``SplittableRandom`` uses and others seed from. In plain Python: a crop's twenty-odd draws
    cost less than setting up one torch generator."""

    MASK = 2**64 - 1

    def __init__(self, seed: int) -> None:
        self.state = int(seed) & self.MASK

    def __call__(self) -> float:
        self.state = (self.state + 0x9E3779B97F4A7C15) & self.MASK
        z = ((self.state ^ (self.state >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        return ((z ^ (z >> 31)) >> 11) * 2.0**-53  # the top 53 bits: a double's mantissa


def _color_steps(a: AugmentConfig, factors: list[float], order: list[float]) -> tuple[tuple[int, float], ...]:
    """Brightness, contrast, saturation in a random order, each factor uniform in
    ``[max(0, 1 - x), 1 + x]`` as ``v2.ColorJitter`` draws them; a zero range is skipped."""
    ranges = (a.brightness, a.contrast, a.saturation)
    steps = []
    for k in sorted(range(3), key=lambda k: order[k]):
        if ranges[k] > 0:
            low = max(0.0, 1.0 - ranges[k])
            steps.append((k, low + factors[k] * (1.0 + ranges[k] - low)))
    return tuple(steps)


def _erase_box(height: int, width: int, scale: list[float], stream: Uniforms) -> tuple[int, int, int, int] | None:
    """A rectangle drawn as ``v2.RandomErasing`` draws it: area fraction uniform in ``scale``,
    aspect ratio log-uniform in [0.3, 3.3], ten tries; ``None`` if none fits."""
    low, high = scale
    for _ in range(10):
        r = [stream() for _ in range(4)]
        area = height * width * (low + r[0] * (high - low))
        ratio = math.exp(math.log(0.3) + r[1] * (math.log(3.3) - math.log(0.3)))
        h, w = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
        if h < height and w < width:
            i, j = int(r[2] * (height - h + 1)), int(r[3] * (width - w + 1))
            return min(i, height - h), min(j, width - w), h, w
    return None


def noise(seed: int, shape: tuple[int, ...], sigma: float) -> torch.Tensor:
    """The crop's Gaussian noise on the 0..255 scale (``sigma`` on the [0, 1] scale), float32 on
    the CPU, from a torch generator seeded by the crop's seed (``randn``: twice as fast as
    numpy's normal here); the batch path moves it to its device."""
    import torch

    g = torch.Generator().manual_seed(int(seed) & (2**63 - 1))
    return torch.randn(shape, generator=g).mul_(255.0 * sigma)


#: Float to uint8 as ``torchvision``'s ``to_dtype(..., scale=True)`` does it: times
#: ``(255 + 1 - 1e-3) / 255`` on the 0..255 scale, then truncated.
TO_UINT8 = (256.0 - 1e-3) / 255.0


class CropAugment:
    """The augmentations of one crop on the CPU (the loader's path), with OpenCV and numpy.

    Call :meth:`apply` on an ``H x W x 3`` uint8 array (and optionally its ``H x W`` mask, which
    follows the flip and the resize). Steps run in the order of the batch path: flip,
    down-then-up resize, colour, blur, noise, JPEG, cut-out.

    Args:
        augment: the probabilities and ranges (``data.augment``).
        side: the crop's side (the model's input side).
        interpolation: ``bilinear`` or ``bicubic`` (the model's), for the resize back up.
    """

    def __init__(self, augment: AugmentConfig, side: int, interpolation: str = "bilinear") -> None:
        import cv2

        self.a, self.side = augment, int(side)
        self.up = cv2.INTER_CUBIC if interpolation == "bicubic" else cv2.INTER_LINEAR

    def apply(self, image: np.ndarray, seed: int, mask: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """``image`` (and ``mask``) as augmented for ``seed``; the input itself when nothing applies."""
        import cv2

        d, source = decide(self.a, self.side, seed), image
        if d.flip:
            image = cv2.flip(image, 1)
            mask = None if mask is None else cv2.flip(mask, 1)
        if d.size is not None:
            image, mask = self._resize(image, mask, d.size)
        if d.color is not None:
            image = color_jitter(image, d.color, d.hue)
        if d.sigma is not None:
            image = cv2.GaussianBlur(image, (5, 5), d.sigma, borderType=cv2.BORDER_REFLECT_101)
        if d.noise:
            noisy = image.astype(np.float32) + noise(seed, image.shape, self.a.noise_sigma).numpy()
            image = (np.clip(noisy, 0, 255, out=noisy) * np.float32(TO_UINT8)).astype(np.uint8)
        if d.quality is not None:
            image = jpeg(image, d.quality)
        if d.erase is not None:
            top, left, h, w = d.erase
            image = image.copy() if image is source else image  # never write into the caller's crop
            image[top:top + h, left:left + w] = 0
        return image, mask

    def _resize(self, image: np.ndarray, mask: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Down to ``size`` (area averaging: detail is lost as a camera at that size loses it) and
        back up with the model's interpolation; a mask goes nearest both ways, as a ``tv_tensors.Mask``."""
        import cv2

        side = (image.shape[1], image.shape[0])
        small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        image = cv2.resize(small, side, interpolation=self.up)
        if mask is not None:
            mask = cv2.resize(cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST), side,
                              interpolation=cv2.INTER_NEAREST)
        return image, mask


def color_jitter(image: np.ndarray, steps: tuple[tuple[int, float], ...], hue: float = 0.0) -> np.ndarray:
    """Brightness, contrast and saturation on an ``H x W x 3`` uint8 image, with torchvision's
    uint8 semantics (``F.adjust_*``: each step in float32, clamped, truncated to uint8).

    Brightness and contrast map each level to a level: they only compose a 256-entry table
    (contrast blends with the mean of the floored ITU-R 601 grey image, read through the table
    so far). Saturation blends each pixel with its own grey level, so it reads the pixels
    through the table into float32 once and writes uint8 once. A table still pending at the
    end is one lookup. Hue, when configured, is torchvision's kernel (costly, off by default).
    """
    import cv2

    table = np.arange(256, dtype=np.float32)  # level -> level so far (whole numbers, as float32)
    pending = False
    for op, factor in steps:
        f, rest = np.float32(factor), np.float32(1.0 - factor)
        if op == BRIGHTNESS:
            table = _truncate(table * f)
        elif op == CONTRAST:
            mean = np.float32(cv2.mean(_grey(_read(image, table, pending)))[0])
            table = _truncate(table * f + mean * rest)
        else:
            pixels = _read(image, table, pending)
            grey = _grey(pixels)
            # x * f + grey * (1 - f): scaleAdd rounds once, as torch's fused multiply-add does.
            # In place: on one core the cost of this step is mostly memory traffic.
            pixels = cv2.scaleAdd(cv2.merge([grey, grey, grey]), float(rest), np.multiply(pixels, f, out=pixels),
                                  dst=pixels)
            image, table = np.clip(pixels, 0, 255, out=pixels).astype(np.uint8), np.arange(256, dtype=np.float32)
        pending = op != SATURATION
    if pending:
        image = cv2.LUT(image, table.astype(np.uint8))
    if hue:
        import torch
        from torchvision.transforms.v2 import functional as F

        shifted = F.adjust_hue(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), hue)
        image = np.ascontiguousarray(shifted.permute(1, 2, 0).numpy())
    return image


def _read(image: np.ndarray, table: np.ndarray, pending: bool) -> np.ndarray:
    """``image``'s levels through ``table`` (when ``pending``), float32."""
    import cv2

    return cv2.LUT(image, table) if pending else image.astype(np.float32)


def _grey(pixels: np.ndarray) -> np.ndarray:
    """Floored ITU-R 601 luma of ``H x W x 3`` float32 RGB levels, ``H x W`` (torchvision's, for uint8)."""
    import cv2

    grey = cv2.transform(pixels, np.array([LUMA], dtype=np.float32))
    return np.floor(grey, out=grey)


def _truncate(values: np.ndarray) -> np.ndarray:
    """Clamped to 0..255 and truncated (in place), the levels torchvision's uint8 colour kernels end with."""
    return np.floor(np.clip(values, 0, 255, out=values), out=values)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG re-compression of an ``H x W x 3`` RGB uint8 image with OpenCV's libjpeg.

    OpenCV encodes BGR: the channels are swapped first so that luma and the subsampled chroma
    are those of the real colours (encoding RGB as if it were BGR would put the compression
    error in the wrong colour axes); the decoder writes RGB directly (``IMREAD_COLOR_RGB``).
    """
    import cv2

    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - libjpeg refuses only empty images
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
