"""The crop manifest: round trip, validation errors naming the row, filters."""

import numpy as np
import pandas as pd
import pytest

from forensics.errors import ManifestError
from forensics.data.manifest import (COLUMNS, absolute_paths, filter_manifest, read_manifest,
                                video_key, write_manifest)


def make_rows(videos=("000", "001"), frames=10, method="original"):
    rows = []
    for v in videos:
        for f in range(frames):
            rows.append(dict(path=f"crops/{method}/{v}/{f:04d}.png", dataset="ffpp", video=v, frame=f,
                             label=int(method != "original"), method=method, compression="c23",
                             split="train" if v.startswith("000") else "test",
                             original="" if method == "original" else v.split("_")[0],
                             x0=10.0, y0=20.0, x1=110.5, y1=140.0, score=0.99))
    return rows


@pytest.fixture
def manifest(tmp_path):
    df = pd.DataFrame(make_rows() + make_rows(("000_001", "001_000"), method="FaceSwap"))
    df["score"] = df["score"].astype(float)
    df.loc[0, "score"] = np.nan  # a box from the dataset has no detector score
    path = tmp_path / "manifest.csv"
    write_manifest(df, path)
    return path, df


def test_round_trip_keeps_types_and_values(manifest):
    path, df = manifest
    back = read_manifest(path)
    assert list(back.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert back["video"].tolist() == df["video"].tolist()  # "000" stays a string
    assert back["frame"].dtype == np.int64 and back["label"].dtype == np.int64
    pd.testing.assert_frame_equal(back[list(COLUMNS)], df[list(COLUMNS)], check_dtype=False)
    assert np.isnan(back.loc[0, "score"])
    assert absolute_paths(back)[0] == str(path.parent.resolve() / df.loc[0, "path"])


def test_extra_columns_are_kept(tmp_path):
    df = pd.DataFrame(make_rows())
    df["mask"] = "masks/x.png"
    write_manifest(df, tmp_path / "m.csv")
    assert read_manifest(tmp_path / "m.csv")["mask"].iloc[0] == "masks/x.png"


def corrupt(path, column, row, value):
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[row, column] = value
    df.to_csv(path, index=False)


@pytest.mark.parametrize("column, value, message", [
    ("label", "2", "label must be 0"),
    ("split", "training", "split must be one of"),
    ("frame", "x", "column 'frame' must be an integer"),
    ("frame", "1.5", "column 'frame' must be an integer"),
    ("x0", "", "column 'x0' must be a number"),
    ("method", "FaceSwap", "disagrees with method"),
])
def test_bad_value_names_row(manifest, column, value, message):
    path, _ = manifest
    corrupt(path, column, 4, value)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    text = str(info.value)
    assert message in text and "row 6" in text and str(path) in text and "\n" not in text


def test_missing_column_and_missing_file(manifest, tmp_path):
    path, df = manifest
    df.drop(columns=["split"]).to_csv(path, index=False)
    with pytest.raises(ManifestError, match="missing column.*split"):
        read_manifest(path)
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")


def test_check_files_names_missing_crop(manifest):
    path, df = manifest
    with pytest.raises(ManifestError, match=r"row 2: crop file not found: .*crops/original/000/0000\.png"):
        read_manifest(path, check_files=True)
    for rel in df["path"]:
        (path.parent / rel).parent.mkdir(parents=True, exist_ok=True)
        (path.parent / rel).write_bytes(b"")
    assert len(read_manifest(path, check_files=True)) == len(df)


def test_write_refuses_invalid_and_keeps_old_file(manifest):
    path, df = manifest
    before = path.read_bytes()
    bad = df.copy()
    bad.loc[3, "label"] = 7
    with pytest.raises(ManifestError, match="row 5"):
        write_manifest(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["manifest.csv"]  # no temp file left


def test_filters(manifest):
    df = read_manifest(manifest[0])
    assert set(filter_manifest(df, splits=["test"])["video"]) == {"001", "001_000"}
    assert set(filter_manifest(df, methods=["FaceSwap"])["label"]) == {1}
    assert len(filter_manifest(df, datasets=["celebdf"])) == 0
    few = filter_manifest(df, frames_per_video=4)
    assert few.groupby(video_key(few)).size().tolist() == [4] * 4
    assert sorted(few[few["video"] == "000"]["frame"]) == [0, 3, 6, 9]  # evenly spaced
    assert few.attrs["root"] == df.attrs["root"]
    assert len(filter_manifest(df, frames_per_video=50)) == len(df)

