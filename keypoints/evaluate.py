"""``forensics evaluate`` for a keypoints checkpoint (the task's ``TaskSpec.evaluate``, see :mod:`keypoints.task`).

The model, its keypoint names and input size come from the checkpoint; the data file from
``--manifest`` or, by default, the one it was trained on, split as in training (its
``keypoints`` config: the same random rows held out of a file without a ``split`` column).
Writes into ``--out`` (default ``RUN/eval/<split>``): ``report.json`` (MSE, score, RMSE,
per-keypoint MSE, and what the data checks found), ``predictions.csv`` (true and predicted
coordinates of every face), ``keypoints_<split>.png`` and a W&B run.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def keypoint_config(config: dict[str, Any], names: list[str]):
    """The training run's ``keypoints`` section as a :class:`KeypointConfig`, reading ``names``."""
    from omegaconf import OmegaConf

    from keypoints.config import KeypointConfig

    merged = OmegaConf.merge(OmegaConf.structured(KeypointConfig), config.get("keypoints") or {})
    cfg = OmegaConf.to_object(merged)
    cfg.names = list(names)
    return cfg


def run_keypoints(args, state: dict[str, Any]) -> int:
    """Evaluate the keypoints checkpoint ``state`` as ``args`` (``forensics evaluate``'s flags) say."""
    import pandas as pd

    from forensics.distributed import cleanup_distributed
    from forensics.training.engine import evaluate
    from forensics.errors import ForensicsError
    from forensics.training.session import eval_loader, eval_model, eval_run
    from forensics.training.evaluation import applied_filters
    from keypoints.data import load_keypoint_data
    from keypoints.plot import log_keypoint_evaluation
    from keypoints.table import keypoint_columns
    from forensics.training.tasks import create_task
    from forensics.data.transforms import batch_preparer
    from forensics.training.runlog import write_json

    info, config = state["model_info"], state.get("config") or {}
    env, device, model = eval_model(args, state)
    task = create_task("keypoints", info["classes"])

    data = config.get("data", {})
    manifest = args.manifest or data.get("manifest")
    if not manifest:
        raise ForensicsError("--manifest is needed: the checkpoint names no training data file")
    loaded = load_keypoint_data(
        manifest, keypoint_config(config, info["classes"]), {"eval": args.split},
        **{key: f["values"] for key, f in applied_filters(args, data).items()})
    dataset = loaded.dataset("eval", info["data_config"])
    loader = eval_loader(dataset, args.batch_size, args.num_workers, env, device)

    out, wandb_cfg, logger = eval_run(args, config, manifest, env)
    metrics, gathered = evaluate(model, task, loader, batch_preparer(info["data_config"], device))

    if env.is_main:
        columns = keypoint_columns(info["classes"])
        meta = dataset.meta.iloc[gathered["index"]].reset_index(drop=True)
        table = pd.concat([meta, pd.DataFrame(gathered["target"], columns=[f"true_{c}" for c in columns]),
                           pd.DataFrame(gathered["keypoints"], columns=[f"pred_{c}" for c in columns])], axis=1)
        table.to_csv(out / "predictions.csv", index=False)
        log_keypoint_evaluation(logger, args.split, metrics, gathered, dataset, wandb_cfg.samples)
        write_json(out / "report.json", {"checkpoint": str(args.checkpoint), "manifest": str(manifest),
                                         "split": args.split, "epoch": state.get("epoch"), args.split: metrics,
                                         "data": loaded.stats["eval"]})
        print(f"{args.split}: {metrics['n']} faces | MSE {_fmt(metrics['mse'])} px² | score {_fmt(metrics['score'])} "
              f"| RMSE {_fmt(metrics['rmse'])} px")
        print(f"report: {out / 'report.json'}")
    logger.finish()
    cleanup_distributed()
    return 0


def _fmt(value) -> str:
    return "undefined" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.4f}"
