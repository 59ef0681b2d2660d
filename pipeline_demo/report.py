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
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forensics.atomic import atomic_write_text
from forensics.training.report import STYLE, figure_png as _figure_png, metric_table, plt as _plt, training_figure

SAMPLES_PER_CELL = 4


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


def sample_grid(predictions: pd.DataFrame, crops_root: Path, explainer=None) -> str:
    """Test crops with their scores: reals and fakes, right and wrong (up to 4 of each); with an
    ``explainer`` (:class:`forensics.training.gradcam.GradCam`) each crop beside its heat map."""
    import cv2

    plt = _plt()
    predictions = predictions.assign(wrong=(predictions["score"] >= 0.5) != (predictions["label"] == 1))
    cells = [("real, right", 0, False), ("real, wrong", 0, True), ("fake, right", 1, False), ("fake, wrong", 1, True)]
    width = 4 if explainer is not None else 2
    fig, axes = plt.subplots(len(cells), SAMPLES_PER_CELL, figsize=(width * SAMPLES_PER_CELL, 2.2 * len(cells)))
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
                    image = np.ascontiguousarray(image[:, :, ::-1])
                    if explainer is not None:
                        from forensics.media.heatmap import overlay

                        image = np.hstack([image, overlay(image, explainer([image])[0])])
                    ax.imshow(image)
                ax.set_title(f"{item['method']}  p(fake)={item['score']:.2f}", fontsize=7,
                             color="tab:red" if wrong else "black")
            elif col == 0:
                ax.text(0.5, 0.5, "none", ha="center", va="center")
        axes[row, 0].text(-0.1, 0.5, title, transform=axes[row, 0].transAxes, rotation=90,
                          ha="right", va="center")
    return _figure_png(fig)


def _read_jsonl(path: Path) -> list[dict]:
    from forensics.training.runlog import read_jsonl

    return read_jsonl(path)


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
        "Test crops and their scores (beside each, its Grad-CAM heat map)": sample_grid(
            predictions, out / "crops", _explainer(out / "run" / "checkpoints" / "best.pt")),
    }
    grids = sorted((out / "refiner" / "samples").glob("epoch_*.png"))
    if report["refiner"] is not None and grids:  # the refiner's own grid of its last epoch
        figures["Refiner on val pairs: input | refined | target | |difference|"] = base64.b64encode(
            grids[-1].read_bytes()).decode()
    atomic_write_text(out / "report.html", _html(report, figures))
    return report


def _explainer(checkpoint: Path):
    """Grad-CAM of the demo's detector, or ``None`` (no checkpoint, or nothing to explain)."""
    from forensics.errors import ForensicsError
    from forensics.training.gradcam import from_checkpoint

    try:
        return from_checkpoint(checkpoint) if checkpoint.is_file() else None
    except ForensicsError:
        return None


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
<style>{STYLE}</style></head>
<body><h1>forensics demo: detector on the synthetic test split</h1>
<p>Synthetic data made by <code>forensics synth</code>: these numbers say the pipeline works, not how a
detector does on FaceForensics++.</p>
<h2>Headline metrics (test split; checkpoint chosen on val, epoch {report['best_epoch']})</h2>
{metric_table(report['test'])}
<h2>forensics predict</h2><ul>{predicted}</ul>
{_refiner_html(report['refiner'])}
{images}
<p>Stage times: {html.escape(timing)}</p>
</body></html>
"""
