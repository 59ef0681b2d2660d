"""The detector trainer behind ``forensics train``: a few short functions read top to bottom.

``main(cfg)`` reads like torchvision's reference script: open the run
(:mod:`forensics.training.session`), build the task's data and the model (:func:`build`),
then one of three modes: :func:`evaluate_only` (``--eval-only``),
:func:`fit_without_gradients` (a model with a ``fit`` method, e.g. the steganalysis SVM) or
:func:`train` (``train_one_epoch`` / ``evaluate`` every epoch through
:func:`forensics.training.loop.fit`, ``best.pt`` chosen on the **validation** split). Both
training modes end in :func:`test_and_close`, which evaluates ``best.pt`` once on the test
split. The test split never influences training or the choice of checkpoint.

What depends on the task (its data, the figures of a final evaluation, extra report
entries) is asked of the task's :class:`~forensics.training.tasks.TaskData`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from forensics.training.modelinfo import model_info, registered_kwargs
from forensics.training.schema import RESUME_MAY_CHANGE, TrainConfig

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from forensics.training.session import Run
    from forensics.training.tasks import TaskData

log = logging.getLogger(__name__)


@dataclass
class Setup:
    """What every mode works with: the open run, the task's data, the model and its evaluation sets."""

    cfg: TrainConfig
    run: Run
    data: TaskData
    model: nn.Module
    info: dict[str, Any]  # model_info: saved in every checkpoint
    prepare: Any  # batch -> batch on the device, normalised
    amp_dtype: torch.dtype | None
    train_set: Any
    eval_sets: dict[str, Any]
    eval_loaders: dict[str, Any]

    def evaluate(self, name: str, net: nn.Module | None = None) -> tuple[dict, dict]:
        """Metrics and gathered predictions of ``net`` (default: the model) on eval split ``name``."""
        from forensics.training.engine import evaluate

        return evaluate(net if net is not None else self.model, self.data.task, self.eval_loaders[name],
                        self.prepare, amp_dtype=self.amp_dtype, progress=self.cfg.train.progress and self.run.progress)

    def evaluate_and_log(self, name: str, step: int | None = None) -> dict[str, Any]:
        """Evaluate the model on ``name`` and log it as the task does (metrics, figures); the metrics."""
        metrics, gathered = self.evaluate(name)
        self.data.log_evaluation(self.run.logger, name, metrics, gathered, self.eval_sets[name], step)
        return metrics


def main(cfg: TrainConfig, resume: bool = False, force: bool = False, eval_only: bool = False,
         checkpoint: str | None = None) -> int:
    """Train (or, with ``eval_only``, evaluate) as configured; returns the exit status."""
    from forensics.training.session import open_run

    run = open_run(cfg, resume=resume, force=force, eval_only=eval_only, may_change=RESUME_MAY_CHANGE)
    setup = build(cfg, run)
    if eval_only:
        return evaluate_only(setup, checkpoint or cfg.model.checkpoint or str(run.ckpt_dir / "best.pt"))
    if hasattr(setup.model, "fit"):
        return fit_without_gradients(setup)
    return train(setup)


def build(cfg: TrainConfig, run: Run) -> Setup:
    """The task's data, the model (from ``model.checkpoint`` if set) on the device, the loaders, the logger."""
    import torch
    import torch.nn as nn

    from forensics.data.transforms import batch_preparer
    from forensics.models import create_model, data_config
    from forensics.training.checkpoint import check_compatible, load_checkpoint, load_weights
    from forensics.training.gradcam import sample_explainer
    from forensics.training.lineage import log_dataset
    from forensics.training.optim import autocast_dtype
    from forensics.training.session import eval_loader, start_logging
    from forensics.training.tasks import task_spec

    data = task_spec(cfg.task).load_data(cfg)
    model = create_model(cfg.model.name, num_classes=data.task.num_outputs, pretrained=cfg.model.pretrained,
                         pretrained_file=cfg.model.pretrained_file, in_chans=cfg.model.in_chans,
                         drop_rate=cfg.model.drop_rate,
                         **registered_kwargs(cfg.model.name, cfg.task, cfg.model.input_size))
    data_cfg = data_config(model, cfg.model.input_size)
    info = model_info(cfg, data.task, data_cfg)
    if cfg.model.checkpoint:
        initial = load_checkpoint(cfg.model.checkpoint)
        check_compatible(initial, info, cfg.model.checkpoint)
        load_weights(model, initial, cfg.model.checkpoint)
    train_set, eval_sets = data.datasets(data_cfg)
    eval_batch = cfg.data.eval_batch_size or 2 * cfg.data.batch_size
    loaders = {name: eval_loader(ds, eval_batch, cfg.data.num_workers, run.env, run.device)
               for name, ds in eval_sets.items()}
    channels_last = cfg.model.channels_last and run.device.type == "cuda"
    model.to(run.device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    if cfg.model.sync_bn and run.env.distributed and run.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    start_logging(run, cfg)
    prepare = batch_preparer(data_cfg, run.device, channels_last=channels_last)
    log_dataset(run.logger, cfg.data.manifest)  # the data's digest: run.logger.lineage, report.json and W&B
    run.logger.explainer = sample_explainer(model, data.task, getattr(data, "eval_transform", None), prepare)
    if run.env.is_main and not run.eval_only and run.state is None:
        from forensics.data.sbi import log_pairs

        log_pairs(run.logger, train_set)  # self-blended pairs (real, fake, mask) when data.pseudo_fakes
    return Setup(cfg, run, data, model, info, prepare, autocast_dtype(cfg.train.amp), train_set, eval_sets, loaders)


def evaluate_only(setup: Setup, path: str) -> int:
    """``--eval-only``: load ``path``, evaluate it on val and test, write ``eval_report.json``."""
    from forensics.training.checkpoint import check_compatible, load_checkpoint, load_weights
    from forensics.training.session import finish_eval_only

    evaluated = load_checkpoint(path)
    check_compatible(evaluated, setup.info, path)
    load_weights(setup.model, evaluated, path)
    return finish_eval_only(setup.run, {"checkpoint": str(path), "epoch": evaluated.get("epoch"),
                                        "lineage": setup.run.logger.lineage},
                            setup.eval_loaders, setup.evaluate_and_log)


def fit_without_gradients(setup: Setup) -> int:
    """A model fitted once, not trained by gradient descent (the steganalysis SVM on features, a
    task's floor): the same data, evaluation, checkpoints and report as a network, no loop."""
    from forensics.training.checkpoint import save_checkpoint
    from forensics.training.loop import new_best
    from forensics.training.metrics import flatten

    cfg, run = setup.cfg, setup.run
    setup.data.fit(setup.model, setup.prepare, run.dir / "features")
    best = new_best(cfg.train, cfg.best_mode) | {"epoch": 0}
    if "val" in setup.eval_loaders:
        val_metrics, _ = setup.evaluate("val")
        best["val"] = val_metrics
        best["value"] = flatten(val_metrics).get(cfg.train.best_metric)
        run.logger.log({f"val/{k}": v for k, v in flatten(val_metrics).items()}, 1)
    if run.env.is_main:
        state = {"model": setup.model.state_dict(), "model_ema": None, "epoch": 1, "step": 0, "global_step": 1,
                 "metric": best, "model_info": setup.info, "config": run.config, "wandb_id": run.logger.wandb_id}
        save_checkpoint(state, run.ckpt_dir / "best.pt")
        save_checkpoint(state, run.ckpt_dir / "last.pt")
    return test_and_close(setup, {"best": best, "stopped_early": False}, steps_per_epoch=1)


def train_preparer(setup: Setup) -> Any:
    """The training batches' preparer: :attr:`Setup.prepare`, or with ``data.augment.device=gpu``
    the same plus the augmentations on the device (:mod:`forensics.data.batch_augment`)."""
    from forensics.data.batch_augment import batch_augment
    from forensics.data.transforms import batch_preparer

    if not getattr(setup.train_set, "emit_seed", False):
        return setup.prepare
    data_cfg, device = setup.info["data_config"], setup.run.device
    return batch_preparer(data_cfg, device, channels_last=setup.cfg.model.channels_last and device.type == "cuda",
                          augment=batch_augment(data_cfg, setup.cfg.data.augment))


def train(setup: Setup) -> int:
    """Gradient training: :func:`forensics.training.loop.fit` over the epochs, then the test."""
    from forensics.training.checkpoint import load_weights
    from forensics.training.loop import build_parts, fit
    from forensics.training.optim import build_ema
    from forensics.training.session import end_run

    cfg, run = setup.cfg, setup.run
    parts = build_parts(setup.model, setup.data.task, setup.train_set, train_preparer(setup), data=cfg.data,
                        loop=cfg.train, groups=cfg.freeze.groups, env=run.env, device=run.device, seed=cfg.seed,
                        ema=build_ema(setup.model, cfg.train.ema_decay), amp_dtype=setup.amp_dtype,
                        balanced=cfg.data.balance == "sampler")
    if run.state is not None:
        load_weights(setup.model, run.state, str(run.ckpt_dir / "last.pt"), prefer_ema=False)
    log.info("%s: %d train crops (%d per epoch), %s; %s on %s, %d process(es)", cfg.model.name,
             setup.data.train_rows, len(setup.train_set),
             ", ".join(f"{n} {len(d)}" for n, d in setup.eval_sets.items()), setup.data.task.kind, run.device,
             run.env.world_size)
    result = fit(parts, cfg.train, seed=cfg.seed, env=run.env, device=run.device, ckpt_dir=run.ckpt_dir,
                 logger=run.logger, best_mode=cfg.best_mode,
                 evaluate_val=(lambda net: setup.evaluate("val", net)[0]) if "val" in setup.eval_loaders else None,
                 state=run.state, extra={"model_info": setup.info, "config": run.config},
                 net_for_epoch=FreezingPhases(setup))
    if result["status"] != 0:
        return end_run(run, result["status"])
    return test_and_close(setup, result, parts.steps_per_epoch)


class FreezingPhases:
    """The module to train in an epoch: the model with the epoch's parameters trainable
    (``freeze.head_only_epochs``, ``freeze.until``), compiled and wrapped in DDP if asked.
    DDP records which parameters need gradients when it is built, so a new phase re-wraps."""

    def __init__(self, setup: Setup) -> None:
        self.setup, self.phase, self.net = setup, None, None

    def __call__(self, epoch: int) -> nn.Module:
        import torch
        from torch.nn.parallel import DistributedDataParallel

        from forensics.training.freeze import set_trainable

        cfg, run, model = self.setup.cfg, self.setup.run, self.setup.model
        head_only = epoch < cfg.freeze.head_only_epochs
        if (head_only, cfg.freeze.until) != self.phase:
            self.phase = (head_only, cfg.freeze.until)
            count = set_trainable(model, head_only=head_only, freeze_until=cfg.freeze.until)
            log.info("epoch %d: %d trainable parameters%s", epoch, count, " (head only)" if head_only else "")
            self.net = torch.compile(model) if cfg.model.compile else model
            if run.env.distributed:
                self.net = DistributedDataParallel(self.net, device_ids=[run.device.index]
                                                   if run.device.type == "cuda" else None)
        return self.net


def test_and_close(setup: Setup, result: dict[str, Any], steps_per_epoch: int) -> int:
    """Test the checkpoint chosen on val, once; write ``report.json`` and close the run."""
    from forensics.training.checkpoint import load_checkpoint, load_weights
    from forensics.training.session import best_report, close_run

    cfg, run = setup.cfg, setup.run
    report = best_report(result, run.ckpt_dir, cfg.train.epochs)
    if "test" in setup.eval_loaders:
        best = run.ckpt_dir / "best.pt"
        load_weights(setup.model, load_checkpoint(best), str(best))
        report["test"] = setup.evaluate_and_log("test", step=cfg.train.epochs * steps_per_epoch)
    report |= setup.data.report() | {"lineage": run.logger.lineage}
    return close_run(run, report, metric=cfg.train.best_metric,
                     artifact=f"model-{run.dir.name}" if cfg.wandb.log_checkpoint else None)
