"""Explanations of a trained detector: Grad-CAM maps of crops, `forensics predict --explain`, and
heat maps beside the crops of a run's sample grid."""

import numpy as np
import pandas as pd

from forensics.cli import main as cli
from forensics.commands.predict import Predictor
from forensics.data.manifest import read_manifest
from forensics.media.crops import read_image
from forensics.media.video import read_frames, video_info
from forensics.synth import fake_path
from tests.wandb_offline import wandb_history


def test_gradcam_maps_have_the_crop_size_and_tell_real_from_fake(explained_run, crop_manifest):
    predictor = Predictor(explained_run / "checkpoints" / "best.pt", "cpu")
    rows = read_manifest(crop_manifest)
    rows = rows[(rows["split"] == "test") & (rows["frame"] == 0)]
    real = rows[rows["method"] == "original"].iloc[0]
    fake = rows[(rows["method"] == "FaceSwap") & (rows["original"] == real["video"])].iloc[0]  # the same face
    crops = [read_image(crop_manifest.parent / row["path"]) for row in (real, fake)]
    maps = predictor.gradcam(crops)
    assert maps.shape == (2, *crops[0].shape[:2]) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert maps.max() > 0.5  # not a blank map
    assert np.abs(maps[0] - maps[1]).mean() > 0.02  # the real and the fake face are explained differently
    again = predictor.gradcam(crops)
    np.testing.assert_allclose(again, maps, atol=1e-5)  # deterministic: eval mode, no dropout


def test_predict_explain_writes_heat_map_video_strip_and_plot(explained_run, synth_root, tmp_path, capsys):
    import wandb

    fake = fake_path(synth_root, "FaceSwap", "c23", "016", "017")
    out = tmp_path / "explain"
    run = wandb.init(project="forensics-test", dir=str(tmp_path), mode="offline")  # e.g. a notebook's run
    try:
        status = cli(["predict", "--checkpoint", str(explained_run / "checkpoints" / "best.pt"), str(fake),
                      "--csv", str(tmp_path / "s.csv"), "--explain", str(out), "--device", "cpu"])
    finally:
        run.finish()
    assert status == 0, capsys.readouterr().out
    logged = {k for row in wandb_history(tmp_path) for k in row}
    assert {f"predict/{fake.stem}/frames/_type", f"predict/{fake.stem}/scores/_type"} <= logged, logged  # images
    assert sum(1 for _ in read_frames(out / f"{fake.stem}.mp4")) == video_info(fake)[0]
    for name in (f"{fake.stem}_frames.png", f"{fake.stem}_scores.png"):
        image = read_image(out / name)
        assert image is not None and image.shape[0] > 100 and image.std() > 10, name
    # The heat map is blended into the face: the frame differs from the source inside the box.
    scores = pd.read_csv(tmp_path / "s.csv")
    first = scores[scores["frame"] != "video"].iloc[0]
    frame = int(first["frame"])
    source = dict(read_frames(fake, [frame]))[frame].astype(int)
    shown = dict(read_frames(out / f"{fake.stem}.mp4", [frame]))[frame].astype(int)
    x0, y0, x1, y1 = (int(first[k]) for k in ("x0", "y0", "x1", "y1"))
    inside = np.abs(source - shown)[y0 + 4:y1 - 4, x0 + 4:x1 - 4].mean()
    assert inside > 8, inside


def test_sample_grid_shows_heat_maps_beside_the_crops(explained_run):
    grid = read_image(explained_run / "samples_test.png")
    # 4 samples, each crop | heat map: one row of 4 double-width cells (4 crops alone: half as wide).
    assert grid is not None and grid.shape[1] / grid.shape[0] > 5
