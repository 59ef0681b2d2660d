"""Grad-CAM plumbing: the layer each architecture is explained at, the fake evidence of each
task, and heat maps blended into crops and frames."""

import numpy as np
import pytest
import torch

from forensics.errors import ForensicsError
from forensics.models import create_model, gradcam_layer
from forensics.media.heatmap import blend_into_frame, overlay
from forensics.training.gradcam import fake_logit


@pytest.mark.parametrize("name, layer", [("mobilenetv3_small_050", "blocks.5"), ("resnet18", "layer4"),
                                         ("meso4", "features"), ("rahmouni", "features")])
def test_layer_per_architecture(name, layer):
    model = create_model(name, num_classes=1)
    assert gradcam_layer(model) is model.get_submodule(layer)


def test_models_without_a_spatial_map_are_refused_in_one_line():
    with pytest.raises(ForensicsError, match="no spatial feature map"):
        gradcam_layer(create_model("cozzolino", num_classes=1))


def test_fake_evidence_is_the_log_odds_of_the_fake_score():
    outputs = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 1.0, 1.0]])
    p_real = torch.softmax(outputs, 1)[:, 0]
    assert torch.allclose(fake_logit("multiclass", outputs), torch.log((1 - p_real) / p_real), atol=1e-5)
    assert torch.equal(fake_logit("binary", outputs[:, :1]), outputs[:, 0])
    with pytest.raises(ValueError):
        fake_logit("keypoints", outputs)


def test_overlay_colours_only_where_the_map_is_high():
    crop = np.full((64, 64, 3), 128, np.uint8)
    cam = np.zeros((32, 32), np.float32)
    cam[:16] = 1.0  # the top half, at half the crop's resolution
    shown = overlay(crop, cam)
    assert shown.shape == crop.shape and shown.dtype == np.uint8
    assert np.abs(shown[:28].astype(int) - 128).max() > 50 and (shown[36:] == 128).all()
    frame = np.full((120, 160, 3), 128, np.uint8)
    blend_into_frame(frame, np.ones((64, 64), np.float32), (140, 50, 180, 90), scale=1.3)  # crosses the border
    changed = np.argwhere(np.abs(frame.astype(int) - 128).max(axis=2) > 0)
    assert changed[:, 1].min() >= 134 and changed[:, 0].min() >= 44 and changed[:, 0].max() <= 96
