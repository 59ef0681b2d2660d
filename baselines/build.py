"""What every baseline model function shares: argument checks and the default config.

Each baseline's model function (``meso4``, ``bayar``, ...) checks its request with
:func:`check_request` before building anything, so a request the architecture can't honour
stops at creation with one line, never as a shape error deep inside the network:

* ``pretrained=True`` is refused: none of these baselines has published PyTorch weights
  (MesoNet's Keras ``.h5`` files are not converted; the other four were never released), and
  silently training from scratch under a flag that says "pretrained" would mislead.
* ``task`` (``binary``, ``multiclass``, ``multilabel`` or ``keypoints``, the names of
  :mod:`forensics.training.tasks`) is checked against what the architecture supports.

:func:`default_cfg` builds the model's default config the way timm's ``pretrained_cfg``
does (input size, mean/std, interpolation, crop), so ``timm.data.resolve_data_config(model=m)``
and our transforms read the resize and normalisation from the model itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from forensics.errors import ForensicsError

#: The task names of :data:`forensics.training.tasks.TASKS`, repeated here so that registering the
#: baselines does not import the training stack (pandas, metrics) (a test keeps them equal).
TASKS: tuple[str, ...] = ("binary", "multiclass", "multilabel", "keypoints")

#: Mean/std that feed a network pixel values in 0..255, as hand-crafted residual filters
#: and steganalysis features expect (``ToTensor`` gives 0..1; ``(x - 0) / (1/255)``).
PIXEL_MEAN, PIXEL_STD = 0.0, 1.0 / 255.0
#: Mean/std that keep ``ToTensor``'s 0..1 range (Keras ``rescale=1/255``).
UNIT_MEAN, UNIT_STD = 0.0, 1.0


def check_request(name: str, *, pretrained: bool, task: str | None, pretrained_file: str | None = None,
                  supported: Sequence[str] = TASKS) -> None:
    """Refuse what baseline ``name`` cannot build, with a message the user can act on.

    Args:
        name: the registered model name, for the message.
        pretrained: must be false (no weights exist for the baselines).
        task: the head requested, or ``None`` to skip the check.
        pretrained_file: must be unset (ImageNet weights of a timm model don't apply).
        supported: the tasks this architecture can serve.

    Raises:
        ForensicsError: weights requested, unknown task, or a task the architecture can't have.
    """
    if pretrained or pretrained_file is not None:
        raise ForensicsError(f"model '{name}': no pretrained weights exist for this baseline; "
                             "train it with pretrained=False, or start from a forensics checkpoint "
                             "of your own (model.checkpoint)")
    if task is None:
        return
    if task not in TASKS:
        raise ForensicsError(f"model '{name}': unknown task '{task}' (choose from {', '.join(TASKS)})")
    if task not in supported:
        raise ForensicsError(f"model '{name}' cannot have a {task} head "
                             f"(it supports: {', '.join(supported)})")


def default_cfg(name: str, *, in_chans: int, img_size: int, mean: float, std: float, paper: str,
                num_classes: int, classifier: str, first_conv: str | None,
                fixed_input_size: bool = False, interpolation: str = "bilinear") -> dict[str, Any]:
    """A timm-style ``pretrained_cfg`` for a baseline (there are no weights, so no ``url``).

    ``crop_pct`` is 1.0: the inputs are face crops already, to be resized whole, not
    centre-cropped like ImageNet photos.
    """
    return {
        "architecture": name,
        "input_size": (in_chans, img_size, img_size),
        "fixed_input_size": fixed_input_size,
        "interpolation": interpolation,
        "crop_pct": 1.0,
        "crop_mode": "center",
        "mean": (mean,) * in_chans,
        "std": (std,) * in_chans,
        "num_classes": num_classes,
        "first_conv": first_conv,
        "classifier": classifier,
        "paper": paper,
    }
