"""Rahmouni et al.: convolutions followed by a statistical pooling layer.

Rahmouni, Nozick, Yamagishi, Echizen, "Distinguishing Computer Graphics from Natural Images
Using Convolution Neural Networks", IEEE WIFS 2017 (https://hal.science/hal-01664590).
A FaceForensics++ baseline (Rössler et al., ICCV 2019), which uses the paper's best model,
"Stats-2L".

Input: 3x224x224 face crops, pixels scaled to [0, 1] (``mean=(0, 0, 0)``, ``std=(1, 1, 1)``).
The paper classifies 100x100 patches of the green channel and aggregates them over an
image; the statistical pooling makes the network independent of the input size, so we feed
the whole crop at the shared crop size, unresampled (``in_chans=1`` with the green channel
reproduces the paper's input).

Layers, as in the authors' code (github.com/NicoRahm/CGvsPhoto, ``model.py``): two 3x3
convolutions ('same' padding, ReLU) with 32 and 64 filters; statistical pooling (mean,
maximum, minimum and variance of each filter's output over the image: 4x64 = 256 values);
a 1024-unit fully connected layer (ReLU), dropout (keep probability 0.65) and the output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from baselines.build import UNIT_MEAN, UNIT_STD, check_request, default_cfg
from forensics.models import HeadModule, register_model

PAPER = ("Rahmouni et al., Distinguishing Computer Graphics from Natural Images Using "
         "Convolution Neural Networks, WIFS 2017")


class StatsPool(nn.Module):
    """Per-channel mean, maximum, minimum and (population) variance over H and W: (B, C, H, W) -> (B, 4C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        mean = flat.mean(dim=2)
        var = flat.var(dim=2, unbiased=False)
        return torch.cat([mean, flat.amax(dim=2), flat.amin(dim=2), var], dim=1)


class Rahmouni(HeadModule):
    """Stats-2L of Rahmouni et al.

    Head contract: ``forward_features`` gives the last convolution's map, ``num_features``
    its channels (64); ``forward_head`` is the statistical pooling, then the 1024-unit layer
    (``head_hidden_size``) and the output layer.

    Args:
        num_classes: outputs (1: one real/fake logit).
        in_chans: input channels (paper: 1, the green channel).
        filters: output channels of each 3x3 convolution (paper's Stats-2L: 32, 64).
        hidden: width of the fully connected layer (paper: 1024).
        drop_rate: dropout after it (paper: keep probability 0.65).
    """

    gradcam_layer = "features"  # full-resolution convolutions, before the statistics

    def __init__(self, num_classes: int = 1, in_chans: int = 3, filters: Sequence[int] = (32, 64),
                 hidden: int = 1024, drop_rate: float = 0.35) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        channels = in_chans
        for width in filters:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.head_hidden_size = hidden
        self.pre_logits = nn.Sequential(StatsPool(), nn.Linear(4 * channels, hidden), nn.ReLU(inplace=True),
                                        nn.Dropout(drop_rate))
        self.fc = nn.Linear(hidden, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images, any size -> (B, 64, H, W) map."""
        return self.features(x)


@register_model
def rahmouni(pretrained: bool = False, pretrained_file: str | None = None, num_classes: int = 1,
             in_chans: int = 3, img_size: int = 224, hidden: int = 1024, drop_rate: float = 0.35,
             task: str | None = None) -> Rahmouni:
    """Rahmouni et al.'s Stats-2L; any input size works, ``img_size`` sets the default config's resize."""
    check_request("rahmouni", pretrained=pretrained, pretrained_file=pretrained_file, task=task)
    model = Rahmouni(num_classes=num_classes, in_chans=in_chans, hidden=hidden, drop_rate=drop_rate)
    model.pretrained_cfg = default_cfg(
        "rahmouni", in_chans=in_chans, img_size=img_size, mean=UNIT_MEAN, std=UNIT_STD, paper=PAPER,
        num_classes=num_classes, classifier="fc", first_conv="features.0")
    model.default_cfg = model.pretrained_cfg
    return model
