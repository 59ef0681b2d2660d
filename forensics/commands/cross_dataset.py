"""The cross-dataset table of ``forensics benchmark``: each detector scored on each test set.

Generalisation to data never trained on is what the field reports now: DeepfakeBench (Yan
et al., NeurIPS 2023 Datasets and Benchmarks, https://arxiv.org/abs/2307.01426) trains on
FaceForensics++ c23 and tests on FF++, Celeb-DF, DeepFakeDetection, DFDC, ... A benchmark
config lists ``test_sets``; every detector it trains (its ``best.pt``, chosen on the training
data's validation split) or names by ``checkpoint:`` is scored once on each, by the very code
of ``forensics evaluate`` (:func:`forensics.training.evaluation.score`)::

    RUN_DIR/cross/TEST_SET/              report.json, predictions.csv, ROC (an evaluate run)
    OUTPUT_DIR/cross_dataset.csv         a row per detector; per test set: AUC, EER, AP, (balanced) accuracy
    OUTPUT_DIR/cross_dataset.md          a row per detector; per test set: frame AUC / video AUC

Published numbers (``published:`` of a detector) get columns of their own, labelled with
their source, and are never mixed with ours. A finished score (its ``report.json``) is read,
not recomputed, and one that fails is recorded as ``failed`` while the table goes on.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from forensics.errors import ConfigError
from forensics.training.evaluation import FILTERS

log = logging.getLogger(__name__)

#: Metrics of every cross-dataset cell in the CSV; the markdown shows the first two.
CROSS_METRICS = ("frame/auc", "video/auc", "frame/eer", "video/eer", "frame/ap", "video/ap",
                 "frame/acc", "frame/bal_acc", "video/acc", "video/bal_acc")
TABLE_METRICS = ("frame/auc", "video/auc")


@dataclass
class TestSetConfig:
    __test__ = False  # not a pytest test class

    name: str = MISSING  # the table's column label
    manifest: str = MISSING
    split: str = "test"
    # Exact lists, as data.* in a train config; unset keeps every value: the training run's
    # filters are not carried over to another dataset.
    datasets: list[str] | None = None
    methods: list[str] | None = None
    compressions: list[str] | None = None
    frames_per_video: int | None = None  # K evenly spaced frames per video (empty: all)


@dataclass
class PublishedConfig:
    test_set: str = MISSING  # the name of one of the benchmark's test sets
    value: float = MISSING  # as a fraction (0.7365, not 73.65)
    metric: str = "frame/auc"
    source: str = MISSING  # paper and table, shown beside the number


@dataclass
class Scored:
    """One row of the table: a detector (one training cell, or a given checkpoint)."""

    label: str
    checkpoint: Path
    out_dir: Path  # its scores go to out_dir / TEST_SET
    trained_on: str = ""
    published: list[PublishedConfig] = field(default_factory=list)


def lookup(report: dict[str, Any], key: str) -> float | None:
    """``report["frame"]["auc"]`` for ``key`` ``frame/auc``; ``None`` when absent or NaN."""
    value: Any = report
    for part in key.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def finish_wandb() -> None:
    """End a W&B run that a failed cell left open."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish(exit_code=1)


def check_test_sets(test_sets: list[TestSetConfig], published: list[PublishedConfig]) -> None:
    """Stop with one line, before any training, on a test set that cannot be scored: a missing
    or unreadable manifest, a split or filter that leaves no rows, a duplicate name."""
    from forensics.data.manifest import filter_manifest, read_manifest
    from forensics.errors import ForensicsError

    names = [t.name for t in test_sets]
    if len(set(names)) != len(names):
        raise ConfigError(f"test_sets: names must be unique, got {', '.join(names)}")
    for entry in published:
        if entry.test_set not in names:
            raise ConfigError(f"published: test set '{entry.test_set}' is not one of test_sets ({', '.join(names)})")
    for test_set in test_sets:
        where = f"test set '{test_set.name}': {test_set.manifest}"
        if not Path(test_set.manifest).is_file():
            raise ConfigError(f"{where}: manifest not found")
        try:
            df = read_manifest(test_set.manifest)
        except ForensicsError as error:
            raise ConfigError(f"{where}: {error}") from None
        splits = sorted(map(str, df["split"].unique()))
        if test_set.split not in splits:
            raise ConfigError(f"{where}: no split '{test_set.split}' (it has {', '.join(splits) or 'no rows'})")
        kept = filter_manifest(df, splits=[test_set.split], **{k: getattr(test_set, k) for k in FILTERS})
        if kept.empty:
            chosen = ", ".join(f"{k}={getattr(test_set, k)}" for k in FILTERS if getattr(test_set, k) is not None)
            raise ConfigError(f"{where}: no rows in split '{test_set.split}' with {chosen}")


def eval_argv(detector: Scored, test_set: TestSetConfig, out: Path, wandb_mode: str | None) -> list[str]:
    """The ``forensics evaluate`` command line of one cell."""
    argv = ["--checkpoint", str(detector.checkpoint), "--manifest", str(test_set.manifest),
            "--split", test_set.split, "--out", str(out), "--wandb-name", f"{detector.label}-on-{test_set.name}"]
    for key in FILTERS:
        argv += [f"--{key}", *(getattr(test_set, key) or ["all"])]
    if test_set.frames_per_video is not None:
        argv += ["--frames-per-video", str(test_set.frames_per_video)]
    if wandb_mode is not None:
        argv += ["--wandb-mode", wandb_mode]
    return argv


def score_cell(detector: Scored, test_set: TestSetConfig, wandb_mode: str | None) -> dict[str, Any]:
    """Score one detector on one test set (or read its finished report); never raises."""
    import json

    from forensics.training.evaluation import parse_arguments, score

    out = detector.out_dir / test_set.name
    row: dict[str, Any] = {"detector": detector.label, "test_set": test_set.name, "status": "done",
                           "report": str(out / "report.json"), "error": ""}
    try:
        if (out / "report.json").is_file():
            log.info("%s on %s: finished, reading %s", detector.label, test_set.name, out / "report.json")
            row["status"] = "skipped"
            report = json.loads((out / "report.json").read_text())
        elif not detector.checkpoint.is_file():
            raise FileNotFoundError(f"no checkpoint {detector.checkpoint} (did its training fail?)")
        else:
            log.info("%s on %s: scoring %s", detector.label, test_set.name, detector.checkpoint)
            report = score(parse_arguments(eval_argv(detector, test_set, out, wandb_mode)))
            if report is None:  # a plug-in task's checkpoint: its own evaluation has no detection metrics
                raise ValueError(f"{detector.checkpoint}: not a detection checkpoint")
    except Exception as error:  # noqa: BLE001 - one bad cell must not stop the table
        finish_wandb()
        log.error("%s on %s failed: %s", detector.label, test_set.name, error)
        return row | {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    metrics = report.get(test_set.split) or {}
    return row | {metric: lookup(metrics, metric) for metric in CROSS_METRICS}


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def published_columns(detectors: list[Scored], test_sets: list[TestSetConfig]) -> list[tuple[str, str]]:
    """``(test set, metric)`` pairs that some detector has a published number for, in table order."""
    given = {(p.test_set, p.metric) for d in detectors for p in d.published}
    metrics = sorted({m for _, m in given}, key=lambda m: (m not in TABLE_METRICS, m))
    return [(t.name, m) for t in test_sets for m in metrics if (t.name, m) in given]


def write_cross_tables(detectors: list[Scored], test_sets: list[TestSetConfig], rows: list[dict[str, Any]],
                       out: Path) -> None:
    """``cross_dataset.csv`` and ``cross_dataset.md`` from the cells scored so far, atomically."""
    from forensics.atomic import atomic_path

    cells = {(r["detector"], r["test_set"]): r for r in rows}
    extra = published_columns(detectors, test_sets)
    header = ["detector", "trained_on"]
    header += [f"{t.name} {c}" for t in test_sets for c in ("status", *CROSS_METRICS)]
    header += [f"{t} published {m}" for t, m in extra] + [f"{t} published {m} source" for t, m in extra]
    with atomic_path(out / "cross_dataset.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for d in detectors:
            line = [d.label, d.trained_on]
            for t in test_sets:
                cell = cells.get((d.label, t.name), {"status": "pending"})
                line += [cell["status"], *("" if cell.get(m) is None else f"{cell[m]:.6f}" for m in CROSS_METRICS)]
            found = [_published(d, t, m) for t, m in extra]
            writer.writerow(line + ["" if p is None else f"{p.value:.6f}" for p in found]
                            + ["" if p is None else p.source for p in found])
    with atomic_path(out / "cross_dataset.md") as tmp:
        tmp.write_text(cross_markdown(detectors, test_sets, cells, extra, out.name))


def _published(detector: Scored, test_set: str, metric: str) -> PublishedConfig | None:
    return next((p for p in detector.published if p.test_set == test_set and p.metric == metric), None)


def cross_markdown(detectors: list[Scored], test_sets: list[TestSetConfig], cells: dict, extra: list,
                   title: str) -> str:
    """The table as markdown: ours as 'frame AUC / video AUC' in percent, published numbers in
    columns of their own with a numbered source."""
    sources: list[str] = []
    header = ["detector", "trained on", *(f"{t.name} ({t.split})" for t in test_sets),
              *(f"{t} published {m}" for t, m in extra)]
    lines = [f"# Cross-dataset: {title}", "",
             "Our numbers: frame AUC / video AUC in percent, each detector's checkpoint chosen on its training "
             "data's validation split. Published numbers are the sources' own, on their data and protocol, "
             "in their own columns; EER, AP and balanced accuracy are in cross_dataset.csv.", "",
             "| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    for d in detectors:
        line = [d.label, d.trained_on or "-"]
        for t in test_sets:
            cell = cells.get((d.label, t.name), {"status": "pending"})
            line.append(cell["status"] if cell["status"] in ("failed", "pending")
                        else " / ".join(_percent(cell.get(m)) for m in TABLE_METRICS))
        for t, m in extra:
            p = _published(d, t, m)
            if p is None:
                line.append("")
                continue
            if p.source not in sources:
                sources.append(p.source)
            line.append(f"{_percent(p.value)} [{sources.index(p.source) + 1}]")
        lines.append("| " + " | ".join(line) + " |")
    if sources:
        lines += ["", "Sources of the published columns:", ""]
        lines += [f"{i}. {s}" for i, s in enumerate(sources, 1)]
    return "\n".join(lines) + "\n"


def run_cross(detectors: list[Scored], test_sets: list[TestSetConfig], out: Path,
              wandb_mode: str | None) -> list[dict[str, Any]]:
    """Score every detector on every test set, rewriting the tables after each cell."""
    rows: list[dict[str, Any]] = []
    for detector in detectors:
        for test_set in test_sets:
            rows.append(score_cell(detector, test_set, wandb_mode))
            write_cross_tables(detectors, test_sets, rows, out)  # a killed run still leaves its table
    failed = sum(r["status"] == "failed" for r in rows)
    log.info("cross-dataset: %d cells, %d failed; table in %s", len(rows), failed, out / "cross_dataset.md")
    return rows


def wandb_table(detectors: list[Scored], test_sets: list[TestSetConfig], rows: list[dict[str, Any]]):
    """``(columns, data)`` of the W&B table: a row per detector, ours and published apart."""
    cells = {(r["detector"], r["test_set"]): r for r in rows}
    extra = published_columns(detectors, test_sets)
    columns = ["detector", "trained_on", *(f"{t.name} {m}" for t in test_sets for m in TABLE_METRICS),
               *(f"{t} published {m}" for t, m in extra)]
    data = []
    for d in detectors:
        line: list[Any] = [d.label, d.trained_on]
        line += [cells.get((d.label, t.name), {}).get(m) for t in test_sets for m in TABLE_METRICS]
        line += [getattr(_published(d, t, m), "value", None) for t, m in extra]
        data.append(line)
    return columns, data
