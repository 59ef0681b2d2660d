"""Crops packed into tar shards serve the same samples as the PNG files: same bytes, same
labels, same frames drawn per epoch (also mid-epoch after a resume); a truncated shard is
named with the sample it lacks; crop formats are never mixed in one manifest or folder."""

from __future__ import annotations

import json
import os
import tarfile

import numpy as np
import pytest
import torch

from forensics.cli import main as cli
from forensics.data.datasets import CropDataset, TrainSampler, crop_size_on_disk, load_frames
from forensics.data.manifest import read_manifest, write_manifest
from forensics.data.shards import CorruptShardError, pack_crops, sample_key
from forensics.errors import ManifestError


@pytest.fixture(scope="module")
def packed(crop_manifest, tmp_path_factory):
    """The session crops packed into shards of at most 1 MiB (several shards)."""
    return pack_crops(crop_manifest, tmp_path_factory.mktemp("packed"), shard_mb=1.0)


def test_shards_hold_the_same_bytes_labels_and_webdataset_layout(crop_manifest, packed):
    png, tar = read_manifest(crop_manifest), read_manifest(packed)
    assert len(png) == len(tar) and tar["shard"].nunique() > 1
    merged = png.merge(tar, on="path", suffixes=("", "_tar"))
    assert len(merged) == len(png)
    for column in ("label", "method", "video", "frame", "split"):
        assert (merged[column] == merged[f"{column}_tar"]).all(), column
    for row in tar.itertuples():
        with open(packed.parent / row.shard, "rb") as f:
            f.seek(int(row.offset))
            assert f.read(int(row.size)) == (crop_manifest.parent / row.path).read_bytes(), row.path
    # WebDataset's layout: KEY.png then KEY.json, the json being the manifest row.
    with tarfile.open(packed.parent / tar["shard"].iat[0]) as shard:
        names = shard.getnames()
        assert names[:2] == [f"{tar['key'].iat[0]}.png", f"{tar['key'].iat[0]}.json"]
        meta = json.loads(shard.extractfile(names[1]).read())
    assert meta["path"] == tar["path"].iat[0] and meta["label"] == int(tar["label"].iat[0])


def test_packing_twice_gives_the_same_bytes(crop_manifest, packed, tmp_path):
    again = pack_crops(crop_manifest, tmp_path, shard_mb=1.0)
    assert again.read_bytes() == packed.read_bytes()
    first = sorted((packed.parent / "shards").iterdir())[0]
    assert (tmp_path / "shards" / first.name).read_bytes() == first.read_bytes()


def test_sample_key_keeps_webdataset_keys_apart():
    assert sample_key("crops/a.b/v/0001.png") == "crops/a.b/v/0001"
    assert sample_key("crops/v/0001.x.png") == "crops/v/0001_x"


def test_same_frames_drawn_per_epoch_and_on_resume(crop_manifest, packed):
    datasets = {}
    for name, manifest in (("png", crop_manifest), ("tar", packed)):
        frames = load_frames(manifest, "train")
        datasets[name] = CropDataset(frames, frames["label"].to_numpy(), None, frames_per_video=3,
                                     resample=True, seed=7)
    png, tar = datasets["png"], datasets["tar"]
    assert crop_size_on_disk(png.frames) == crop_size_on_disk(tar.frames) == 224
    for epoch in (0, 1):
        drawn = {}
        for name, ds in datasets.items():
            ds.set_epoch(epoch)
            sampler = TrainSampler(ds, num_replicas=2, rank=1, seed=7)
            sampler.set_epoch(epoch)
            drawn[name] = list(sampler)
            resumed = TrainSampler(ds, num_replicas=2, rank=1, seed=7)
            resumed.set_epoch(epoch, start=5)
            assert list(resumed) == drawn[name][5:]
        assert drawn["png"] == drawn["tar"]
        assert png.meta[["path", "frame", "label"]].equals(tar.meta[["path", "frame", "label"]])
        for index in drawn["png"][:6]:
            a, b = png[index], tar[index]
            assert torch.equal(a["image"], b["image"]) and a["target"] == b["target"] and a["index"] == b["index"]


def _truncate_last_shard(packed, tmp_path):
    """A copy of the packed manifest whose last shard is cut in the middle of its last crop."""
    tar = read_manifest(packed)
    last = tar["shard"].iat[-1]
    cut = int(tar["offset"].iat[-1]) + int(tar["size"].iat[-1]) // 2
    for shard in tar["shard"].unique():
        (tmp_path / shard).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(packed.parent / shard, tmp_path / shard) if shard != last else \
            (tmp_path / shard).write_bytes((packed.parent / shard).read_bytes()[:cut])
    write_manifest(tar, tmp_path / "manifest.csv")
    victims = tar[tar["shard"] == last]
    return tmp_path / "manifest.csv", tmp_path / last, victims["key"].iat[-1], victims


def test_truncated_shard_names_path_and_key_then_stops_or_skips(packed, tmp_path, caplog):
    manifest, shard, key, victims = _truncate_last_shard(packed, tmp_path)
    with pytest.raises(CorruptShardError, match=f"{shard}: truncated tar: sample {key} is missing"):
        load_frames(manifest, None)
    frames = load_frames(manifest, None, on_corrupt="skip")
    assert len(frames) == len(read_manifest(packed)) - 1 and key not in set(frames["key"])
    assert f"sample {key} is missing" in caplog.text
    # Unchecked (data.check_files=false), the read itself names them.
    frames = load_frames(manifest, None, check_files=False)
    dataset = CropDataset(frames, frames["label"].to_numpy())
    with pytest.raises(CorruptShardError, match=f"{shard}: truncated tar: sample {key} is missing"):
        dataset[len(dataset) - 1]
    assert dataset[len(dataset) - 2]["image"].shape == (3, 224, 224)


def test_corrupt_bytes_are_named(packed, tmp_path):
    tar = read_manifest(packed)
    tar.loc[0, "offset"] = str(int(tar.loc[0, "offset"]) - 512)  # the tar header, not a PNG
    write_manifest(tar, tmp_path / "manifest.csv")
    os.symlink(packed.parent / "shards", tmp_path / "shards")
    frames = load_frames(tmp_path / "manifest.csv", None)
    with pytest.raises(CorruptShardError, match=f"corrupt sample {frames['key'].iat[0]}: not a decodable image"):
        CropDataset(frames, frames["label"].to_numpy())[0]


def test_mixed_formats_are_refused_in_one_line(crop_manifest, packed, tmp_path, capsys):
    tar = read_manifest(packed)
    tar.loc[3, "shard"] = ""
    write_manifest(tar, tmp_path / "manifest.csv")
    with pytest.raises(ManifestError, match="mixed crop formats: .* rows in tar shards and 1 as files"):
        load_frames(tmp_path / "manifest.csv", None)
    # Packing into a folder of PNG crops, or packing packed crops, is refused too.
    assert cli(["pack", str(crop_manifest.parent), str(crop_manifest.parent)]) == 2
    assert cli(["pack", str(packed.parent), str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "pack into a folder other than" in err[0] and "already packed" in err[1]


def test_pack_command_default_output(crop_manifest, tmp_path, capsys):
    df = read_manifest(crop_manifest).iloc[:10]
    df["path"] = [str(crop_manifest.parent / p) for p in df["path"]]
    (tmp_path / "mine").mkdir()
    write_manifest(df, tmp_path / "mine" / "manifest.csv")
    assert cli(["pack", str(tmp_path / "mine")]) == 0
    out = read_manifest(tmp_path / "mine-shards" / "manifest.csv")
    assert len(out) == 10 and (out["shard"] == "shards/crops-000000.tar").all()
    frames = load_frames(tmp_path / "mine-shards" / "manifest.csv", None)
    assert np.array_equal(CropDataset(frames, frames["label"].to_numpy())[0]["image"].numpy(),
                          CropDataset(load_frames(tmp_path / "mine" / "manifest.csv", None), np.zeros(10))[0]["image"].numpy())


@pytest.mark.slow
def test_two_process_ddp_draws_the_same_samples_from_shards_and_files(crop_manifest, packed, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    script = Path(__file__).with_name("shard_draws.py")
    out = tmp_path / "draws.json"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(out), str(crop_manifest), str(packed)], cwd=root, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    png, tar = json.loads(out.read_text())
    assert png == tar
    ranks = png
    assert len(ranks) == 2 and all(ranks)
    for epoch in (0, 1):  # the ranks share the epoch's crops without overlap
        a, b = ({r[1] for r in rank if r[0] == epoch} for rank in ranks)
        assert a and b and not a & b


@pytest.mark.slow
def test_train_from_shards_with_batch_augmentation(packed, tmp_path):
    """End to end: ``forensics train`` reads the packed manifest and augments on the batch."""
    from tests.forensics.commands.test_train import train

    assert train(packed, tmp_path / "run", "train.epochs=1", "data.augment.device=gpu",
                 "data.augment.jpeg_p=1.0") == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["test"]["video"]["n"] == 12
