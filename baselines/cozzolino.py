"""Cozzolino et al.: a residual-based local descriptor recast as a trainable CNN.

Cozzolino, Poggi, Verdoliva, "Recasting Residual-based Local Descriptors as Convolutional
Neural Networks: an Application to Image Forgery Detection", ACM IH&MMSec 2017.
A FaceForensics++ baseline (Rössler et al., ICCV 2019), which fine-tunes it on the face crops.

Input: 3x224x224 face crops in pixel units 0..255 (``mean=(0, 0, 0)``, ``std=(1/255,)*3``),
converted to luminance inside the network: the descriptor is defined on grayscale pixel
values, and its quantisation step is in pixel units. Any input size works (the histogram is
an average over positions); the shared crop size is fed unresampled.

The descriptor, layer by layer, each stage initialised to its hand-crafted value:

1. residuals: third-order high-pass filters ``[1, -3, 3, -1]``, horizontal and vertical
   (a convolution initialised to the fixed filters, trainable in fine-tuning);
2. quantisation and truncation: ``round(r / q)`` clipped to ``[-T, T]`` (``T = 2``, ``q = 3``
   in pixel units, the rich model's step for third-order residuals), made differentiable as
   a soft assignment of each residual to the 5 values (a softmax over negative squared
   distances; the step ``q`` is learnt);
3. co-occurrences of 4 consecutive quantised residuals along the residual's direction:
   5^4 = 625 one-hot patterns, i.e. a convolution with one filter per pattern followed by an
   indicator; with soft assignments, each pattern's activation is the product of the four
   samples' memberships;
4. average pooling over the image: the normalised co-occurrence histogram (2 x 625 = 1,250
   features);
5. the classifier: the paper replaces the descriptor's SVM with fully connected layers; we
   use batch norm (the feature standardisation an SVM pipeline does) and a linear layer,
   the SVM's CNN counterpart.

Step 3 and 4 are computed together without materialising the 625 maps: the histogram is
``sum_n (p0 x p1)(n) (p2 x p3)(n)^T``, one 25x25 matrix product per image, identical to
averaging the 625 pattern activations and 25x cheaper in memory.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from baselines.build import PIXEL_MEAN, PIXEL_STD, check_request, default_cfg
from forensics.models import HeadModule, register_model

PAPER = ("Cozzolino, Poggi & Verdoliva, Recasting Residual-based Local Descriptors as "
         "Convolutional Neural Networks: an Application to Image Forgery Detection, IH&MMSec 2017")

LUMA = (0.299, 0.587, 0.114)
THIRD_ORDER = (1.0, -3.0, 3.0, -1.0)


class ResidualDescriptor(nn.Module):
    """Images -> soft co-occurrence histograms of quantised, truncated high-pass residuals.

    Args:
        in_chans: input channels (3: converted to luminance; otherwise averaged).
        q: initial quantisation step, in pixel units.
        truncation: T; residuals are quantised to the 2T+1 values -T..T.
        softness: width of the soft assignment, in quantisation steps (0: hard, not trainable).
        trainable: whether the residual filters and ``q`` are fine-tuned (the paper's point).
    """

    def __init__(self, in_chans: int = 3, q: float = 3.0, truncation: int = 2, softness: float = 0.25,
                 trainable: bool = True) -> None:
        super().__init__()
        luma = torch.tensor(LUMA) if in_chans == 3 else torch.full((in_chans,), 1.0 / in_chans)
        self.register_buffer("to_gray", luma.view(1, in_chans, 1, 1))
        kernel = torch.tensor(THIRD_ORDER)
        self.filter_h = nn.Parameter(kernel.view(1, 1, 1, 4).clone(), requires_grad=trainable)
        self.filter_v = nn.Parameter(kernel.view(1, 1, 4, 1).clone(), requires_grad=trainable)
        self.log_q = nn.Parameter(torch.tensor(math.log(q)), requires_grad=trainable)
        self.register_buffer("levels", torch.arange(-truncation, truncation + 1, dtype=torch.float32))
        self.softness = softness
        self.bins = 2 * truncation + 1
        self.num_features = 2 * self.bins ** 4

    def assign(self, residual: torch.Tensor) -> torch.Tensor:
        """(B, H, W) residuals -> (B, bins, H, W) memberships of the quantised, truncated values.

        The nearest level wins (values beyond T go to the end levels: truncation); a softmax
        over squared distances keeps it differentiable.
        """
        r = (residual / self.log_q.exp()).unsqueeze(1)
        distance = (r - self.levels.view(1, -1, 1, 1)) ** 2
        if self.softness <= 0:
            return F.one_hot(distance.argmin(dim=1), self.bins).permute(0, 3, 1, 2).to(r.dtype)
        return torch.softmax(-distance / (2 * self.softness ** 2), dim=1)

    def cooccurrence(self, p: torch.Tensor) -> torch.Tensor:
        """(B, bins, H, W) memberships -> (B, bins^4) histogram of 4 horizontal neighbours."""
        b, k, _, w = p.shape
        n = w - 3
        p0, p1, p2, p3 = (p[..., i:i + n].flatten(2) for i in range(4))     # (B, k, N)
        left = (p0.unsqueeze(2) * p1.unsqueeze(1)).flatten(1, 2)            # (B, k*k, N)
        right = (p2.unsqueeze(2) * p3.unsqueeze(1)).flatten(1, 2)
        hist = torch.bmm(left, right.transpose(1, 2)) / left.shape[-1]      # (B, k*k, k*k)
        return hist.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gray = (x * self.to_gray).sum(dim=1, keepdim=True)
        horizontal = F.conv2d(gray, self.filter_h)[:, 0]
        vertical = F.conv2d(gray, self.filter_v)[:, 0]
        # Vertical co-occurrences are horizontal ones of the transposed map.
        return torch.cat([self.cooccurrence(self.assign(horizontal)),
                          self.cooccurrence(self.assign(vertical).transpose(-1, -2))], dim=1)


class Cozzolino(HeadModule):
    """The recast descriptor with its classifier, trainable end to end.

    Head contract: ``forward_features`` gives the (B, 1,250) co-occurrence histograms
    (``num_features``); ``forward_head`` standardises them (batch norm, ``pre_logits``) and
    applies the linear classifier.

    Args:
        num_classes: outputs (1: one real/fake logit).
        in_chans: input channels.
        q: initial quantisation step (pixel units).
        softness: soft-assignment width, in quantisation steps.
        trainable_descriptor: fine-tune the residual filters and ``q`` too.
        drop_rate: dropout before the classifier.
    """

    gradcam_layer = None  # co-occurrence histograms: no spatial map

    def __init__(self, num_classes: int = 1, in_chans: int = 3, q: float = 3.0, softness: float = 0.25,
                 trainable_descriptor: bool = True, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.descriptor = ResidualDescriptor(in_chans, q=q, softness=softness, trainable=trainable_descriptor)
        self.num_features = self.head_hidden_size = self.descriptor.num_features
        self.pre_logits = nn.Sequential(nn.BatchNorm1d(self.num_features), nn.Dropout(drop_rate))
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images in pixel units, any size -> (B, 1,250) histograms."""
        return self.descriptor(x)


@register_model
def cozzolino(pretrained: bool = False, pretrained_file: str | None = None, num_classes: int = 1,
              in_chans: int = 3, img_size: int = 224, q: float = 3.0, softness: float = 0.25,
              trainable_descriptor: bool = True, drop_rate: float = 0.0, task: str | None = None) -> Cozzolino:
    """Cozzolino et al.'s recast descriptor; any input size works, ``img_size`` sets the default resize."""
    check_request("cozzolino", pretrained=pretrained, pretrained_file=pretrained_file, task=task)
    model = Cozzolino(num_classes=num_classes, in_chans=in_chans, q=q, softness=softness,
                      trainable_descriptor=trainable_descriptor, drop_rate=drop_rate)
    model.pretrained_cfg = default_cfg(
        "cozzolino", in_chans=in_chans, img_size=img_size, mean=PIXEL_MEAN, std=PIXEL_STD, paper=PAPER,
        num_classes=num_classes, classifier="fc", first_conv=None)
    model.default_cfg = model.pretrained_cfg
    return model
