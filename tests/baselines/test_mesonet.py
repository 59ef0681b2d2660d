"""MesoNet: the authors' parameter counts and layer shapes."""

import torch

from forensics.models import create_model


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_meso4_has_the_keras_models_27977_parameters():
    # Keras reports 28,073 params, 96 of them the batch norms' running statistics (non-trainable);
    # PyTorch keeps those as buffers, so the parameter count is the trainable 27,977.
    model = create_model("meso4", num_classes=1)
    assert count(model) == 27_977
    assert sum(b.numel() for n, b in model.named_buffers() if "running" in n) == 96


def test_mesoinception4_parameter_count():
    # Counted from the authors' Keras MesoInception4 (trainable parameters).
    assert count(create_model("mesoinception4", num_classes=1)) == 28_615


def test_feature_map_is_16x8x8_at_256():
    model = create_model("meso4").eval()
    with torch.no_grad():
        assert model.forward_features(torch.rand(1, 3, 256, 256)).shape == (1, 16, 8, 8)


def test_adaptive_last_pool_equals_the_papers_4x4_pool_at_256():
    model = create_model("meso4").eval()
    x = torch.rand(2, 3, 256, 256)
    with torch.no_grad():
        expected = torch.nn.functional.max_pool2d(model.features(x), 4)
        torch.testing.assert_close(model.forward_features(x), expected)
