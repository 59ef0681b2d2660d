"""The pairing rule on a hand-made manifest: what pairs, what is dropped and why, and the errors."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from forensics.media.crops import write_png
from forensics.errors import ForensicsError
from refiner.pairs import PairingConfig, check_sizes, find_pairs

BOX = (10.0, 10.0, 50.0, 50.0)


def row(method: str, video: str, frame: int, original: str = "", box=BOX, compression: str = "c23",
        split: str = "train", **extra) -> dict:
    real = method == "original"
    return {"path": f"crops/{method}/{compression}/{video}/{frame:04d}.png", "dataset": "ffpp", "video": video,
            "frame": frame, "label": 0 if real else 1, "method": method, "compression": compression,
            "split": split, "original": original, "x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3],
            "score": np.nan, **extra}


def manifest(rows: list[dict], root: str = "/data") -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df.attrs["root"] = root
    return df


def reals(video: str, frames=range(3), **kw) -> list[dict]:
    return [row("original", video, f, **kw) for f in frames]


def test_self_reenactments_pair_with_their_original_at_the_same_frame():
    df = manifest(reals("000") + reals("001")
                  + [row("Face2Face", "000_000", f, "000") for f in range(3)]  # FF++ name a_a
                  + [row("SelfReenact", "001_001", f, "001") for f in range(2)])  # marked method
    pairs, report = find_pairs(df, PairingConfig())
    assert report.pairs == 5 and report.fakes == 5 and not any(report.dropped.values())
    f2f = pairs[pairs["method"] == "Face2Face"].sort_values("frame")
    assert list(f2f["input_file"]) == [f"/data/crops/Face2Face/c23/000_000/{f:04d}.png" for f in range(3)]
    assert list(f2f["target_file"]) == [f"/data/crops/original/c23/000/{f:04d}.png" for f in range(3)]
    assert list(f2f["input_line"]) == [8, 9, 10] and list(f2f["target_line"]) == [2, 3, 4]  # CSV lines
    assert not pairs["cross_identity"].any()


def test_a_method_marked_as_self_reenactment_pairs_whatever_its_video_names():
    df = manifest(reals("000") + [row("MyReenact", "clip7", 1, "000")])
    with pytest.raises(ForensicsError, match="cross-identity"):
        find_pairs(df, PairingConfig())
    pairs, _ = find_pairs(df, PairingConfig(self_reenactment_methods=["MyReenact"]))
    assert len(pairs) == 1


def test_cross_identity_fakes_only_with_the_switch_and_a_warning(caplog):
    df = manifest(reals("000") + reals("001") + [row("SelfReenact", "000_000", 0, "000")]
                  + [row("FaceSwap", "000_001", f, "000") for f in range(3)]
                  + [row("FaceSwap", "001_000", f, "") for f in range(3)])  # original from the name
    pairs, report = find_pairs(df, PairingConfig())
    assert report.pairs == 1 and report.dropped["cross_identity"] == 6
    assert "FaceSwap/000_001 frame 0" in report.examples["cross_identity"]
    with caplog.at_level(logging.WARNING, logger="refiner.pairs"):
        pairs, report = find_pairs(df, PairingConfig(allow_cross_identity=True))
    assert report.pairs == 7 and report.cross_identity == 6
    assert int(pairs["cross_identity"].sum()) == 6
    assert set(pairs.loc[pairs["video"] == "001_000", "target_file"].str.split("/").str[-2]) == {"001"}
    assert any("6 cross-identity pair(s)" in r.message for r in caplog.records if r.levelno == logging.WARNING)


def test_drop_reasons_are_counted_and_logged(caplog):
    df = manifest(reals("000", frames=[0, 1, 2]) + reals("002", compression="c40")
                  + [row("SelfReenact", "000_000", 0, "000"),                       # pairs
                     row("SelfReenact", "000_000", 5, "000"),                       # no real at frame 5
                     row("SelfReenact", "000_000", 1, "000", box=(12, 10, 50, 50)),  # box differs by 2 px
                     row("SelfReenact", "000_000", 2, "000", box=(10.5, 10, 50, 50)),  # within tolerance
                     row("SelfReenact", "001_001", 0, "001"),                       # original not in manifest
                     row("SelfReenact", "002_002", 0, "002"),                       # original only at c40
                     row("SelfReenact", "weird", 0, "")])                           # no original id
    with caplog.at_level(logging.INFO, logger="refiner.pairs"):
        pairs, report = find_pairs(df, PairingConfig())
    assert report.pairs == 2 and report.fakes == 7
    assert report.dropped == {"no_original": 1, "cross_identity": 0, "original_missing": 1, "compression": 1,
                              "frame": 1, "box": 1}
    assert "SelfReenact/000_000 frame 5" in report.examples["frame"]
    assert "2 pair(s) from 7 fake crop(s)" in caplog.text and "boxes differ" in caplog.text


def test_no_pairs_error_says_why_with_counts():
    df = manifest(reals("000", frames=[10, 11]) + [row("SelfReenact", "000_000", f, "000") for f in range(3)]
                  + [row("FaceSwap", "000_001", 0, "000")])
    with pytest.raises(ForensicsError) as error:
        find_pairs(df, PairingConfig(), split="train", source="m.csv")
    message = str(error.value)
    assert message.startswith("m.csv: no pairs can be formed from 4 fake crop(s) in split 'train'")
    assert "1 are cross-identity fakes" in message and "3 have no real crop of their original at the same frame" in message
    assert "frame indices don't match" in message and len(message.splitlines()) == 1
    no_reals = manifest([row("SelfReenact", "000_000", 0, "000")])
    with pytest.raises(ForensicsError, match="1 have no real crops of their original video in the manifest"):
        find_pairs(no_reals, PairingConfig())
    with pytest.raises(ForensicsError, match="no fake crops to pair in split 'val'.*fake methods in the manifest: "
                                             "FaceSwap, SelfReenact"):
        find_pairs(df, PairingConfig(), split="val")


def test_split_methods_and_face_index_select_the_pairs():
    df = manifest(reals("000", face=0) + reals("000", face=1)
                  + [row("SelfReenact", "000_000", 0, "000", face=1), row("Face2Face", "000_000", 1, "000", face=0),
                     row("SelfReenact", "000_000", 2, "000", face=0, split="test")])
    pairs, _ = find_pairs(df, PairingConfig(), split="train", methods=["SelfReenact"])
    assert len(pairs) == 1 and pairs["target_line"].iat[0] == 5  # the real crop of face 1, frame 0


def test_crops_of_different_sizes_are_an_error_naming_the_rows(tmp_path):
    df = manifest(reals("000", frames=[0, 1]) + [row("SelfReenact", "000_000", f, "000") for f in (0, 1)],
                  root=str(tmp_path))
    for r in df.itertuples():
        side = 40 if (r.method == "original" and r.frame == 1) else 32
        (tmp_path / r.path).parent.mkdir(parents=True, exist_ok=True)
        write_png(tmp_path / r.path, np.zeros((side, side, 3), np.uint8))
    pairs, _ = find_pairs(df, PairingConfig())
    with pytest.raises(ForensicsError) as error:
        check_sizes(pairs, "m.csv")
    assert str(error.value) == ("m.csv: the crops of a pair differ in size: manifest row 5 (SelfReenact/000_000 frame 1, "
                                "32x32) vs manifest row 3 (its original, 40x40): crop fakes and originals with the "
                                "same settings")
    assert check_sizes(pairs[pairs["frame"] == 0]) == 32
