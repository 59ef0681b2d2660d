"""Grad-CAM heat maps: where in a face crop a detector sees the forgery.

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017) weighs a convolutional layer's feature maps by the
gradient of a target output and keeps the positive part. The maintained ``pytorch-grad-cam``
package (``pip install grad-cam``) computes it; this module chooses what it is given:

* the layer: :func:`forensics.models.gradcam_layer` (a model's declared layer, timm's last
  feature stage, else its last convolution);
* the target: the *fake evidence*, the log-odds of the task's fake score (the binary head's
  logit; for attribution, all manipulations against ``original``), so maps of every task
  answer the same question. Log-odds and not the probability: a sigmoid saturated at 1.0 has
  no gradient left to weigh the maps with;
* the input: a crop as training saw it (the checkpoint's transform and normalisation).

Each map is scaled to 0..1 (by ``pytorch-grad-cam``, per crop) and resized to the crop's size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch


def fake_logit(kind: str, outputs: torch.Tensor) -> torch.Tensor:
    """Log-odds that each sample is fake, from a ``(B, num_outputs)`` head of task ``kind``."""
    outputs = outputs.float()
    if kind == "binary":
        return outputs[:, 0]
    if kind == "multiclass":  # log p(any manipulation) - log p(original)
        return torch.logsumexp(outputs[:, 1:], dim=1) - outputs[:, 0]
    if kind == "multilabel":  # the most confident manipulation
        return outputs.max(dim=1).values
    raise ValueError(f"Grad-CAM explains detectors; task '{kind}' has no fake score")


def _tokens_to_map(prefix_tokens: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Vision transformers give ``(B, tokens, C)``: drop the class tokens, fold the rest into a grid."""
    def reshape(x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3:
            return x
        x = x[:, prefix_tokens:]
        side = int(round(x.shape[1] ** 0.5))
        return x.reshape(x.shape[0], side, side, x.shape[2]).permute(0, 3, 1, 2)

    return reshape


class GradCam:
    """Grad-CAM maps of a detector for face crops.

    Args:
        model: the detector (any registered or timm model).
        task: its task (:func:`forensics.training.tasks.create_task`), for the fake evidence.
        transform: a crop (``CxHxW`` uint8 tensor) to the model's input size, as in evaluation.
        prepare: a batch preparer (device, dtype, normalisation) of :mod:`forensics.data.transforms`.
        layer: the module to explain (default: :func:`forensics.models.gradcam_layer`).
        batch_size: crops per backward pass.
    """

    def __init__(self, model: torch.nn.Module, task: Any, transform: Callable, prepare: Callable,
                 layer: torch.nn.Module | None = None, batch_size: int = 16) -> None:
        from forensics.models import gradcam_layer

        self.model, self.kind, self.transform, self.prepare = model, task.kind, transform, prepare
        self.layer = layer if layer is not None else gradcam_layer(model)
        self.batch_size = batch_size

    def __call__(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, H, W)`` float32 maps in 0..1 for ``N`` RGB uint8 crops of ``H x W``, each map the size of its crop."""
        from pytorch_grad_cam import GradCAM

        if len(crops) == 0:
            return np.zeros((0, 0, 0), np.float32)
        target = lambda out: fake_logit(self.kind, out[None])[0]  # noqa: E731  (one sample's output)
        maps = []
        training = self.model.training
        reshape = _tokens_to_map(getattr(self.model, "num_prefix_tokens", 1))
        with torch.enable_grad(), GradCAM(self.model, [self.layer], reshape_transform=reshape) as cam:
            for start in range(0, len(crops), self.batch_size):
                chunk = crops[start:start + self.batch_size]
                images = torch.stack([self.transform(torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1))
                                      for c in chunk])
                # The input requires grad, so the layer's activations do even where the layers
                # before it are frozen (head-only training).
                batch = self.prepare({"image": images})["image"].detach().requires_grad_(True)
                maps += [cv2.resize(m, (c.shape[1], c.shape[0]), interpolation=cv2.INTER_LINEAR)
                         for m, c in zip(cam(input_tensor=batch, targets=[target] * len(chunk)), chunk)]
        self.model.zero_grad(set_to_none=True)
        self.model.train(training)
        maps = [np.clip(np.nan_to_num(m.astype(np.float32)), 0.0, 1.0) for m in maps]
        return np.stack(maps) if len({m.shape for m in maps}) == 1 else maps


def sample_explainer(model: torch.nn.Module, task: Any, transform: Callable | None,
                     prepare: Callable) -> GradCam | None:
    """A :class:`GradCam` for the sample grids of a run, or ``None`` where there is nothing to
    explain (a regression task, a model without a spatial feature map)."""
    from forensics.errors import ForensicsError

    if transform is None or getattr(task, "kind", None) not in ("binary", "multiclass", "multilabel"):
        return None
    try:
        return GradCam(model, task, transform, prepare)
    except ForensicsError:
        return None


def from_checkpoint(checkpoint: str | Any, device: str = "cpu") -> GradCam:
    """A :class:`GradCam` of the detector in a ``forensics train`` checkpoint, fed as in evaluation.

    Raises:
        ForensicsError: not a detector checkpoint, or a model without a spatial feature map.
    """
    from forensics.data.transforms import batch_preparer, build_transform
    from forensics.errors import ForensicsError
    from forensics.models import create_model
    from forensics.training.checkpoint import load_checkpoint, load_weights
    from forensics.training.tasks import create_task

    state = load_checkpoint(checkpoint)
    info = state.get("model_info") or {}
    if info.get("task") not in ("binary", "multiclass", "multilabel"):
        raise ForensicsError(f"{checkpoint}: not a detector checkpoint of forensics train")
    model = create_model(info["name"], num_classes=info["num_classes"], in_chans=info.get("in_chans"),
                         drop_rate=info.get("drop_rate"), img_size=info.get("img_size"))
    load_weights(model, state, str(checkpoint))
    model.to(device).eval()
    data_cfg = info["data_config"]
    # No crop size given: every crop is resized to the input size, whatever its own size.
    return GradCam(model, create_task(info["task"], info["classes"]), build_transform(data_cfg, None),
                   batch_preparer(data_cfg, device))
