"""The dataset over the manifest: filters, K frames per video per epoch, labels, balance, bad input."""

import pytest
import torch

from forensics.data.datasets import CropDataset, TrainSampler, load_frames
from forensics.errors import ManifestError
from forensics.data.manifest import read_manifest, write_manifest
from forensics.training.tasks import create_task, default_classes
from forensics.data.transforms import AugmentConfig, batch_preparer, build_transform

DATA_CFG = {"input_size": [3, 64, 64], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear"}


def test_filters(crop_manifest):
    frames = load_frames(crop_manifest, "train", methods=["original", "FaceSwap"])
    assert set(frames["method"]) == {"original", "FaceSwap"} and set(frames["split"]) == {"train"}
    assert frames["video_key"].str.startswith("ffpp/").all()
    assert frames["file"].map(lambda f: f.endswith(".png")).all()


def test_empty_and_filtered_to_empty_manifest(crop_manifest, tmp_path):
    with pytest.raises(ManifestError, match="no crops left .*methods=\\['Deepfakes'\\]"):
        load_frames(crop_manifest, "train", methods=["Deepfakes"])
    empty = tmp_path / "empty.csv"
    df = read_manifest(crop_manifest)
    write_manifest(df.iloc[:0], empty)
    with pytest.raises(ManifestError, match="no crops left \\(0 rows"):
        load_frames(empty, "train")


def test_missing_crop_file_is_named(crop_manifest, tmp_path):
    df = read_manifest(crop_manifest)
    df["path"] = [str(crop_manifest.parent / p) for p in df["path"]]
    df.loc[5, "path"] = str(tmp_path / "gone" / "0003.png")
    write_manifest(df, tmp_path / "manifest.csv")
    with pytest.raises(ManifestError, match="crop file not found: .*gone/0003.png"):
        load_frames(tmp_path / "manifest.csv", None)


def test_k_frames_per_clip_redrawn_each_epoch(crop_manifest):
    frames = load_frames(crop_manifest, "train")
    dataset = CropDataset(frames, frames["label"].to_numpy(), None, frames_per_video=3, resample=True, seed=1)
    videos = frames["video_key"].nunique()
    assert len(dataset) == 3 * videos
    picks = []
    for epoch in range(3):
        dataset.set_epoch(epoch)
        per_video = dataset.meta.groupby("video_key").size()
        assert (per_video == 3).all() and len(per_video) == videos
        picks.append(tuple(dataset.rows))
    assert len(set(picks)) == 3  # a new draw every epoch
    again = CropDataset(frames, frames["label"].to_numpy(), None, frames_per_video=3, resample=True, seed=1)
    again.set_epoch(2)
    assert tuple(again.rows) == picks[2]  # same seed and epoch: same frames (every rank agrees)


def test_evaluation_frames_are_evenly_spaced_and_fixed(crop_manifest):
    frames = load_frames(crop_manifest, "val")
    dataset = CropDataset(frames, frames["label"].to_numpy(), None, frames_per_video=2)
    first = dataset.meta.groupby("video_key")["frame"].apply(list)
    assert first.map(lambda f: f == [0, 7]).all()
    dataset.set_epoch(5)
    assert dataset.meta.groupby("video_key")["frame"].apply(list).equals(first)


def test_items_and_labels(crop_manifest):
    frames = load_frames(crop_manifest, "train")
    classes = default_classes("multiclass", frames["method"])
    assert classes == ["original", "FaceSwap", "SelfBlend"]
    for kind, shape in (("binary", ()), ("multiclass", ()), ("multilabel", (2,))):
        task = create_task(kind, default_classes(kind, frames["method"]))
        targets = task.encode(frames)
        dataset = CropDataset(frames, targets, build_transform(DATA_CFG, AugmentConfig(), 224), 8, resample=True)
        item = dataset[0]
        assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 64, 64)
        assert tuple(item["target"].shape) == shape
    multilabel = create_task("multilabel", ["FaceSwap", "SelfBlend"]).encode(frames)
    assert (multilabel[frames["method"].to_numpy() == "original"] == 0).all()
    assert (multilabel[frames["method"].to_numpy() == "SelfBlend"] == [0, 1]).all()


def test_augmentation_is_seeded_by_sample(crop_manifest):
    frames = load_frames(crop_manifest, "train")
    aug = AugmentConfig(hflip_p=0.5, jpeg_p=1.0, noise_p=1.0, cutout_p=1.0, color_p=1.0)
    dataset = CropDataset(frames, frames["label"].to_numpy(), build_transform(DATA_CFG, aug, 224), 8, resample=True)
    torch.manual_seed(123)
    a = dataset[3]["image"]
    torch.manual_seed(456)  # the global stream doesn't matter
    assert torch.equal(a, dataset[3]["image"])
    dataset.set_epoch(1)
    assert not torch.equal(a, dataset[3]["image"])


def test_normalisation_on_device_uses_model_stats():
    prepare = batch_preparer(DATA_CFG, "cpu")
    batch = prepare({"image": torch.full((2, 3, 4, 4), 255, dtype=torch.uint8), "index": torch.arange(2)})
    assert torch.allclose(batch["image"], torch.full((2, 3, 4, 4), 2.0))


def test_inputs_of_another_size_are_resized_with_one_notice(caplog):
    with caplog.at_level("INFO"):
        transform = build_transform(DATA_CFG, None, crop_size=224)
    assert transform(torch.zeros(3, 224, 224, dtype=torch.uint8)).shape == (3, 64, 64)
    notices = [r for r in caplog.records if "resizing" in r.getMessage()]
    assert len(notices) == 1 and "224x224" in notices[0].getMessage()


def test_balanced_sampler(crop_manifest):
    frames = load_frames(crop_manifest, "train")
    dataset = CropDataset(frames, frames["label"].to_numpy(), None)
    assert frames["label"].mean() == pytest.approx(2 / 3)  # two fakes per real
    sampler = TrainSampler(dataset, seed=0, balanced=True)
    sampler.set_epoch(0)
    drawn = frames["label"].to_numpy()[list(sampler)]
    assert abs(drawn.mean() - 0.5) < 0.1
    # Two ranks split one draw; resuming at sample 10 skips exactly the first 10.
    ranks = [TrainSampler(dataset, 2, r, seed=0) for r in range(2)]
    for s in ranks:
        s.set_epoch(3)
    shards = [list(s) for s in ranks]
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) == len(dataset) // 2
    ranks[0].set_epoch(3, start=10)
    assert list(ranks[0]) == shards[0][10:] and len(ranks[0]) == len(shards[0]) - 10


def test_grayscale_96_model_gets_one_channel_inputs():
    gray = {"input_size": [1, 96, 96], "mean": [0.449], "std": [0.226], "interpolation": "bilinear"}
    image = build_transform(gray, AugmentConfig(), crop_size=224)(torch.zeros(3, 224, 224, dtype=torch.uint8))
    assert image.shape == (1, 96, 96) and image.dtype == torch.uint8
    assert batch_preparer(gray, "cpu")({"image": image[None]})["image"].shape == (1, 1, 96, 96)
