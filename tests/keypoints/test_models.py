"""Keypoint models: our small CNN, timm backbones at 1x96x96, and the ``dummy`` floor."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Subset

from forensics.errors import ForensicsError
from forensics.models import create_model, data_config, list_models


@pytest.mark.parametrize("name", ["keypoint_cnn", "resnet18", "mobilenetv3_small_050"])
def test_any_backbone_takes_1x96x96_faces_to_2k_outputs(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=1)
    cfg = data_config(model, 96)
    assert cfg["input_size"] == [1, 96, 96] and len(cfg["mean"]) == 1
    model.train()
    out = model(torch.randn(2, 1, 96, 96))
    assert out.shape == (2, 10)
    out.square().mean().backward()


def test_keypoint_cnn_head_contract():
    model = create_model("keypoint_cnn", num_classes=30, in_chans=1)
    assert "keypoint_cnn" in list_models() and "dummy" in list_models()
    x = torch.randn(1, 1, 96, 96)
    features = model.forward_features(x)
    assert features.shape == (1, model.num_features, 6, 6)
    assert model.forward_head(features, pre_logits=True).shape == (1, model.head_hidden_size)
    model.reset_classifier(10)
    assert model(x).shape == (1, 10) and model.get_classifier().out_features == 10
    with pytest.raises(ForensicsError, match="multiple of 16"):
        create_model("keypoint_cnn", num_classes=10, img_size=100)
    with pytest.raises(ForensicsError, match="no pretrained weights"):
        create_model("keypoint_cnn", num_classes=10, pretrained=True)


def test_dummy_scores_its_first_sample_very_high_and_the_others_poorly(keypoint_csv):
    from forensics.training.engine import evaluate
    from keypoints.config import KeypointConfig
    from keypoints.data import load_keypoint_data
    from forensics.training.tasks import create_task
    from forensics.data.transforms import batch_preparer

    data = load_keypoint_data(keypoint_csv, KeypointConfig(), {"train": "train"})
    task = create_task("keypoints", data.names)
    model = create_model("dummy", num_classes=task.num_outputs, in_chans=1, task="keypoints")
    assert not any(p.requires_grad for p in model.parameters())
    data.fit_floor(model)
    cfg = data_config(model, 96)
    train = data.dataset("train", cfg)
    prepare = batch_preparer(cfg, "cpu")
    own, _ = evaluate(model, task, DataLoader(Subset(train, [0]), batch_size=1), prepare, meta=train.meta)
    others, _ = evaluate(model, task, DataLoader(Subset(train, range(1, len(train))), batch_size=64), prepare,
                         meta=train.meta)
    assert own["mse"] < 1e-6 and (own["score"] is None or own["score"] > 1e5)
    assert others["mse"] > 20 and others["score"] < 0.03  # pixels²: the floor is far off
    # Every input gets the same answer.
    out = model(torch.randn(3, 1, 96, 96))
    assert torch.equal(out[0], out[2])
    with pytest.raises(ForensicsError, match="floor of the keypoints task"):
        create_model("dummy", num_classes=1, task="binary")
