"""The refiner network: a convolutional autoencoder for face crops that can be given U-Net
skip connections after it has been pretrained.

Rössler et al. (FaceForensics, 2018) pretrained an autoencoder on face crops, then added skip
connections and fine-tuned it on self-reenactment pairs. Two properties make that work here:

* Pretraining happens *without* skips: with them the identity map is one step away and the
  bottleneck learns nothing.
* Skips are added so that the network's output does not change at the moment they are added.
  Each skip is a convolution from encoder level ``j`` to decoder level ``j`` whose weights and
  bias start at zero, and its output is *added* to the decoder's features ("zero convolution",
  as ControlNet adds conditions to a pretrained network). Fine-tuning then starts from the
  pretrained reconstruction, not from noise; the zero weights still receive gradients
  (``d loss / d W = grad x encoder features``), so the skips open up as training needs them.

With feature skips alone, fine-tuning spends its first thousands of steps re-learning the
identity map through the pretrained decoder, and a 64-pixel CPU run never got back to the
input's own PSNR, let alone above it. So fine-tuning also adds an **input skip**, global
residual learning as in restoration networks (VDSR, Kim et al. 2016; DnCNN, Zhang et al.
2017): the output becomes ``D + lam * (x - D + x * G + B)``, where ``D`` is the decoder's image
(the pretrained reconstruction, now with feature skips), ``x`` the input, and ``G``, ``B`` a
per-pixel gain and offset that the residual head reads off the decoder's level-0 features.
``lam`` ramps from 0 to 1 over the first ``input_ramp`` training batches, so the output is still
unchanged when the skips are added and then blends into "the input, locally re-coloured and
corrected". (A learned gate in place of the ramp stalled: the decoder and the gate shared the
work and the output stayed below the input.)

Why a gain and an offset rather than an additive correction alone: what a face renderer gets
wrong is mostly shading and colour inside the face, a *multiplicative* error, and the decoder's
features are group-normalised, so they know where the face is but not how bright it is; a
correction added on its own then has to rediscover the input's brightness and sat for hundreds
of batches at the input's PSNR. Predicting local affine colour transforms applied to the
input is how HDRNet (Gharbi et al., "Deep Bilateral Learning for Real-Time Image Enhancement",
SIGGRAPH 2017) learns such edits; the offset still adds whatever detail the features hold.
Measured on ``SelfReenact`` pairs rendered in memory (24 identities, 64 px, 12 epochs at lr
3e-3): +1.1 dB held-out PSNR gain, against +0.06 dB for an additive head.

Levels are numbered by resolution: level ``j`` works at ``input / 2**j``. ``encoder.levels.j``
makes the encoder features of level ``j``, ``decoder.levels.j`` the decoder features of level
``j``, ``skips.j`` joins the two, and ``residual`` is the gain/offset head. Those names are what
:func:`freeze` takes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from forensics.errors import ConfigError, ForensicsError

#: The refiner works on images normalised to [-1, 1]; the transforms read this, not constants.
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
#: The residual head starts at PyTorch's default initialisation times this (see add_skips).
RESIDUAL_INIT_SCALE = 0.1


@dataclass
class RefinerArch:
    """Shape of the network (what a stage-1 checkpoint must match).

    Attributes:
        channels: width of each level; ``len(channels)`` is the depth. Level 0 works at the
            input resolution, every further level at half the previous one.
        latent: channels of the bottleneck at the deepest level.
        input_size: side of the (square) input; divisible by ``2 ** (depth - 1)``.
        skip_kernel: kernel size of the zero-initialised skip convolutions (odd).
    """

    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 256])
    latent: int = 64
    input_size: int = 224
    skip_kernel: int = 1

    def validate(self, prefix: str = "model") -> None:
        if not self.channels or any(c < 1 for c in self.channels):
            raise ConfigError(f"{prefix}.channels must be a non-empty list of positive widths, got {self.channels}")
        if self.latent < 1:
            raise ConfigError(f"{prefix}.latent must be positive, got {self.latent}")
        factor = 2 ** (len(self.channels) - 1)
        if self.input_size < factor or self.input_size % factor:
            raise ConfigError(f"{prefix}.input_size {self.input_size} must be a multiple of {factor} "
                              f"(2 ** (depth - 1) with depth {len(self.channels)})")
        if self.skip_kernel < 1 or self.skip_kernel % 2 == 0:
            raise ConfigError(f"{prefix}.skip_kernel must be odd, got {self.skip_kernel}")


def data_config(arch: RefinerArch) -> dict[str, Any]:
    """Input size and normalisation, in the form of :func:`forensics.models.data_config`."""
    return {"input_size": [3, arch.input_size, arch.input_size], "mean": list(MEAN), "std": list(STD),
            "interpolation": "bilinear", "crop_pct": 1.0}


def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm, not BatchNorm: no running statistics, so a frozen part really is frozen, small
    # batches are fine, and DDP ranks never disagree.
    return nn.GroupNorm(math.gcd(8, channels), channels)


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), _norm(cout), nn.SiLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), _norm(cout), nn.SiLU(inplace=True))


class Encoder(nn.Module):
    """``levels[0]`` keeps the resolution, every further level halves it."""

    def __init__(self, channels: Sequence[int], latent: int) -> None:
        super().__init__()
        self.levels = nn.ModuleList(
            [_block(3, channels[0])] + [_block(channels[j - 1], channels[j], stride=2) for j in range(1, len(channels))])
        self.to_latent = nn.Conv2d(channels[-1], latent, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for level in self.levels:
            x = level(x)
            features.append(x)
        return self.to_latent(x), features


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.block = _block(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.up(x))


class Decoder(nn.Module):
    """``levels[-1]`` reads the latent code; ``levels[j]`` upsamples level ``j + 1`` to level ``j``."""

    def __init__(self, channels: Sequence[int], latent: int) -> None:
        super().__init__()
        deepest = len(channels) - 1
        self.levels = nn.ModuleList(
            [UpBlock(channels[j + 1], channels[j]) for j in range(deepest)] + [_block(latent, channels[deepest])])
        self.head = nn.Conv2d(channels[0], 3, 3, padding=1)


class Refiner(nn.Module):
    """Encoder-decoder on normalised ``N x 3 x S x S`` crops; returns an image of the same shape.

    Args:
        arch: widths, bottleneck and input size.
    """

    def __init__(self, arch: RefinerArch) -> None:
        super().__init__()
        arch.validate()
        self.arch = arch
        self.encoder = Encoder(arch.channels, arch.latent)
        self.decoder = Decoder(arch.channels, arch.latent)
        self.skips: nn.ModuleDict | None = None
        self.residual: nn.Conv2d | None = None
        self.input_ramp: int | None = None
        self.skip_kernel = arch.skip_kernel

    @property
    def depth(self) -> int:
        return len(self.arch.channels)

    @property
    def skip_levels(self) -> list[int]:
        """Levels that have a skip connection (empty before :meth:`add_skips`)."""
        return sorted(int(k) for k in self.skips) if self.skips is not None else []

    def add_skips(self, levels: Iterable[int] | None = None, kernel: int | None = None,
                  input_ramp: int | None = None) -> Refiner:
        """Add zero-initialised skip connections at ``levels`` (default: every level).

        The output is unchanged at this moment: each skip adds ``conv(encoder features)`` with
        all-zero weights and bias to the decoder features of its level.

        Args:
            levels: levels given a feature skip.
            kernel: kernel size of the skip convolutions (default ``arch.skip_kernel``).
            input_ramp: add the input skip too, blended in over this many training batches
                (at least 1, so that the output is unchanged now); ``None``: no input skip.
        """
        if self.skips is not None:
            raise ForensicsError(f"the refiner already has skip connections (levels {self.skip_levels})")
        levels = list(range(self.depth)) if levels is None else sorted(set(levels))
        bad = [j for j in levels if not 0 <= j < self.depth]
        if bad:
            raise ConfigError(f"skip levels {bad} out of range: this refiner has levels 0..{self.depth - 1}")
        if input_ramp is not None and input_ramp < 1:
            raise ConfigError(f"input_ramp must be at least 1 batch (the output must not change when skips "
                              f"are added), got {input_ramp}")
        kernel = kernel or self.arch.skip_kernel
        if kernel < 1 or kernel % 2 == 0:
            raise ConfigError(f"skip kernel must be odd, got {kernel}")
        self.skip_kernel = kernel
        reference = next(self.parameters())
        self.skips = nn.ModuleDict()
        for j in levels:
            c = self.arch.channels[j]
            self.skips[str(j)] = _zero_conv(c, c, kernel).to(device=reference.device, dtype=reference.dtype)
        if input_ramp is not None:
            self.input_ramp = int(input_ramp)
            # Gain and offset maps (3 + 3 channels). Small random weights, not zeros, so that
            # the head and the features it reads get gradients from each other from the first
            # batch; gated by the ramp (see forward), the output is still unchanged now.
            self.residual = nn.Conv2d(self.arch.channels[0], 6, 3, padding=1)
            with torch.no_grad():
                self.residual.weight.mul_(RESIDUAL_INIT_SCALE)
                self.residual.bias.zero_()
            self.residual.to(device=reference.device, dtype=reference.dtype)
            # Training batches seen since the skips were added: saved with the weights, so a
            # resumed run continues the ramp where it was.
            self.register_buffer("input_steps", torch.zeros((), device=reference.device))
        return self

    @property
    def input_weight(self) -> float:
        """``lam``: how far the output has blended from the reconstruction to the input (0 to 1)."""
        if self.input_ramp is None:
            return 0.0
        return min(1.0, float(self.input_steps) / self.input_ramp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 ** (self.depth - 1) or x.shape[-2] % 2 ** (self.depth - 1):
            raise ForensicsError(f"refiner input {tuple(x.shape[-2:])}: sides must be multiples of "
                                 f"{2 ** (self.depth - 1)}")
        z, features = self.encoder(x)
        y = z
        for j in reversed(range(self.depth)):
            y = self.decoder.levels[j](y)
            if self.skips is not None and str(j) in self.skips:
                y = y + self.skips[str(j)](features[j])
        out = self.decoder.head(y)
        if self.residual is None:
            return out
        lam = self.input_weight
        if self.training:
            self.input_steps += 1
        gain, bias = self.residual(y).chunk(2, dim=1)
        return out + lam * (x - out + x * gain + bias)

    def info(self) -> dict[str, Any]:
        """What a checkpoint needs to rebuild this network (plain types only)."""
        return {"name": "refiner", "task": "reconstruction",
                "arch": {"channels": list(self.arch.channels), "latent": self.arch.latent,
                         "input_size": self.arch.input_size, "skip_kernel": self.arch.skip_kernel},
                "skips": self.skip_levels if self.skips is not None else None,
                "skip_kernel": self.skip_kernel, "input_ramp": self.input_ramp,
                "data_config": data_config(self.arch)}


def build_from_info(info: dict[str, Any]) -> Refiner:
    """Rebuild the network a checkpoint's ``model_info`` describes (skips included)."""
    if info.get("name") != "refiner":
        raise ForensicsError(f"not a refiner checkpoint (model {info.get('name')!r})")
    model = Refiner(RefinerArch(**info["arch"]))
    if info.get("skips") is not None:
        model.add_skips(info["skips"], info.get("skip_kernel"), info.get("input_ramp"))
    return model


def _zero_conv(cin: int, cout: int, kernel: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def module_names(model: nn.Module, max_depth: int = 3) -> list[str]:
    """Names that :func:`freeze` accepts, down to ``max_depth`` dotted parts."""
    names = set()
    for name, _ in model.named_parameters():
        parts = name.split(".")
        for k in range(1, min(len(parts), max_depth + 1)):
            names.add(".".join(parts[:k]))
    return sorted(names)


def freeze(model: nn.Module, names: Sequence[str]) -> int:
    """Freeze every parameter under the given module names; unfreeze the rest.

    Args:
        names: module names, e.g. ``encoder``, ``decoder.levels.4``, ``decoder.head``.

    Returns:
        The number of trainable parameters.

    Raises:
        ConfigError: a name matches no parameter (the message lists valid names).
    """
    def under(param: str, name: str) -> bool:
        return param == name or param.startswith(name + ".")

    params = list(model.named_parameters())
    unknown = [n for n in names if not any(under(p, n) for p, _ in params)]
    if unknown:
        raise ConfigError(f"freeze: no parameters under {', '.join(map(repr, unknown))}; "
                          f"choose from {', '.join(module_names(model, 3))}")
    trainable = 0
    for pname, p in params:
        frozen = any(under(pname, n) for n in names)
        p.requires_grad_(not frozen)
        trainable += 0 if frozen else p.numel()
    return trainable


def load_refiner_weights(model: Refiner, state: dict[str, Any], source: str, prefer_ema: bool = True) -> None:
    """Load a checkpoint's weights strictly; on mismatch, one error listing the keys that differ.

    Raises:
        ForensicsError: another width or depth (the differing keys with both shapes), missing
            or unexpected keys (e.g. a fine-tuned checkpoint with skips into a model without).
    """
    from forensics.training.checkpoint import model_weights

    weights = model_weights(state, prefer_ema)
    own = model.state_dict()
    shape = [k for k in own if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    if not (shape or missing or unexpected):
        model.load_state_dict(weights)
        return

    def listing(keys: list[str], describe=lambda k: k, limit: int = 8) -> str:
        shown = ", ".join(describe(k) for k in keys[:limit])
        return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")

    parts = []
    if shape:
        parts.append(f"{len(shape)} of another shape: " + listing(
            shape, lambda k: f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}"))
    if missing:
        parts.append(f"{len(missing)} missing: {listing(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected: {listing(unexpected)}")
    info = state.get("model_info") or {}
    theirs = info.get("arch")
    arch = f" (checkpoint arch {theirs}, this model {model.info()['arch']})" if theirs else ""
    raise ForensicsError(f"{source}: weights don't fit this refiner{arch}: " + "; ".join(parts))
