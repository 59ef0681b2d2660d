"""Keypoint data for training: splits, the crop-manifest format, and the dataset it serves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forensics.errors import ForensicsError
from keypoints.config import KeypointConfig
from keypoints.data import load_keypoint_data, random_splits, read_keypoint_file
from tests.keypoints.conftest import kaggle_frame, write_kaggle

SPLITS = {"train": "train", "val": "val", "test": "test"}
DATA_CFG = {"input_size": [1, 96, 96], "interpolation": "bilinear", "mean": [0.5], "std": [0.5]}


def test_split_column_is_used_when_there(keypoint_csv):
    data = load_keypoint_data(keypoint_csv, KeypointConfig(), SPLITS)
    assert set(data.tables) == {"train", "val", "test"}
    assert {t.meta["split"].unique()[0] for t in data.tables.values()} == {"train", "val", "test"}
    assert sum(len(t) for t in data.tables.values()) == 400 and data.stats["val"]["kept"] == len(data.tables["val"])
    assert set(load_keypoint_data(keypoint_csv, KeypointConfig(), {"train": "train", "val": None}).tables) == {"train"}


def test_a_file_without_split_column_is_split_at_random_from_its_own_seed(tmp_path):
    path = write_kaggle(tmp_path / "training.csv", kaggle_frame(rows=40))
    cfg = KeypointConfig(val_fraction=0.2, test_fraction=0.1)
    data = load_keypoint_data(path, cfg, SPLITS)
    assert [len(data.tables[s]) for s in ("train", "val", "test")] == [28, 8, 4]
    rows = {s: set(data.tables[s].meta["row"]) for s in data.tables}
    assert not (rows["train"] & rows["val"]) and not (rows["val"] & rows["test"])
    again = load_keypoint_data(path, cfg, SPLITS)
    assert set(again.tables["test"].meta["row"]) == rows["test"]  # the same rows every run
    other = load_keypoint_data(path, KeypointConfig(val_fraction=0.2, test_fraction=0.1, split_seed=1), SPLITS)
    assert set(other.tables["test"].meta["row"]) != rows["test"]
    assert (random_splits(10, 0.0, 0.1, 0) == "val").sum() == 0
    with pytest.raises(ForensicsError, match="no rows in split 'val'"):
        load_keypoint_data(path, KeypointConfig(val_fraction=0.0), SPLITS)


def test_missing_keypoints_masked_or_dropped_and_counted(tmp_path):
    df = kaggle_frame(rows=10)
    df.loc[[0, 1, 2], "mouth_center_bottom_lip_x"] = np.nan
    df.loc[[0, 1, 2], "mouth_center_bottom_lip_y"] = np.nan
    df["split"] = "train"
    path = write_kaggle(tmp_path / "t.csv", df)
    masked = load_keypoint_data(path, KeypointConfig(), {"train": "train"})
    assert len(masked.tables["train"]) == 10 and masked.stats["train"]["rows_with_missing"] == 3
    dropped = load_keypoint_data(path, KeypointConfig(missing="drop"), {"train": "train"})
    assert len(dropped.tables["train"]) == 7 and dropped.stats["train"]["dropped"] == 3
    sample = masked.dataset("train", DATA_CFG)[0]
    assert sample["target"].shape == (30,) and sample["target"][-2:].isnan().all()
    assert sample["image"].shape == (1, 96, 96)


def _crop_manifest(root, keypoints: dict[str, list]):
    """Two 192x192 RGB crops with a manifest holding keypoint columns (pixels of the crops)."""
    from forensics.media.crops import write_png
    from forensics.data.manifest import write_manifest

    rows = []
    for i in range(2):
        image = np.zeros((192, 192, 3), np.uint8)
        image[100, 40 + i] = 255
        (root / "crops").mkdir(exist_ok=True)
        write_png(root / "crops" / f"{i}.png", image)
        rows.append(dict(path=f"crops/{i}.png", dataset="ffpp", video=f"00{i}", frame=0, label=0, method="original",
                         compression="c23", split="train", original="", x0=0.0, y0=0.0, x1=10.0, y1=10.0, score=0.99))
    df = pd.DataFrame(rows)
    for column, values in keypoints.items():
        df[column] = values
    write_manifest(df, root / "manifest.csv")
    return root / "manifest.csv"


def test_crop_manifest_with_keypoint_columns(tmp_path):
    path = _crop_manifest(tmp_path, {"nose_tip_x": [40.0, 41.0], "nose_tip_y": [100.0, 100.0]})
    table = read_keypoint_file(path)
    assert table.names == ["nose_tip"] and table.image_size == (192, 192) and table.files[0].endswith("0.png")
    data = load_keypoint_data(path, KeypointConfig(), {"train": "train"})
    sample = data.dataset("train", DATA_CFG)[1]
    assert sample["image"].shape == (1, 96, 96)  # grayscale at the model's input
    assert sample["target"].tolist() == [20.5, 50.0]  # pixels of the 96x96 input


@pytest.mark.parametrize("keypoints,expected", [
    ({"nose_tip_x": [40.0, "n/a"], "nose_tip_y": [100.0, 100.0]}, "row 3, column 'nose_tip_x': 'n/a' is not a number"),
    ({"nose_tip_x": [40.0, 41.0]}, "column 'nose_tip_y' is missing"),
])
def test_crop_manifest_errors_name_row_and_column(tmp_path, keypoints, expected):
    path = _crop_manifest(tmp_path, keypoints)
    with pytest.raises(ForensicsError, match=expected):
        read_keypoint_file(path)


def test_neither_format_is_refused(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ForensicsError, match="neither a Kaggle keypoint CSV"):
        read_keypoint_file(tmp_path / "x.csv")
