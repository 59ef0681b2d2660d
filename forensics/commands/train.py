"""``forensics train CONFIG [key=value ...]``: train a detector on face crops, on CPU, one GPU or many.

The same command trains the tasks that plug-ins register (:mod:`forensics.training.tasks`).
It runs everywhere::

    forensics train configs/demo.yaml data.manifest=data/crops/manifest.csv output_dir=runs/demo
    torchrun --nproc_per_node=4 -m forensics train configs/ffpp/xception.yaml ...

This module only parses: the schema is :mod:`forensics.training.schema`, the run itself
:func:`forensics.training.trainer.main` (re-exported here, as are the schema's classes).

A run folder (``output_dir``) holds ``config.yaml`` and ``run.json`` (resolved config, git
commit), ``metrics.jsonl``, ``report.json``, ``checkpoints/{last,best}.pt``, ROC and sample
PNGs and the W&B run (``wandb/``).
"""

from __future__ import annotations

# Re-exported for old imports: the schema and the trainer live in the training layer.
from forensics.training.modelinfo import model_info, read_preprocess_settings, registered_kwargs  # noqa: F401
from forensics.training.schema import (LOWER_IS_BETTER, RESUME_MAY_CHANGE, DataConfig, FreezeConfig,  # noqa: F401
                                       LoopConfig, ModelConfig, ParamGroupConfig, TrainConfig)
from forensics.training.session import add_run_arguments
from forensics.training.trainer import main

HELP = "train a detector on face crops, or a plug-in task's model (CPU, one GPU, or torchrun)"


def add_arguments(parser) -> None:
    add_run_arguments(parser, "configs/demo.yaml, configs/ffpp/xception.yaml, ...")


def run(args) -> int:
    from forensics.config import load_config

    cfg = load_config(TrainConfig, args.config, args.overrides)
    return main(cfg, resume=args.resume, force=args.force, eval_only=args.eval_only, checkpoint=args.checkpoint)
