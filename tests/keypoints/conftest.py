"""Keypoint fixtures: a generated 5-keypoint set (made once per session) and a tiny Kaggle CSV writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keypoints.table import KAGGLE_KEYPOINTS, keypoint_columns

#: The generated set: 400 faces of 20 people (14 train, 3 val, 3 test): a few seconds to make.
GENERATED = dict(count=400, identities=20, size=96, seed=0)


@pytest.fixture(scope="session")
def keypoint_csv(tmp_path_factory) -> Path:
    """``keypoints.csv`` rendered from the synthetic faces, with MTCNN's 5 landmarks as labels."""
    import torch

    from keypoints.synth import make_keypoint_dataset

    torch.set_num_threads(1)
    return make_keypoint_dataset(tmp_path_factory.mktemp("keypoints"), **GENERATED)


def kaggle_frame(rows: int = 4, seed: int = 0, names=KAGGLE_KEYPOINTS, side: int = 96) -> pd.DataFrame:
    """A Kaggle-format table built by hand: the 30 coordinate columns, then ``Image``."""
    rng = np.random.default_rng(seed)
    data = {column: np.round(rng.uniform(10, side - 10, rows), 4) for column in keypoint_columns(names)}
    df = pd.DataFrame(data)
    df["Image"] = [" ".join(map(str, rng.integers(0, 256, side * side))) for _ in range(rows)]
    return df


def write_kaggle(path: Path, df: pd.DataFrame) -> Path:
    df.to_csv(path, index=False)
    return path
