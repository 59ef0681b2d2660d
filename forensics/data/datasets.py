"""Datasets over the crop manifest, and the training sampler.

* :func:`load_frames` reads a manifest, keeps one split and the chosen datasets, methods
  and compressions, and stops with one line when nothing is left or a crop file is missing.
* :class:`CropDataset` serves ``{"image": uint8 C x H x W, "target": ..., "index": i}``.
  For training it draws K frames per video *each epoch* (:meth:`CropDataset.set_epoch`), so
  over many epochs a model sees all of a video's frames while every video weighs the same
  in an epoch; the draw is seeded by ``(seed, epoch)``, so every rank and every resumed run
  draws the same frames. For evaluation it takes K evenly spaced frames (or all). Rows that
  :func:`forensics.data.sbi.add_pseudo_fakes` added become self-blended images of their real
  crop, seeded like the augmentations, and every sample then carries a ``mask``.
* :class:`TrainSampler` is PyTorch's ``DistributedSampler`` (one process is simply rank 0
  of 1) that can also draw class-balanced samples and start mid-epoch after a resume.

Class balance: FaceForensics++ has 4 fakes per real. Two remedies are offered
(``data.balance``): ``loss_weight`` (the default) weights the loss by inverse class
frequency, and ``sampler`` draws classes equally often, with replacement. We default to the
loss weight because every crop is then seen exactly once per epoch: no real frame is
repeated four times (which over-fits the few reals) and no fake is skipped, the epoch has
the same content on every rank, and it needs nothing special under DistributedSampler.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, DistributedSampler

from forensics.errors import ForensicsError, ManifestError
from forensics.data import sbi
from forensics.data.manifest import (default_methods_mask, filter_manifest, read_manifest, subject_mask,
                                     video_key)
from forensics.data.shards import check_shards, decode_sample, is_packed, read_sample

log = logging.getLogger(__name__)

BALANCE = ("loss_weight", "sampler", "none")


def load_frames(manifest: str | os.PathLike, split: str | None, *, datasets: Sequence[str] | None = None,
                methods: Sequence[str] | None = None, compressions: Sequence[str] | None = None,
                check_files: bool = True, all_faces: bool = False, on_corrupt: str = "stop") -> pd.DataFrame:
    """The manifest rows of one split, filtered, with a ``video_key`` column and absolute ``file`` paths.

    ``methods=None`` keeps every method but the opt-in ones (FaceShifter of ``ffpp``:
    :data:`~forensics.data.manifest.OPT_IN_METHODS`); faces other than a video's subject
    (``--all-faces`` crops) are left out unless ``all_faces`` (see
    :func:`~forensics.data.manifest.subject_mask`). Each default logs what it left out.

    For a manifest packed into tar shards (:mod:`forensics.data.shards`), ``file`` is the
    shard and ``offset``/``size`` locate the crop in it; ``check_files`` then checks that
    every shard holds its samples' bytes, and ``on_corrupt`` says whether a truncated shard
    stops the run or loses its missing samples.

    Raises:
        ManifestError: unreadable manifest, nothing left after filtering, a missing crop file,
            crop formats mixed in one manifest, a truncated shard (``on_corrupt='stop'``).
    """
    df = read_manifest(manifest)
    packed = is_packed(df, str(manifest))
    frames = filter_manifest(df, splits=None if split is None else [split], datasets=datasets,
                             methods=methods, compressions=compressions)
    frames = _default_selection(frames, methods is None, all_faces, str(manifest))
    if frames.empty:
        chosen = {"split": split, "datasets": datasets, "methods": methods, "compressions": compressions}
        what = ", ".join(f"{k}={v}" for k, v in chosen.items() if v is not None)
        raise ManifestError(f"{manifest}: no crops left ({len(df)} rows before filtering; kept {what or 'all'})")
    frames = frames.sort_values(["dataset", "method", "compression", "video", "frame"], kind="stable")
    frames = frames.reset_index(drop=True)
    frames["video_key"] = video_key(frames)
    root = Path(df.attrs["root"])
    if packed:
        frames["file"] = [str(root / p) for p in frames["shard"]]
        frames["offset"] = frames["offset"].astype("int64")
        frames["size"] = frames["size"].astype("int64")
        return check_shards(frames, str(manifest), on_corrupt) if check_files else frames
    frames["file"] = [str(root / p) for p in frames["path"]]
    if check_files:
        for row, file in enumerate(frames["file"]):
            if not os.path.isfile(file):
                raise ManifestError(f"{manifest}: crop file not found: {file} "
                                    f"(video {frames['video_key'].iloc[row]}, frame {frames['frame'].iloc[row]})")
    return frames


def _default_selection(frames: pd.DataFrame, default_methods: bool, all_faces: bool, source: str) -> pd.DataFrame:
    """Drop opt-in methods (when no method list was given) and non-subject faces, saying so once each."""
    if default_methods:
        keep = default_methods_mask(frames)
        if not keep.all():
            dropped = sorted(set(frames.loc[~keep, "method"]))
            log.info("%s: left out %d crops of %s: no default selection uses them; name them in the methods "
                     "to use them", source, int((~keep).sum()), ", ".join(dropped))
            frames = frames[keep]
    legacy = (frames["dataset"] == "ffpp") & frames["video"].str.contains("__", regex=False)
    if legacy.any():  # DeepFakeDetection's names: a manifest from before dataset dfd existed
        log.warning("%s: %d ffpp crops are DeepFakeDetection videos (ids like %s): this manifest predates "
                    "dataset dfd; remake it (forensics preprocess --layout ffpp / --layout dfd)", source,
                    int(legacy.sum()), frames.loc[legacy, "video"].iloc[0])
    if not all_faces:
        keep = subject_mask(frames)
        if not keep.all():
            log.info("%s: left out %d crops of faces other than each video's subject (--all-faces crops)",
                     source, int((~keep).sum()))
            frames = frames[keep]
    return frames


def read_crop(file: str) -> torch.Tensor:
    """A crop as a uint8 RGB ``3 x H x W`` tensor."""
    image = cv2.imread(file, cv2.IMREAD_COLOR)
    if image is None:
        raise ManifestError(f"crop file not found or unreadable: {file}")
    return torch.from_numpy(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)


def _seed(*values: int) -> int:
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(1, np.uint64)[0] >> 1)


class CropDataset(Dataset):
    """Face crops of one split.

    Args:
        frames: rows from :func:`load_frames`.
        targets: one target per row (from the task's ``encode``).
        transform: uint8 image -> uint8 image (``forensics.data.transforms.build_transform``).
        frames_per_video: K frames per video; ``None`` keeps every frame.
        resample: draw K random frames per video again each epoch (training) instead of K
            evenly spaced ones once (evaluation).
        seed: seeds the frame draw and the augmentations.
        emit_seed: put each sample's augmentation seed in it as ``seed``, for augmentations
            applied later to the batch (:mod:`forensics.data.batch_augment`).
    """

    def __init__(self, frames: pd.DataFrame, targets: np.ndarray, transform: Callable | None = None,
                 frames_per_video: int | None = None, resample: bool = False, seed: int = 0,
                 emit_seed: bool = False) -> None:
        self.frames = frames
        self.targets = targets
        self.transform = transform
        self.frames_per_video = frames_per_video
        self.resample = resample and frames_per_video is not None
        self.seed = seed
        self.emit_seed = emit_seed
        self.epoch = 0
        self._video_ids = pd.factorize(frames["video_key"])[0]
        self.packed = "offset" in frames.columns and "key" in frames.columns
        self._blender = sbi.SelfBlender(frames) if sbi.SOURCE in frames.columns else None
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Choose this epoch's frames (the same on every rank: seeded by ``(seed, epoch)``)."""
        self.epoch = epoch
        k = self.frames_per_video
        if k is None:
            rows = np.arange(len(self.frames))
        elif self.resample:
            noise = sbi.share_draw(self.frames, np.random.default_rng([self.seed, epoch]).random(len(self.frames)))
            order = np.lexsort((noise, self._video_ids))  # by video, random within each video
            ids = self._video_ids[order]
            first = np.r_[0, np.flatnonzero(np.diff(ids)) + 1]
            rank = np.arange(len(ids)) - np.repeat(first, np.diff(np.r_[first, len(ids)]))
            rows = np.sort(order[rank < k])
        else:
            positions = filter_manifest(self.frames.assign(_row=np.arange(len(self.frames))),
                                        frames_per_video=k)["_row"]
            rows = np.sort(positions.to_numpy())
        # With self-blended twins, each twin follows its real: TrainSampler keeps them together.
        self.rows, self.blocks = sbi.pair_rows(self.frames, rows)

    @property
    def meta(self) -> pd.DataFrame:
        """The rows served this epoch, in dataset-index order (for metrics)."""
        return self.frames.iloc[self.rows].reset_index(drop=True)

    def class_of_rows(self) -> np.ndarray:
        """Real (0) or fake (1) per served row, for class-balanced sampling."""
        return self.frames["label"].to_numpy()[self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, row: int) -> torch.Tensor:
        """The crop of ``row`` (of ``frames``) as uint8 ``3 x H x W``, from its PNG file or shard."""
        file = self.frames["file"].iat[row]
        if not self.packed:
            return read_crop(file)
        key = self.frames["key"].iat[row]
        return decode_sample(read_sample(file, int(self.frames["offset"].iat[row]),
                                         int(self.frames["size"].iat[row]), key), file, key)

    def blend(self, row: int, image: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``row``'s ``H x W x 3`` crop as served at ``index`` this epoch (self-blended for a
        pseudo-fake twin, :mod:`forensics.data.sbi`) and its blend mask."""
        return self._blender(row, image, _seed(self.seed, self.epoch, index, 0x5B1))

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = int(self.rows[index])
        image = self.read(row)
        mask = None
        if self._blender is not None:
            fake, mask = self.blend(row, image.permute(1, 2, 0).numpy(), index)
            image, mask = torch.from_numpy(fake).permute(2, 0, 1), torch.from_numpy(mask)[None]
        if self.transform is not None:
            # Augmentations draw from a generator seeded by (seed, epoch, index), not from the
            # worker's stream: the same crop gets the same augmentation whichever worker or rank
            # loads it, which makes a resumed run identical to an uninterrupted one.
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(_seed(self.seed, self.epoch, index))
                if mask is None:
                    image = self.transform(image)
                else:  # the mask follows the image through flips and resizes (tv_tensors.Mask)
                    image, mask = sbi.transform_pair(self.transform, image, mask)
        sample = {"image": image, "target": torch.as_tensor(self.targets[row]), "index": index}
        if self.emit_seed:
            sample["seed"] = torch.tensor(_seed(self.seed, self.epoch, index), dtype=torch.int64)
        return sample if mask is None else {**sample, "mask": mask}


class TrainSampler(DistributedSampler):
    """``DistributedSampler`` that can also balance classes and skip the batches already done.

    Args:
        dataset: a :class:`CropDataset`.
        num_replicas, rank: from the torchrun environment (1 and 0 for one process).
        seed: the shuffle (or weighted draw) is seeded by ``seed + epoch``, as in PyTorch.
        balanced: draw reals and fakes equally often, with replacement.
    """

    def __init__(self, dataset: CropDataset, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 balanced: bool = False) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.balanced = balanced
        self.start = 0

    def __iter__(self):
        blocks = getattr(self.dataset, "blocks", None)
        if blocks is not None and not self.balanced:  # (real, self-blended twin) pairs share a batch
            indices = sbi.shuffle_blocks(blocks, self.seed + self.epoch, self.rank, self.num_replicas,
                                         self.num_samples)
        elif not self.balanced:
            indices = list(super().__iter__())
        else:
            classes = self.dataset.class_of_rows()
            weights = 1.0 / np.bincount(classes)[classes]  # each class weighs the same in all
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            drawn = torch.multinomial(torch.as_tensor(weights), self.total_size, replacement=True, generator=g)
            indices = drawn.tolist()[self.rank:self.total_size:self.num_replicas]
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Epoch ``epoch``, beginning at its ``start``-th sample (non-zero only when resuming)."""
        super().set_epoch(epoch)
        self.num_samples = len(self.dataset) // self.num_replicas + (len(self.dataset) % self.num_replicas > 0)
        self.total_size = self.num_samples * self.num_replicas
        self.start = start


def check_not_empty(dataset: CropDataset, batch_size: int, world_size: int, what: str) -> None:
    """Stop before training when a rank would get no full batch."""
    per_rank = -(-len(dataset) // world_size)
    if per_rank < batch_size:
        raise ForensicsError(f"{what}: {len(dataset)} crops make no full batch of {batch_size} per process "
                             f"({world_size} process(es)); lower data.batch_size")


def crop_size_on_disk(frames) -> int | None:
    """Side of the crops on disk, from the first one (all crops of a manifest share it)."""
    try:
        image = CropDataset(frames.iloc[:1], np.zeros(1)).read(0)
    except ForensicsError:
        return None
    return int(image.shape[1])
