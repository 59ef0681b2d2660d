"""A run: resume after kill -9, shards merged = one run, worker processes, subject tracking."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from forensics.media.faces import box_iou
from forensics.media.video import write_video
from preprocessing.layouts import list_items
from preprocessing.runner import shard_items
from preprocessing.shared_frames import SHM_FOLDER, block_prefix
from tests.preprocessing.conftest import FRAMES, assert_same_manifest, preprocess, read


def _committed(out):
    return list((out / "tracks").rglob("*.json")) if (out / "tracks").exists() else []


def test_resume_after_kill_9_gives_the_uninterrupted_manifest(pp_root, reference, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "forensics", "preprocess", "--layout", "ffpp", "--root", str(pp_root),
               "--out", str(out), *FRAMES, "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(_committed(out)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its worker, mid-write
        proc.wait()
    done = _committed(out)
    assert 3 <= len(done) < 18, "the run was not interrupted mid-way"
    assert not (out / "manifest.csv").exists()
    # Also leave what a kill can leave at other moments: a half-written crop folder, and a
    # video whose crops were renamed into place but whose record was never committed.
    stale = out / "crops/ffpp/original/c23/.005.abcd.tmp"
    stale.mkdir(parents=True)
    (stale / "0000.png").write_bytes(b"half")
    uncommitted = done[0]
    uncommitted.unlink()

    assert preprocess("--layout", "ffpp", "--root", pp_root, "--out", out, *FRAMES, "--workers", "0") == 0
    assert_same_manifest(read(out), read(reference))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"]["skipped"] == len(done) - 1 and summary["videos"]["done"] == 18 - len(done) + 1
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*"))
    listed = set(read(out).path) | set(read(out)["mask"]) - {""}
    assert {p.relative_to(out).as_posix() for p in (out / "crops").rglob("*.png")} == listed


def test_shards_merged_equal_a_single_run(pp_root, reference, tmp_path, monkeypatch):
    items = list_items("ffpp", pp_root)
    parts = [shard_items(items, k, 2) for k in range(2)]
    assert sorted(i.key for p in parts for i in p) == sorted(i.key for i in items)
    for part in parts:  # an original and its fakes stay together
        assert {i.original or i.video for i in part if i.method != "original"} <= {i.video for i in part if i.label == 0}

    out = tmp_path / "out"
    assert preprocess("--layout", "ffpp", "--root", pp_root, "--out", out, *FRAMES, "--shard", "0/2",
                      "--workers", "0") == 0
    assert preprocess("--merge", "--out", out) == 2  # shard 1 has not run yet
    monkeypatch.setenv("RANK", "1")  # shard 1 from torchrun's environment
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert preprocess("--layout", "ffpp", "--root", pp_root, "--out", out, *FRAMES, "--workers", "0") == 0
    assert (out / "manifest.shard-1-of-2.csv").is_file() and not (out / "manifest.csv").exists()
    assert preprocess("--merge", "--out", out) == 0
    assert_same_manifest(read(out), read(reference))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"]["done"] == 18 and summary["shards"] == 2


def test_worker_processes_give_the_same_crops(pp_root, reference, tmp_path):
    ref = read(reference)
    out = tmp_path / "pool"
    assert preprocess("--layout", "ffpp", "--root", pp_root, "--out", out, *FRAMES, "--only-splits", "train",
                      "--workers", "2") == 0
    assert_same_manifest(read(out), ref[ref.split == "train"])


def _blocks(owner):
    """Shared-memory frame blocks of command process ``owner`` still in /dev/shm."""
    return sorted(p.name for p in SHM_FOLDER.glob(block_prefix(owner) + "*"))


#: A run with the shared detector (the CUDA arrangement) on the CPU: the first 3 originals of argv[1].
SHARED_RUN = """
import logging, sys
from preprocessing.layouts import list_items
from preprocessing.pipeline import Settings
from preprocessing.runner import run_preprocess
logging.basicConfig(level=logging.WARNING)
logging.getLogger("preprocessing.shared_frames").setLevel(logging.INFO)  # says how many blocks it swept
items = [i for i in list_items("ffpp", sys.argv[1]) if i.method == "original"][:3]
summary = run_preprocess(items, sys.argv[2], Settings(frames=4), workers=2, shared_detector=True, progress=False)
sys.exit(0 if summary["videos"]["done"] == len(items) else 1)
"""


@pytest.mark.slow
def test_shared_detector_gives_the_same_crops_and_a_killed_worker_leaves_no_frame_block(pp_root, reference,
                                                                                         tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", SHARED_RUN, str(pp_root), str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (blocks := _blocks(proc.pid)) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if not blocks:
            pytest.fail("the run ended before a worker wrote frames to shared memory")
        worker = int(blocks[0][len(block_prefix(proc.pid)):].split("-")[0])  # forensics-<command>-<worker>-<n>
        os.kill(worker, signal.SIGKILL)  # mid-run, its block in /dev/shm
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "a worker process died" in err and "leaked" not in err, err
    # The killed worker's block (and its partner's: a broken pool terminates every worker) was
    # swept when the workers restarted; the new workers unlinked theirs as they exited, so the
    # sweep at the end found nothing (it says nothing then).
    lines = err.splitlines()
    swept = [i for i, line in enumerate(lines) if "shared-memory blocks left by killed workers" in line]
    assert len(swept) == 1 and "a worker process died" in lines[swept[0] + 1], err
    assert _blocks(proc.pid) == []
    ref = read(reference)
    videos = sorted(ref[ref.method == "original"].video.unique())[:3]
    assert_same_manifest(read(out), ref[(ref.method == "original") & ref.video.isin(videos)])


def _paste(canvas, patch, x, y):
    h, w = patch.shape[:2]
    canvas[y:y + h, x:x + w] = patch


@pytest.fixture(scope="module")
def two_people(tmp_path_factory):
    """A video of one person; from frame 18 of 30 a second, larger face appears beside them."""
    import cv2
    from skimage import data

    face = data.astronaut()[20:240, 140:310]  # head and shoulders, face about 90x110
    other = cv2.resize(face[:, ::-1], None, fx=1.3, fy=1.3)
    ramp = np.linspace(70, 140, 480, dtype=np.uint8)
    frames = []
    for t in range(30):
        canvas = np.repeat(np.repeat(ramp[None, :, None], 360, 0), 3, 2).copy()
        _paste(canvas, face, 20 + 2 * t, 60)
        if t >= 18:
            _paste(canvas, other, 480 - other.shape[1] - 2, 40)
        frames.append(canvas)
    root = tmp_path_factory.mktemp("two-people")
    write_video(root / "real" / "interview.mp4", frames, fps=25, crf=18)
    return root


def test_tracking_keeps_one_identity_when_a_second_face_appears(two_people, tmp_path):
    out = tmp_path / "out"
    assert preprocess("--layout", "folder", "--root", two_people, "--out", out, "--frames", "8", "--workers", "0") == 0
    df = read(out)
    assert len(df) == 8  # every sampled frame, and only the subject
    for row in df.itertuples():
        subject = (20 + 2 * row.frame + 40, 80, 20 + 2 * row.frame + 130, 200)  # where the first face is
        assert box_iou((row.x0, row.y0, row.x1, row.y1), subject) > 0.4, row.frame
    # --all-faces keeps the second person too, as face 1, only where they are.
    out2 = tmp_path / "all"
    assert preprocess("--layout", "folder", "--root", two_people, "--out", out2, "--frames", "8", "--all-faces",
                      "--workers", "0") == 0
    df2 = read(out2)
    others = df2[df2.face.astype(int) == 1]
    assert sorted(others.frame) == [21, 25, 29]
    assert all(p.endswith(f"{f:04d}_face1.png") for p, f in zip(others.path, others.frame))
    assert (df2[df2.face.astype(int) == 0].x0.to_numpy() == df.x0.to_numpy()).all()


def _children(pid):
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(c) for c in f.read().split()]
    return found


def _workers(pid):
    """The run's worker processes: children of its fork server, itself a child of the run."""
    return [w for child in _children(pid) for w in _children(child)]


def test_a_worker_dying_mid_video_costs_nothing(pp_root, reference, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "forensics", "preprocess", "--layout", "ffpp", "--root", str(pp_root),
               "--out", str(out), *FRAMES, "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _committed(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = _workers(proc.pid) if proc.poll() is None else []
    if not workers:
        proc.kill()
        pytest.fail("the run ended before a worker could be killed")
    os.kill(workers[0], signal.SIGKILL)  # as a segfaulting decoder would die
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "a worker process died" in err
    assert_same_manifest(read(out), read(reference))
