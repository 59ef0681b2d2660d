"""What a checkpoint records about its model, so that evaluate and predict rebuild it alone.

``model_info`` goes into every checkpoint of ``forensics train``: architecture, head,
classes, input size, mean/std, how a video's score is made, and the crop settings of the
preprocessing run the training data came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forensics.training.schema import TrainConfig
    from forensics.training.tasks import Task


def read_preprocess_settings(manifest: str) -> dict[str, Any]:
    """Crop settings of the preprocessing run that wrote ``manifest`` (``settings.json`` beside it).

    ``forensics predict`` crops faces with these, so that it feeds the model what training saw.
    """
    import json

    path = Path(manifest).parent / "settings.json"
    try:
        settings = json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    plain = (int, float, str, bool, type(None))
    return {k: v for k, v in settings.items()
            if isinstance(v, plain) or (isinstance(v, list) and all(isinstance(x, plain) for x in v))}


def registered_kwargs(name: str, task: str, input_size: int | None) -> dict[str, Any]:
    """``task`` and ``img_size`` for our registered models that take them; nothing for timm's.

    ``task`` lets an architecture refuse a head it can't have (the SVM and multilabel) at
    set-up rather than after feature extraction; ``img_size`` matters where layers are built
    for the input (Bayar & Stamm's fully connected layers). timm models take neither.
    """
    from forensics.models import is_registered, model_arguments

    if not is_registered(name):
        return {}
    accepted = model_arguments(name)
    return {k: v for k, v in (("task", task), ("img_size", input_size)) if k in accepted and v is not None}


def model_info(cfg: TrainConfig, task: Task, data_cfg: dict[str, Any]) -> dict[str, Any]:
    """What evaluate/predict need to rebuild the model and its inputs from a checkpoint alone."""
    return {"name": cfg.model.name, "task": task.kind, "classes": list(task.classes),
            "num_classes": task.num_outputs, "in_chans": cfg.model.in_chans, "drop_rate": cfg.model.drop_rate,
            "img_size": registered_kwargs(cfg.model.name, cfg.task, cfg.model.input_size).get("img_size"),
            "data_config": data_cfg, "video_strategy": cfg.train.video_strategy,
            "preprocess": read_preprocess_settings(cfg.data.manifest)}
