"""Keypoint names, left/right pairs, and the missing/outside policies."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from forensics.errors import ForensicsError
from keypoints.table import (FIVE_KEYPOINTS, KAGGLE_KEYPOINTS, KeypointTable, clean_table,
                                       flip_permutation, names_from_columns)


def test_flip_pairs_left_and_right_anywhere_in_the_name():
    names = list(KAGGLE_KEYPOINTS)
    perm = flip_permutation(names)
    pairs = {names[i]: names[j] for i, j in enumerate(perm)}
    assert pairs["left_eye_center"] == "right_eye_center" and pairs["right_eye_center"] == "left_eye_center"
    assert pairs["left_eyebrow_outer_end"] == "right_eyebrow_outer_end"
    assert pairs["mouth_left_corner"] == "mouth_right_corner"  # 'left' in the middle of the name
    assert pairs["nose_tip"] == "nose_tip" and pairs["mouth_center_top_lip"] == "mouth_center_top_lip"
    assert sorted(perm) == list(range(15)) and (perm[perm] == np.arange(15)).all()  # an involution
    assert flip_permutation(FIVE_KEYPOINTS).tolist() == [1, 0, 2, 4, 3]
    assert flip_permutation(["leftover", "nose"]).tolist() == [0, 1]  # whole words only
    with pytest.raises(ForensicsError, match="'left_ear' has no 'right_ear' partner"):
        flip_permutation(["left_ear", "nose_tip"])


def test_names_from_columns():
    assert names_from_columns(["nose_tip_x", "nose_tip_y", "a_x", "a_y", "Image"], "f.csv") == ["nose_tip", "a"]
    with pytest.raises(ForensicsError, match="f.csv: column 'a_y' is missing"):
        names_from_columns(["nose_tip_x", "nose_tip_y", "a_x"], "f.csv")
    with pytest.raises(ForensicsError, match="no keypoint columns"):
        names_from_columns(["Image"], "f.csv")


def _table() -> KeypointTable:
    points = np.full((4, 2, 2), 50.0, np.float32)
    points[1, 0] = np.nan  # one keypoint missing
    points[2, 1] = (97.0, 10.0)  # outside the 96x96 image
    points[3] = np.nan  # nothing labelled
    return KeypointTable(["a", "b"], points, pd.DataFrame({"row": [2, 3, 4, 5]}), images=np.zeros((4, 96, 96), np.uint8))


def test_missing_keypoints_are_masked_by_default_or_their_rows_dropped():
    kept, stats = clean_table(_table())
    assert kept.meta["row"].tolist() == [2, 3, 4]  # a row without any keypoint is always dropped
    assert stats | {} == {"rows": 4, "missing_keypoints": 3, "rows_with_missing": 2, "outside_keypoints": 1,
                          "rows_with_outside": 1, "dropped": 1, "kept": 3}
    assert np.isnan(kept.points[1, 0]).all()
    dropped, stats = clean_table(_table(), missing="drop")
    assert dropped.meta["row"].tolist() == [2, 4] and stats["dropped"] == 2


def test_keypoints_outside_the_image_are_counted_reported_and_kept_or_dropped(caplog):
    with caplog.at_level(logging.WARNING):
        kept, stats = clean_table(_table(), what="train")
    assert stats["outside_keypoints"] == 1 and 4 in kept.meta["row"].tolist()
    assert "train: 1 keypoint(s) in 1 row(s) lie outside the 96x96 image (rows 4): kept" in caplog.text
    dropped, _ = clean_table(_table(), outside="drop")
    assert dropped.meta["row"].tolist() == [2, 3]
    with pytest.raises(ForensicsError, match="keypoints.outside must be one of keep, drop"):
        clean_table(_table(), outside="clip")
