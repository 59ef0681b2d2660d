"""Batch augmentation (``data.augment.device: gpu``), run here on CPU tensors: the same ops as
the per-crop CPU path give the same pixels where they are deterministic, and the default
distribution gives batches with the same shape, dtype, value range and statistics."""

from __future__ import annotations

import pytest
import torch

from forensics.data.batch_augment import BatchAugment, batch_augment
from forensics.data.transforms import AugmentConfig, batch_preparer, build_transform
from forensics.errors import ConfigError

SIDE = 64
DATA_CFG = {"input_size": [3, SIDE, SIDE], "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bilinear"}
OFF = dict(hflip_p=0.0, jpeg_p=0.0, blur_p=0.0, noise_p=0.0, color_p=0.0, downscale_p=0.0, cutout_p=0.0)


def crops(n: int = 24) -> torch.Tensor:
    """``n`` uint8 crops of ``SIDE`` pixels with image-like content: smooth colour fields (a
    bicubic upsampling of coarse noise) with fine grain, spanning most of 0..255."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(n, 3, 6, 6, generator=g) * 255
    smooth = torch.nn.functional.interpolate(coarse, size=(SIDE, SIDE), mode="bicubic", align_corners=False)
    grain = torch.randn(n, 3, SIDE, SIDE, generator=g) * 6
    return (smooth + grain).clamp(0, 255).round().to(torch.uint8)


def per_crop(images: torch.Tensor, augment: AugmentConfig, seed: int = 0) -> torch.Tensor:
    transform = build_transform(DATA_CFG, augment, crop_size=SIDE)
    torch.manual_seed(seed)
    return torch.stack([transform(image) for image in images])


def on_batch(images: torch.Tensor, augment: AugmentConfig, seeds=None) -> torch.Tensor:
    seeds = torch.arange(len(images)) if seeds is None else seeds
    return BatchAugment(augment, SIDE)(images.clone(), seeds)


@pytest.mark.parametrize("ops", [dict(hflip_p=1.0), dict(jpeg_p=1.0, jpeg_quality=[75, 75]),
                                 dict(downscale_p=1.0, downscale_min=(SIDE - 1) / SIDE),
                                 dict(hflip_p=1.0, jpeg_p=1.0, jpeg_quality=[90, 90])])
def test_deterministic_ops_give_the_cpu_paths_pixels(ops):
    images = crops(6)
    augment = AugmentConfig(**{**OFF, **ops})
    expected = per_crop(images, augment)
    got = on_batch(images, augment)
    assert not torch.equal(got, images)
    assert torch.equal(got, expected)


def test_default_distribution_matches_the_cpu_path():
    images = crops(96)
    augment = AugmentConfig()
    cpu, gpu = per_crop(images, augment), on_batch(images, augment)
    assert gpu.shape == cpu.shape == images.shape and gpu.dtype == cpu.dtype == torch.uint8
    assert gpu.min() >= 0 and gpu.max() <= 255 and gpu.max() > 200  # full range still used
    changed = {name: (out != images).flatten(1).any(1).float().mean().item() for name, out in (("cpu", cpu), ("gpu", gpu))}
    assert abs(changed["cpu"] - changed["gpu"]) < 0.15, changed  # P(any op) ~ 0.8 on both
    unflipped = lambda out: torch.where((out != images).flatten(1).float().mean(1).view(-1, 1, 1, 1) > 0.5,
                                        out.flip(-1), out)
    means = [unflipped(out).float().mean().item() for out in (cpu, gpu)]
    assert abs(means[0] - means[1]) < 0.05 * means[0], means
    spread = [(unflipped(out).float() - images.float()).abs().mean().item() for out in (cpu, gpu)]
    assert 0.5 < spread[1] / spread[0] < 2.0, spread


def test_each_op_is_drawn_with_its_probability():
    images = crops(200)
    for op, extra in (("hflip_p", {}), ("jpeg_p", {}), ("cutout_p", {}), ("color_p", {"brightness": 0.5})):
        augment = AugmentConfig(**{**OFF, op: 0.3, **extra})
        changed = (on_batch(images, augment) != images).flatten(1).any(1).float().mean().item()
        assert 0.2 < changed < 0.4, (op, changed)


def test_same_seed_same_pixels_other_seed_other_pixels():
    images, augment = crops(8), AugmentConfig(**{**OFF, "color_p": 1.0, "noise_p": 1.0, "cutout_p": 1.0,
                                                        "blur_p": 1.0})
    seeds = torch.tensor([5, 6, 7, 8, 9, 10, 11, 2**62])
    first = on_batch(images, augment, seeds)
    assert torch.equal(first, on_batch(images, augment, seeds))
    # A crop's augmentation does not depend on its batch: alone it gets the same pixels.
    assert torch.equal(first[3:4], on_batch(images[3:4], augment, seeds[3:4]))
    assert not torch.equal(first, on_batch(images, augment, seeds + 1))


def test_batch_preparer_augments_before_normalising():
    images = crops(4)
    augment = AugmentConfig(**{**OFF, "hflip_p": 1.0, "device": "gpu"})
    prepare = batch_preparer(DATA_CFG, "cpu", augment=batch_augment(DATA_CFG, augment))
    out = prepare({"image": images, "seed": torch.arange(4), "target": torch.zeros(4)})
    assert torch.allclose(out["image"], (images.flip(-1).float() / 255 - 0.5) / 0.25)
    assert batch_augment(DATA_CFG, AugmentConfig()) is None  # device: cpu, the default
    with pytest.raises(ConfigError, match="data.augment.device must be cpu or gpu, got 'tpu'"):
        AugmentConfig(device="tpu").validate()
