"""The generated keypoint set: Kaggle format, MTCNN's landmarks as labels, splits by identity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keypoints.kaggle import read_kaggle_csv
from keypoints.table import FIVE_KEYPOINTS, keypoint_columns
from tests.keypoints.conftest import GENERATED


def test_generated_set_is_a_kaggle_csv_with_five_keypoints_split_by_identity(keypoint_csv):
    columns = list(pd.read_csv(keypoint_csv, nrows=0).columns)
    assert columns == keypoint_columns(FIVE_KEYPOINTS) + ["identity", "split", "Image"]
    table = read_kaggle_csv(keypoint_csv)
    assert len(table) == GENERATED["count"] and table.images.shape[1:] == (96, 96)
    assert table.names == list(FIVE_KEYPOINTS) and not np.isnan(table.points).any()
    assert ((table.points >= 0) & (table.points < 96)).all()
    people = table.meta.groupby("split")["identity"].agg(set)
    assert set(people.index) == {"train", "val", "test"}
    assert not (people["train"] & people["val"]) and not (people["train"] & people["test"])
    # The subject's left eye is on the image's right; eyes above the nose, the nose above the mouth.
    left_eye, right_eye, nose, mouth_left, mouth_right = np.moveaxis(table.points, 1, 0)
    assert (left_eye[:, 0] > right_eye[:, 0]).mean() > 0.95 and (mouth_left[:, 0] > mouth_right[:, 0]).mean() > 0.95
    assert (np.maximum(left_eye[:, 1], right_eye[:, 1]) < nose[:, 1]).mean() > 0.9
    assert (nose[:, 1] < np.minimum(mouth_left[:, 1], mouth_right[:, 1])).mean() > 0.9
    assert table.points.reshape(len(table), -1).std(axis=0).min() > 3  # faces vary: the floor is beatable


def test_labels_are_where_mtcnn_finds_the_landmarks_in_the_rendered_face():
    """The labels are carried from the identity's patch by the rendering's affine map. MTCNN run
    on rendered faces themselves (at 2x, so that it finds them) agrees: no offset (a wrong pixel
    convention would show as one) and about a pixel of MTCNN's own jitter."""
    import torch

    from forensics.media.faces import FaceDetector
    from keypoints.synth import _FROM_MTCNN, identity_landmarks, render_face
    from forensics.synth.faces import bundled_identities

    torch.set_num_threads(1)
    detector = FaceDetector(min_face_size=40)
    people = bundled_identities(3, seed=0)
    errors = []
    for person, landmarks in zip(people, identity_landmarks(people, detector)):
        for seed in range(3):
            image, points = render_face(person, landmarks, 192, np.random.default_rng(seed))
            found = detector.detect([np.repeat(image[..., None], 3, axis=2)], landmarks=True)[0]
            assert len(found), person.name
            errors.append(found[0, 5:].reshape(5, 2)[_FROM_MTCNN] - points)
    errors = np.array(errors)
    assert np.abs(errors.mean(axis=(0, 1))).max() < 1.0  # pixels at 192x192
    assert np.median(np.abs(errors)) < 2.5


def test_cli_writes_the_csv(tmp_path, capsys):
    from forensics.cli import main

    assert main(["keypoints-synth", "--out", str(tmp_path), "--count", "6", "--identities", "3"]) == 0
    assert str(tmp_path / "keypoints.csv") in capsys.readouterr().out
    table = read_kaggle_csv(tmp_path / "keypoints.csv")
    assert len(table) == 6 and table.meta["split"].tolist() == ["train", "val", "test"] * 2
    with pytest.raises(SystemExit):
        main(["keypoints-synth"])  # --out is required
