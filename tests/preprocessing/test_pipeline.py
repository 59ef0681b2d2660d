"""One video in, crops + rows + track out: crop size, centred faces, box reuse, masks, bad input."""

import json

import av
import cv2
import numpy as np
import pytest

from forensics.media.crops import read_image
from forensics.media.faces import FaceDetector
from forensics.synth import original_path
from forensics.media.video import write_video
from tests.preprocessing.conftest import copy, link, preprocess, read


def test_reference_run_writes_crops_masks_tracks_and_summary(reference):
    df = read(reference)
    # synth promises a detectable face in >= 95% of frames, not in every one: a frame the
    # detector misses has no crop (in the original and, through box reuse, in its fakes).
    per_video = df.groupby(["method", "video"]).size()
    assert len(per_video) == 18 and (per_video <= 4).all() and len(df) >= 0.95 * 18 * 4
    assert (df.face.astype(int) == 0).all() and (df.score > 0.9).all()
    for row in df.itertuples():
        crop = cv2.imread(str(reference / row.path), cv2.IMREAD_UNCHANGED)
        assert crop.shape == (224, 224, 3)
        assert row.path == f"crops/ffpp/{row.method}/c23/{row.video}/{row.frame:04d}.png"
        if row.method == "original":
            assert row.mask == ""
        else:
            mask = cv2.imread(str(reference / row.mask), cv2.IMREAD_UNCHANGED)
            assert mask.shape == (224, 224) and mask.max() > 200  # the manipulated region is in the crop
    for key in {f"ffpp/{m}/c23/{v}" for m, v in zip(df.method, df.video)}:
        record = json.loads((reference / "tracks" / f"{key}.json").read_text())
        method, video = key.split("/")[1], key.split("/")[3]
        assert len(record["tracks"]) >= 1 and record["faces"] == per_video[(method, video)]
    summary = json.loads((reference / "summary.json").read_text())
    # One shot per synthetic video: no false cut.
    assert summary["videos"] == {"total": 18, "done": 18, "skipped": 0, "failed": 0, "no_face": 0, "with_cuts": 0}
    assert summary["cuts"] == []
    assert summary["frames"] == {"sampled": 72, "decoded": 72, "faces": len(df)}
    assert sum(summary["coverage_histogram"].values()) == 18 and summary["throughput"]["frames_per_s"] > 0


def test_the_face_is_centred_in_its_crop(reference):
    df = read(reference)
    rows = df[df.method == "original"].groupby("video").head(1)
    crops = [read_image(reference / p) for p in rows.path]
    found = [dets for dets in FaceDetector().detect(crops) if len(dets)]
    # MTCNN again on the crops (upscaled, grainy faces of 320x240 frames) may miss one.
    assert len(found) >= 0.8 * len(crops)
    for dets in found:
        x0, y0, x1, y1, _ = dets[0]
        assert abs((x0 + x1) / 2 - 112) < 0.08 * 224 and abs((y0 + y1) / 2 - 112) < 0.08 * 224
        assert 0.6 < max(x1 - x0, y1 - y0) * 1.3 / 224 < 1.25  # the face fills 1/1.3 of the crop


def test_fakes_reuse_their_originals_boxes_and_crops_align(reference):
    df = read(reference)
    originals = df[df.method == "original"].set_index(["video", "frame"])
    fakes = df[df.method != "original"]
    assert len(fakes) == 2 * len(originals)  # each original frame's box serves its two fakes
    for row in fakes.itertuples():
        o = originals.loc[(row.original, row.frame)]
        assert (row.x0, row.y0, row.x1, row.y1, row.score) == (o.x0, o.y0, o.x1, o.y1, o.score)
    record = json.loads((reference / "tracks/ffpp/FaceSwap/c23/000_001.json").read_text())
    assert record["boxes_from"] == "original:ffpp/original/c23/000"
    # Pixel-aligned: outside the mask the fake crop is the original crop (up to H.264 noise).
    row = fakes[fakes.method == "FaceSwap"].iloc[0]
    fake, real = read_image(reference / row.path).astype(int), read_image(
        reference / originals.loc[(row.original, row.frame)].path).astype(int)
    outside = cv2.imread(str(reference / row["mask"]), cv2.IMREAD_UNCHANGED) < 10
    diff = np.abs(fake - real).mean(axis=2)
    assert diff[outside].mean() < 4 < diff[~outside].mean()


def _no_face_video(path):
    from forensics.synth.render import make_background

    background = make_background(400, 300, np.random.default_rng(3))
    write_video(path, (np.roll(background[30:270, 40:360], t, axis=1) for t in range(12)), fps=12, crf=23)


def _zero_frame_video(path):
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        container.start_encoding()


def test_bad_videos_are_recorded_and_the_run_goes_on(pp_root, tmp_path, caplog):
    good = original_path(pp_root, "c23", "000")
    data = good.read_bytes()
    root = tmp_path / "mine"
    link(good, root / "real" / "good.mp4")
    (root / "real").mkdir(exist_ok=True)
    (root / "real" / "junk.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    (root / "real" / "truncated.mp4").write_bytes(data[:len(data) // 2])
    _zero_frame_video(root / "real" / "zero.mp4")
    garbage = bytearray(data)  # the header is intact, the coded frames are noise
    start = data.find(b"mdat") + 300
    garbage[start:start + 8000] = np.random.default_rng(1).integers(0, 256, 8000, np.uint8).tobytes()
    (root / "fake" / "garbage.mp4").parent.mkdir(parents=True)
    (root / "fake" / "garbage.mp4").write_bytes(bytes(garbage))
    _no_face_video(root / "real" / "background.mp4")
    out = tmp_path / "out"

    assert preprocess("--layout", "folder", "--root", root, "--out", out, "--frames", "3", "--workers", "0") == 1
    summary = json.loads((out / "summary.json").read_text())
    failed = {f["video"].split("/")[-1]: f["reason"] for f in summary["failed"]}
    assert set(failed) == {"junk", "truncated", "zero", "garbage"}
    assert all(name in failed[name] for name in failed)  # the reason names the file
    assert summary["no_face"] == ["folder/original/unknown/background"]
    assert summary["videos"]["done"] == 2 and summary["coverage_histogram"]["0%"] == 1
    df = read(out)
    assert set(df.video) == {"good"} and len(df) == 3
    assert not (out / "crops/folder/original/unknown/junk").exists()
    assert not list(out.rglob("*.tmp"))
    assert "4 videos failed" in caplog.text
    # A second run skips what is complete and retries the failures.
    assert preprocess("--layout", "folder", "--root", root, "--out", out, "--frames", "3", "--workers", "0") == 1
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["videos"]["skipped"], summary["videos"]["failed"]) == (2, 4)


@pytest.mark.parametrize("option, name", [(["--crop-size", "112"], "crop_size"), (["--crop-scale", "1.5"], "crop_scale"),
                                          (["--frames", "8"], "frames"), (["--all-frames"], "sampling")])
def test_other_settings_are_refused_naming_the_setting(pp_root, reference, tmp_path, capsys, option, name):
    out = tmp_path / "out"
    out.mkdir()
    copy(reference / "settings.json", out / "settings.json")
    assert preprocess("--layout", "ffpp", "--root", pp_root, "--out", out, *option, "--workers", "0") == 2
    err = capsys.readouterr().err
    assert name in err and "other settings" in err and len(err.strip().splitlines()) == 1
    assert not (out / "crops").exists()


def test_landmarks_are_stored_in_crop_pixels_on_the_synthetic_faces_features(reference):
    """Every crop's five landmarks land on the eyes, nose and mouth the renderer drew (within
    the spread of the bundled faces' own features); fakes carry their original's points."""
    from forensics.data.manifest import LANDMARK_COLUMNS, landmarks_of
    from forensics.media.crops import points_to_crop
    from forensics.synth import SynthConfig, face_landmarks
    from tests.preprocessing.conftest import PP_SYNTH

    df = read(reference)
    assert set(LANDMARK_COLUMNS) <= set(df.columns)
    found = landmarks_of(df)
    assert np.isfinite(found).all()  # every crop here comes from a detection (or its original's)
    reals = df.method == "original"
    drawn = face_landmarks(SynthConfig(**PP_SYNTH))
    errors = []
    for i in np.flatnonzero(reals.to_numpy()):
        row = df.iloc[i]
        truth = drawn[row.video][int(row.frame)]
        expected = points_to_crop(truth, (row.x0, row.y0, row.x1, row.y1), 224)
        errors.append(found[i] - expected)
    errors = np.array(errors) / (224 / 1.3)  # in face-box sides
    distance = np.linalg.norm(errors, axis=2)
    # Faces differ by ~0.08 face sides from the canonical points (FACE_LANDMARKS); a wrong
    # coordinate frame (frame pixels, unscaled, swapped x/y or points) is off by 0.4 or more.
    assert np.median(distance) < 0.12 and np.quantile(distance, 0.9) < 0.2, distance.max(axis=0)
    assert np.abs(errors.mean(axis=0)).max() < 0.06, errors.mean(axis=0)  # no systematic shift
    originals = df[reals].set_index(["video", "frame"])
    fakes = df[~reals]
    paired = originals.loc[list(zip(fakes.original, fakes.frame)), LANDMARK_COLUMNS].to_numpy()
    assert np.array_equal(fakes[LANDMARK_COLUMNS].to_numpy(), paired)
    record = json.loads((reference / "tracks/ffpp/original/c23/000.json").read_text())
    assert len(record["landmarks"][0]) == len(record["tracks"][0])  # frame pixels, for the fakes


def test_old_manifests_without_landmark_columns_still_load(reference, tmp_path):
    from forensics.data.manifest import LANDMARK_COLUMNS, landmarks_of, read_manifest

    df = read(reference).drop(columns=LANDMARK_COLUMNS)
    df.to_csv(tmp_path / "manifest.csv", index=False)
    old = read_manifest(tmp_path / "manifest.csv")
    assert len(old) == len(df) and landmarks_of(old) is None
