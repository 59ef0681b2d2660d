"""Atomic outputs: complete or absent, never half-written, with ordinary permissions."""

import os

import pytest

from forensics.atomic import atomic_dir, atomic_write_text


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    atomic_write_text(tmp_path / "report.json", "{}")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_failed_writes_leave_old_content_and_no_temp(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "crops") as tmp:
            (tmp / "0000.png").write_bytes(b"x")
            raise RuntimeError("killed")
    assert (tmp_path / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
