"""Run logging: the run folder always, Weights & Biases on top.

Only rank 0 logs. Everything goes to the run folder first (``metrics.jsonl``: one JSON object
per line with ``step``; figures as PNG; the final ``report.json`` is written by the caller),
so a run can be read without W&B, then to W&B when it is on.

``wandb.mode`` is ``online``, ``offline`` or ``disabled``. The config's value wins; left empty,
``WANDB_MODE`` from the environment is used (empty counts as unset, anything else but the
three modes is an error naming it); with neither it is ``online`` when an API key is
configured (``WANDB_API_KEY`` or ``wandb login``'s netrc entry) and ``offline`` otherwise, so
a laptop or a cluster node without internet never hangs on a login prompt.

A compute node often has the key (a shared home's ``~/.netrc``) but no internet. When online
W&B can't be reached within ``wandb.init_timeout`` seconds, the run goes on offline with one
warning saying how to upload it later, unless ``online`` was asked for explicitly (config or
``WANDB_MODE``): then it stops with one line before any training. Offline runs are stored
under ``RUN/wandb/`` and uploaded later with ``wandb sync``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import netrc
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensics.atomic import atomic_path
from forensics.errors import ConfigError, ForensicsError
from forensics.provisional import Provisional

log = logging.getLogger(__name__)

MODES = ("online", "offline", "disabled")


@dataclass
class WandbConfig:
    """Weights & Biases settings (``mode`` empty: online with an API key, else offline)."""

    mode: str | None = None
    project: str = "forensics"
    entity: str | None = None
    name: str | None = None  # default: the run folder's name
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    log_checkpoint: bool = False  # upload best.pt as a model artifact at the end
    samples: int = 16  # crops in the sample grid logged at the end
    init_timeout: float = 15.0  # seconds to reach online W&B before going on offline

    def validate(self) -> None:
        if self.mode is not None and self.mode not in MODES:
            raise ConfigError(f"wandb.mode must be one of {', '.join(MODES)} (or empty), got '{self.mode}'")
        if not self.init_timeout > 0:
            raise ConfigError(f"wandb.init_timeout must be > 0 seconds, got {self.init_timeout}")


def has_api_key() -> bool:
    """Whether W&B credentials are configured (environment or ``~/.netrc``)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("//")[-1]
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def env_mode() -> str | None:
    """``WANDB_MODE`` from the environment: ``None`` when unset or empty.

    Raises:
        ConfigError: a value W&B would reject (with a pydantic traceback) or misread.
    """
    value = os.environ.get("WANDB_MODE", "").strip()
    if not value:
        return None
    if value not in MODES:
        raise ConfigError(f"environment variable WANDB_MODE={value!r} is not a W&B mode: "
                          f"use one of {', '.join(MODES)}, or leave it unset")
    return value


def resolve_mode(mode: str | None) -> str:
    """The W&B mode to use: the config's, else ``WANDB_MODE``'s, else online with a key and offline without."""
    if mode:
        return mode
    return env_mode() or ("online" if has_api_key() else "offline")


def explicitly_online(mode: str | None) -> bool:
    """Whether ``online`` was asked for (config or ``WANDB_MODE``) rather than inferred from a key."""
    return (mode or env_mode()) == "online"


@contextlib.contextmanager
def _wandb_mode_env(mode: str) -> Iterator[None]:
    """``WANDB_MODE`` set to the resolved mode while W&B starts (it parses the variable itself)."""
    previous = os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = mode
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("WANDB_MODE", None)
        else:
            os.environ["WANDB_MODE"] = previous


def start_wandb(wandb_cfg: WandbConfig, run_dir: Path, **init: Any) -> Any:
    """``wandb.init`` in the resolved mode (``None`` when disabled), going offline when online fails.

    Args:
        wandb_cfg: W&B settings (mode, project, ..., ``init_timeout``).
        run_dir: the run folder (W&B writes ``run_dir/wandb``).
        init: further ``wandb.init`` arguments (config, id, resume, job_type).

    Raises:
        ForensicsError: online W&B, asked for explicitly, could not be reached.
    """
    mode = resolve_mode(wandb_cfg.mode)
    if mode == "disabled":
        return None
    import wandb

    args = dict(project=wandb_cfg.project, entity=wandb_cfg.entity, name=wandb_cfg.name or run_dir.name,
                group=wandb_cfg.group, tags=list(wandb_cfg.tags) or None, dir=str(run_dir), **init)
    settings = wandb.Settings(init_timeout=float(wandb_cfg.init_timeout))
    explicit = explicitly_online(wandb_cfg.mode)
    with _wandb_mode_env(mode):
        if mode != "online":
            return wandb.init(mode=mode, settings=settings, **args)
        try:
            return wandb.init(mode=mode, settings=settings, **args)
        except (wandb.errors.CommError, wandb.errors.UsageError, OSError) as error:
            reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            if explicit:
                raise ForensicsError(f"W&B mode online was asked for but W&B can't be reached within "
                                     f"{wandb_cfg.init_timeout:g} s ({reason}); set wandb.mode=offline "
                                     "and upload later with wandb sync") from None
    log.warning("W&B can't be reached within %g s (%s): logging offline to %s; upload later with: wandb sync %s",
                wandb_cfg.init_timeout, reason, run_dir / "wandb", run_dir / "wandb" / "offline-run-*")
    with _wandb_mode_env("offline"):
        return wandb.init(mode="offline", settings=settings, **args)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN becomes null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON atomically (NaN written as ``null``)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_clean(data), indent=2) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file (a truncated last line is skipped)."""
    records = []
    path = Path(path)
    if not path.is_file():
        return records
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill -9
    return records


class RunLogger:
    """Writes ``metrics.jsonl`` and mirrors it to W&B; a no-op on ranks other than 0.

    Args:
        run_dir: the run folder.
        enabled: ``False`` on ranks other than 0.
        config: the resolved config (stored in the W&B run).
        wandb_cfg: W&B settings.
        wandb_id: the id of the W&B run to continue (a resumed training run).
        keep_until_step: when resuming, drop records logged after this step by the run that
            was interrupted (they will be logged again).
        job_type: ``train`` or ``eval`` (W&B's job type).
    """

    def __init__(self, run_dir: str | os.PathLike, *, enabled: bool = True, config: dict | None = None,
                 wandb_cfg: WandbConfig | None = None, wandb_id: str | None = None,
                 keep_until_step: int | None = None, job_type: str = "train",
                 metrics_file: str = "metrics.jsonl") -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.run = None
        self.lineage: dict[str, Any] | None = None  # the data's digest (forensics.training.lineage)
        self.explainer = None  # a forensics.training.gradcam.GradCam: heat maps in the sample grid
        self.metrics_path = self.run_dir / metrics_file
        if not enabled:
            return
        # Until the first training step, this folder's new files go again if the command fails.
        self._setup = Provisional(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # W&B first: a run that can't start it stops before touching earlier metrics.
        self.run = start_wandb(wandb_cfg or WandbConfig(), self.run_dir, config=config, id=wandb_id,
                               resume="allow" if wandb_id else None, job_type=job_type)
        if self.run is not None:
            log.info("W&B run %s (%s) in %s", self.run.id, self.run.settings.mode, self.run_dir / "wandb")
        if keep_until_step is not None:
            kept = [r for r in read_jsonl(self.metrics_path) if r.get("step", 0) <= keep_until_step]
            with atomic_path(self.metrics_path) as tmp:
                tmp.write_text("".join(json.dumps(_clean(r)) + "\n" for r in kept))
        elif self.metrics_path.exists():
            self.metrics_path.unlink()

    def setup_done(self) -> None:
        """Set-up succeeded (training starts): the run folder's files stay even if the run fails."""
        setup = getattr(self, "_setup", None)
        if setup is not None:
            setup.keep()

    @property
    def wandb_id(self) -> str | None:
        return self.run.id if self.run is not None else None

    def log(self, metrics: dict[str, Any], step: int) -> None:
        """Append one record to ``metrics.jsonl`` and log it to W&B at ``step``."""
        if not self.enabled:
            return
        record = {"step": int(step), **_clean(metrics)}
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.run is not None:
            self.run.log({k: (math.nan if v is None else v) for k, v in metrics.items()}, step=int(step))

    def summary(self, values: dict[str, Any]) -> None:
        """Set W&B run-summary values (best metrics); they are in ``report.json`` too."""
        if self.run is not None:
            for key, value in values.items():
                self.run.summary[key] = value

    def log_evaluation(self, prefix: str, report: dict[str, Any], labels: np.ndarray, scores: np.ndarray,
                       samples: Sequence[tuple[str, int, float]] = (), step: int | None = None) -> dict[str, str]:
        """Figures and tables of one evaluation: ROC curve (PNG), per-method table, confusion
        matrix and a grid of sample crops with their scores. Returns the files written.

        Args:
            prefix: ``test``, ``val``, ... (file and W&B key prefix).
            report: from :func:`forensics.training.metrics.detection_report`.
            labels, scores: per-frame labels and fake probabilities.
            samples: ``(crop file, label, score)`` for the sample grid.
        """
        if not self.enabled:
            return {}
        files = {"roc": str(self.run_dir / f"roc_{prefix}.png")}
        save_roc_png(labels, scores, files["roc"], title=f"{prefix}: frame-level ROC")
        if samples:
            files["samples"] = str(self.run_dir / f"samples_{prefix}.png")
            save_sample_grid(samples, files["samples"], explainer=self.explainer)
        if self.run is not None:
            import wandb

            # acc: the share of the method's videos called right (fakes caught, reals passed);
            # auc: the method's fakes against the split's reals.
            rows = [[method, *(entry[level][key] for level in ("frame", "video")
                               for key in ("real_acc" if method == "original" else "fake_acc", "auc"))]
                    for method, entry in report["per_method"].items()]
            payload: dict[str, Any] = {
                f"{prefix}/per_method": wandb.Table(
                    columns=["method", "frame_acc", "frame_auc", "video_acc", "video_auc"], data=rows),
                f"{prefix}/roc_png": wandb.Image(files["roc"]),
            }
            if len(np.unique(labels)) == 2 and np.isfinite(scores).all():
                probs = np.stack([1 - scores, scores], axis=1)
                payload[f"{prefix}/roc"] = wandb.plot.roc_curve(labels, probs, labels=["real", "fake"])
            payload[f"{prefix}/confusion"] = wandb.plot.confusion_matrix(
                y_true=list(map(int, labels)), preds=list(map(int, scores >= 0.5)), class_names=["real", "fake"])
            if samples:
                payload[f"{prefix}/samples"] = wandb.Image(files["samples"])
            self.run.log(payload, step=step)
        return files

    def log_artifact(self, path: str | os.PathLike, name: str, kind: str = "model") -> None:
        """Upload a file (the best checkpoint) as a W&B artifact (with the data's digest, if known)."""
        if self.run is not None:
            import wandb

            artifact = wandb.Artifact(name, type=kind, metadata={"data": self.lineage} if self.lineage else None)
            artifact.add_file(str(path))
            self.run.log_artifact(artifact)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def save_roc_png(labels: np.ndarray, scores: np.ndarray, path: str | os.PathLike, title: str = "ROC") -> None:
    """A ROC curve PNG (an "undefined" note in place of the curve for a one-class split)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    if not np.isfinite(scores).all():
        ax.text(0.5, 0.5, "scores not finite (NaN/inf):\nROC undefined", ha="center", va="center")
    elif len(np.unique(labels)) == 2:
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(labels, scores):.4f}")
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "one class only:\nROC undefined", ha="center", va="center")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def save_sample_grid(samples: Sequence[tuple[str, int, float]], path: str | os.PathLike, columns: int = 8,
                     explainer=None) -> None:
    """Crops with their label and fake probability, as one PNG; with an ``explainer``
    (:class:`forensics.training.gradcam.GradCam`) each crop beside its Grad-CAM heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from forensics.media.crops import read_image

    images = [read_image(file) for file, _, _ in samples]
    if explainer is not None:
        from forensics.media.heatmap import overlay

        readable = [i for i, image in enumerate(images) if image is not None]
        cams = explainer([images[i] for i in readable])
        for i, cam in zip(readable, cams):
            images[i] = np.hstack([images[i], overlay(images[i], cam)])
        columns = max(1, columns // 2)
    columns = max(1, min(columns, len(samples)))
    rows = -(-len(samples) // columns)
    width = 2.8 if explainer is not None else 1.4
    fig, axes = plt.subplots(rows, columns, figsize=(columns * width, rows * 1.6), dpi=80, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, (file, label, score) in zip(axes.flat, images, samples):
        if image is not None:
            ax.imshow(image)
        wrong = (score >= 0.5) != bool(label)
        ax.set_title(f"{'fake' if label else 'real'} {score:.2f}", fontsize=7, color="red" if wrong else "black")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
