"""``forensics report RUN_DIR``: one self-contained HTML page of a training or evaluation run.

Made from the run folder alone (no W&B, no network): provenance (git commit, sweep, data
digest), the metrics of every evaluated split, per-method tables, training curves and the
run's figures, embedded. See :mod:`forensics.training.report`.
"""

from __future__ import annotations

HELP = "render a training or evaluation run folder as one self-contained HTML file (offline)"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by forensics train or evaluate")
    parser.add_argument("--out", help="HTML file to write (default: RUN_DIR/report.html)")


def run(args) -> int:
    from forensics.training.report import write_run_report

    print(f"report: {write_run_report(args.run_dir, args.out)}")
    return 0
