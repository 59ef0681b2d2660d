"""``forensics benchmark CONFIG [key=value ...]``: a grid of detectors x training data x compressions.

FaceForensics++ (Rössler et al., ICCV 2019) reports every detector trained and tested on
each manipulation method alone and on all of them together, at each compression. A
benchmark config lists the detectors, the methods and the compressions; every cell of the
grid is one ``forensics train`` run (``forensics.training.trainer.main`` with the cell's overrides,
the very code path of the command), in its own folder::

    OUTPUT_DIR/runs/MODEL/COMPRESSION/METHOD/   config.yaml, metrics.jsonl, report.json, checkpoints/
    OUTPUT_DIR/results.csv                      one row per cell: status, metrics, run folder, error
    OUTPUT_DIR/ACC.csv, AUC.csv, tables.md      FaceForensics++-style tables (one per metric)

A cell trains on the reals and the method's fakes (``all``: every method but the opt-in
ones, i.e. FaceForensics++'s four without FaceShifter; see
:data:`forensics.data.manifest.OPT_IN_METHODS`) of one compression, and is tested on the same.

With ``test_sets``, every trained detector (and every detector given by ``checkpoint:``) is
also scored once on each test set, checkpoint chosen on the training data's validation split:
the cross-dataset table, ``cross_dataset.md`` and ``cross_dataset.csv``, with published
numbers in columns of their own (see :mod:`forensics.commands.cross_dataset`).

Runs are resumable: a cell whose folder holds ``report.json`` is read, not re-run; one
interrupted mid-training continues from its ``last.pt``. A cell that fails is recorded as
``failed`` (with the error in ``results.csv``) and the grid goes on. All runs of a grid share one W&B group, with a
summary run holding the tables.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from forensics.commands.cross_dataset import PublishedConfig, Scored, TestSetConfig, finish_wandb, lookup
from forensics.errors import ConfigError
from forensics.training.runlog import WandbConfig

log = logging.getLogger(__name__)

HELP = ("train and evaluate detectors over a grid of methods and compressions (FaceForensics++ tables), "
        "and on other test sets (cross-dataset table)")

ALL = "all"  # the training data of every method together (data.methods=null: opt-in methods left out)


@dataclass
class DetectorConfig:
    name: str = MISSING  # the table's row label; the model name when ``config`` is empty
    config: str | None = None  # train config (default: the benchmark's base_config, model.name=name)
    overrides: list[str] = field(default_factory=list)  # key=value, after the grid's own
    checkpoint: str | None = None  # a trained detector: scored on the test sets, not trained
    published: list[PublishedConfig] = field(default_factory=list)  # the sources' numbers, shown apart


@dataclass
class BenchmarkConfig:
    output_dir: str = MISSING
    manifest: str = MISSING
    base_config: str | None = None  # train config of detectors without their own
    detectors: list[DetectorConfig] = field(default_factory=list)
    methods: list[str] = field(default_factory=lambda: ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", ALL])
    compressions: list[str] = field(default_factory=lambda: ["raw", "c23", "c40"])
    real_method: str = "original"  # the reals every cell trains and tests on
    datasets: list[str] | None = None  # the manifest's datasets every cell trains on (default: all)
    metrics: list[str] = field(default_factory=lambda: ["frame/acc", "frame/bal_acc", "frame/auc"])  # test split
    test_sets: list[TestSetConfig] = field(default_factory=list)  # the cross-dataset table's columns
    manifests: dict[str, str] = field(default_factory=dict)  # named paths for test sets: ${manifests.NAME}
    overrides: list[str] = field(default_factory=list)  # key=value for every cell (epochs, workers, ...)
    wandb: WandbConfig = field(default_factory=WandbConfig)  # group default: the output folder's name

    def validate(self) -> None:
        if not self.detectors:
            raise ConfigError("detectors: list at least one detector")
        names = [d.name for d in self.detectors]
        if len(set(names)) != len(names):
            raise ConfigError(f"detectors: names must be unique, got {', '.join(names)}")
        for detector in self.detectors:
            if detector.checkpoint is not None and not self.test_sets:
                raise ConfigError(f"detector '{detector.name}' gives a checkpoint: list test_sets to score it on")
            if detector.checkpoint is None and detector.config is None and self.base_config is None:
                raise ConfigError(f"detector '{detector.name}' has no config and there is no base_config")
        if not self.methods or not self.compressions:
            raise ConfigError("methods and compressions must each list at least one entry")
        self.wandb.validate()


def add_arguments(parser) -> None:
    parser.add_argument("config",
                        help="YAML benchmark config (configs/ffpp/benchmark.yaml, configs/benchmark-demo.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. manifest=crops/manifest.csv output_dir=runs/bench")


def run(args) -> int:
    from forensics.config import load_config
    from forensics.outputs import check_output_dir

    cfg = load_config(BenchmarkConfig, args.config, args.overrides)
    check_output_dir(cfg.output_dir, "output_dir")
    return main(cfg)


def cell_overrides(cfg: BenchmarkConfig, detector: DetectorConfig, method: str, compression: str,
                   run_dir: Path) -> list[str]:
    """The ``forensics train`` overrides of one cell; the detector's own come last and win."""
    methods = "null" if method == ALL else f"[{cfg.real_method},{method}]"
    group = cfg.wandb.group or Path(cfg.output_dir).resolve().name
    out = [f"data.manifest={cfg.manifest}", f"output_dir={run_dir}", f"data.methods={methods}",
           f"data.compressions=[{compression}]", f"wandb.group={group}",
           f"wandb.name={detector.name}-{method}-{compression}", f"wandb.project={cfg.wandb.project}"]
    if cfg.datasets is not None:
        out.append(f"data.datasets=[{','.join(cfg.datasets)}]")
    if detector.config is None:
        out.append(f"model.name={detector.name}")
    if cfg.wandb.mode is not None:
        out.append(f"wandb.mode={cfg.wandb.mode}")
    if cfg.wandb.entity is not None:
        out.append(f"wandb.entity={cfg.wandb.entity}")
    return out + list(cfg.overrides) + list(detector.overrides)


def run_cell(cfg: BenchmarkConfig, detector: DetectorConfig, method: str, compression: str,
             run_dir: Path) -> dict[str, Any]:
    """Train and test one cell (or read its finished report); never raises."""
    from forensics.config import load_config
    from forensics.training.schema import TrainConfig
    from forensics.training.trainer import main as train

    row: dict[str, Any] = {"detector": detector.name, "method": method, "compression": compression,
                           "run_dir": str(run_dir), "status": "done", "error": ""}
    report_path = run_dir / "report.json"
    try:
        if report_path.is_file():
            log.info("%s / %s / %s: finished, reading %s", detector.name, method, compression, report_path)
            row["status"] = "skipped"
        else:
            log.info("%s / %s / %s: training in %s", detector.name, method, compression, run_dir)
            train_cfg = load_config(TrainConfig, detector.config or cfg.base_config,
                                    cell_overrides(cfg, detector, method, compression, run_dir))
            status = train(train_cfg, resume=(run_dir / "checkpoints" / "last.pt").is_file())
            if status != 0:
                raise RuntimeError(f"forensics train exited with status {status}")
        report = json.loads(report_path.read_text())
    except Exception as error:  # noqa: BLE001 - one bad cell must not stop the grid
        finish_wandb()  # a run that raised before closing its W&B run
        log.error("%s / %s / %s failed: %s", detector.name, method, compression, error)
        return row | {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    for metric in cfg.metrics:
        row[metric] = lookup(report.get("test") or {}, metric)
    return row


def format_value(row: dict[str, Any], metric: str) -> str:
    if row["status"] in ("failed", "pending"):
        return row["status"]
    value = row.get(metric)
    return "n/a" if value is None else f"{100 * value:.2f}"


def wide_table(cfg: BenchmarkConfig, rows: list[dict[str, Any]], metric: str) -> tuple[list[str], list[list[str]]]:
    """One metric as FaceForensics++ lays it out: a row per detector, a column per compression and method."""
    by_cell = {(r["detector"], r["method"], r["compression"]): r for r in rows}
    header = ["detector"] + [f"{c} {m}" for c in cfg.compressions for m in cfg.methods]
    body = [[d.name] + [format_value(by_cell[(d.name, m, c)], metric) for c in cfg.compressions for m in cfg.methods]
            for d in grid_detectors(cfg)]
    return header, body


def write_tables(cfg: BenchmarkConfig, rows: list[dict[str, Any]], out: Path) -> None:
    """``results.csv`` (a row per cell), a wide CSV per metric and ``tables.md``, all atomically."""
    from forensics.atomic import atomic_path

    columns = ["detector", "method", "compression", "status", *cfg.metrics, "run_dir", "error"]
    with atomic_path(out / "results.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    markdown = [f"# Benchmark: {Path(cfg.output_dir).name}", "",
                "Test-split metrics in percent; each cell trained on the reals and that method's fakes "
                f"({ALL}: every method but the opt-in ones) of one compression.", ""]
    for metric in cfg.metrics:
        header, body = wide_table(cfg, rows, metric)
        with atomic_path(out / f"{_file_name(metric)}.csv") as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f).writerows([header, *body])
        markdown += [f"## {metric}", "", "| " + " | ".join(header) + " |",
                     "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
                     *("| " + " | ".join(r) + " |" for r in body), ""]
    with atomic_path(out / "tables.md") as tmp:
        tmp.write_text("\n".join(markdown))


def _file_name(metric: str) -> str:
    return metric.replace("/", "_")


def log_summary(cfg: BenchmarkConfig, rows: list[dict[str, Any]], out: Path,
                cross: tuple[list[Scored], list[dict[str, Any]]] | None = None) -> None:
    """A summary run in the grid's W&B group: the results table, one summary value per cell
    and, with test sets, the cross-dataset table."""
    from forensics.commands.cross_dataset import TABLE_METRICS, wandb_table
    from forensics.training.runlog import RunLogger

    group = cfg.wandb.group or Path(cfg.output_dir).resolve().name
    wandb_cfg = WandbConfig(mode=cfg.wandb.mode, project=cfg.wandb.project, entity=cfg.wandb.entity,
                            name=f"{group}-summary", group=group, tags=list(cfg.wandb.tags))
    logger = RunLogger(out / "summary", config={"detectors": [d.name for d in cfg.detectors],
                                                "methods": cfg.methods, "compressions": cfg.compressions,
                                                "test_sets": [t.name for t in cfg.test_sets]},
                       wandb_cfg=wandb_cfg, job_type="benchmark")
    logger.summary({f"{m}/{r['detector']}/{r['compression']}/{r['method']}": r.get(m)
                    for r in rows for m in cfg.metrics if r["status"] != "failed"})
    if cross is not None:
        logger.summary({f"cross/{r['test_set']}/{m}/{r['detector']}": r.get(m)
                        for r in cross[1] for m in TABLE_METRICS if r["status"] != "failed"})
    if logger.run is not None:
        import wandb

        columns = ["detector", "method", "compression", "status", *cfg.metrics]
        tables = {"results": wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])}
        if cross is not None:
            columns, data = wandb_table(cross[0], cfg.test_sets, cross[1])
            tables["cross_dataset"] = wandb.Table(columns=columns, data=data)
        logger.run.log(tables)
    logger.finish()


def grid_detectors(cfg: BenchmarkConfig) -> list[DetectorConfig]:
    """The detectors the grid trains (those given by a checkpoint are only scored)."""
    return [d for d in cfg.detectors if d.checkpoint is None]


def scored_detectors(cfg: BenchmarkConfig, out: Path) -> list[Scored]:
    """The cross-dataset table's rows: every grid cell's ``best.pt``, then the given checkpoints."""
    single = len(cfg.methods) == 1 and len(cfg.compressions) == 1
    rows = [Scored(d.name if single else f"{d.name} ({m}, {c})", run_dir / "checkpoints" / "best.pt", run_dir / "cross",
                   trained_on=f"{m}, {c}", published=list(d.published))
            for d in grid_detectors(cfg) for c in cfg.compressions for m in cfg.methods
            for run_dir in [out / "runs" / d.name / c / m]]
    rows += [Scored(d.name, Path(d.checkpoint), out / "runs" / d.name / "cross", trained_on="checkpoint",
                    published=list(d.published)) for d in cfg.detectors if d.checkpoint is not None]
    return rows


def check_inputs(cfg: BenchmarkConfig) -> None:
    """Stop with one line, before any training, on test sets or checkpoints that can't be used."""
    from forensics.commands.cross_dataset import check_test_sets

    check_test_sets(cfg.test_sets, [p for d in cfg.detectors for p in d.published])
    for detector in cfg.detectors:
        if detector.checkpoint is not None and not Path(detector.checkpoint).is_file():
            raise ConfigError(f"detector '{detector.name}': checkpoint not found: {detector.checkpoint}")


def main(cfg: BenchmarkConfig) -> int:
    """Run every cell not finished yet, write the tables; 0 when every cell succeeded, else 1."""
    from forensics.commands.cross_dataset import run_cross

    check_inputs(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for detector in grid_detectors(cfg):
        for compression in cfg.compressions:
            for method in cfg.methods:
                run_dir = out / "runs" / detector.name / compression / method
                rows.append(run_cell(cfg, detector, method, compression, run_dir))
                write_tables(cfg, rows_so_far(cfg, rows), out)  # a killed grid still leaves its tables
    cross = None
    if cfg.test_sets:
        detectors = scored_detectors(cfg, out)
        cross = (detectors, run_cross(detectors, cfg.test_sets, out, cfg.wandb.mode))
    log_summary(cfg, rows, out, cross)
    failed = [r for r in rows + (cross[1] if cross else []) if r["status"] == "failed"]
    log.info("benchmark: %d cells, %d failed; tables in %s", len(rows), len(failed), out / "tables.md")
    return 1 if failed else 0


def rows_so_far(cfg: BenchmarkConfig, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` completed with ``pending`` placeholders for the cells not reached yet."""
    seen = {(r["detector"], r["method"], r["compression"]) for r in rows}
    pending = [{"detector": d.name, "method": m, "compression": c, "status": "pending", "run_dir": "", "error": ""}
               for d in grid_detectors(cfg) for c in cfg.compressions for m in cfg.methods
               if (d.name, m, c) not in seen]
    return rows + pending
