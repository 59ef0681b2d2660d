"""The Kaggle CSV reader and writer: round trip, a file written by hand, and every bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forensics.errors import ForensicsError
from keypoints.kaggle import read_kaggle_csv, write_kaggle_csv
from keypoints.table import KAGGLE_KEYPOINTS, keypoint_columns
from tests.keypoints.conftest import kaggle_frame, write_kaggle


def test_reads_a_kaggle_file_written_by_hand(tmp_path):
    df = kaggle_frame(rows=3)
    df.loc[1, "mouth_center_bottom_lip_x"] = np.nan  # Kaggle leaves unlabelled keypoints empty
    df.loc[1, "mouth_center_bottom_lip_y"] = np.nan
    table = read_kaggle_csv(write_kaggle(tmp_path / "training.csv", df))
    assert table.names == list(KAGGLE_KEYPOINTS) and len(keypoint_columns(table.names)) == 30
    assert table.images.shape == (3, 96, 96) and table.images.dtype == np.uint8 and table.image_size == (96, 96)
    np.testing.assert_array_equal(table.images[2].ravel(), np.array(df["Image"][2].split(), dtype=np.uint8))
    assert table.points[0, 0].tolist() == pytest.approx([df["left_eye_center_x"][0], df["left_eye_center_y"][0]])
    assert np.isnan(table.points[1, -1]).all() and not np.isnan(table.points[1, :-1]).any()
    assert table.meta["row"].tolist() == [2, 3, 4]  # lines of the file


def test_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 96, 96), dtype=np.uint8)
    points = rng.uniform(0, 96, (5, 15, 2)).astype(np.float32)
    points[3, 4] = np.nan
    extra = pd.DataFrame({"split": ["train", "train", "val", "test", "train"]})
    path = write_kaggle_csv(tmp_path / "out.csv", images, points, KAGGLE_KEYPOINTS, extra=extra)
    assert list(pd.read_csv(path, nrows=0).columns) == keypoint_columns(KAGGLE_KEYPOINTS) + ["split", "Image"]
    table = read_kaggle_csv(path)
    np.testing.assert_array_equal(table.images, images)
    np.testing.assert_array_equal(table.points, points)  # bit for bit, NaN included
    assert table.names == list(KAGGLE_KEYPOINTS) and table.meta["split"].tolist() == extra["split"].tolist()
    assert read_kaggle_csv(path, names=["nose_tip"]).points.shape == (5, 1, 2)


def _bad(df: pd.DataFrame, case: str) -> pd.DataFrame:
    df = df.copy()
    if case == "pixels":
        df.loc[2, "Image"] = " ".join(df["Image"][2].split()[:-1])
    elif case == "pixel_text":
        values = df["Image"][1].split()
        values[100] = "abc"
        df.loc[1, "Image"] = " ".join(values)
    elif case == "pixel_range":
        df.loc[1, "Image"] = df["Image"][1] + " 300"
        df.loc[1, "Image"] = " ".join(df["Image"][1].split()[1:])
    elif case == "coordinate_text":
        df["nose_tip_y"] = df["nose_tip_y"].astype(object)
        df.loc[3, "nose_tip_y"] = "twelve"
    elif case == "missing_column":
        df = df.drop(columns=["mouth_left_corner_y"])
    elif case == "no_image":
        df = df.drop(columns=["Image"])
    return df


@pytest.mark.parametrize("case,expected", [
    ("pixels", ["row 4", "'Image'", "9215 pixel values, expected 9216 (96x96)"]),
    ("pixel_text", ["row 3", "'Image'", "'abc' is not a number"]),
    ("pixel_range", ["row 3", "'Image'", "300 is not in 0..255"]),
    ("coordinate_text", ["row 5", "'nose_tip_y'", "'twelve' is not a number"]),
    ("missing_column", ["column 'mouth_left_corner_y' is missing"]),
    ("no_image", ["column 'Image' is missing"]),
])
def test_rejects_bad_input_naming_row_and_column(tmp_path, case, expected):
    path = write_kaggle(tmp_path / f"{case}.csv", _bad(kaggle_frame(rows=4), case))
    with pytest.raises(ForensicsError) as error:
        read_kaggle_csv(path)
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    for part in expected:
        assert part in message


def test_rejects_a_requested_keypoint_the_file_lacks_and_a_wrong_image_size(tmp_path):
    path = write_kaggle(tmp_path / "t.csv", kaggle_frame(rows=2))
    with pytest.raises(ForensicsError, match="keypoint column 'left_ear_x' is missing"):
        read_kaggle_csv(path, names=["nose_tip", "left_ear"])
    with pytest.raises(ForensicsError, match="row 2, column 'Image': 9216 pixel values, expected 2304"):
        read_kaggle_csv(path, image_size=48)
    with pytest.raises(ForensicsError, match="not found"):
        read_kaggle_csv(tmp_path / "missing.csv")
