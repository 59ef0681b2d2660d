"""Keypoint-aware augmentation: flips swap left and right, geometry moves keypoints with the image."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from keypoints.data import KeypointDataset
from keypoints.table import FIVE_KEYPOINTS, KeypointTable
from keypoints.transforms import KeypointAugmentConfig, KeypointTransform

DATA_CFG = {"input_size": [1, 96, 96], "interpolation": "bilinear"}
ONLY = dict(hflip_p=0.0, affine_p=0.0, color_p=0.0)


def _marked(points: np.ndarray, side: int = 96) -> torch.Tensor:
    """A black image with a white pixel at each (integer) keypoint."""
    image = torch.zeros(1, side, side, dtype=torch.uint8)
    for x, y in points.astype(int):
        image[0, y, x] = 255
    return image


def test_flip_swaps_left_and_right_keypoints_on_a_hand_made_face():
    # Subject's left eye on the image's right, as in Kaggle's data.
    points = np.array([[66, 40],   # left_eye_center
                       [30, 40],   # right_eye_center
                       [48, 60],   # nose_tip
                       [60, 75],   # mouth_left_corner
                       [36, 75]],  # mouth_right_corner
                      np.float32)
    transform = KeypointTransform(DATA_CFG, FIVE_KEYPOINTS, KeypointAugmentConfig(**ONLY | {"hflip_p": 1.0}))
    image, flipped = transform(_marked(points), torch.from_numpy(points))
    expected = [[65, 40],  # left_eye_center: the old right eye, mirrored (x -> 95 - x)
                [29, 40],  # right_eye_center
                [47, 60],  # nose_tip: its own mirror
                [59, 75],  # mouth_left_corner: the old right corner
                [35, 75]]  # mouth_right_corner
    assert flipped.tolist() == expected
    for x, y in expected:
        assert image[0, y, x] == 255  # the image moved the same way
    assert int(image.sum()) == 5 * 255
    # The left eye is still on the image's right: a mirrored face keeps the subject's convention.
    assert flipped[0, 0] > flipped[1, 0] and flipped[3, 0] > flipped[4, 0]


def test_flip_through_the_dataset_reorders_the_target_and_keeps_missing_keypoints_missing():
    points = np.array([[[66, 40], [30, 40], [48, 60], [np.nan, np.nan], [36, 75]]], np.float32)
    table = KeypointTable(list(FIVE_KEYPOINTS), points, pd.DataFrame({"row": [2]}),
                          images=_marked(np.nan_to_num(points[0]))[0].numpy()[None])
    dataset = KeypointDataset(table, KeypointTransform(DATA_CFG, FIVE_KEYPOINTS,
                                                       KeypointAugmentConfig(**ONLY | {"hflip_p": 1.0})))
    target = dataset[0]["target"].reshape(5, 2)
    assert target[0].tolist() == [65, 40] and target[1].tolist() == [29, 40]
    assert torch.isnan(target[4]).all() and target[3].tolist() == [59, 75]  # mouth_left <- old mouth_right


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_rotation_shift_and_scale_move_keypoints_with_the_image(seed):
    point = np.array([[30.0, 35.0]], np.float32)
    image = torch.zeros(1, 96, 96, dtype=torch.uint8)
    image[0, 34:37, 29:32] = 255  # a 3x3 blob centred on the keypoint
    augment = KeypointAugmentConfig(**ONLY | {"affine_p": 1.0, "degrees": 30.0, "translate": 0.1,
                                              "scale": [0.8, 1.2]})
    torch.manual_seed(seed)
    out, moved = KeypointTransform(DATA_CFG, ["nose_tip"], augment)(image, torch.from_numpy(point))
    assert not torch.allclose(moved, torch.from_numpy(point), atol=1.0)  # it did move
    ys, xs = torch.nonzero(out[0] > 60, as_tuple=True)
    weights = out[0][ys, xs].float()
    centroid = torch.stack([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()
    assert torch.dist(centroid, moved[0]) < 0.75


def test_resize_scales_keypoints_and_rgb_crops_become_grayscale():
    image = torch.zeros(3, 192, 192, dtype=torch.uint8)
    image[:, 100, 40] = 255
    out, points = KeypointTransform(DATA_CFG, ["nose_tip"])(image, torch.tensor([[40.0, 100.0]]))
    assert out.shape == (1, 96, 96) and out.dtype == torch.uint8
    # torchvision maps a point by the ratio of the sides.
    assert points.tolist() == [[20.0, 50.0]]


def test_augmentation_is_seeded_by_epoch_and_index():
    points = np.array([[[40, 40]]], np.float32).repeat(2, axis=0)
    table = KeypointTable(["nose_tip"], points, pd.DataFrame({"row": [2, 3]}), images=np.zeros((2, 96, 96), np.uint8))
    dataset = KeypointDataset(table, KeypointTransform(DATA_CFG, ["nose_tip"], KeypointAugmentConfig(hflip_p=0)),
                              seed=5)
    first = dataset[0]["target"]
    assert torch.equal(first, dataset[0]["target"])  # the same draw, whoever loads it
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[0]["target"])


def test_timm_bicubic_models_get_the_full_augmentation():
    cfg = {"input_size": [1, 96, 96], "interpolation": "bicubic"}  # resnet18's data config
    transform = KeypointTransform(cfg, FIVE_KEYPOINTS, KeypointAugmentConfig(affine_p=1.0, hflip_p=1.0, color_p=1.0))
    image, points = transform(torch.zeros(3, 128, 128, dtype=torch.uint8), torch.full((5, 2), 64.0))
    assert image.shape == (1, 96, 96) and points.shape == (5, 2) and torch.isfinite(points).all()
