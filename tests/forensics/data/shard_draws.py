"""Run under torchrun (gloo): each rank loads two epochs of a manifest's training crops
through ``CropDataset`` + ``TrainSampler`` + a ``DataLoader`` worker, the second epoch resumed
mid-way, and rank 0 writes every rank's (epoch, index, row path, target, image digest) as JSON.

Usage: ``torchrun --nproc_per_node=2 tests/forensics/data/shard_draws.py OUT.json MANIFEST...``
(one JSON list per manifest, in order: one launch serves both formats).
"""

from __future__ import annotations

import hashlib
import json
import sys

import torch.distributed as dist
from torch.utils.data import DataLoader

from forensics.data.datasets import CropDataset, TrainSampler, load_frames
from forensics.distributed import cleanup_distributed, init_distributed


def draws(manifest: str, rank: int, world: int) -> list:
    frames = load_frames(manifest, "train")
    dataset = CropDataset(frames, frames["label"].to_numpy(), None, frames_per_video=2, resample=True, seed=3)
    sampler = TrainSampler(dataset, world, rank, seed=3)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=1)
    seen = []
    for epoch, start in ((0, 0), (1, 8)):  # epoch 1 resumes after its first 8 samples
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch, start)
        for batch in loader:
            for i, image, target in zip(batch["index"].tolist(), batch["image"], batch["target"].tolist()):
                seen.append([epoch, i, dataset.meta["path"].iat[i], target,
                             hashlib.sha1(image.numpy().tobytes()).hexdigest()])
    return seen


def main(out: str, manifests: list[str]) -> None:
    env = init_distributed("cpu")
    runs = []
    for manifest in manifests:
        gathered = [None] * env.world_size
        dist.all_gather_object(gathered, draws(manifest, env.rank, env.world_size))
        runs.append(gathered)
    if env.rank == 0:
        with open(out, "w") as f:
            json.dump(runs, f)
    cleanup_distributed()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
