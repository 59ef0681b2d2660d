"""What the refiner trains on: (input, target) crop pairs served as uint8 tensors.

* Stage 1 (pretrain) reconstructs real crops: input and target are the same crop, read once
  (:func:`load_reals`).
* Stage 2 (fine-tune) maps a self-reenactment fake to its original's crop at the same frame
  (:func:`load_pairs`, the rule in :mod:`refiner.pairs`).

:class:`PairDataset` serves ``{"image": input, "target": target, "index": i}``, both resized
to the network's input size when the crops on disk differ from it. The only augmentation is a
horizontal flip applied to both crops alike: anything else (JPEG, blur, colour) would change
what the refiner is asked to undo. The flip is drawn from ``(seed, epoch, index)``, so a
resumed run sees the same flips as one that never stopped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from forensics.data.datasets import load_frames, read_crop
from forensics.errors import ForensicsError
from forensics.data.manifest import REAL_METHOD, read_manifest
from refiner.pairs import PairingConfig, check_sizes, find_pairs


def load_reals(manifest: str | os.PathLike, split: str | None, *, datasets: Sequence[str] | None = None,
               compressions: Sequence[str] | None = None, check_files: bool = True) -> pd.DataFrame:
    """The real crops of ``split`` as pairs of a crop with itself."""
    frames = load_frames(manifest, split, datasets=datasets, methods=[REAL_METHOD], compressions=compressions,
                         check_files=check_files)
    return frames.assign(input_file=frames["file"], target_file=frames["file"])


def load_pairs(manifest: str | os.PathLike, split: str | None, cfg: PairingConfig, *,
               methods: Sequence[str] | None = None, datasets: Sequence[str] | None = None,
               compressions: Sequence[str] | None = None, check_files: bool = True) -> pd.DataFrame:
    """The (fake, original) pairs of ``split``; crops of a pair must have the same size."""
    df = read_manifest(manifest)
    root = df.attrs["root"]
    if datasets is not None:
        df = df[df["dataset"].isin(datasets)]
    if compressions is not None:
        df = df[df["compression"].isin(compressions)]
    df.attrs["root"] = root
    pairs, _ = find_pairs(df, cfg, split=split, methods=None if methods is None else list(methods),
                          source=str(manifest))
    if check_files:
        check_sizes(pairs, str(manifest))
    return pairs


def _seed(*values: int) -> int:
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(1, np.uint64)[0] >> 1)


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """A uint8 ``C x H x W`` image resized to ``size x size`` (antialiased bilinear)."""
    if image.shape[-2:] == (size, size):
        return image
    out = F.interpolate(image[None].float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out[0].round().clamp(0, 255).to(torch.uint8)


class PairDataset(Dataset):
    """Input/target crop pairs.

    Args:
        pairs: rows with ``input_file`` and ``target_file`` (and the manifest columns, kept as ``meta``).
        size: the network's input side.
        hflip_p: probability of flipping both crops horizontally (training only).
        seed: seeds the flips.
    """

    def __init__(self, pairs: pd.DataFrame, size: int, hflip_p: float = 0.0, seed: int = 0) -> None:
        if pairs.empty:
            raise ForensicsError("no crop pairs to serve")
        self.pairs = pairs.reset_index(drop=True)
        self.size = size
        self.hflip_p = hflip_p
        self.seed = seed
        self.epoch = 0
        self._inputs = self.pairs["input_file"].tolist()
        self._targets = self.pairs["target_file"].tolist()

    @property
    def meta(self) -> pd.DataFrame:
        """One row per sample, in index order (for metrics)."""
        return self.pairs

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        source = read_crop(self._inputs[index])
        same = self._targets[index] == self._inputs[index]
        target = source if same else read_crop(self._targets[index])
        if source.shape != target.shape:
            raise ForensicsError(f"crops of another size in one pair: {self._inputs[index]} {tuple(source.shape)} "
                                 f"vs {self._targets[index]} {tuple(target.shape)}")
        source = resize(source, self.size)
        target = source if same else resize(target, self.size)
        if self.hflip_p > 0:
            rng = np.random.default_rng(_seed(self.seed, self.epoch, index))
            if rng.random() < self.hflip_p:
                source = source.flip(-1)
                target = source if same else target.flip(-1)
        return {"image": source, "target": target, "index": index}
