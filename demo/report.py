"""A report a person can open from disk: ``report.json`` and a self-contained ``report.html``.

Built from what the pipeline already wrote (the evaluation's ``report.json`` and per-crop
``predictions.csv``, the training run's ``metrics.jsonl``, ``forensics predict``'s per-frame
scores, and when the refiner ran, its fine-tuning report, its sample grid and the detector's
evaluation on refined fakes), so it never recomputes a metric: the numbers are the evaluation's. Figures are
matplotlib PNGs embedded as base64, so the HTML file stands alone.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forensics.atomic import atomic_write_text

SAMPLES_PER_CELL = 4


def _figure_png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    return plt


def roc_figure(predictions: pd.DataFrame) -> str:
    """Frame- and video-level ROC curves of the evaluated split."""
    from sklearn.metrics import roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    videos = predictions.groupby("video_key").agg(label=("label", "first"), score=("score", "mean"))
    for name, table in (("frame level", predictions), ("video level", videos)):
        if table["label"].nunique() == 2:
            fpr, tpr, _ = roc_curve(table["label"], table["score"])
            ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test split)")
    ax.legend(loc="lower right")
    return _figure_png(fig)


def method_figure(split_report: dict) -> str:
    """Video-level accuracy on each method's videos: fakes caught, or reals passed ('original')."""
    plt = _plt()
    methods = split_report.get("per_method", {})
    names = sorted(methods)
    accs = [methods[m]["video"]["real_acc" if m == "original" else "fake_acc"] or 0.0 for m in names]
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.bar(names, accs, color=["tab:green" if m == "original" else "tab:red" for m in names])
    ax.set(ylim=(0, 1), ylabel="video-level accuracy", title="accuracy per method (test split)")
    for x, acc in enumerate(accs):
        ax.text(x, acc + 0.02, f"{acc:.2f}", ha="center")
    return _figure_png(fig)


def training_figure(metrics: list[dict]) -> str:
    """Training loss by step and validation AUC by epoch."""
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
    steps = [(m["step"], m["train/loss"]) for m in metrics if "train/loss" in m]
    if steps:
        left.plot(*zip(*steps))
    left.set(xlabel="step", ylabel="training loss", title="training")
    for key, label in (("val/video/auc", "video-level AUC"), ("val/frame/auc", "frame-level AUC")):
        points = [(m["epoch"], m[key]) for m in metrics if m.get(key) is not None]
        if points:
            right.plot(*zip(*points), marker="o", label=label)
    right.set(xlabel="epoch", ylabel="validation AUC", ylim=(0, 1.02), title="validation")
    right.legend(loc="lower right")
    return _figure_png(fig)


def sample_grid(predictions: pd.DataFrame, crops_root: Path) -> str:
    """Test crops with their scores: reals and fakes, right and wrong (up to 4 of each)."""
    import cv2

    plt = _plt()
    predictions = predictions.assign(wrong=(predictions["score"] >= 0.5) != (predictions["label"] == 1))
    cells = [("real, right", 0, False), ("real, wrong", 0, True), ("fake, right", 1, False), ("fake, wrong", 1, True)]
    fig, axes = plt.subplots(len(cells), SAMPLES_PER_CELL, figsize=(2 * SAMPLES_PER_CELL, 2.2 * len(cells)))
    for row, (title, label, wrong) in enumerate(cells):
        chosen = predictions[(predictions["label"] == label) & (predictions["wrong"] == wrong)]
        chosen = chosen.sample(min(SAMPLES_PER_CELL, len(chosen)), random_state=0) if len(chosen) else chosen
        for col in range(SAMPLES_PER_CELL):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(chosen):
                item = chosen.iloc[col]
                image = cv2.imread(str(crops_root / item["path"]))
                if image is not None:
                    ax.imshow(image[:, :, ::-1])
                ax.set_title(f"{item['method']}  p(fake)={item['score']:.2f}", fontsize=7,
                             color="tab:red" if wrong else "black")
            elif col == 0:
                ax.text(0.5, 0.5, "none", ha="center", va="center")
        axes[row, 0].text(-0.1, 0.5, title, transform=axes[row, 0].transAxes, rotation=90,
                          ha="right", va="center")
    return _figure_png(fig)


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _metric_rows(split_report: dict) -> str:
    keys = ("n", "acc", "bal_acc", "auc", "ap", "eer", "log_loss")
    head = "".join(f"<th>{k}</th>" for k in keys)
    rows = []
    for level in ("video", "frame"):
        values = split_report[level]
        cells = "".join(f"<td>{'undefined' if values.get(k) is None else (f'{values[k]:.4f}' if k != 'n' else int(values[k]))}</td>"
                        for k in keys)
        rows.append(f"<tr><th>{level} level</th>{cells}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def refiner_summary(out: Path) -> dict[str, Any] | None:
    """The refiner's held-out pair metrics and the detector on its fakes before/after refinement.

    Read from ``OUT/refiner/report.json`` and ``OUT/eval_refined/report.json``; ``None`` when
    the refiner stages did not run.
    """
    run, evaluation = out / "refiner" / "report.json", out / "eval_refined" / "report.json"
    if not (run.is_file() and evaluation.is_file()):
        return None
    pairs = json.loads(run.read_text())["test"]
    scored = json.loads(evaluation.read_text())
    per_method = scored[scored["split"]]["per_method"]
    detector = {method: {"frame_auc": m["frame"]["auc"], "video_auc": m["video"]["auc"],
                         "frames_caught": m["frame"]["fake_acc"], "frames": m["frame"]["n_fake"]}
                for method, m in per_method.items() if method != "original"}
    return {"pairs": pairs["n"], **{k: pairs[k] for k in ("input", "output", "gain")}, "detector": detector}


def _share(fraction: float | None, n: int) -> str:
    return "undefined" if fraction is None else f"{round(fraction * n)} of {n} ({fraction:.3f})"


def _refiner_html(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return ""

    def num(x, digits=3):
        return "undefined" if x is None else f"{x:.{digits}f}"

    quality = "".join(f"<tr><th>{name}</th><td>{num(summary[key]['psnr'], 2)} dB</td><td>{num(summary[key]['ssim'])}</td>"
                      f"<td>{num(summary[key]['l1'], 4)}</td></tr>"
                      for name, key in (("fake (input)", "input"), ("refined fake", "output")))
    detector = "".join(f"<tr><th>{html.escape(method)}</th><td>{num(d['frame_auc'])}</td><td>{num(d['video_auc'])}</td>"
                       f"<td>{_share(d['frames_caught'], d['frames'])}</td></tr>"
                       for method, d in summary["detector"].items())
    return f"""<h2>Refiner (test split, {summary['pairs']} self-reenactment pairs)</h2>
<p>Closeness to the original frame (higher PSNR/SSIM, lower L1 is closer): gain
{num(summary['gain']['psnr'], 2)} dB PSNR.</p>
<table><tr><th></th><th>PSNR</th><th>SSIM</th><th>L1</th></tr>{quality}</table>
<h3>The detector on refined fakes (per method: its fakes against the test split's reals)</h3>
<table><tr><th></th><th>frame AUC</th><th>video AUC</th><th>frames called fake</th></tr>{detector}</table>"""


def write_report(out: str | os.PathLike, timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Write ``OUT/report.json`` and ``OUT/report.html`` from a demo folder's outputs."""
    out = Path(out)
    evaluation = json.loads((out / "eval" / "report.json").read_text())
    split = evaluation["split"]
    predictions = pd.read_csv(out / "eval" / "predictions.csv", dtype={"path": str})
    metrics = _read_jsonl(out / "run" / "metrics.jsonl")
    videos = pd.read_csv(out / "predict" / "frames.csv") if (out / "predict" / "frames.csv").is_file() else None
    report = {
        "test": evaluation[split],
        "checkpoint": evaluation.get("checkpoint"),
        "best_epoch": evaluation.get("epoch"),
        "training": {"epochs": len({m["epoch"] for m in metrics if "epoch" in m}),
                     "final_val": next((m for m in reversed(metrics) if "val/video/auc" in m), {})},
        "predict": _predict_summary(videos),
        "refiner": refiner_summary(out),
        "seconds": timings or {},
    }
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, default=_json_default) + "\n")
    figures = {
        "ROC curve": roc_figure(predictions),
        "Accuracy per method": method_figure(evaluation[split]),
        "Training curves": training_figure(metrics),
        "Test crops and their scores": sample_grid(predictions, out / "crops"),
    }
    grids = sorted((out / "refiner" / "samples").glob("epoch_*.png"))
    if report["refiner"] is not None and grids:  # the refiner's own grid of its last epoch
        figures["Refiner on val pairs: input | refined | target | |difference|"] = base64.b64encode(
            grids[-1].read_bytes()).decode()
    atomic_write_text(out / "report.html", _html(report, figures))
    return report


def _predict_summary(frames: pd.DataFrame | None) -> list[dict]:
    if frames is None or frames.empty or "video" not in frames:
        return []
    return [{"video": video, "frames": int(len(group)), "score": float(np.nanmean(group["score"]))}
            for video, group in frames.groupby("video")]


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _html(report: dict, figures: dict[str, str]) -> str:
    images = "".join(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>"
                     for title, png in figures.items())
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in report["seconds"].items())
    predicted = "".join(f"<li>{html.escape(str(p['video']))}: p(fake) = {p['score']:.3f} over {p['frames']} frames</li>"
                        for p in report["predict"])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>forensics demo report</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}} img{{max-width:100%}}</style></head>
<body><h1>forensics demo: detector on the synthetic test split</h1>
<p>Synthetic data made by <code>forensics synth</code>: these numbers say the pipeline works, not how a
detector does on FaceForensics++.</p>
<h2>Headline metrics (test split; checkpoint chosen on val, epoch {report['best_epoch']})</h2>
{_metric_rows(report['test'])}
<h2>forensics predict</h2><ul>{predicted}</ul>
{_refiner_html(report['refiner'])}
{images}
<p>Stage times: {html.escape(timing)}</p>
</body></html>
"""
