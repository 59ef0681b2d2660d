"""``forensics refiner apply``: refine the fakes of one method and add them as a new method.

Every chosen fake crop (label 1, ``--method``, ``--splits``) goes through a trained refiner;
the results are written as a new manipulation method, ``<method>-refined`` by default, with
one manifest row per refined crop: the same dataset, video, frame, split, compression,
original, box and mask as the crop it came from, label 1 (fake). The output manifest holds
every row of the input manifest plus the new rows, so ``forensics train`` and
``forensics evaluate`` use refined forgeries like any other method (select them with
``data.methods``).

Layout, beside the output manifest (default ``<manifest folder>/manifest_<name>.csv``)::

    refined/<name>/refiner.json                               which checkpoint made them
    refined/<name>/<dataset>/<compression>/<video>/<crop>.png the refined crops

Crops are refined at the network's input size. A crop of another size keeps its own pixels
plus the refiner's *correction* resized to it (``crop + up(refined - down(crop))``): the
colour and shading the refiner fixes live at low frequencies, while resizing the refined image
itself would blur every crop larger than the network, a trace of its own for a detector. Each
video's crops are written into a temporary folder renamed into place, so an interrupted run
leaves only complete videos, and running the command again refines only the missing ones
(with the same checkpoint; ``--overwrite`` starts over).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from forensics.errors import ForensicsError

log = logging.getLogger(__name__)

MARKER = "refiner.json"


def _checkpoint_id(path: Path) -> dict:
    stat = path.stat()
    return {"checkpoint": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _relative(paths: Sequence[str], root: Path, out_root: Path) -> list[str]:
    if root.resolve() == out_root.resolve():
        return list(paths)
    return [p if not p else os.path.relpath(root / p, out_root) for p in paths]


def _at_size(crop, refined, low):
    """The refined ``C x S x S`` float image at ``crop``'s size (uint8), see the module docstring."""
    import torch
    import torch.nn.functional as F

    if refined.shape[-2:] == crop.shape[-2:]:
        return refined.round().clamp(0, 255).to(torch.uint8)
    correction = F.interpolate((refined - low)[None], size=tuple(crop.shape[-2:]), mode="bilinear",
                               align_corners=False)[0]
    return (crop.float() + correction).round().clamp(0, 255).to(torch.uint8)


class LoadedRefiner:
    """A fine-tuned refiner checkpoint, ready to refine uint8 crops of any size.

    Args:
        checkpoint: ``checkpoints/best.pt`` of ``forensics refiner finetune``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ForensicsError: not a refiner checkpoint, or weights that don't fit.
    """

    def __init__(self, checkpoint: str | os.PathLike, device: str = "auto") -> None:
        import torch

        from forensics.training.checkpoint import load_checkpoint
        from forensics.training.session import resolve_device
        from refiner.model import build_from_info, load_refiner_weights
        from refiner.task import ReconstructionTask

        checkpoint = Path(checkpoint)
        state = load_checkpoint(checkpoint)
        info = state.get("model_info") or {}
        if info.get("name") != "refiner":
            raise ForensicsError(f"{checkpoint}: not a refiner checkpoint (model {info.get('name')!r})")
        if info.get("skips") is None:
            log.warning("%s is a stage-1 autoencoder (no skips): its output is a reconstruction, not a refinement",
                        checkpoint)
        self.model = build_from_info(info)
        load_refiner_weights(self.model, state, str(checkpoint))
        self.device = resolve_device(device, 0) if device in ("auto", "cpu", "cuda") else torch.device(device)
        self.model.to(self.device).eval()
        data_cfg = info["data_config"]
        self.task = ReconstructionTask(data_cfg["mean"], data_cfg["std"])
        self.side = int(data_cfg["input_size"][-1])
        self.mean = torch.tensor(data_cfg["mean"], device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(data_cfg["std"], device=self.device).view(1, -1, 1, 1)

    def refine(self, crops: list) -> list:
        """Refine uint8 ``C x H x W`` crops (one forward pass); uint8 crops of the same sizes."""
        import torch

        from refiner.data import resize

        with torch.no_grad():
            small = torch.stack([resize(c, self.side) for c in crops]).to(self.device).float()
            outputs = self.task.to_unit(self.model((small / 255 - self.mean) / self.std).float()).clamp(0, 1) * 255
        return [_at_size(crop, image, low) for crop, image, low in zip(crops, outputs.cpu(), small.cpu())]


def _choose_fakes(df: pd.DataFrame, manifest: Path, method: str, name: str,
                  splits: Sequence[str] | None) -> pd.DataFrame:
    """The manifest rows to refine: fakes of ``method`` (in ``splits``); refuses a used ``name``."""
    if name in set(df["method"]):
        raise ForensicsError(f"{manifest}: method '{name}' is already in the manifest: choose another --name")
    chosen = df[(df["label"] == 1) & (df["method"] == method)]
    if splits:
        chosen = chosen[chosen["split"].isin(splits)]
    if chosen.empty:
        fakes = df[df["label"] == 1]
        raise ForensicsError(f"{manifest}: no fake crops of method '{method}'"
                             + (f" in split(s) {', '.join(splits)}" if splits else "")
                             + f" (fake methods: {', '.join(sorted(set(fakes['method']))) or 'none'}; "
                               f"splits: {', '.join(sorted(set(df['split'])))})")
    return chosen


def _claim_folder(base: Path, checkpoint: Path, overwrite: bool) -> None:
    """Make ``base`` the refined crops' folder of ``checkpoint``: resume its own, refuse another's."""
    from forensics.atomic import atomic_write_text

    marker = _checkpoint_id(checkpoint)
    if base.exists():
        if overwrite:
            shutil.rmtree(base)
        else:
            try:
                previous = json.loads((base / MARKER).read_text())
            except (OSError, json.JSONDecodeError):
                previous = None
            if previous != marker:
                raise ForensicsError(f"{base} holds crops refined by another checkpoint "
                                     f"({(previous or {}).get('checkpoint', 'unknown')}): pass --overwrite "
                                     "to replace them, or choose another --name")
    base.mkdir(parents=True, exist_ok=True)
    atomic_write_text(base / MARKER, json.dumps(marker, indent=2) + "\n")


def _refine_videos(refiner: LoadedRefiner, chosen: pd.DataFrame, root: Path, batch_size: int) -> tuple[int, int]:
    """Refine the crops of each video folder (``_folder``) not complete yet; (refined, already done)."""
    from forensics.atomic import atomic_dir
    from forensics.data.datasets import read_crop
    from forensics.media.crops import write_png

    done = refined = 0
    for folder, rows in chosen.groupby("_folder", sort=False):
        folder = Path(folder)
        if folder.is_dir() and all(Path(f).is_file() for f in rows["_file"]):
            done += 1
            continue
        with atomic_dir(folder) as tmp:
            paths = [root / p for p in rows["path"]]
            for i in range(0, len(paths), batch_size):
                crops = [read_crop(str(p)) for p in paths[i:i + batch_size]]
                for image, path in zip(refiner.refine(crops), paths[i:i + batch_size]):
                    write_png(tmp / path.name, image.permute(1, 2, 0).numpy())
        refined += 1
    return refined, done


def _extended_manifest(df: pd.DataFrame, chosen: pd.DataFrame, name: str, root: Path, out_root: Path) -> pd.DataFrame:
    """The manifest plus the refined rows (method ``name``), paths relative to ``out_root``."""
    rows = chosen.drop(columns=["_folder", "_file"]).assign(
        method=name, label=1, path=[os.path.relpath(f, out_root) for f in chosen["_file"]])
    if "mask" in rows.columns:
        rows["mask"] = _relative(rows["mask"].astype(str).tolist(), root, out_root)
    kept = df.copy()
    kept["path"] = _relative(kept["path"].tolist(), root, out_root)
    if "mask" in kept.columns:
        kept["mask"] = _relative(kept["mask"].astype(str).tolist(), root, out_root)
    return pd.concat([kept, rows], ignore_index=True)


def apply_refiner(checkpoint: str | os.PathLike, manifest: str | os.PathLike, method: str, *, name: str | None = None,
                  splits: Sequence[str] | None = None, out: str | os.PathLike | None = None, batch_size: int = 32,
                  device: str = "auto", overwrite: bool = False) -> Path:
    """Refine the ``method`` fakes of ``manifest``; write their crops and the extended manifest.

    Returns:
        The path of the written manifest.

    Raises:
        ForensicsError: not a refiner checkpoint, no such fakes, the new name already used,
            refined crops of another checkpoint in the way (without ``overwrite``).
    """
    from forensics.data.manifest import read_manifest, write_manifest

    checkpoint, manifest = Path(checkpoint), Path(manifest)
    refiner = LoadedRefiner(checkpoint, device)
    df = read_manifest(manifest)
    root = Path(df.attrs["root"])
    name = name or f"{method}-refined"
    chosen = _choose_fakes(df, manifest, method, name, splits).copy()
    out = Path(out) if out is not None else manifest.parent / f"manifest_{name}.csv"
    base = out.parent / "refined" / name
    _claim_folder(base, checkpoint, overwrite)

    folders = [base / d / c / v for d, c, v in zip(chosen["dataset"], chosen["compression"], chosen["video"])]
    chosen["_folder"] = [str(f) for f in folders]
    chosen["_file"] = [str(f / Path(p).name) for f, p in zip(folders, chosen["path"])]
    if chosen["_file"].duplicated().any():
        dup = chosen.loc[chosen["_file"].duplicated(), "path"].iloc[0]
        raise ForensicsError(f"{manifest}: two crops of one video share the file name of {dup}")
    refined, done = _refine_videos(refiner, chosen, root, batch_size)
    log.info("%s: refined %d video(s) of %s into %s (%d already done)", checkpoint.name, refined, method, base, done)
    combined = _extended_manifest(df, chosen, name, root, out.parent)
    write_manifest(combined, out)
    log.info("wrote %s: %d rows, %d of them '%s'", out, len(combined), len(combined) - len(df), name)
    return out
