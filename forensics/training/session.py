"""Opening and closing a run: the one place every trainer (``forensics train``, plug-in trainers) shares.

A run is decided before any work (:func:`open_run`: this process's place in the torchrun
group and its device, resume ``last.pt`` or start fresh, seeds), then gets its record
(:func:`start_logging`: ``metrics.jsonl``/W&B, and ``config.yaml``/``run.json``, except in
eval-only mode, which must leave the training run's record as it is), and ends in one of
three ways: :func:`finish_eval_only` (``eval_report.json``), :func:`close_run`
(``report.json`` after training) or :func:`end_run` (pre-empted: only the logger and the
process group are closed). Copies of this code drift; so there is one.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forensics.errors import ConfigError
from forensics.outputs import check_output_dir

if TYPE_CHECKING:
    import torch
    import torch.nn as nn
    from torch.utils.data import DataLoader, Dataset

    from forensics.distributed import DistEnv
    from forensics.training.runlog import RunLogger

log = logging.getLogger(__name__)


def add_run_arguments(parser: argparse.ArgumentParser, example: str) -> None:
    """The flags every config-driven training command takes (``train`` and plug-in trainers):
    the config, its overrides, and the run modes :func:`open_run` honours."""
    parser.add_argument("config", help=f"YAML config ({example})")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. data.manifest=crops/manifest.csv output_dir=runs/x")
    parser.add_argument("--resume", action="store_true", help="continue the run in output_dir from checkpoints/last.pt")
    parser.add_argument("--force", action="store_true", help="resume even though the config changed")
    parser.add_argument("--eval-only", action="store_true",
                        help="evaluate checkpoints/best.pt (or --checkpoint) on val and test, then stop")
    parser.add_argument("--checkpoint", help="with --eval-only: the checkpoint to evaluate")


def resolve_device(name: str, local_rank: int) -> torch.device:
    """``auto``/``cpu``/``cuda``/``cuda:N`` to a ``torch.device``; ``cuda`` is this rank's GPU."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    return torch.device(name)


def start_process(device: str) -> tuple[DistEnv, torch.device]:
    """Join the torchrun process group, if launched by it, and pick this rank's device.

    ``device`` is ``auto`` (CUDA when there is a GPU), ``cpu`` or ``cuda``; ranks other than 0
    log warnings only.
    """
    import torch

    from forensics.distributed import init_distributed

    name = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    env = init_distributed(name)
    if not env.is_main:
        logging.getLogger().setLevel(logging.WARNING)  # only rank 0 speaks
    return env, resolve_device(device, env.local_rank)


def eval_loader(dataset: Dataset, batch_size: int, num_workers: int, env: DistEnv,
                device: torch.device) -> DataLoader:
    """A loader that gives each rank every ``world_size``-th sample, in order."""
    from torch.utils.data import DataLoader, DistributedSampler

    # shuffle=False: each rank takes every world_size-th sample; the last round is padded
    # with repeats, which evaluate() drops by sample index before computing metrics.
    sampler = DistributedSampler(dataset, num_replicas=env.world_size, rank=env.rank, shuffle=False)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      pin_memory=device.type == "cuda")


def resume_state(ckpt_dir: Path, config: dict[str, Any], *, resume: bool, force: bool, eval_only: bool,
                 may_change: tuple[str, ...]) -> dict[str, Any] | None:
    """Decide, before any work, between resuming ``last.pt`` and starting fresh.

    Returns the checkpoint to resume from, or ``None``. Refuses a resume whose config differs
    in keys outside ``may_change`` (unless ``force``), and a fresh run in a folder that holds one.
    """
    from forensics.config import config_diff
    from forensics.training.checkpoint import load_checkpoint

    check_output_dir(ckpt_dir.parent, "output_dir")  # a file or a read-only folder: one line, before any work
    if resume:
        state = load_checkpoint(ckpt_dir / "last.pt")
        changed = [k for k in config_diff(state["config"], config) if k not in may_change]
        if changed and not force:
            raise ConfigError(f"--resume: the config differs from the interrupted run's in "
                              f"{', '.join(changed)}; restore those values or pass --force")
        return state
    if not eval_only and (ckpt_dir / "last.pt").exists():
        raise ConfigError(f"output_dir {ckpt_dir.parent} already holds a run (checkpoints/last.pt): "
                          "pass --resume to continue it, or choose another output_dir")
    return None


@dataclass
class Run:
    """An open run: this process, its folder, its config and what it resumes."""

    env: DistEnv
    device: torch.device
    dir: Path
    config: dict[str, Any]  # the resolved config, as saved in checkpoints
    state: dict[str, Any] | None  # the last.pt to resume, or None
    eval_only: bool
    start_time: float
    logger: RunLogger | None = None  # set by start_logging

    @property
    def ckpt_dir(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def progress(self) -> bool:
        """Whether progress bars make sense here (rank 0, a terminal)."""
        import sys

        return self.env.is_main and sys.stderr.isatty()


def open_run(cfg: Any, *, resume: bool = False, force: bool = False, eval_only: bool = False,
             may_change: tuple[str, ...] = ()) -> Run:
    """Start the process (device, torchrun group), decide resume or fresh start, seed; no files yet.

    ``cfg`` is a run config with ``output_dir``, ``device`` and ``seed``; ``may_change`` lists
    the dotted keys a resumed run may change.
    """
    import numpy as np
    import torch

    from forensics.config import to_dict

    start_time = time.time()
    env, device = start_process(cfg.device)
    run_dir, config = Path(cfg.output_dir), to_dict(cfg)
    state = resume_state(run_dir / "checkpoints", config, resume=resume, force=force, eval_only=eval_only,
                         may_change=may_change)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    return Run(env, device, run_dir, config, state, eval_only, start_time)


def start_logging(run: Run, cfg: Any, job_type: str = "train") -> RunLogger:
    """The run's logger (``metrics.jsonl`` or, eval-only, ``eval_metrics.jsonl``, and W&B) and, on
    rank 0 of a training run, ``config.yaml`` and ``run.json``. Eval-only leaves the training
    run's provenance as it is: rewriting it would lose the record of how the weights were made."""
    from forensics.config import write_run_info
    from forensics.training.runlog import RunLogger

    run.logger = RunLogger(run.dir, enabled=run.env.is_main, config=run.config, wandb_cfg=cfg.wandb,
                           wandb_id=run.state.get("wandb_id") if run.state else None,
                           keep_until_step=run.state["global_step"] if run.state else None,
                           job_type="eval" if run.eval_only else job_type,
                           metrics_file="eval_metrics.jsonl" if run.eval_only else "metrics.jsonl")
    if run.env.is_main and not run.eval_only:
        write_run_info(cfg, run.dir)
    return run.logger


def end_run(run: Run, status: int = 0) -> int:
    """Close the logger (W&B) and the process group; returns ``status``."""
    from forensics.distributed import cleanup_distributed

    if run.logger is not None:
        run.logger.finish()
    cleanup_distributed()
    return status


def finish_eval_only(run: Run, report: dict[str, Any], splits: Iterable[str],
                     evaluate_split: Callable[[str], dict[str, Any]]) -> int:
    """Evaluate each of ``splits`` into ``report``, write ``eval_report.json`` (rank 0), end the run."""
    from forensics.training.runlog import write_json

    for name in splits:
        report[name] = evaluate_split(name)
    if run.env.is_main:
        write_json(run.dir / "eval_report.json", report)
    return end_run(run, 0)


def best_report(result: dict[str, Any], ckpt_dir: Path, epochs: int) -> dict[str, Any]:
    """The head of a run's ``report.json``: the checkpoint chosen on val and its val metrics."""
    best = result["best"]
    return {"best": {k: best[k] for k in ("name", "mode", "value", "epoch")}, "checkpoint": str(ckpt_dir / "best.pt"),
            "epochs": epochs, "stopped_early": result["stopped_early"], "val": best.get("val")}


def close_run(run: Run, report: dict[str, Any], *, metric: str, artifact: str | None) -> int:
    """Write ``report.json`` (rank 0), log the best value and, if named, the checkpoint artifact;
    end the W&B run and the process group. Returns the exit status 0."""
    from forensics.training.runlog import write_json

    report["time_s"] = round(time.time() - run.start_time, 1)
    if run.env.is_main and run.logger is not None:
        run.logger.summary({f"best/val/{metric}": report["best"]["value"], "best/epoch": report["best"]["epoch"]})
        write_json(run.dir / "report.json", report)
        if artifact:
            run.logger.log_artifact(Path(report["checkpoint"]), artifact)
        log.info("done: %s", run.dir / "report.json")
    return end_run(run, 0)


def eval_run(args: Any, config: dict[str, Any], manifest: str, env: DistEnv) -> tuple[Path, Any, RunLogger]:
    """For ``forensics evaluate``: the output folder (``--out``, or ``RUN/eval/<split>``), W&B
    settings (the training run's, with ``--wandb-mode`` and ``--wandb-name``) and run logger of an evaluation of
    ``args.checkpoint``."""
    from forensics.training.runlog import RunLogger, WandbConfig

    run = Path(args.checkpoint).resolve().parent.parent
    out = Path(args.out) if args.out else run / "eval" / args.split
    wandb_cfg = WandbConfig(**{k: v for k, v in config.get("wandb", {}).items() if k in WandbConfig.__dataclass_fields__})
    wandb_cfg.mode = args.wandb_mode or wandb_cfg.mode
    wandb_cfg.name = getattr(args, "wandb_name", None) or f"{wandb_cfg.name or run.name}-eval-{args.split}"
    logger = RunLogger(out, enabled=env.is_main, config={"checkpoint": str(args.checkpoint), "manifest": str(manifest),
                                                         "split": args.split, "train_config": config},
                       wandb_cfg=wandb_cfg, job_type="eval")
    return out, wandb_cfg, logger


def eval_model(args: Any, state: dict[str, Any]) -> tuple[DistEnv, torch.device, nn.Module]:
    """For ``forensics evaluate``: the process group (torchrun or one process), this rank's
    device (``--device``) and the checkpoint's model with its weights on it."""
    from forensics.models import create_model
    from forensics.training.checkpoint import load_weights

    env, device = start_process(args.device)
    info = state["model_info"]
    model = create_model(info["name"], num_classes=info["num_classes"], in_chans=info.get("in_chans"),
                         drop_rate=info.get("drop_rate"), img_size=info.get("img_size"))
    load_weights(model, state, args.checkpoint)
    return env, device, model.to(device)
