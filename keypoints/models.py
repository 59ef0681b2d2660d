"""Keypoint models of our own, registered in the factory: a small CNN and the ``dummy`` floor.

Any timm backbone serves the keypoints task as well (``resnet18``, ``mobilenetv3_small_050``:
``create_model(name, num_classes=2K, in_chans=1)`` adapts the first convolution to one
channel and replaces the head); these two are what timm doesn't have.

* ``keypoint_cnn``: four stages of 3x3 convolution, batch norm, ReLU and 2x2 max pooling
  (96 -> 6 pixels), then the *flattened* map through a hidden layer to ``2K`` outputs. The
  head flattens instead of pooling globally because where a feature is matters for a
  coordinate; a global average would throw that away (the classic Kaggle keypoint networks
  also end in dense layers on the flattened map). ~1.3M parameters at 1x96x96, most in the
  hidden layer; fast enough to train on a CPU.
* ``dummy``: nothing to train; predicts the keypoints of the first training sample for every
  face. It is the floor every model must beat. ``forensics train`` *fits* it (as it fits
  the steganalysis SVM) instead of running epochs: :meth:`FirstSampleKeypoints.fit`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from forensics.errors import ForensicsError
from forensics.models import HeadModule, register_model

#: Input statistics of our keypoint models: grayscale 0..1 mapped to about -1..1.
MEAN, STD = 0.5, 0.5


def _default_cfg(name: str, in_chans: int, img_size: int, num_classes: int, classifier: str) -> dict:
    return {"architecture": name, "input_size": (in_chans, img_size, img_size), "interpolation": "bilinear",
            "crop_pct": 1.0, "mean": (MEAN,) * in_chans, "std": (STD,) * in_chans, "num_classes": num_classes,
            "classifier": classifier}


class KeypointCNN(HeadModule):
    """Small CNN for ``C x S x S`` faces (S divisible by 16) to ``num_classes`` coordinates.

    Head contract: ``forward_features`` gives the ``widths[-1] x S/16 x S/16`` map,
    ``forward_head`` flattens it through the hidden layer (``head_hidden_size``) to the outputs.

    Args:
        num_classes: outputs (``2K`` for K keypoints; 0: the hidden features).
        in_chans: input channels (1 for grayscale).
        img_size: input side (the hidden layer's size depends on it).
        widths: channels of the four stages.
        hidden: units of the hidden dense layer.
        drop_rate: dropout before the hidden and the output layers.
    """

    def __init__(self, num_classes: int = 30, in_chans: int = 1, img_size: int = 96,
                 widths: Sequence[int] = (16, 32, 64, 128), hidden: int = 256, drop_rate: float = 0.1) -> None:
        super().__init__()
        if img_size % 16:
            raise ForensicsError(f"keypoint_cnn: img_size must be a multiple of 16 (4 poolings), got {img_size}")
        layers: list[nn.Module] = []
        chans = in_chans
        for width in widths:
            layers += [nn.Conv2d(chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            chans = width
        self.features = nn.Sequential(*layers)
        self.num_features = chans
        self.head_hidden_size = hidden
        self.num_classes = num_classes
        side = img_size // 16
        self.pre_logits = nn.Sequential(nn.Flatten(1), nn.Dropout(drop_rate), nn.Linear(chans * side * side, hidden),
                                        nn.ReLU(inplace=True), nn.Dropout(drop_rate))
        self.fc = nn.Linear(hidden, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            self._init_fc()

    def _init_fc(self) -> None:
        # Small outputs at the start: every keypoint begins near the image centre (0 in the
        # task's normalised coordinates), not scattered by a random head.
        nn.init.normal_(self.fc.weight, std=1e-3)
        nn.init.zeros_(self.fc.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


    def init_classifier(self, fc: nn.Linear) -> None:
        self._init_fc()


class FirstSampleKeypoints(nn.Module):
    """The floor: the same ``num_classes`` outputs (the first training sample's keypoints) for every input.

    The outputs are a frozen parameter (``requires_grad=False``): nothing to train, saved in
    checkpoints, and the engine finds the model's device from it as from any network's. The
    head contract holds with zero features.
    """

    def __init__(self, num_classes: int = 30) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = 0
        self.keypoints = nn.Parameter(torch.zeros(num_classes), requires_grad=False)

    def fit(self, outputs: torch.Tensor) -> None:
        """Remember ``outputs[0]``, the first training sample's target in the model's output units.

        A keypoint missing from that sample (NaN) is predicted at 0 (the image centre).
        """
        first = torch.as_tensor(outputs, dtype=torch.float32).reshape(-1, self.num_classes)[0]
        with torch.no_grad():
            self.keypoints.copy_(torch.nan_to_num(first, nan=0.0))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(len(x), 0)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.keypoints.to(x.dtype).expand(len(x), -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return nn.Identity()

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.keypoints = nn.Parameter(torch.zeros(num_classes, device=self.keypoints.device), requires_grad=False)


@register_model
def keypoint_cnn(pretrained: bool = False, num_classes: int = 30, in_chans: int = 1, img_size: int = 96,
                 drop_rate: float = 0.1, task: str | None = None) -> KeypointCNN:
    """Our small keypoint CNN (see the module docstring); no pretrained weights exist."""
    if pretrained:
        raise ForensicsError("model 'keypoint_cnn': no pretrained weights exist; train it with pretrained=False")
    model = KeypointCNN(num_classes=num_classes, in_chans=in_chans, img_size=img_size, drop_rate=drop_rate)
    model.pretrained_cfg = model.default_cfg = _default_cfg("keypoint_cnn", in_chans, img_size, num_classes, "fc")
    return model


@register_model
def dummy(pretrained: bool = False, num_classes: int = 30, in_chans: int = 1, img_size: int = 96,
          task: str | None = None) -> FirstSampleKeypoints:
    """The keypoints floor: always the first training sample's keypoints (see :class:`FirstSampleKeypoints`)."""
    if task is not None and task != "keypoints":
        raise ForensicsError(f"model 'dummy' is the floor of the keypoints task, not a {task} model")
    if pretrained:
        raise ForensicsError("model 'dummy' has no weights to load")
    model = FirstSampleKeypoints(num_classes)
    model.pretrained_cfg = model.default_cfg = _default_cfg("dummy", in_chans, img_size, num_classes, "")
    return model
