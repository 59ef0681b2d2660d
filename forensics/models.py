"""The model registry and factory: one ``create_model`` for timm backbones and our own models.

Following timm: a model function is recorded by name with :func:`register_model`, and
:func:`create_model` builds any registered model or, failing that, any timm model, always
with the same head contract (``forward_features``, ``forward_head``, ``num_features``,
``reset_classifier``). Arguments left as ``None`` are dropped, so an unset config key never
overrides a model's own default.

``forensics`` never imports the packages that register models: they announce themselves
through the ``forensics.models`` entry-point group in ``pyproject.toml``, loaded the first
time a name is looked up (:class:`forensics.registry.Registry`). A third-party package can
register detectors the same way.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.nn as nn

from forensics.errors import ForensicsError
from forensics.registry import Registry

log = logging.getLogger(__name__)

ModelFn = Callable[..., nn.Module]
#: Our models by name; plug-ins of the ``forensics.models`` entry-point group join on first lookup.
MODELS: Registry[ModelFn] = Registry("model", "forensics.models")


class HeadModule(nn.Module):
    """timm's head contract for our own architectures (the baselines, plug-ins' models).

    A subclass builds ``forward_features(x)``, ``self.pre_logits`` (features to the
    ``head_hidden_size`` vector the classifier reads) and ``self.fc``; this class gives it
    ``forward_head``, ``forward``, ``get_classifier`` and ``reset_classifier`` as timm models
    have them, so the factory can replace any model's head the same way. ``init_classifier``
    is the hook for an architecture's own output-layer initialisation.
    """

    num_classes: int
    head_hidden_size: int

    def forward_head(self, x, pre_logits: bool = False):
        """Features -> ``(B, num_classes)`` outputs, or the ``head_hidden_size`` features if ``pre_logits``."""
        x = self.pre_logits(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the output layer with a new one of ``num_classes`` outputs (0: none)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            self.init_classifier(self.fc)

    def init_classifier(self, fc: nn.Linear) -> None:
        """Initialise a new output layer (default: PyTorch's)."""


def register_model(fn: ModelFn | None = None, *, name: str | None = None) -> Any:
    """Decorator recording a model function under ``name`` (default: the function's name).

    The function takes ``num_classes``, ``in_chans`` and its own keyword arguments and
    returns an ``nn.Module`` honouring the head contract.
    """
    record = MODELS.decorator(name)
    return record(fn) if fn is not None else record


def list_models(pattern: str = "*") -> list[str]:
    """Names of our registered models matching a shell-style ``pattern`` (timm's are not listed)."""
    return sorted(n for n in MODELS.names() if fnmatch.fnmatch(n, pattern))


def is_registered(name: str) -> bool:
    """Whether ``name`` is one of our registered (non-timm) models."""
    return name in MODELS


def model_arguments(name: str) -> set[str]:
    """Keyword arguments the registered model ``name`` takes (``task``, ``img_size``, ...)."""
    import inspect

    return set(inspect.signature(MODELS.get(name)).parameters)


def create_model(name: str, *, num_classes: int | None = 1, pretrained: bool = False,
                 pretrained_file: str | os.PathLike | None = None, checkpoint: str | os.PathLike | None = None,
                 in_chans: int | None = None, **kwargs: Any) -> nn.Module:
    """Build model ``name`` with a head of ``num_classes`` outputs.

    Two weight paths, as in timm:

    * *pretrained with adaptation* (``pretrained``, ``pretrained_file``): ImageNet weights from
      timm's hub, or from a local file when offline. The pretrained classifier is dropped
      when ``num_classes`` differs and the first convolution is adapted to ``in_chans``
      (summed to 1 channel, repeated beyond 3), so a 1x96x96 grayscale model still starts
      from ImageNet features.
    * *strict* (``checkpoint``): a forensics checkpoint of this very architecture and head
      (``module.``/``_orig_mod.`` prefixes stripped, EMA weights preferred); any mismatch is
      an error naming the first differing tensor.

    Args:
        name: a registered model or any timm model name (e.g. ``legacy_xception``).
        num_classes: 1 for the binary real/fake head (one logit), K for K classes or labels,
            0 for a features-only model.
        pretrained: load ImageNet weights (timm's hub, or ``pretrained_file``).
        pretrained_file: local weights file (``.pth``/``.safetensors``); implies ``pretrained``.
        checkpoint: a forensics checkpoint to load strictly after building.
        in_chans: input channels.
        **kwargs: passed to the model function (``drop_rate``, ...); ``None`` values are dropped.

    Raises:
        ForensicsError: unknown model, missing ``pretrained_file``, weights that don't fit (naming
            the first tensor that doesn't), ``pretrained`` weights neither cached nor downloadable
            (naming both offline workflows: see :mod:`forensics.weights`).
    """
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    if pretrained_file is not None:
        if not Path(pretrained_file).is_file():
            raise ForensicsError(f"pretrained weights file not found: {pretrained_file}")
        pretrained = True
    if is_registered(name):
        if pretrained_file is not None:
            kwargs["pretrained_file"] = str(pretrained_file)
        model = MODELS.get(name)(pretrained=pretrained, **kwargs)
    else:
        import timm  # local: timm is slow to import and most commands don't need it

        if not timm.is_model(name):
            raise ForensicsError(f"unknown model '{name}': neither registered here "
                                 f"({', '.join(list_models()) or 'none'}) nor a timm model")
        from forensics.weights import download_error, first_mismatch, require_weights

        if pretrained_file is not None:
            kwargs["pretrained_cfg_overlay"] = {"file": str(pretrained_file)}
        elif pretrained:
            require_weights(name)  # one line naming the offline workflows, not a minute of retries
        try:
            model = timm.create_model(name, pretrained=pretrained, **kwargs)
        except RuntimeError as error:  # timm's strict load of a file of another architecture
            if pretrained_file is None:
                raise
            raise ForensicsError(f"{pretrained_file}: pretrained weights don't fit {name}: "
                                 f"{first_mismatch(error)}") from None
        except (OSError, ConnectionError) as error:  # a download that failed (URLError is an OSError)
            if not pretrained or pretrained_file is not None:
                raise
            raise download_error(name, error) from None
    if checkpoint is not None:
        from forensics.training.checkpoint import load_checkpoint, load_weights

        load_weights(model, load_checkpoint(checkpoint), source=str(checkpoint))
    return model


def data_config(model: nn.Module, input_size: int | None = None) -> dict[str, Any]:
    """Input size, mean/std, interpolation and crop fraction from the model's pretrained config.

    Transforms read these instead of constants: Xception wants 299 and mean/std 0.5,
    EfficientNet and ResNet 224 and ImageNet statistics. ``input_size`` overrides the side.
    Values are plain lists and strings (they go into checkpoints and YAML).
    """
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    in_chans = _in_chans(model)
    mean, std = list(cfg["mean"]), list(cfg["std"])
    if len(mean) != in_chans:  # a 1-channel model adapted from RGB weights: average the statistics
        mean, std = [sum(mean) / len(mean)] * in_chans, [sum(std) / len(std)] * in_chans
    side = input_size or int(cfg["input_size"][-1])
    return {"input_size": [in_chans, side, side], "mean": [float(m) for m in mean], "std": [float(s) for s in std],
            "interpolation": str(cfg.get("interpolation", "bilinear")), "crop_pct": float(cfg.get("crop_pct", 1.0))}


def _in_chans(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return int(getattr(model, "pretrained_cfg", {}).get("input_size", (3,))[0])


def gradcam_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM explains (:mod:`forensics.training.gradcam`): the last spatial feature map.

    A model may declare it as ``gradcam_layer``, a submodule name (our baselines do), or
    ``None`` when it has no spatial map (histogram or SVM features). A timm model's is the
    last stage of its ``feature_info`` (the last convolutional block, stride 32; a vision
    transformer's last block's first norm); anything else falls back to its last convolution.

    Raises:
        ForensicsError: the model declares no spatial map, or has no convolution at all.
    """
    declared = getattr(model, "gradcam_layer", "")
    if declared is None:
        raise ForensicsError(f"{type(model).__name__} has no spatial feature map: Grad-CAM cannot explain it")
    if declared:
        return model.get_submodule(declared)
    info = getattr(model, "feature_info", None)
    if info:
        layer = model.get_submodule(info[-1]["module"])
        # A vision transformer's last block only feeds the class token on: its patch tokens get
        # no gradient. Its first norm does (pytorch-grad-cam's recipe for ViTs).
        return getattr(layer, "norm1", layer)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ForensicsError(f"{type(model).__name__} has no convolution: Grad-CAM cannot explain it")
    return convs[-1]
