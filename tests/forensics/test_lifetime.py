"""Process lifetime: a guarded child dies with its parent; SIGTERM becomes an exception."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from forensics.lifetime import Terminated, exit_status, handle_termination

psutil = pytest.importorskip("psutil")

#: A parent that starts a guarded child, prints the child's pid, then sleeps until killed.
PARENT = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
    print(child.pid, flush=True)
    time.sleep(600)
""")
#: Child programs: set the guard, then say so by creating the file named by argv[1].
GUARDS = {
    "pdeathsig": "from forensics.lifetime import die_with_parent; assert die_with_parent()",
    "watch": "import os; from forensics.lifetime import watch_process; watch_process(os.getppid(), 0.1)",
}
READY = "; import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); time.sleep(600)"


def _gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("guard", sorted(GUARDS))
def test_guarded_child_dies_with_its_parent(guard, tmp_path):
    if guard == "pdeathsig" and not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux only")
    ready = tmp_path / "ready"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, GUARDS[guard] + READY, str(ready)], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    child = int(parent.stdout.readline())
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert psutil.Process(child).is_running()
    parent.kill()
    parent.wait()
    try:
        assert _gone(child, 5), f"child {child} outlived its parent ({guard})"
    finally:
        if not _gone(child, 0):
            os.kill(child, signal.SIGKILL)


def test_sigterm_raises_terminated_and_maps_to_143():
    with handle_termination():
        with pytest.raises(Terminated) as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs before this returns
    assert exit_status(stop.value) == 143 and exit_status(KeyboardInterrupt()) == 130
    assert signal.getsignal(signal.SIGTERM) is not signal.getsignal(signal.SIGINT)  # previous handler back
