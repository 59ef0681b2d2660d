"""A synthetic face forgery dataset laid out exactly like FaceForensics++.

FaceForensics++ (Rössler et al., "FaceForensics++: Learning to Detect Manipulated Facial
Images", ICCV 2019) can't be downloaded here, so we make a small stand-in with the same files
in the same places::

    OUT/original_sequences/youtube/<comp>/videos/000.mp4
    OUT/manipulated_sequences/<Method>/<comp>/videos/000_001.mp4    target 000, source 001
    OUT/manipulated_sequences/<Method>/masks/videos/000_001.mp4     255 = manipulated
    OUT/splits/{train,val,test}.json                                [["000", "001"], ...]
    OUT/synth.json                                                  the settings (ours only)

Originals are videos of a person (:mod:`.faces`) moving in front of a camera
(:mod:`.render`); fakes are their frame-aligned manipulations (:mod:`.methods`): ``FaceSwap``
(``a_b`` for every pair ``[a, b]``) and ``SelfBlend`` (``a_a``, Self-Blended Images) by default,
and on request ``SelfReenact`` (``a_a``, a Face2Face-style self-reenactment: pixel-aligned
(fake, original) training pairs). Every
pixel is a function of the seed, so a given seed always gives the same dataset; every video is
written atomically, so an interrupted run resumes where it stopped.

Example::

    from forensics.synth import SynthConfig, make_dataset
    make_dataset("data/synth", SynthConfig(originals=6, seconds=2, compressions=("c0",)))
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from forensics.atomic import atomic_write_text
from forensics.errors import ForensicsError

# Module-level imports stay light (no numpy, OpenCV, PyAV): `forensics synth --help` imports
# this package through its CLI module.

if TYPE_CHECKING:
    from forensics.synth.faces import Identity
    import numpy as np

log = logging.getLogger(__name__)

__all__ = ["METHODS", "DEFAULT_METHODS", "SELF_METHODS", "SynthConfig", "make_dataset", "split_pairs", "read_marker",
           "original_path", "fake_path", "mask_path", "fake_source", "video_ids", "MARKER"]

#: The file that marks a folder as (being) written by ``forensics synth``.
MARKER = "synth.json"
_GENERATOR = "forensics synth"
#: Bumped whenever the generated pixels change, so an older output is never resumed into.
REVISION = 3
# What make_dataset writes, hence what --overwrite may delete (and nothing else).
_OWNED = ("original_sequences", "manipulated_sequences", "splits", MARKER)
#: Manipulation methods, as the folder names of ``manipulated_sequences/`` (implemented in
#: :mod:`forensics.synth.methods`).
METHODS = ("FaceSwap", "SelfBlend", "SelfReenact")
#: What ``forensics synth`` makes unless asked: the detectors' training data. ``SelfReenact``
#: (pixel-aligned pairs for image-to-image training) is asked for by name.
DEFAULT_METHODS = ("FaceSwap", "SelfBlend")
#: Methods whose fake of ``a`` is ``a_a``: source and target are the same person.
SELF_METHODS = ("SelfBlend", "SelfReenact")
MAX_WIDTH, MAX_HEIGHT = 1280, 720
# libx264's output depends on its thread count, which it otherwise takes from the CPU count:
# fixed, the same seed gives the same bytes on any machine with the same libx264.
_ENCODER_THREADS = 4
MIN_WIDTH, MIN_HEIGHT = 160, 120


@dataclass(frozen=True)
class SynthConfig:
    """Settings of a synthetic dataset (all of them decide its pixels).

    Attributes:
        seed: the seed of every random choice.
        originals: number of real videos; even, at least 6 (pairs, and a pair per split).
        methods: manipulation methods, from :data:`METHODS`.
        seconds: length of every video.
        fps: frame rate.
        width, height: frame size, even, up to 1280x720.
        compressions: FaceForensics++ compression levels (``c0``/``raw``, ``c23``, ``c40``).
        faces: a folder of the user's face photos, or ``None`` for the bundled faces.
    """

    seed: int = 0
    originals: int = 12
    methods: tuple[str, ...] = DEFAULT_METHODS
    seconds: float = 3.0
    fps: int = 25
    width: int = 640
    height: int = 480
    compressions: tuple[str, ...] = ("c23",)
    faces: str | None = None

    @property
    def num_frames(self) -> int:
        return max(1, round(self.seconds * self.fps))

    def validate(self) -> None:
        """Raise :class:`ForensicsError` naming the first bad setting."""
        from forensics.media.video import COMPRESSIONS

        if self.originals < 6 or self.originals % 2 or self.originals > 1000:
            raise ForensicsError(
                f"--originals must be an even number from 6 to 1000 (pairs of videos, one pair "
                f"at least in each split), got {self.originals}")
        if not self.methods:
            raise ForensicsError("--methods: at least one method is needed")
        for m in self.methods:
            if m not in METHODS:
                raise ForensicsError(f"--methods: unknown method {m!r}; choose from {', '.join(METHODS)}")
        if len(set(self.methods)) != len(self.methods):
            raise ForensicsError(f"--methods: repeated method in {', '.join(self.methods)}")
        if not self.compressions:
            raise ForensicsError("--compression: at least one compression is needed")
        for c in self.compressions:
            if c not in COMPRESSIONS:
                raise ForensicsError(
                    f"--compression: unknown level {c!r}; choose from {', '.join(COMPRESSIONS)}")
        if len(set(self.compressions)) != len(self.compressions):
            raise ForensicsError(f"--compression: repeated level in {', '.join(self.compressions)}")
        if not 1 <= self.fps <= 120:
            raise ForensicsError(f"--fps must be in [1, 120], got {self.fps}")
        if not 0 < self.seconds <= 600:
            raise ForensicsError(f"--seconds must be in (0, 600], got {self.seconds}")
        if not (MIN_WIDTH <= self.width <= MAX_WIDTH and MIN_HEIGHT <= self.height <= MAX_HEIGHT):
            raise ForensicsError(
                f"frame size {self.width}x{self.height} out of range: width {MIN_WIDTH}-"
                f"{MAX_WIDTH}, height {MIN_HEIGHT}-{MAX_HEIGHT}")
        if self.width % 2 or self.height % 2:
            raise ForensicsError(
                f"frame size {self.width}x{self.height}: width and height must be even (H.264 4:2:0)")
        if self.faces is not None and not Path(self.faces).is_dir():
            raise ForensicsError(f"--faces: {self.faces} is not a folder")

    def to_json(self) -> dict:
        """The settings as stored in the marker (``faces`` as an absolute path)."""
        d = dataclasses.asdict(self)
        d["methods"], d["compressions"] = list(self.methods), list(self.compressions)
        d["faces"] = None if self.faces is None else str(Path(self.faces).resolve())
        return d


def video_ids(originals: int) -> list[str]:
    """Ids of the original videos: ``"000"``, ``"001"``, ..."""
    return [f"{i:03d}" for i in range(originals)]


def split_pairs(originals: int) -> dict[str, list[list[str]]]:
    """FaceForensics++ splits: pairs ``[a, b]`` of ids, ~70/15/15 % of the pairs.

    A pair puts originals ``a`` and ``b``, and the fakes ``a_b``, ``b_a`` (FaceSwap) and ``a_a``,
    ``b_b`` (SelfBlend, SelfReenact), in its split. Val and test get at least one pair each.
    """
    ids = video_ids(originals)
    pairs = [[ids[i], ids[i + 1]] for i in range(0, len(ids) - 1, 2)]
    n_val = n_test = max(1, round(0.15 * len(pairs)))
    n_train = len(pairs) - n_val - n_test
    if n_train < 1:
        raise ForensicsError(f"{originals} originals are too few for three splits")
    return {"train": pairs[:n_train], "val": pairs[n_train:n_train + n_val],
            "test": pairs[n_train + n_val:]}


def original_path(root: str | os.PathLike, compression: str, vid: str) -> Path:
    """``root/original_sequences/youtube/<compression>/videos/<vid>.mp4``."""
    return Path(root, "original_sequences", "youtube", compression, "videos", f"{vid}.mp4")


def fake_path(root: str | os.PathLike, method: str, compression: str, target: str,
              source: str) -> Path:
    """``root/manipulated_sequences/<method>/<compression>/videos/<target>_<source>.mp4``."""
    return Path(root, "manipulated_sequences", method, compression, "videos",
                f"{target}_{source}.mp4")


def mask_path(root: str | os.PathLike, method: str, target: str, source: str) -> Path:
    """``root/manipulated_sequences/<method>/masks/videos/<target>_<source>.mp4``."""
    return Path(root, "manipulated_sequences", method, "masks", "videos", f"{target}_{source}.mp4")


def fake_source(method: str, target: str, partner: str) -> str:
    """The source id of ``method``'s fake of ``target``, whose pair partner is ``partner``."""
    return target if method in SELF_METHODS else partner


def _package_version() -> str:
    try:
        from forensics import __version__  # type: ignore[attr-defined]

        return str(__version__)
    except ImportError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("forensics")
    except PackageNotFoundError:
        return "unknown"


def read_marker(root: str | os.PathLike) -> dict | None:
    """The marker of a folder written by ``forensics synth``, or ``None`` if it isn't one.

    ``marker["complete"]`` is true once every file has been written.
    """
    path = Path(root, MARKER)
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("generator") != _GENERATOR:
        return None
    return marker


def _marker(config: SynthConfig, complete: bool) -> dict:
    return {"generator": _GENERATOR, "version": _package_version(), "revision": REVISION, "complete": complete,
            "settings": config.to_json(), "num_frames": config.num_frames}


def _check_output(out: Path, config: SynthConfig, overwrite: bool) -> bool:
    """Refuse ``out`` or accept it (see :func:`make_dataset`); return whether to clear it."""
    if out.exists() and not out.is_dir():
        raise ForensicsError(f"--out {out} exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return False
    marker = read_marker(out)
    same = (marker is not None and marker.get("settings") == config.to_json()
            and marker.get("version") == _package_version() and marker.get("revision") == REVISION)
    if same and not overwrite:
        log.info("%s: resuming a previous synth run with the same settings", out)
        return False
    if not overwrite:
        if marker is None:
            raise ForensicsError(
                f"--out {out} is not empty and is not a forensics synth output; "
                f"pass --overwrite to write into it anyway")
        raise ForensicsError(
            f"--out {out} holds a synth dataset made with other settings; "
            f"pass --overwrite to replace it")
    return True


def _clear_output(out: Path) -> None:
    log.info("%s: --overwrite: removing the previous dataset", out)
    for name in _OWNED:  # only what we write: --out may be a folder holding other things
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def make_dataset(out: str | os.PathLike, config: SynthConfig = SynthConfig(),
                 overwrite: bool = False, progress: bool = False) -> Path:
    """Write a synthetic FaceForensics++-style dataset into ``out``.

    ``out`` may be missing or empty, or hold a previous (maybe interrupted) run with the same
    settings, whose finished videos are kept. Anything else is refused unless ``overwrite``,
    which deletes the dataset folders (``original_sequences``, ``manipulated_sequences``,
    ``splits``) and the marker, and nothing else.

    Args:
        out: the dataset root.
        config: what to generate.
        overwrite: replace whatever dataset ``out`` holds.
        progress: show a progress bar.

    Returns:
        ``out`` as a :class:`Path`.

    Raises:
        ForensicsError: bad settings, ``out`` refused, or a ``faces`` folder without faces.
    """
    from tqdm import tqdm

    from forensics.synth.faces import bundled_identities, identities_from_folder

    config.validate()
    out = Path(out)
    clear = _check_output(out, config, overwrite)
    start = time.perf_counter()
    # Identities before touching the folder: a --faces folder without faces deletes nothing.
    if config.faces is not None:
        identities = identities_from_folder(config.faces, config.originals, config.seed)
    else:
        identities = bundled_identities(config.originals, config.seed)
    if clear:
        _clear_output(out)
    out.mkdir(parents=True, exist_ok=True)
    # The marker goes first (so an interrupted run is recognised and resumed) and is marked
    # complete last.
    atomic_write_text(out / MARKER, json.dumps(_marker(config, complete=False), indent=2) + "\n")

    ids = video_ids(config.originals)
    partner = {}
    for pairs in split_pairs(config.originals).values():
        for a, b in pairs:
            partner[a], partner[b] = b, a
    written = 0
    for i in tqdm(range(config.originals), desc="synth", unit="video", disable=not progress):
        written += _write_target(out, config, identities, ids, i, ids.index(partner[ids[i]]))
    for name, pairs in split_pairs(config.originals).items():
        atomic_write_text(out / "splits" / f"{name}.json", json.dumps(pairs) + "\n")
    atomic_write_text(out / MARKER, json.dumps(_marker(config, complete=True), indent=2) + "\n")
    log.info("synth: %d videos written (%d already there) in %s in %.1f s", written,
             _num_outputs(config) - written, out, time.perf_counter() - start)
    return out


def _scene(config: SynthConfig, target: Identity, a: int):
    """The scene of original ``a`` (and of every fake drawn on it)."""
    import numpy as np

    from forensics.synth.render import plan_scene

    return plan_scene(target, config.width, config.height, config.num_frames, config.fps,
                      np.random.default_rng([config.seed, 0x5CE, a]))


def face_landmarks(config: SynthConfig) -> dict[str, np.ndarray]:
    """Where each original's eyes, nose tip and mouth corners are drawn: video id ->
    ``(T, 5, 2)`` frame pixels, MTCNN's landmark order
    (:data:`forensics.synth.faces.FACE_LANDMARKS`). Its fakes share the geometry: they are
    drawn on the same scene. Bundled identities only (a ``faces`` folder's photos are not
    aligned to those points).
    """
    from forensics.synth.faces import FACE_LANDMARKS, bundled_identities

    if config.faces is not None:
        raise ForensicsError("face_landmarks: only the bundled identities have known landmarks")
    identities = bundled_identities(config.originals, config.seed)
    return {vid: _scene(config, identities[a], a).face_points(FACE_LANDMARKS)
            for a, vid in enumerate(video_ids(config.originals))}


def _num_outputs(config: SynthConfig) -> int:
    per_target = len(config.compressions) * (1 + len(config.methods)) + len(config.methods)
    return config.originals * per_target


def _write_target(out: Path, config: SynthConfig, identities: list[Identity], ids: list[str],
                  a: int, b: int) -> int:
    """Render original ``a`` and its fakes; write whichever of their files are missing.

    Returns:
        The number of files written.
    """
    import numpy as np

    from forensics.synth.methods import manipulate
    from forensics.synth.render import Layer, render_frames
    from forensics.media.video import COMPRESSIONS, VideoWriter

    target = identities[a]
    # One layer per video drawn from this scene: the original, then a fake per method. Each
    # layer lists the files it feeds: (path, crf) for frames, (path, None) for its mask.
    layers: list[Layer] = [Layer(target.rgb)]
    outputs = [[(original_path(out, c, ids[a]), COMPRESSIONS[c]) for c in config.compressions]]
    for method in config.methods:
        s = int(fake_source(method, ids[a], ids[b]))  # ids are zero-padded indices
        files = [(fake_path(out, method, c, ids[a], ids[s]), COMPRESSIONS[c])
                 for c in config.compressions]
        files.append((mask_path(out, method, ids[a], ids[s]), None))
        # The method's index in METHODS, not in config.methods: a fake's pixels must not
        # depend on which other methods were asked for.
        rng = np.random.default_rng([config.seed, 0x3E7, a, s, METHODS.index(method)])
        fake = manipulate(method, target, identities[s], rng)
        layers.append(Layer(fake.rgb, fake.mask, fake.rerender))
        outputs.append(files)
    missing = [[(p, crf) for p, crf in files if not p.exists()] for files in outputs]
    if not any(missing):
        return 0
    scene = _scene(config, target, a)
    keep = [k for k, files in enumerate(missing) if files]
    with contextlib.ExitStack() as stack:
        writers = [[(stack.enter_context(VideoWriter(
            p, config.fps, 0 if crf is None else crf, threads=_ENCODER_THREADS,
            pix_fmt="yuv420p" if crf is None else None)),  # masks: lossless, binary stays binary
            crf is None) for p, crf in missing[k]] for k in keep]
        for frame_layers in render_frames(scene, target.alpha, [layers[k] for k in keep]):
            for (frame, mask), layer_writers in zip(frame_layers, writers):
                for writer, is_mask in layer_writers:
                    writer.write(mask if is_mask else frame)
    return sum(len(m) for m in missing)
