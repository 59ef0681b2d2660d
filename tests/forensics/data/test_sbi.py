"""Self-blended images: twins of the reals, deterministic pairs, masks on the face, bad input."""

import logging

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from forensics.data import sbi
from forensics.data.datasets import CropDataset, load_frames, read_crop
from forensics.data.manifest import LANDMARK_COLUMNS, landmarks_of, read_manifest, write_manifest
from forensics.data.transforms import AugmentConfig, build_transform
from forensics.errors import ManifestError

DATA_CFG = {"input_size": [3, 64, 64], "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bilinear"}


def _dataset(manifest, seed=0, transform=None, methods=("original",)):
    frames = sbi.add_pseudo_fakes(load_frames(manifest, "train", methods=list(methods)), "sbi", str(manifest), 224)
    targets = frames["label"].to_numpy(dtype=np.float32)
    return CropDataset(frames, targets, transform, frames_per_video=2, resample=True, seed=seed)


def test_every_real_gets_a_twin_drawing_the_same_frames(crop_manifest):
    dataset = _dataset(crop_manifest)
    meta = dataset.meta
    reals, twins = meta[meta.method == "original"], meta[meta.method == sbi.SBI_METHOD]
    assert len(twins) == len(reals) > 0 and (twins.label == 1).all()
    for epoch in (0, 1):  # a real and its twin draw the same frames, redrawn every epoch
        dataset.set_epoch(epoch)
        source = dataset.frames[sbi.SOURCE].to_numpy()[dataset.rows]
        served = set(dataset.rows[source < 0].tolist())
        assert set(source[source >= 0].tolist()) == served


def test_pairs_are_deterministic_for_a_seed_and_change_with_epoch_and_seed(crop_manifest):
    transform = build_transform(DATA_CFG, AugmentConfig(), 224)
    a, b = _dataset(crop_manifest, transform=transform), _dataset(crop_manifest, transform=transform)
    twin = int(np.flatnonzero(a.meta.method == sbi.SBI_METHOD)[0])
    first, again = a[twin], b[twin]
    assert first["target"] == 1 and first["mask"].shape == (1, 64, 64) and first["mask"].dtype == torch.uint8
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["mask"], again["mask"])
    row = int(a.rows[twin])
    image = read_crop(a.frames["file"].iat[row]).permute(1, 2, 0).numpy()
    fake0, mask0 = a.blend(row, image, twin)
    a.set_epoch(1)
    fake1, _ = a.blend(row, image, twin)
    fake_seed, _ = _dataset(crop_manifest, seed=1).blend(row, image, twin)
    assert not np.array_equal(fake0, fake1) and not np.array_equal(fake0, fake_seed)
    outside = mask0 == 0
    assert np.array_equal(fake0[outside], image[outside]) or not np.array_equal(fake0, image)
    real = int(np.flatnonzero(a.meta.method == "original")[0])
    assert a[real]["target"] == 0 and int(a[real]["mask"].max()) == 0  # reals: empty mask
    batch = next(iter(DataLoader(a, batch_size=8, shuffle=False)))  # default collation copes
    assert batch["mask"].shape == (8, 1, 64, 64)


def test_mask_lies_inside_the_crop_and_covers_the_landmarks(crop_manifest):
    frames = load_frames(crop_manifest, "train", methods=["original"])
    points = landmarks_of(frames)
    for i in range(0, len(frames), max(1, len(frames) // 24)):
        image = read_crop(frames["file"].iat[i]).permute(1, 2, 0).numpy()
        for seed in range(3):
            fake, mask = sbi.self_blend(image, points[i], np.random.default_rng([i, seed]))
            assert fake.shape == image.shape and fake.dtype == np.uint8 and mask.shape == image.shape[:2]
            border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
            assert border.max() == 0, "the mask reaches the crop's edge"
            xs, ys = np.round(points[i]).astype(int).T
            assert (mask[ys, xs] > 0).all(), f"row {i}: a landmark is outside the mask"
            # Outside the mask the fake is its target: the crop itself or its altered copy.
            assert (mask > 0).mean() < 0.6


def _detail(image: np.ndarray, where: np.ndarray) -> float:
    """Mean high-frequency energy (grey level minus its 1-pixel Gaussian blur) over ``where``."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 1.0))[where].mean())


def test_lowres_recipe_pastes_a_blurred_face_and_leaves_the_rest(crop_manifest):
    """data.pseudo_fakes=sbi_lowres: the surroundings are the real crop itself, the face inside
    the mask has lost detail (the trace of a face generated small and upscaled into the frame)."""
    frames = sbi.add_pseudo_fakes(load_frames(crop_manifest, "train", methods=["original"]), "sbi_lowres",
                                  str(crop_manifest), 224)
    dataset = CropDataset(frames, frames["label"].to_numpy(dtype=np.float32), frames_per_video=2, resample=True)
    assert dataset._blender.recipe == sbi.RECIPES["sbi_lowres"] != sbi.RECIPES["sbi"]
    twins = np.flatnonzero(dataset.meta.method == sbi.SBI_METHOD)
    lost = []
    for index in twins[:: max(1, len(twins) // 24)]:
        row = int(dataset.rows[index])
        image = read_crop(frames["file"].iat[row]).permute(1, 2, 0).numpy()
        fake, mask = dataset.blend(row, image, int(index))
        assert np.array_equal(fake[mask == 0], image[mask == 0])
        if mask.max() == 255:  # a full blend (BLEND_RATIOS): the core of the face is all source
            lost.append(_detail(fake, mask == 255) / _detail(image, mask == 255))
    # Every full blend has lost detail (sharpening, the paper's other alteration, would add it).
    assert len(lost) >= 4 and max(lost) < 0.9 and np.median(lost) < 0.75, lost


def test_manifest_without_landmarks_is_one_line(crop_manifest, tmp_path):
    df = read_manifest(crop_manifest).drop(columns=LANDMARK_COLUMNS)
    df["path"] = [str(crop_manifest.parent / p) for p in df["path"]]
    write_manifest(df, tmp_path / "manifest.csv")
    frames = load_frames(tmp_path / "manifest.csv", "train")
    with pytest.raises(ManifestError, match="manifest.csv: data.pseudo_fakes=sbi needs facial landmarks .*"
                                            "re-run forensics preprocess"):
        sbi.add_pseudo_fakes(frames, "sbi", str(tmp_path / "manifest.csv"), 224)


def test_nan_or_outside_landmarks_skip_the_frame_with_a_count(crop_manifest, caplog):
    frames = load_frames(crop_manifest, "train")
    reals = np.flatnonzero((frames["method"] == "original").to_numpy())
    frames.loc[reals[0], "lm2_x"] = np.nan
    frames.loc[reals[1], "lm0_y"] = 500.0  # below a 224 crop
    frames.loc[reals[2], "lm4_x"] = -3.0
    with caplog.at_level(logging.WARNING, logger="forensics.data.sbi"):
        out = sbi.add_pseudo_fakes(frames, "sbi", "m.csv", 224)
    assert f"3 of {len(reals)} real crops have no usable landmarks" in caplog.text
    twins = out[out[sbi.SOURCE] >= 0]
    assert len(twins) == len(reals) - 3 and not set(reals[:3]) & set(twins[sbi.SOURCE])
    assert (out.iloc[twins[sbi.SOURCE]]["method"] == "original").all()  # fakes never get twins
    dataset = CropDataset(out, out["label"].to_numpy(dtype=np.float32), frames_per_video=None)
    assert len(dataset) == len(out) and dataset[len(frames)]["mask"].shape == (1, 224, 224)


def test_pair_grid_is_written(crop_manifest, tmp_path):
    dataset = _dataset(crop_manifest)
    pairs = sbi.sample_pairs(dataset, 3)
    sbi.save_pair_grid(pairs, tmp_path / "pairs.png")
    from forensics.media.crops import read_image

    grid = read_image(tmp_path / "pairs.png")
    assert grid.shape == (3 * 224, 3 * 224, 3)
    assert not np.array_equal(grid[:224, :224], grid[:224, 224:448])  # real vs fake differ


def _table(videos: int = 6, frames: int = 5):
    """Frame rows as load_frames gives them (no files are read by the draw or the sampler)."""
    import pandas as pd

    rows = [dict(path=f"{v}/{f}.png", dataset="d", video=f"{v:03d}", frame=f, label=int(m != "original"), method=m,
                 compression="c23", split="train", original="", x0=0.0, y0=0.0, x1=1.0, y1=1.0, score=1.0,
                 **{c: 50.0 + i for i, c in enumerate(LANDMARK_COLUMNS)})
            for m in ("original", "FaceSwap") for v in range(videos) for f in range(frames)]
    df = pd.DataFrame(rows)
    df["video_key"] = df["dataset"] + "/" + df["method"] + "/" + df["compression"] + "/" + df["video"]
    df["file"] = df["path"]
    return df


def test_a_real_and_its_twin_share_a_batch_and_a_rank():
    from forensics.data.datasets import TrainSampler

    frames = sbi.add_pseudo_fakes(_table(), "sbi", "m.csv", 224)
    dataset = CropDataset(frames, frames["label"].to_numpy(np.float32), frames_per_video=3, resample=True)
    source = frames[sbi.SOURCE].to_numpy()
    per_rank = []
    for rank in (0, 1):
        sampler = TrainSampler(dataset, num_replicas=2, rank=rank, seed=4)
        sampler.set_epoch(2)
        indices = list(sampler)
        again = TrainSampler(dataset, num_replicas=2, rank=rank, seed=4)
        again.set_epoch(2)
        assert indices == list(again) and len(indices) == len(sampler)  # the same on every run
        rows = dataset.rows[indices]
        for i, row in enumerate(rows):
            if source[row] >= 0:  # every twin comes right after its real, in the same rank
                assert i > 0 and rows[i - 1] == source[row]
        per_rank.append(set(indices))
    assert not per_rank[0] & per_rank[1] and len(per_rank[0] | per_rank[1]) >= len(dataset) - 1
    assert len(dataset) == 6 * 3 * 3  # 3 frames of each real, fake and twin video
