"""MesoNet: Meso-4 and MesoInception-4.

Afchar, Nozick, Yamagishi, Echizen, "MesoNet: a Compact Facial Video Forgery Detection
Network", IEEE WIFS 2018 (https://arxiv.org/abs/1809.00888). A FaceForensics++ baseline
(Rössler et al., ICCV 2019).

Input: 3x256x256 face crops, pixels scaled to [0, 1] (the authors' Keras pipeline uses
``rescale=1/255`` and no mean subtraction): ``mean=(0, 0, 0)``, ``std=(1, 1, 1)``.

Layers follow the authors' Keras code (github.com/DariusAf/MesoNet, ``classifiers.py``):
four blocks of convolution (ReLU) -> batch norm -> max pooling (2, 2, 2, 4), then dropout
0.5, a 16-unit dense layer with LeakyReLU(0.1), dropout 0.5 and the output layer. With the
one-logit binary head Meso-4 has 27,977 parameters, the Keras model's trainable count
(Keras also counts the 96 batch-norm running statistics, which PyTorch keeps as buffers).
The Keras output is a sigmoid; ours is the logit, the task applies the sigmoid.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from baselines.build import UNIT_MEAN, UNIT_STD, check_request, default_cfg
from forensics.models import HeadModule, register_model

PAPER = "Afchar et al., MesoNet: a Compact Facial Video Forgery Detection Network, WIFS 2018"


def _keras_init(module: nn.Module) -> None:
    # Keras defaults (Glorot-uniform weights, zero biases): the paper's training recipe
    # (Adam 1e-3) was tuned with them.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def _bn(channels: int) -> nn.BatchNorm2d:
    # Keras BatchNormalization defaults: momentum 0.99 (PyTorch counts 1 - 0.99), eps 1e-3.
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


def _pool(size: int) -> nn.MaxPool2d:
    # ceil_mode is Keras' padding='same' for pooling: odd sizes round up, never drop a row.
    return nn.MaxPool2d(size, ceil_mode=True)


class ConvBlock(nn.Sequential):
    """Convolution ('same' padding, ReLU) -> batch norm -> max pooling, as in Keras MesoNet."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, pool: int) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_chans, out_chans, kernel_size, padding="same"),
                                   nn.ReLU(inplace=True), _bn(out_chans)]
        if pool:
            layers.append(_pool(pool))
        super().__init__(*layers)


class InceptionLayer(nn.Module):
    """MesoInception's module: 1x1, 1x1->3x3, 1x1->3x3 dilated 2, 1x1->3x3 dilated 3, concatenated."""

    def __init__(self, in_chans: int, a: int, b: int, c: int, d: int) -> None:
        super().__init__()
        self.out_chans = a + b + c + d

        def conv(i: int, o: int, k: int, dilation: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, k, padding="same", dilation=dilation), nn.ReLU(inplace=True))

        self.branch1 = conv(in_chans, a, 1)
        self.branch2 = nn.Sequential(conv(in_chans, b, 1), conv(b, b, 3))
        self.branch3 = nn.Sequential(conv(in_chans, c, 1), conv(c, c, 3, dilation=2))
        self.branch4 = nn.Sequential(conv(in_chans, d, 1), conv(d, d, 3, dilation=3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class MesoNet(HeadModule):
    """Meso-4 (``inception=False``) or MesoInception-4 (``inception=True``).

    Head contract: ``forward_features`` gives the 16x8x8 map (at 256x256 input),
    ``num_features`` its 16 channels; ``forward_head`` flattens it through the 16-unit
    dense layer (``head_hidden_size``) to ``num_classes`` outputs (0: the 16 pre-logits).

    Args:
        num_classes: outputs of the last layer (1: one real/fake logit).
        in_chans: input channels.
        drop_rate: the two dropout layers of the head (paper: 0.5).
        inception: build MesoInception-4 instead of Meso-4.
    """

    gradcam_layer = "features"  # the last convolution block, before the 8x8 pooling

    def __init__(self, num_classes: int = 1, in_chans: int = 3, drop_rate: float = 0.5,
                 inception: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        if inception:
            inc1 = InceptionLayer(in_chans, 1, 4, 4, 2)
            inc2 = InceptionLayer(inc1.out_chans, 2, 4, 4, 2)
            self.features = nn.Sequential(
                nn.Sequential(inc1, _bn(inc1.out_chans), _pool(2)),
                nn.Sequential(inc2, _bn(inc2.out_chans), _pool(2)),
                ConvBlock(inc2.out_chans, 16, 5, pool=2),
                ConvBlock(16, 16, 5, pool=0),
            )
        else:
            self.features = nn.Sequential(
                ConvBlock(in_chans, 8, 3, pool=2),
                ConvBlock(8, 8, 5, pool=2),
                ConvBlock(8, 16, 5, pool=2),
                ConvBlock(16, 16, 5, pool=0),
            )
        # The paper's last pooling is 4x4 (32x32 -> 8x8 at 256 input); an adaptive pool to
        # 8x8 computes exactly that at 256 and keeps the dense layer's shape valid at any
        # other input size, instead of failing deep inside the network.
        self.pool = nn.AdaptiveMaxPool2d(8)
        self.num_features = 16
        self.head_hidden_size = 16
        self.pre_logits = nn.Sequential(
            nn.Flatten(1), nn.Dropout(drop_rate), nn.Linear(16 * 8 * 8, 16),
            nn.LeakyReLU(0.1), nn.Dropout(drop_rate))
        self.fc = nn.Linear(16, num_classes) if num_classes > 0 else nn.Identity()
        _keras_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, 16, 8, 8) feature map."""
        return self.pool(self.features(x))

    def init_classifier(self, fc: nn.Linear) -> None:
        _keras_init(fc)


def _create(name: str, *, inception: bool, pretrained: bool, pretrained_file: str | None, num_classes: int,
            in_chans: int, img_size: int, drop_rate: float, task: str | None) -> MesoNet:
    check_request(name, pretrained=pretrained, pretrained_file=pretrained_file, task=task)
    model = MesoNet(num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, inception=inception)
    model.pretrained_cfg = default_cfg(
        name, in_chans=in_chans, img_size=img_size, mean=UNIT_MEAN, std=UNIT_STD, paper=PAPER,
        num_classes=num_classes, classifier="fc", first_conv="features.0.0" if not inception else None)
    model.default_cfg = model.pretrained_cfg
    return model


@register_model
def meso4(pretrained: bool = False, pretrained_file: str | None = None, num_classes: int = 1,
          in_chans: int = 3, img_size: int = 256, drop_rate: float = 0.5, task: str | None = None) -> MesoNet:
    """Meso-4 (27,977 parameters with the one-logit head). ``img_size`` sets the default config's resize."""
    return _create("meso4", inception=False, pretrained=pretrained,
                   pretrained_file=pretrained_file, num_classes=num_classes,
                   in_chans=in_chans, img_size=img_size, drop_rate=drop_rate, task=task)


@register_model
def mesoinception4(pretrained: bool = False, pretrained_file: str | None = None, num_classes: int = 1,
                   in_chans: int = 3, img_size: int = 256, drop_rate: float = 0.5,
                   task: str | None = None) -> MesoNet:
    """MesoInception-4. ``img_size`` sets the default config's resize."""
    return _create("mesoinception4", inception=True, pretrained=pretrained,
                   pretrained_file=pretrained_file, num_classes=num_classes,
                   in_chans=in_chans, img_size=img_size, drop_rate=drop_rate, task=task)
