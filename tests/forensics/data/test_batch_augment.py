"""The two augmentation paths: per crop in the loader (OpenCV/numpy kernels,
:mod:`forensics.data.augment`) and per batch (``data.augment.device: gpu``, torchvision kernels,
run here on CPU tensors). For a seed they make the same decisions with the same parameters;
their pixels are equal where the kernels are (flip, JPEG, colour, noise, cut-out) and close
where they are not (blur, resize); the fused kernels match torchvision's."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from torchvision.io import decode_jpeg, encode_jpeg
from torchvision.transforms.v2 import functional as F

from forensics.data.augment import Uniforms, color_jitter, decide, draw_seed, jpeg
from forensics.data.batch_augment import BatchAugment, batch_augment
from forensics.data.datasets import CropDataset, load_frames
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
    """The loader's transform on each crop, seeds drawn from torch's default generator."""
    transform = build_transform(DATA_CFG, augment, crop_size=SIDE)
    torch.manual_seed(seed)
    return torch.stack([transform(image) for image in images])


def fused(images: torch.Tensor, augment: AugmentConfig, seeds=None) -> torch.Tensor:
    """The loader's transform on each crop, as the dataset calls it: the default generator
    seeded with the sample's seed (the one the batch path gets)."""
    seeds = torch.arange(len(images)) if seeds is None else seeds
    transform, out = build_transform(DATA_CFG, augment, crop_size=SIDE), []
    for image, seed in zip(images, seeds.tolist()):
        torch.manual_seed(seed)
        out.append(transform(image))
    return torch.stack(out)


def hwc(image: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(image.permute(1, 2, 0).numpy())


def on_batch(images: torch.Tensor, augment: AugmentConfig, seeds=None) -> torch.Tensor:
    seeds = torch.arange(len(images)) if seeds is None else seeds
    return BatchAugment(augment, SIDE)(images.clone(), seeds)


COLOUR = dict(color_p=1.0, brightness=0.4, contrast=0.4, saturation=0.4)


@pytest.mark.parametrize("ops", [dict(hflip_p=1.0), dict(hflip_p=0.5), dict(jpeg_p=1.0, jpeg_quality=[60, 100]),
                                 COLOUR, {**COLOUR, "hue": 0.1}, dict(noise_p=1.0, noise_sigma=0.05),
                                 dict(cutout_p=1.0), dict(hflip_p=0.5, jpeg_p=0.5, color_p=0.5, noise_p=0.5,
                                                          cutout_p=0.5)])
def test_cpu_and_batch_paths_give_the_same_pixels_for_a_seed(ops):
    """Flip, JPEG, colour, noise and cut-out: same decisions, same parameters, same pixels."""
    images = crops(12)
    augment = AugmentConfig(**{**OFF, **ops})
    seeds = torch.arange(100, 112)
    got = fused(images, augment, seeds)
    assert (got != images).flatten(1).any(1).sum() >= 3  # the ops did something
    assert torch.equal(got, on_batch(images, augment, seeds))


@pytest.mark.parametrize("ops, mean_gap, max_gap", [(dict(blur_p=1.0), 0.05, 1), (dict(downscale_p=1.0), 1.5, 24)])
def test_blur_and_resize_differ_only_by_their_kernels(ops, mean_gap, max_gap):
    """OpenCV's blur rounds in fixed point (off by one level at most); the resize goes down by
    area averaging here and by antialiased bilinear on the batch path: close, not equal."""
    images = crops(12)
    augment = AugmentConfig(**{**OFF, **ops})
    cpu, batch = fused(images, augment), on_batch(images, augment)
    gap = (cpu.int() - batch.int()).abs()
    assert not torch.equal(cpu, images) and gap.float().mean() < mean_gap and gap.max() <= max_gap, gap.float().mean()


def test_a_sample_gets_the_same_augmentation_on_either_device(crop_manifest):
    """``data.augment.device: cpu`` and ``gpu`` over the same dataset: the same pixels."""
    frames = load_frames(crop_manifest, "train")
    augment = AugmentConfig(**{**OFF, "hflip_p": 0.5, "jpeg_p": 0.5, "color_p": 0.5, "noise_p": 0.5, "cutout_p": 0.5})
    labels = frames["label"].to_numpy()
    cpu = CropDataset(frames, labels, build_transform(DATA_CFG, augment, 224), seed=7)
    gpu = CropDataset(frames, labels, build_transform(DATA_CFG, None, 224), seed=7, emit_seed=True)
    samples = [gpu[i] for i in range(12)]
    batch = BatchAugment(augment, SIDE)(torch.stack([s["image"] for s in samples]),
                                        torch.stack([s["seed"] for s in samples]))
    assert not torch.equal(batch, torch.stack([s["image"] for s in samples]))
    assert torch.equal(batch, torch.stack([cpu[i]["image"] for i in range(12)]))


def test_default_augmentations_decide_alike_on_both_paths():
    images, augment = crops(96), AugmentConfig()
    seeds = torch.arange(1000, 1096)
    cpu, batch = fused(images, augment, seeds), on_batch(images, augment, seeds)
    decisions = [decide(augment, SIDE, draw_seed(s)) for s in seeds.tolist()]
    kernels_differ = torch.tensor([d.size is not None or d.sigma is not None for d in decisions])
    assert 3 <= kernels_differ.sum() < 30
    assert torch.equal(cpu[~kernels_differ], batch[~kernels_differ])
    assert (cpu[kernels_differ].float() - batch[kernels_differ].float()).abs().mean() < 1.5


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_colour_jitter_matches_torchvision_chain(order):
    """The lookup-table colour jitter against ``F.adjust_*`` on uint8 for the same factors and order."""
    kernels = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation)
    rng = np.random.default_rng(len(order) * 10 + order[0])
    worst = 0
    for image in crops(6):
        steps = tuple((k, float(rng.uniform(0.6, 1.4))) for k in order)
        expected = image
        for k, factor in steps:
            expected = kernels[k](expected, factor)
        got = torch.from_numpy(color_jitter(hwc(image), steps)).permute(2, 0, 1)
        worst = max(worst, int((got.int() - expected.int()).abs().max()))
    assert worst <= 1  # 0 where OpenCV's scaleAdd fuses the multiply-add as torch does


def test_fused_kernels_equal_the_ones_they_replace():
    """JPEG: OpenCV and torchvision.io bundle libjpeg-turbo with the same defaults (4:2:0,
    islow DCT, fancy upsampling): the same bytes, the same pixels. Flip and cut-out too."""
    images = crops(4)
    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision")
    for image in images:
        for quality in (60, 85, 100):
            expected = decode_jpeg(encode_jpeg(image.contiguous(), quality=quality))
            assert torch.equal(torch.from_numpy(jpeg(hwc(image), quality)).permute(2, 0, 1), expected)
    flipped = per_crop(images, AugmentConfig(**{**OFF, "hflip_p": 1.0}))
    assert torch.equal(flipped, images.flip(-1))
    augment = AugmentConfig(**{**OFF, "cutout_p": 1.0})
    torch.manual_seed(0)
    seeds = [draw_seed() for _ in images]
    erased = per_crop(images, augment)
    for image, seed, got in zip(images, seeds, erased):
        top, left, h, w = decide(augment, SIDE, seed).erase
        assert torch.equal(got, F.erase(image, top, left, h, w, torch.zeros((), dtype=torch.uint8)))
        assert 0.015 <= h * w / SIDE**2 <= 0.17 and 0.2 <= h / w <= 5  # cutout_scale, aspect 0.3..3.3, rounded


def test_transform_is_seeded_by_the_default_generator_and_leaves_its_input_alone():
    images = crops(8)
    before = images.clone()
    augment = AugmentConfig(**{**OFF, "cutout_p": 1.0, "color_p": 0.5, "hflip_p": 0.5})
    first = per_crop(images, augment, seed=3)
    assert torch.equal(images, before)
    assert torch.equal(first, per_crop(images, augment, seed=3))
    assert not torch.equal(first, per_crop(images, augment, seed=4))


def test_pair_moves_the_mask_with_flips_and_resizes_only():
    image = crops(1)[0]
    mask = (torch.rand(1, SIDE, SIDE, generator=torch.Generator().manual_seed(0)) > 0.5).to(torch.uint8) * 255
    pixel_steps = dict(hflip_p=1.0, color_p=1.0, jpeg_p=1.0, cutout_p=1.0, blur_p=1.0, noise_p=1.0)
    out, moved = build_transform(DATA_CFG, AugmentConfig(**{**OFF, **pixel_steps}), SIDE).pair(image, mask)
    assert not torch.equal(out, image.flip(-1)) and torch.equal(moved, mask.flip(-1))
    augment = AugmentConfig(**{**OFF, "downscale_p": 1.0})
    torch.manual_seed(0)
    size = decide(augment, SIDE, draw_seed()).size
    torch.manual_seed(0)
    _, moved = build_transform(DATA_CFG, augment, SIDE).pair(image, mask)
    nearest = F.InterpolationMode.NEAREST  # what v2.Resize does to a tv_tensors.Mask
    expected = F.resize(F.resize(mask, [size, size], interpolation=nearest), [SIDE, SIDE], interpolation=nearest)
    assert size < SIDE and torch.equal(moved, expected)


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


def test_decision_stream_is_splitmix64():
    """The reference's first output for seed 0 (Steele et al. 2014; Vigna's splitmix64.c)."""
    assert Uniforms(0)() == (0xE220A8397B1DCDAF >> 11) * 2.0**-53
    draws = [Uniforms(7)() for _ in range(2)] + [Uniforms(8)()]
    assert draws[0] == draws[1] != draws[2] and 0 <= min(draws) and max(draws) < 1


def test_batch_preparer_augments_before_normalising():
    images = crops(4)
    augment = AugmentConfig(**{**OFF, "hflip_p": 1.0, "device": "gpu"})
    prepare = batch_preparer(DATA_CFG, "cpu", augment=batch_augment(DATA_CFG, augment))
    out = prepare({"image": images, "seed": torch.arange(4), "target": torch.zeros(4)})
    assert torch.allclose(out["image"], (images.flip(-1).float() / 255 - 0.5) / 0.25)
    assert batch_augment(DATA_CFG, AugmentConfig()) is None  # device: cpu, the default
    with pytest.raises(ConfigError, match="data.augment.device must be cpu or gpu, got 'tpu'"):
        AugmentConfig(device="tpu").validate()
