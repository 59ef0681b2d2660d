"""The keypoints task: masked MSE loss on normalised coordinates, metric and score in pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from forensics.errors import ForensicsError
from keypoints.task import KeypointTask, keypoint_metrics
from forensics.training.tasks import TASKS, create_task


def test_created_by_name_with_its_keypoint_names():
    task = create_task("keypoints", ["nose_tip", "left_eye_center"])
    assert isinstance(task, KeypointTask) and "keypoints" in TASKS
    assert task.num_outputs == 4 and task.classes == ["nose_tip", "left_eye_center"] and task.kind == "keypoints"
    with pytest.raises(ForensicsError, match="needs its class names"):
        create_task("keypoints")


def test_metric_is_the_mean_of_per_sample_mses_and_score_is_one_over_twice_it():
    target = np.array([[10.0, 20.0, 30.0, 40.0], [50.0, 60.0, np.nan, np.nan]])
    pred = np.array([[11.0, 22.0, 30.0, 40.0], [53.0, 60.0, 0.0, 0.0]])
    m = keypoint_metrics(pred, target, ["a", "b"])
    per_sample = [(1 + 4 + 0 + 0) / 4, (9 + 0) / 2]  # the missing keypoint is not scored
    assert m["mse"] == pytest.approx(np.mean(per_sample))
    assert m["score"] == pytest.approx(1 / (2 * np.mean(per_sample)))
    assert m["rmse"] == pytest.approx(math.sqrt(np.mean(per_sample)))
    assert m["n"] == 2 and m["coordinates"] == 6
    assert m["per_keypoint"] == pytest.approx({"a": (1 + 4 + 9 + 0) / 4, "b": 0.0})
    # Single-sample batches: the mean over samples of each one's MSE, exactly as defined.
    singles = [keypoint_metrics(pred[i:i + 1], target[i:i + 1], ["a", "b"])["mse"] for i in range(2)]
    assert m["mse"] == pytest.approx(np.mean(singles))
    assert keypoint_metrics(target, target, ["a", "b"])["score"] is None  # perfect: 1 / 0, no JSON number


def test_loss_masks_missing_keypoints_and_works_in_normalised_units():
    task = KeypointTask(["a", "b"])
    batch = {"image": torch.zeros(2, 1, 96, 96), "target": torch.tensor([[48.0, 48.0, 96.0, 0.0],
                                                                          [24.0, 72.0, float("nan"), float("nan")]])}
    outputs = torch.zeros(2, 4, requires_grad=True)  # 0 = the image centre
    loss = task.loss(outputs, batch)
    # normalised targets: (0, 0, 1, -1) and (-0.5, 0.5): squared errors 0+0+1+1+0.25+0.25 over 6 coordinates
    assert loss.item() == pytest.approx(2.5 / 6)
    loss.backward()
    assert torch.isfinite(outputs.grad).all() and (outputs.grad[1, 2:] == 0).all()
    predictions = task.predictions(outputs.detach(), batch)
    assert predictions["keypoints"].tolist() == [[48.0] * 4] * 2  # centre, in pixels
    assert torch.equal(predictions["target"].nan_to_num(-1), batch["target"].nan_to_num(-1))
    # On a complete batch the loss is the pixel MSE over (side / 2)^2.
    full = {"image": torch.zeros(1, 1, 96, 96), "target": torch.tensor([[40.0, 50.0, 60.0, 70.0]])}
    out = torch.tensor([[0.1, -0.2, 0.3, 0.05]])
    pixels = task.predictions(out, full)["keypoints"].numpy()
    assert task.loss(out, full).item() * 48 ** 2 == pytest.approx(
        keypoint_metrics(pixels, full["target"].numpy(), ["a", "b"])["mse"], rel=1e-5)
