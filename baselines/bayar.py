"""Bayar & Stamm: a CNN whose first layer is a constrained (prediction-error) convolution.

Bayar and Stamm, "A Deep Learning Approach to Universal Image Manipulation Detection Using a
New Convolutional Layer", ACM IH&MMSec 2016 (https://doi.org/10.1145/2909827.2930786).
A FaceForensics++ baseline (Rössler et al., ICCV 2019).

Input: 3x224x224 face crops in pixel units 0..255 (``mean=(0, 0, 0)``, ``std=(1/255,)*3``),
like the raw 8-bit patches of the paper's Caffe model; the constrained layer removes the
local mean anyway.

Layers, following the paper: constrained conv 12@5x5 -> conv 64@7x7 stride 2 -> max
pool 3x3 stride 2 -> conv 48@5x5 -> max pool 3x3 stride 2 -> fully connected 4096 ->
4096 -> output, ReLU activations, dropout 0.5 on the hidden fully connected layers. The
paper's patches were 227x227 grayscale; at our 224x224 crop size the map entering the first
fully connected layer is the same 48x24x24, so the layer sizes are the paper's, and crops
are fed without resampling (which would blur the very residuals this layer looks for).
``in_chans=1``, ``img_size=227`` reproduce the paper's input exactly. Inputs of another size
than ``img_size`` still run (the last map is pooled adaptively, with a one-line warning).

The constraint: every 5x5 filter of the first layer (each input-channel slice) has its
centre weight fixed at -1 and its other 24 weights summing to 1, so it outputs a prediction
error and cannot learn image content. The paper re-imposes it after every optimizer step;
see :meth:`BayarStamm.constrain` for how that happens here without any help from the
training loop.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.build import PIXEL_MEAN, PIXEL_STD, check_request, default_cfg
from forensics.errors import ForensicsError
from forensics.models import HeadModule, register_model

log = logging.getLogger(__name__)

PAPER = ("Bayar & Stamm, A Deep Learning Approach to Universal Image Manipulation Detection "
         "Using a New Convolutional Layer, IH&MMSec 2016")


class ConstrainedConv2d(nn.Conv2d):
    """A bias-free convolution whose filters are projected onto the prediction-error constraint."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int = 5) -> None:
        super().__init__(in_chans, out_chans, kernel_size, bias=False)
        # Positive off-centre weights: each filter starts as "a weighted average of the
        # neighbours minus the pixel". A signed random start (then projected) can have
        # off-centre sums near zero, which the projection turns into huge, ill-conditioned
        # weights.
        nn.init.uniform_(self.weight, 0.0, 1.0)
        self.constrain()

    @torch.no_grad()
    def constrain(self) -> bool:
        """Project the weights: centre -1, the other weights of each filter scaled to sum to 1.

        Returns whether the weights changed. Weights that already satisfy the constraint are
        left untouched, so that repeated forwards between two optimizer steps (gradient
        accumulation, several passes before one backward) don't bump the parameter's
        version counter under a pending autograd graph.
        """
        w = self.weight
        c = self.kernel_size[0] // 2
        projected = w.clone()
        projected[:, :, c, c] = 0.0
        total = projected.sum(dim=(2, 3), keepdim=True)
        # A filter whose off-centre weights sum to ~0 can't be rescaled; nudge the divisor
        # away from zero (keeping its sign) rather than writing inf/nan into the weights.
        tiny = torch.finfo(w.dtype).eps
        total = torch.where(total.abs() < tiny, torch.full_like(total, tiny).copysign(total), total)
        projected.div_(total)
        projected[:, :, c, c] = -1.0
        if torch.allclose(projected, w, rtol=1e-5, atol=1e-6):
            return False
        w.copy_(projected)
        return True


class BayarStamm(HeadModule):
    """The constrained CNN of Bayar & Stamm (2016).

    Head contract: ``forward_features`` gives the 48x24x24 map after the last pooling,
    ``num_features`` its 48 channels; ``forward_head`` flattens it through the two hidden
    fully connected layers (``head_hidden_size`` = 4096) to ``num_classes`` outputs.

    Args:
        num_classes: outputs (1: one real/fake logit; the paper: one per manipulation).
        in_chans: input channels (paper: 1, grayscale).
        img_size: the input size the fully connected layers are built for.
        hidden: width of the two hidden fully connected layers (paper: 4096).
        drop_rate: dropout on the hidden fully connected layers.
    """

    gradcam_layer = "features"  # the 48-channel map after the last pooling

    def __init__(self, num_classes: int = 1, in_chans: int = 3, img_size: int = 224,
                 hidden: int = 4096, drop_rate: float = 0.5) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.img_size = img_size
        self.constrained = ConstrainedConv2d(in_chans, 12, 5)
        self.features = nn.Sequential(
            nn.Conv2d(12, 64, 7, stride=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(64, 48, 5), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
        )
        self.feature_size = self._feature_size(img_size)
        self._warned_size = False
        self.num_features = 48
        self.head_hidden_size = hidden
        self.pre_logits = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(48 * self.feature_size ** 2, hidden), nn.ReLU(inplace=True), nn.Dropout(drop_rate),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(drop_rate))
        self.fc = nn.Linear(hidden, num_classes) if num_classes > 0 else nn.Identity()
        # Why a forward pre-hook and not an optimizer hook: the model never sees the
        # optimizer (torch.optim.Optimizer.register_step_post_hook is per optimizer, and the
        # global variant would fire for every model in the process). Projecting right
        # before each forward is the paper's "step, then project" for training, since
        # nothing reads the weights between an optimizer step and the next forward; doing it
        # in eval mode too (it is idempotent and costs 12 tiny filters) means a model
        # evaluated straight after its last step still sees constrained filters. The
        # state-dict hook makes checkpoints hold the projected weights as well.
        self.register_forward_pre_hook(_constrain_hook)
        self.register_state_dict_pre_hook(_constrain_before_saving)

    @staticmethod
    def _feature_size(img_size: int) -> int:
        s = img_size - 4                 # constrained 5x5
        s = (s - 7) // 2 + 1             # 7x7 stride 2
        s = (s - 3) // 2 + 1             # pool 3 stride 2
        s = s - 4                        # 5x5
        s = (s - 3) // 2 + 1             # pool 3 stride 2
        if s < 1:
            raise ForensicsError(f"bayar: img_size {img_size} is too small (at least 39)")
        return s

    def constrain(self) -> bool:
        """Re-impose the constraint on the first layer (done automatically before every
        forward and before ``state_dict``); returns whether the weights changed."""
        return self.constrained.constrain()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, 48, s, s) feature map (s = 24 at 224 or 227).

        At the ``img_size`` the model was built for this is exactly the paper's network. At
        another size the last map is max-pooled adaptively to s x s (announced once), so the
        fully connected layers still fit instead of failing with a shape error.
        """
        h, w = x.shape[-2:]
        x = self.features(self.constrained(x))
        s = self.feature_size
        if x.shape[-2:] != (s, s):
            if not self._warned_size:
                log.warning("bayar: built for %dx%d inputs, got %dx%d: pooling the last map to %dx%d adaptively "
                            "(resize crops to the model's input size to run the paper's network)",
                            self.img_size, self.img_size, h, w, s, s)
                self._warned_size = True
            x = F.adaptive_max_pool2d(x, s)
        return x


def _constrain_hook(module: BayarStamm, args: Any) -> None:
    module.constrain()


def _constrain_before_saving(module: BayarStamm, prefix: str, keep_vars: bool) -> None:
    module.constrain()


@register_model
def bayar(pretrained: bool = False, pretrained_file: str | None = None, num_classes: int = 1,
          in_chans: int = 3, img_size: int = 224, hidden: int = 4096, drop_rate: float = 0.5,
          task: str | None = None) -> BayarStamm:
    """Bayar & Stamm's constrained CNN, its fully connected layers built for ``img_size`` (default 224)."""
    check_request("bayar", pretrained=pretrained, pretrained_file=pretrained_file, task=task)
    model = BayarStamm(num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                       hidden=hidden, drop_rate=drop_rate)
    model.pretrained_cfg = default_cfg(
        "bayar", in_chans=in_chans, img_size=img_size, mean=PIXEL_MEAN, std=PIXEL_STD, paper=PAPER,
        num_classes=num_classes, classifier="fc", first_conv="constrained", fixed_input_size=True)
    model.default_cfg = model.pretrained_cfg
    return model
