"""``forensics evaluate --checkpoint C [--manifest M] [--split test]``: score a trained detector.

Everything needed to rebuild the model and its inputs (architecture, head, classes, input
size, mean/std) comes from the checkpoint, so any manifest can be scored: the training
manifest's test split by default, or another dataset's manifest for cross-dataset
evaluation. The training run's dataset, method and compression filters are kept, on any
manifest, unless the command names others (``--datasets``, ``--methods``, ``--compressions``;
``all`` drops a filter): ``report.json`` records which were applied and where each came from.
Writes into ``--out`` (default ``RUN/eval/<split>``): ``report.json``
(frame/video metrics, per method, per compression), ``roc_<split>.png``,
``samples_<split>.png``, ``predictions.csv`` (one score per crop) and a W&B run. Runs under
torchrun too; scores are gathered from every rank before any metric is computed. A checkpoint
of a plug-in task is scored by that task's own evaluation (its ``TaskSpec.evaluate``).
The work is :func:`forensics.training.evaluation.score`, which ``forensics benchmark``
shares for its cross-dataset table.
"""

from __future__ import annotations

import logging
from pathlib import Path

from forensics.training.evaluation import add_arguments  # noqa: F401 - the command's flags

log = logging.getLogger(__name__)

HELP = "evaluate a checkpoint on a manifest split: frame/video metrics, ROC, W&B"
#: Output folders the dispatcher checks before running (a file or a read-only folder: one line).
OUTPUT_DIRS = ("out",)


def run(args) -> int:
    from forensics.training.evaluation import score, summary

    report = score(args)
    if report is not None:  # rank 0 of a detection checkpoint (a plug-in task reports itself)
        print(summary(report))
        print(f"report: {Path(args.out) / 'report.json'}")
    return 0
