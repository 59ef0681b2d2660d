"""Tests of forensics/synth: the synthetic FaceForensics++-style dataset generator."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from forensics.errors import ForensicsError
from forensics.synth import (
    DEFAULT_METHODS,
    MARKER,
    METHODS,
    SynthConfig,
    fake_path,
    make_dataset,
    mask_path,
    original_path,
    read_marker,
    split_pairs,
)
from forensics.media.video import read_frames, video_info

# Small but faithful: 6 originals (3 pairs: train, val, test), lossless c0 to check alignment
# and c23 like the real data.
CONFIG = SynthConfig(seed=7, originals=6, methods=METHODS, seconds=1.2, fps=25, width=320, height=240,
                     compressions=("c0", "c23"))
# The cheapest dataset, for the tests of the output folder handling.
TINY = SynthConfig(seed=1, originals=6, seconds=0.2, fps=25, width=160, height=120,
                   compressions=("c23",))
IDS = [f"{i:03d}" for i in range(6)]


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("synth") / "ffpp", CONFIG)


def _expected_files(root: Path, config: SynthConfig, pairs) -> set[Path]:
    """The files a list of pairs puts in its split: FaceForensics++ semantics."""
    files = set()
    for a, b in pairs:
        for target, partner in ((a, b), (b, a)):
            for c in config.compressions:
                files.add(original_path(root, c, target))
            for method in config.methods:
                source = target if method in ("SelfBlend", "SelfReenact") else partner
                files.add(mask_path(root, method, target, source))
                for c in config.compressions:
                    files.add(fake_path(root, method, c, target, source))
    return files


def _decode(path: Path) -> np.ndarray:
    return np.stack([frame for _, frame in read_frames(path)])


def test_layout(synth_root: Path) -> None:
    r = synth_root
    expected = {r / MARKER} | {r / "splits" / f"{s}.json" for s in ("train", "val", "test")}
    for c in ("c0", "c23"):
        expected |= {r / f"original_sequences/youtube/{c}/videos/{i}.mp4" for i in IDS}
        for a, b in [("000", "001"), ("001", "000"), ("002", "003"), ("003", "002"),
                     ("004", "005"), ("005", "004")]:
            expected.add(r / f"manipulated_sequences/FaceSwap/{c}/videos/{a}_{b}.mp4")
            expected.add(r / f"manipulated_sequences/FaceSwap/masks/videos/{a}_{b}.mp4")
        for a in IDS:
            for method in ("SelfBlend", "SelfReenact"):
                expected.add(r / f"manipulated_sequences/{method}/{c}/videos/{a}_{a}.mp4")
                expected.add(r / f"manipulated_sequences/{method}/masks/videos/{a}_{a}.mp4")
    # marker + 3 splits, 6 originals x 2 levels, 6 fakes x 3 methods x 2 levels, 18 masks
    assert len(expected) == 4 + 12 + 36 + 18
    assert {p for p in r.rglob("*") if p.is_file()} == expected

    marker = read_marker(r)
    assert marker is not None and marker["complete"] is True
    assert marker["settings"]["seed"] == 7 and marker["settings"]["compressions"] == ["c0", "c23"]
    assert marker["num_frames"] == 30 and marker["version"]


def test_split_files_follow_ffpp_semantics(synth_root: Path) -> None:
    splits = {s: json.loads((synth_root / "splits" / f"{s}.json").read_text())
              for s in ("train", "val", "test")}
    assert splits == {"train": [["000", "001"]], "val": [["002", "003"]], "test": [["004", "005"]]}
    seen: dict[str, str] = {}
    all_files = set()
    for split, pairs in splits.items():
        for pair in pairs:
            assert len(pair) == 2 and all(isinstance(i, str) and len(i) == 3 for i in pair)
            for vid in pair:
                assert vid not in seen, f"{vid} in {seen.get(vid)} and {split}"
                seen[vid] = split
        files = _expected_files(synth_root, CONFIG, pairs)
        assert all(p.exists() for p in files)
        assert not files & all_files  # no video in two splits
        all_files |= files
    assert sorted(seen) == IDS
    on_disk = {p for p in synth_root.rglob("*.mp4")}
    assert on_disk == all_files  # every video belongs to exactly one split


@pytest.mark.parametrize("originals", [6, 8, 10, 12, 20, 100, 1000])
def test_split_sizes(originals: int) -> None:
    splits = split_pairs(originals)
    n = originals // 2
    sizes = {s: len(p) for s, p in splits.items()}
    assert sum(sizes.values()) == n and min(sizes.values()) >= 1
    assert sizes["val"] == sizes["test"]
    if n >= 20:
        assert abs(sizes["train"] / n - 0.7) < 0.05
    ids = [i for pairs in splits.values() for pair in pairs for i in pair]
    assert ids == [f"{i:03d}" for i in range(originals)]
    if originals == 12:
        assert sizes == {"train": 4, "val": 1, "test": 1}


def test_every_video_decodes(synth_root: Path) -> None:
    for path in sorted(synth_root.rglob("*.mp4")):
        assert video_info(path) == (30, 25.0, 320, 240), path
        frames = _decode(path)
        assert frames.shape == (30, 240, 320, 3), path
    masks = _decode(mask_path(synth_root, "FaceSwap", "000", "001"))
    # Binary (lossless), and every frame has a manipulated region.
    assert set(np.unique(masks)) <= {0, 255}
    assert ((masks[..., 0] == 255).mean(axis=(1, 2)) > 0.01).all()


@pytest.mark.parametrize("method, target, source",
                         [("FaceSwap", "000", "001"), ("FaceSwap", "003", "002"),
                          ("SelfBlend", "001", "001"), ("SelfBlend", "004", "004"),
                          ("SelfReenact", "002", "002")])
def test_fakes_are_aligned_with_their_original(synth_root: Path, method, target, source) -> None:
    original = _decode(original_path(synth_root, "c0", target)).astype(np.int16)
    fake = _decode(fake_path(synth_root, method, "c0", target, source)).astype(np.int16)
    mask = _decode(mask_path(synth_root, method, target, source))[..., 0] > 127
    kernel = np.ones((9, 9), np.uint8)
    for t in range(len(original)):
        grown = cv2.dilate(mask[t].astype(np.uint8), kernel).astype(bool)
        diff = np.abs(fake[t] - original[t]).mean(axis=2)
        assert diff[~grown].mean() < 0.05, (t, diff[~grown].mean())
        assert diff[~grown].max() <= 8  # at most the soft tail of the blend below threshold
        assert diff[mask[t]].mean() > 3, (t, diff[mask[t]].mean())


@pytest.mark.parametrize("method, target, source", [("FaceSwap", "000", "001"), ("SelfBlend", "001", "001"),
                                                    ("SelfReenact", "003", "003")])
def test_fakes_lack_the_cameras_noise_inside_the_mask(synth_root: Path, method, target, source) -> None:
    """The manipulated region is rendered at a lower resolution than the frame (the trace
    that makes fakes learnable across identities): less fine detail than the original there."""
    original = _decode(original_path(synth_root, "c0", target))
    fake = _decode(fake_path(synth_root, method, "c0", target, source))
    mask = _decode(mask_path(synth_root, method, target, source))[..., 0] > 127
    inner = np.stack([cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8)) for m in mask]).astype(bool)

    def detail(frames):  # energy of the Laplacian (high frequencies) inside the mask
        lap = np.stack([cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_32F) for f in frames])
        return float((lap[inner] ** 2).mean())

    assert detail(fake) < 0.6 * detail(original)


def test_mtcnn_finds_the_faces(synth_root: Path) -> None:
    import torch
    from facenet_pytorch import MTCNN
    from PIL import Image

    torch.set_num_threads(2)
    detector = MTCNN(keep_all=True, device="cpu")
    videos = [original_path(synth_root, "c23", i) for i in IDS] + [
        fake_path(synth_root, "FaceSwap", "c23", "000", "001"),
        fake_path(synth_root, "FaceSwap", "c23", "005", "004"),
        fake_path(synth_root, "SelfBlend", "c23", "002", "002"),
    ]
    images = []
    for path in videos:
        images += [Image.fromarray(f) for _, f in read_frames(path, range(0, 30, 5))]
    boxes, probs = detector.detect(images)
    found = [b is not None and (np.asarray(p, dtype=float) > 0.9).any()
             for b, p in zip(boxes, probs)]
    assert np.mean(found) >= 0.95, f"faces found in {np.mean(found):.0%} of frames"
    # The face is in a realistic size range (box height ~20-50% of the frame).
    heights = [np.asarray(b, dtype=float)[:, 3] - np.asarray(b, dtype=float)[:, 1]
               for b in boxes if b is not None]
    assert 0.18 * 240 < np.median(np.concatenate(heights)) < 0.55 * 240


def test_same_seed_same_pixels_other_seed_other_pixels(synth_root: Path, tmp_path) -> None:
    # Pixels must not depend on which compressions or other methods are written: compare c23
    # only, and the default methods only (the session dataset also has SelfReenact).
    again = make_dataset(tmp_path / "again", SynthConfig(**{**CONFIG.__dict__, "compressions": ("c23",),
                                                              "methods": DEFAULT_METHODS}))
    compared = 0
    for path in sorted(synth_root.rglob("*")):
        rel = path.relative_to(synth_root)
        if path.is_dir() or rel.name == MARKER:
            continue
        if "c0" in rel.parts or "SelfReenact" in rel.parts:
            assert not (again / rel).exists()
            continue
        assert (again / rel).read_bytes() == path.read_bytes(), rel  # byte for byte
        compared += 1
    assert compared == 6 + 12 + 12 + 3  # c23 originals, fakes, masks, splits

    other = make_dataset(tmp_path / "other", SynthConfig(**{**CONFIG.__dict__, "seed": 8,
                                                              "compressions": ("c23",),
                                                              "methods": ("SelfBlend",)}))
    for vid in ("000", "003"):
        a = _decode(original_path(synth_root, "c23", vid)).astype(int)
        b = _decode(original_path(other, "c23", vid)).astype(int)
        assert np.abs(a - b).mean() > 10
    assert not (other / "manipulated_sequences" / "FaceSwap").exists()


def test_refuses_a_foreign_non_empty_folder(tmp_path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ForensicsError, match="not empty") as info:
        make_dataset(out, TINY)
    assert str(out) in str(info.value) and "--overwrite" in str(info.value)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]

    make_dataset(out, TINY, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"  # --overwrite deletes only what it owns
    assert read_marker(out)["complete"]
    assert len(list(out.rglob("*.mp4"))) == 6 + 12 + 12


def test_resume_and_other_settings(tmp_path) -> None:
    out = make_dataset(tmp_path / "d", TINY)
    victim = fake_path(out, "SelfBlend", "c23", "002", "002")
    keep = original_path(out, "c23", "002")
    before, kept_mtime = victim.read_bytes(), keep.stat().st_mtime_ns
    victim.unlink()
    make_dataset(out, TINY)  # same settings: resumes, writes only what is missing
    assert victim.read_bytes() == before
    assert keep.stat().st_mtime_ns == kept_mtime

    other = SynthConfig(**{**TINY.__dict__, "seed": 2})
    with pytest.raises(ForensicsError, match="other settings"):
        make_dataset(out, other)
    make_dataset(out, other, overwrite=True)
    assert read_marker(out)["settings"]["seed"] == 2


def test_interrupted_run_is_resumable(tmp_path, monkeypatch) -> None:
    import forensics.synth as synth

    calls = []
    real = synth._write_target

    def crash_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synth, "_write_target", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        make_dataset(tmp_path / "d", TINY)
    marker = read_marker(tmp_path / "d")
    assert marker is not None and marker["complete"] is False
    monkeypatch.setattr(synth, "_write_target", real)
    make_dataset(tmp_path / "d", TINY)  # recognised as ours: no --overwrite needed
    assert read_marker(tmp_path / "d")["complete"]
    assert len(list((tmp_path / "d").rglob("*.mp4"))) == 30


@pytest.mark.parametrize("change, message", [
    ({"originals": 7}, "--originals"),
    ({"originals": 4}, "--originals"),
    ({"methods": ("DeepFakes",)}, "--methods"),
    ({"compressions": ("c10",)}, "--compression"),
    ({"width": 1920, "height": 1080}, "1920x1080"),
    ({"width": 321}, "even"),
    ({"seconds": 0}, "--seconds"),
])
def test_bad_settings(tmp_path, change, message) -> None:
    with pytest.raises(ForensicsError, match=message):
        make_dataset(tmp_path / "d", SynthConfig(**{**TINY.__dict__, **change}))
    assert not (tmp_path / "d").exists()


def _write_png(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def test_faces_folder_without_faces(tmp_path) -> None:
    from skimage import data

    folder = tmp_path / "no_faces"
    folder.mkdir()
    _write_png(folder / "coffee.png", data.coffee())
    _write_png(folder / "bricks.png", np.repeat(data.brick()[..., None], 3, axis=2))
    (folder / "readme.txt").write_text("not an image")
    with pytest.raises(ForensicsError, match="no_faces") as info:
        make_dataset(tmp_path / "d", SynthConfig(**{**TINY.__dict__, "faces": str(folder)}))
    assert "\n" not in str(info.value)
    with pytest.raises(ForensicsError, match="missing"):
        make_dataset(tmp_path / "d", SynthConfig(**{**TINY.__dict__, "faces": str(tmp_path / "missing")}))


def test_faces_folder_with_faces(tmp_path) -> None:
    from skimage import data

    folder = tmp_path / "faces"
    folder.mkdir()
    astronaut = data.astronaut()
    _write_png(folder / "a.png", astronaut)
    _write_png(folder / "b.png", cv2.resize(astronaut[:300, 80:380], (200, 200))[:, ::-1] // 2 + 60)
    config = SynthConfig(**{**TINY.__dict__, "width": 320, "height": 240, "faces": str(folder)})
    out = make_dataset(tmp_path / "d", config)
    assert read_marker(out)["settings"]["faces"] == str(folder.resolve())
    assert len(list(out.rglob("*.mp4"))) == 30
    # Different photos give different people.
    first = _decode(original_path(out, "c23", "000"))[0]
    second = _decode(original_path(out, "c23", "001"))[0]
    assert np.abs(first.astype(int) - second).mean() > 5

    from facenet_pytorch import MTCNN
    from PIL import Image

    boxes, _ = MTCNN(keep_all=True, device="cpu").detect(
        [Image.fromarray(_decode(original_path(out, "c23", i))[2]) for i in IDS])
    assert sum(b is not None for b in boxes) >= 5


def test_cli(tmp_path) -> None:
    from forensics.synth import cli

    assert isinstance(cli.HELP, str) and "\n" not in cli.HELP
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = tmp_path / "cli"
    args = parser.parse_args(["--out", str(out), "--seed", "1", "--originals", "6", "--seconds", "0.2",
                              "--width", "160", "--height", "120", "--methods", "SelfBlend",
                              "--compression", "c23", "c40"])
    assert cli.run(args) == 0
    settings = read_marker(out)["settings"]
    assert settings["methods"] == ["SelfBlend"] and settings["compressions"] == ["c23", "c40"]
    assert len(list((out / "manipulated_sequences" / "SelfBlend").rglob("*.mp4"))) == 6 * 3
    assert not (out / "manipulated_sequences" / "FaceSwap").exists()

    defaults = parser.parse_args(["--out", "x"])
    assert (defaults.originals, defaults.seconds, defaults.fps, defaults.width, defaults.height,
            defaults.compression, defaults.overwrite) == (12, 3.0, 25, 640, 480, ["c23"], False)
    with pytest.raises(ForensicsError, match="--originals"):
        cli.run(parser.parse_args(["--out", str(tmp_path / "bad"), "--originals", "5"]))


@pytest.mark.parametrize("width, height", [(640, 480), (320, 240), (1280, 720)])
def test_face_stays_in_frame_at_a_realistic_size(width: int, height: int) -> None:
    from forensics.synth.faces import bundled_identities
    from forensics.synth.render import plan_scene

    for i, identity in enumerate(bundled_identities(4, seed=3)):
        scene = plan_scene(identity, width, height, 75, 25, np.random.default_rng(i))
        boxes = scene.face_boxes()
        heights = boxes[:, 3] - boxes[:, 1]
        # 100-250 px at 640x480, as in FaceForensics++ (the box grows a little when rotated).
        assert (heights > 0.2 * height).all() and (heights < 0.55 * height).all()
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= width).all()
        assert (boxes[:, 3] <= height).all()
        # It moves, smoothly: no jump of more than 3% of the frame between frames.
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        steps = np.abs(np.diff(centre, axis=0)).max(axis=0)
        assert 0 < steps.max() < 0.03 * width


def test_methods_are_the_method_folders(synth_root: Path) -> None:
    assert METHODS == ("FaceSwap", "SelfBlend", "SelfReenact")
    assert DEFAULT_METHODS == ("FaceSwap", "SelfBlend") and SynthConfig().methods == DEFAULT_METHODS
    assert sorted(p.name for p in (synth_root / "manipulated_sequences").iterdir()) == list(METHODS)


def test_self_reenactment_keeps_the_face_where_it_was() -> None:
    """SelfReenact re-renders the face in place: inside its mask, one colour transform of the
    original explains the fake's low frequencies (the original is its ground truth), while
    SelfBlend's warp moves the face and leaves errors no colour transform removes."""
    from forensics.synth.faces import bundled_identities
    from forensics.synth.methods import manipulate

    def unexplained(method: str, k: int, target) -> float:  # RMS left after an affine colour fit
        fake = manipulate(method, target, target, np.random.default_rng([0, k]))
        inside = fake.mask > 0.5
        a, b = (cv2.GaussianBlur(im, (0, 0), 3)[inside] for im in (fake.rgb, target.rgb))
        design = np.c_[a, np.ones(len(a))]
        coef, *_ = np.linalg.lstsq(design, b, rcond=None)
        return float(np.sqrt(((design @ coef - b) ** 2).mean()))

    identities = bundled_identities(6, 0)
    reenact = [unexplained("SelfReenact", k, t) for k, t in enumerate(identities)]
    blend = [unexplained("SelfBlend", k, t) for k, t in enumerate(identities)]
    assert max(reenact) < 3 and np.mean(blend) > 3 * np.mean(reenact), (reenact, blend)
