"""Training pairs for the refiner: a manipulated crop and the original crop it should become.

The pairing rule: a fake row pairs with the **real row of its original video at the same
frame index** (same dataset, compression, and face index when the manifest has a ``face``
column), provided both were cropped with the same box. Preprocessing crops a fake with its
original's boxes, frame by frame, so such a pair is pixel-aligned.

Only **self-reenactment** fakes are paired by default: fakes whose source and target are the
same person, so that the original frame is the ground truth of the manipulated one. A fake is
a self-reenactment when its video is named ``a_a`` (FaceForensics++ style: target ``a``, source
``a``) or when its method is listed in ``self_reenactment_methods`` (e.g. the synthetic
dataset's ``SelfBlend``). A cross-identity fake ``a_b`` shows ``a`` with ``b``'s face or
expressions, which no real frame shows; against original ``a`` it is a *non-matching* pair,
which Rössler et al. (FaceForensics, 2018) avoided. Such pairs are used only with
``allow_cross_identity`` and a warning.

A fake's original is its ``original`` column, or, when that is empty, the ``a`` of a video
named ``a_b``. Every fake that yields no pair is counted under the first reason that applies
(:data:`REASONS`); the counts are logged, and when nothing is left they make up the error.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from forensics.errors import ForensicsError
from forensics.data.manifest import REAL_METHOD, video_key

log = logging.getLogger(__name__)

#: Why a fake yields no pair, in the order they are checked, with what to do about it.
REASONS: dict[str, str] = {
    "no_original": "have no original id (empty 'original' column and a video name not of the form a_b)",
    "cross_identity": "are cross-identity fakes a_b, not self-reenactments (set pairs.allow_cross_identity=true "
                      "to use them as non-matching pairs, or list their method in pairs.self_reenactment_methods)",
    "original_missing": "have no real crops of their original video in the manifest (no originals)",
    "compression": "have real crops of their original only at another compression",
    "frame": "have no real crop of their original at the same frame index (frame indices don't match)",
    "box": "were cropped with another box than their original (boxes differ: pixels would not align)",
}
_A_B = re.compile(r"^([^_]+)_([^_]+)$")


@dataclass
class PairingConfig:
    """How fakes are paired with their originals (see the module docstring)."""

    self_reenactment_methods: list[str] = field(default_factory=lambda: ["SelfReenact"])
    allow_cross_identity: bool = False
    box_tolerance: float = 1.0  # pixels: boxes further apart than this don't pair


@dataclass
class PairingReport:
    """What pairing found: ``fakes`` examined, ``pairs`` formed, ``dropped`` per reason."""

    fakes: int
    pairs: int
    cross_identity: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{n} {REASONS[r]} (e.g. {self.examples[r]})" for r, n in self.dropped.items() if n]
        return "; ".join(parts) if parts else "none dropped"


def _row(line: int) -> str:
    return f"manifest row {line}"


def find_pairs(manifest: pd.DataFrame, cfg: PairingConfig, *, split: str | None = None,
               methods: list[str] | None = None, source: str = "manifest") -> tuple[pd.DataFrame, PairingReport]:
    """Pair the fakes of ``split`` (and ``methods``) with their originals' crops.

    Args:
        manifest: a manifest from :func:`forensics.data.manifest.read_manifest` (``attrs['root']`` set).
        cfg: the pairing rule's settings.
        split: the split of the fakes (``None``: all); originals are looked up in every split.
        methods: fake methods to pair (``None``: every fake method).
        source: the manifest's name, for messages.

    Returns:
        ``(pairs, report)``: one row per pair with the fake's manifest columns plus
        ``input_file``/``target_file`` (absolute paths), ``input_line``/``target_line`` (CSV
        line numbers) and ``cross_identity``.

    Raises:
        ForensicsError: no fake to pair, or no pair can be formed (with the counts per reason).
    """
    df = manifest.copy()
    df["_line"] = np.arange(len(df)) + 2  # CSV line numbers (header is line 1)
    fakes, where = _select_fakes(df, split, methods, source)
    merged = _with_originals(fakes, df, cfg)
    reason = _drop_reasons(merged, df[df["method"] == REAL_METHOD], cfg)
    report = PairingReport(fakes=len(merged), pairs=int((reason == "").sum()))
    for name in REASONS:
        hit = np.flatnonzero(reason == name)
        report.dropped[name] = len(hit)
        if len(hit):
            r = merged.iloc[hit[0]]
            report.examples[name] = (f"{_row(int(r['_line']))}: {r['method']}/{r['video']} frame {r['frame']}"
                                     + (f", original '{r['_orig']}'" if r["_orig"] else ""))
    if report.pairs == 0:
        raise ForensicsError(f"{source}: no pairs can be formed from {report.fakes} fake crop(s) in {where}: "
                             f"{report.describe()}")

    kept = merged[reason == ""].copy()
    root = Path(manifest.attrs.get("root", "."))
    kept["input_file"] = [str(root / p) for p in kept["path"]]
    kept["target_file"] = [str(root / p) for p in kept["_rpath"]]
    kept["input_line"] = kept["_line"].astype(int)
    kept["target_line"] = kept["_rline"].astype(int)
    kept["cross_identity"] = ~kept["_self"].astype(bool)
    kept["video_key"] = video_key(kept)
    report.cross_identity = int(kept["cross_identity"].sum())
    pairs = kept.drop(columns=[c for c in kept.columns if c.startswith("_")]).reset_index(drop=True)
    pairs.attrs = dict(manifest.attrs)
    log.info("%s, %s: %d pair(s) from %d fake crop(s); dropped: %s", source, where, report.pairs, report.fakes,
             report.describe())
    if report.cross_identity:
        log.warning("%s, %s: %d cross-identity pair(s) in use (pairs.allow_cross_identity): their target shows "
                    "another face than their input, so it is not ground truth (FaceForensics avoided these)",
                    source, where, report.cross_identity)
    return pairs, report


def _select_fakes(df: pd.DataFrame, split: str | None, methods: list[str] | None,
                  source: str) -> tuple[pd.DataFrame, str]:
    """The fake rows to pair, and a description of where they come from (for messages)."""
    fakes = df[df["label"] == 1]
    if split is not None:
        fakes = fakes[fakes["split"] == split]
    if methods is not None:
        fakes = fakes[fakes["method"].isin(methods)]
    where = f"split '{split}'" if split is not None else "all splits"
    if methods is not None:
        where += f", methods {', '.join(methods)}"
    if fakes.empty:
        present = sorted(set(df.loc[df["label"] == 1, "method"]))
        raise ForensicsError(f"{source}: no fake crops to pair in {where} "
                             f"(fake methods in the manifest: {', '.join(present) or 'none'})")
    return fakes, where


def _keys(df: pd.DataFrame) -> list[str]:
    return ["dataset", "compression", "video", "frame"] + (["face"] if "face" in df.columns else [])


def _with_originals(fakes: pd.DataFrame, df: pd.DataFrame, cfg: PairingConfig) -> pd.DataFrame:
    """Each fake row with its original's name (``_orig``), whether it is a self-reenactment
    (``_self``) and its original's crop at the same frame (``_r*`` columns, NaN if none)."""
    reals, keys = df[df["method"] == REAL_METHOD], _keys(df)
    fakes = fakes.copy()
    parsed = fakes["video"].astype(str).str.extract(_A_B)
    named = fakes["original"].astype(str).str.strip()
    fakes["_orig"] = np.where(named != "", named, parsed[0].fillna(""))
    fakes["_self"] = fakes["method"].isin(cfg.self_reenactment_methods).to_numpy() | (
        (parsed[0] == parsed[1]) & parsed[0].notna()).to_numpy()
    lookup = reals[keys + ["x0", "y0", "x1", "y1", "path", "_line"]].drop_duplicates(keys)
    lookup = lookup.rename(columns={"video": "_orig", "x0": "_rx0", "y0": "_ry0", "x1": "_rx1", "y1": "_ry1",
                                    "path": "_rpath", "_line": "_rline"})
    return fakes.merge(lookup, on=[k if k != "video" else "_orig" for k in keys], how="left")


def _drop_reasons(merged: pd.DataFrame, reals: pd.DataFrame, cfg: PairingConfig) -> np.ndarray:
    """Per fake row, the first reason it can't be paired (a key of :data:`REASONS`), or ``""``."""
    real_videos = set(zip(reals["dataset"], reals["video"]))
    real_at_comp = set(zip(reals["dataset"], reals["compression"], reals["video"]))
    has_video = np.array([(d, v) in real_videos for d, v in zip(merged["dataset"], merged["_orig"])], dtype=bool)
    has_comp = np.array([(d, c, v) in real_at_comp
                         for d, c, v in zip(merged["dataset"], merged["compression"], merged["_orig"])], dtype=bool)
    has_frame = merged["_rline"].notna().to_numpy()
    box_gap = np.abs(merged[["x0", "y0", "x1", "y1"]].to_numpy(float)
                     - merged[["_rx0", "_ry0", "_rx1", "_ry1"]].to_numpy(float)).max(axis=1)
    conditions = {
        "no_original": merged["_orig"].to_numpy() == "",
        "cross_identity": ~merged["_self"].to_numpy() & (not cfg.allow_cross_identity),
        "original_missing": ~has_video,
        "compression": ~has_comp,
        "frame": ~has_frame,
        "box": ~(box_gap <= cfg.box_tolerance),  # NaN gap (no real row) counts as differing
    }
    reason = np.full(len(merged), "", dtype=object)
    for name, bad in conditions.items():
        reason[(reason == "") & bad] = name
    return reason


def image_size(path: str) -> tuple[int, int] | None:
    """``(width, height)`` of an image file from its header, or ``None`` if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError):
        return None


def check_sizes(pairs: pd.DataFrame, source: str = "manifest") -> int:
    """Stop when a pair's two crops differ in size (naming the rows), or a crop can't be read.

    Returns:
        The side of the crops when they are all square and of one size, else 0.
    """
    sizes: dict[str, tuple[int, int] | None] = {}
    for file in pd.unique(pd.concat([pairs["input_file"], pairs["target_file"]])):
        sizes[file] = image_size(file)
    unreadable = [f for f, s in sizes.items() if s is None]
    if unreadable:
        raise ForensicsError(f"{source}: crop file missing or unreadable: {unreadable[0]}"
                             + (f" ({len(unreadable)} in all)" if len(unreadable) > 1 else ""))
    a = [sizes[f] for f in pairs["input_file"]]
    b = [sizes[f] for f in pairs["target_file"]]
    bad = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    if bad:
        r = pairs.iloc[bad[0]]
        (w1, h1), (w2, h2) = a[bad[0]], b[bad[0]]
        raise ForensicsError(
            f"{source}: the crops of a pair differ in size: {_row(int(r['input_line']))} ({r['method']}/{r['video']} "
            f"frame {r['frame']}, {w1}x{h1}) vs {_row(int(r['target_line']))} (its original, {w2}x{h2})"
            + (f"; {len(bad)} pairs in all" if len(bad) > 1 else "")
            + ": crop fakes and originals with the same settings")
    distinct = set(a)
    if len(distinct) == 1:
        w, h = distinct.pop()
        return w if w == h else 0
    return 0
