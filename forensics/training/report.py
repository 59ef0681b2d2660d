"""The HTML report of a run folder: one self-contained file, readable offline, no W&B needed.

``forensics report RUN_DIR`` renders what a training or evaluation run wrote
(``config.yaml``, ``run.json``, ``metrics.jsonl``, ``report.json`` or ``eval_report.json``,
the ROC and sample PNGs) into ``RUN_DIR/report.html``. It never recomputes a metric: the
numbers are those of the run's report. Figures are PNGs embedded as base64, so the file can be
mailed or archived alone. The pieces (figure encoding, metric tables, training curves, the
page) are shared with ``forensics demo``'s report.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Any

from forensics.errors import ForensicsError

#: Files that make a folder a run folder (at least one must be there).
REPORTS = ("report.json", "eval_report.json")
METRIC_KEYS = ("n", "acc", "bal_acc", "auc", "ap", "eer", "log_loss")
STYLE = ("body{font-family:sans-serif;max-width:62em;margin:2em auto;padding:0 1em} table{border-collapse:collapse;"
         "margin:.5em 0} td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right} th{background:#f4f4f4} "
         "img{max-width:100%} pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:85%} code{font-size:90%}")


def plt():
    """matplotlib's pyplot on the file-only Agg backend (no display on servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def figure_png(fig) -> str:
    """A matplotlib figure as base64 PNG (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt().close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def file_png(path: str | os.PathLike) -> str:
    """A PNG file as base64."""
    return base64.b64encode(Path(path).read_bytes()).decode()


def _number(value: Any, key: str = "") -> str:
    if value is None:
        return "undefined"
    if key == "n" or isinstance(value, int):
        return str(int(value))
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def metric_table(split_report: dict) -> str:
    """Video- and frame-level metrics of one evaluated split as an HTML table."""
    head = "".join(f"<th>{k}</th>" for k in METRIC_KEYS)
    rows = "".join(f"<tr><th>{level} level</th>{''.join(f'<td>{_number(split_report[level].get(k), k)}</td>' for k in METRIC_KEYS)}</tr>"
                   for level in ("video", "frame") if isinstance(split_report.get(level), dict))
    return f"<table><tr><th></th>{head}</tr>{rows}</table>"


def method_table(split_report: dict) -> str:
    """Per manipulation method: the share of its videos called right and its AUC against the reals."""
    methods = split_report.get("per_method") or {}
    rows = []
    for method, entry in sorted(methods.items()):
        key = "real_acc" if method == "original" else "fake_acc"
        cells = "".join(f"<td>{_number(entry.get(level, {}).get(k))}</td>" for level in ("video", "frame")
                        for k in (key, "auc"))
        rows.append(f"<tr><th>{html.escape(method)}</th>{cells}</tr>")
    if not rows:
        return ""
    return ("<table><tr><th>method</th><th>video acc</th><th>video AUC</th><th>frame acc</th><th>frame AUC</th></tr>"
            + "".join(rows) + "</table>")


def training_figure(metrics: list[dict], metric: str = "video/auc") -> str:
    """Training loss by step and validation AUC (and the chosen ``metric``) by epoch, as base64 PNG."""
    pyplot = plt()
    fig, (left, right) = pyplot.subplots(1, 2, figsize=(9, 3))
    steps = [(m["step"], m["train/loss"]) for m in metrics if m.get("train/loss") is not None]
    if steps:
        left.plot(*zip(*steps))
    left.set(xlabel="step", ylabel="training loss", title="training")
    keys = dict.fromkeys(["val/video/auc", "val/frame/auc", f"val/{metric}"])
    for key in keys:
        points = [(m["epoch"], m[key]) for m in metrics if m.get(key) is not None and "epoch" in m]
        if points:
            right.plot(*zip(*points), marker="o", label=key.removeprefix("val/"))
    right.set(xlabel="epoch", ylabel="validation", title="validation")
    if right.get_legend_handles_labels()[0]:
        right.legend(loc="lower right")
    return figure_png(fig)


def page(title: str, body: str) -> str:
    """A complete HTML page around ``body``."""
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>{body}</body></html>\n")


def image(title: str, png: str) -> str:
    """A titled, embedded base64 PNG."""
    return f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ForensicsError(f"{path}: not valid JSON: {error}") from None


def _provenance(run: dict | None, report: dict) -> str:
    items = []
    if run:
        git = run.get("git") or {}
        items.append(f"git {html.escape(str(git.get('commit')))}{' (dirty)' if git.get('dirty') else ''}")
        items += [f"{k} {html.escape(str(run[k]))}" for k in ("time", "host", "torch") if run.get(k)]
        if run.get("wandb_sweep"):
            items.append(f"W&amp;B sweep {html.escape(str(run['wandb_sweep'].get('id')))}")
    best = report.get("best")
    if isinstance(best, dict):
        items.append(f"best.pt chosen on val {html.escape(str(best.get('name')))} = {_number(best.get('value'))} "
                     f"(epoch {best.get('epoch')})")
    if report.get("time_s") is not None:
        items.append(f"{report['time_s']:.0f} s")
    lineage = report.get("lineage")
    if isinstance(lineage, dict):
        items.append(f"data {html.escape(str(lineage.get('manifest')))}: {lineage.get('files')} crops, "
                     f"<code>{html.escape(str(lineage.get('digest')))}</code> ({html.escape(str(lineage.get('mode')))})")
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _split_sections(report: dict) -> str:
    parts = []
    for name, value in report.items():
        if isinstance(value, dict) and isinstance(value.get("video"), dict):
            parts.append(f"<h2>{html.escape(name)} split</h2>{metric_table(value)}{method_table(value)}")
    return "".join(parts)


def render_run(run_dir: str | os.PathLike) -> str:
    """The HTML report of a training or evaluation run folder.

    Raises:
        ForensicsError: the folder holds neither ``report.json`` nor ``eval_report.json``.
    """
    from forensics.training.runlog import read_jsonl

    run_dir = Path(run_dir)
    found = [run_dir / name for name in REPORTS if (run_dir / name).is_file()]
    if not found:
        raise ForensicsError(f"{run_dir}: not a run folder (no {' or '.join(REPORTS)}; has the run finished?)")
    report = _read_json(found[0]) or {}
    run = _read_json(run_dir / "run.json")
    metrics = read_jsonl(run_dir / "metrics.jsonl") or read_jsonl(run_dir / "eval_metrics.jsonl")
    config = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").is_file() else None
    body = [f"<h1>forensics run: {html.escape(run_dir.resolve().name)}</h1>", _provenance(run, report),
            _split_sections(report)]
    if any("val/video/auc" in m or "train/loss" in m for m in metrics):
        best = report.get("best") if isinstance(report.get("best"), dict) else {}
        body.append("<h2>Training</h2>" + image("loss and validation by epoch",
                                                training_figure(metrics, best.get("name") or "video/auc")))
    pngs = sorted(run_dir.glob("*.png"))
    if pngs:
        body.append("<h2>Figures</h2>" + "".join(image(p.stem.replace("_", " "), file_png(p)) for p in pngs))
    if config:
        body.append(f"<h2>Config</h2><pre>{html.escape(config)}</pre>")
    return page(f"forensics run {run_dir.name}", "\n".join(body))


def write_run_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write :func:`render_run`'s page to ``out`` (default ``RUN_DIR/report.html``); return its path."""
    from forensics.atomic import atomic_write_text

    out = Path(out) if out is not None else Path(run_dir) / "report.html"
    atomic_write_text(out, render_run(run_dir))
    return out
