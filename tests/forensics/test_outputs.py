"""Output paths: a file, a read-only folder, a full disk: one line, earlier outputs intact."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forensics import atomic
from forensics.atomic import atomic_dir, atomic_write_text
from forensics.cli import main
from forensics.errors import ForensicsError
from forensics.outputs import check_output_dir, check_output_file, describe_os_error

#: Commands whose output folder is checked before any work (cheap to call with a bad one).
FOLDER_COMMANDS = {
    "synth": ["synth", "--out", "{out}"],
    "keypoints-synth": ["keypoints-synth", "--out", "{out}", "--count", "5"],
    "preprocess": ["preprocess", "--layout", "ffpp", "--root", "{root}", "--out", "{out}"],
    "demo": ["demo", "--out", "{out}"],
    "refiner video": ["refiner", "video", "{root}/v.mp4", "--checkpoint", "{root}/c.pt", "--out", "{out}"],
    "refiner apply": ["refiner", "apply", "--checkpoint", "{root}/c.pt", "--manifest", "{root}/m.csv", "--method",
                      "FaceSwap", "--out", "{out}/m.csv"],
    "evaluate": ["evaluate", "--checkpoint", "{root}/c.pt", "--out", "{out}"],
    "predict": ["predict", "{root}/v.mp4", "--checkpoint", "{root}/c.pt", "--annotate", "{out}"],
}


def _argv(name: str, out: Path, root: Path) -> list[str]:
    return [a.format(out=out, root=root) for a in FOLDER_COMMANDS[name]]


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"forensics {command}: error:") and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("name", sorted(FOLDER_COMMANDS))
def test_output_folder_that_is_a_file(name, tmp_path, capsys):
    existing = tmp_path / "earlier.csv"
    existing.write_text("an earlier output\n")
    assert main(_argv(name, existing, tmp_path)) == 2
    err = _one_line_error(capsys, name.split()[0])
    assert str(existing) in err and "is a file" in err
    assert existing.read_text() == "an earlier output\n"


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody may write to: chmod for a user; for root (who ignores modes), a read-only tmpfs."""
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "earlier.txt").write_text("kept")
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("running as root without permission to mount a read-only file system")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("name", ["synth", "preprocess", "refiner apply"])
def test_read_only_output_folder(name, read_only_dir, tmp_path, capsys):
    before = sorted(os.listdir(read_only_dir))
    assert main(_argv(name, read_only_dir / "out", tmp_path)) == 2
    err = _one_line_error(capsys, name.split()[0])
    assert "not writable" in err
    assert sorted(os.listdir(read_only_dir)) == before


def test_full_disk_at_the_atomic_layer_keeps_earlier_outputs(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    atomic_write_text(target, "earlier")
    (tmp_path / "crops").mkdir()
    (tmp_path / "crops" / "0000.png").write_bytes(b"earlier")

    def full(tmp, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(atomic, "_publish", full)
    monkeypatch.setattr(atomic, "_publish_dir", full)
    with pytest.raises(OSError) as error:
        atomic_write_text(target, "new")
    assert target.read_text() == "earlier"
    with pytest.raises(OSError):
        with atomic_dir(tmp_path / "crops") as tmp:
            (tmp / "0000.png").write_bytes(b"new")
    assert (tmp_path / "crops" / "0000.png").read_bytes() == b"earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crops", "report.json"]  # no temporaries left
    line = describe_os_error(error.value)
    assert str(target) in line and "disk is full" in line and "intact" in line


def test_full_disk_during_a_command_is_one_line(tmp_path, monkeypatch, capsys):
    def full(tmp, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(atomic, "_publish", full)
    out = tmp_path / "ds"
    status = main(["synth", "--out", str(out), "--originals", "6", "--seconds", "0.2", "--fps", "5",
                   "--width", "160", "--height", "120"])
    err = _one_line_error(capsys, "synth")
    assert status == 2 and "No space left on device" in err
    assert not [p for p in out.rglob("*") if p.is_file()]  # nothing half-written


def test_real_full_disk_is_one_line(tmp_path):
    """A real (tiny) tmpfs filling up under ``forensics synth``, where mounting one is allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        proc = subprocess.run([sys.executable, "-m", "forensics", "synth", "--out", str(disk / "ds"), "--originals", "6",
                               "--seconds", "1", "--fps", "10", "--width", "320", "--height", "240"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "No space left on device" in proc.stderr.strip().splitlines()[-1]
        assert not list(disk.rglob("*.tmp*"))  # the temporary of the write that failed is gone
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_checks_name_the_option():
    with pytest.raises(ForensicsError, match="--annotate /etc/hostname is a file"):
        check_output_dir("/etc/hostname", "--annotate")
    with pytest.raises(ForensicsError, match="is a folder; give a file name"):
        check_output_file("/tmp")
