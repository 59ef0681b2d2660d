"""Signals to ``forensics preprocess``: no process outlives the command, committed records stay valid.

Real subprocesses and real signals: ``kill -9`` (the OOM killer, a SLURM job past its time)
must take the fork server and its workers with it; SIGTERM (SLURM pre-emption) and SIGINT
(Ctrl-C) stop the workers, say so in one line and exit 143/130.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

psutil = pytest.importorskip("psutil")

from tests.preprocessing.conftest import FRAMES  # noqa: E402


def _alive(proc) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE  # a zombie has exited; only its parent's wait is missing
    except psutil.NoSuchProcess:
        return False


def _start(pp_root, out, stderr):
    command = [sys.executable, "-m", "forensics", "preprocess", "--layout", "ffpp", "--root", str(pp_root),
               "--out", str(out), *FRAMES, "--workers", "2", "--no-progress"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)


def _wait_for_work(proc, out, records: int) -> list:
    """The command's descendants once its 2 workers run and ``records`` videos are committed."""
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        children = parent.children(recursive=True)
        done = list((out / "tracks").rglob("*.json")) if (out / "tracks").is_dir() else []
        if len(children) >= 4 and len(done) >= records:  # resource tracker, fork server, 2 workers
            return children
        time.sleep(0.05)
    pytest.fail("forensics preprocess did not start its workers")


def _gone_within(children, seconds: float) -> list:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [c for c in children if _alive(c)]
        if not alive:
            return []
        time.sleep(0.1)
    return [(c.pid, " ".join(c.cmdline())[:80]) for c in children if _alive(c)]


@pytest.mark.slow
def test_kill_9_leaves_no_worker_behind(pp_root, tmp_path):
    proc = _start(pp_root, tmp_path / "out", subprocess.DEVNULL)
    try:
        children = _wait_for_work(proc, tmp_path / "out", records=0)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the command only: its children must follow by themselves
        proc.wait()
    assert _gone_within(children, 5) == []


@pytest.mark.slow
@pytest.mark.parametrize("sig, status, word", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                               (signal.SIGINT, 130, "interrupted")])
def test_sigterm_and_sigint_stop_cleanly(pp_root, tmp_path, sig, status, word):
    from preprocessing.pipeline import read_record

    out = tmp_path / "out"
    err = tmp_path / "stderr.txt"
    with open(err, "w") as stderr:
        proc = _start(pp_root, out, stderr)
        try:
            children = _wait_for_work(proc, out, records=1)
            os.kill(proc.pid, sig)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = err.read_text()
    lines = [line for line in text.splitlines() if "forensics preprocess:" in line]
    assert proc.returncode == status, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert lines == [f"forensics preprocess: {word}; videos committed before are kept; "
                     "run the same command again to resume"]
    assert _gone_within(children, 5) == []
    records = list((out / "tracks").rglob("*.json"))
    assert records and not (out / "manifest.csv").exists()
    for path in records:  # every committed record is whole and readable by a rerun
        key = path.relative_to(out / "tracks").with_suffix("").as_posix()
        assert read_record(out, key) is not None, key
        json.loads(path.read_text())
