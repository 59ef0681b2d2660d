"""Every registered baseline, through the ``forensics`` factory: shapes, head contract,
default config, bad requests. XceptionNet (timm's ``legacy_xception``) is checked beside them."""

import functools

import pytest
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

import baselines
from forensics.errors import ForensicsError
from forensics.models import create_model, data_config, list_models

NAMES = list(baselines.BASELINES)


def normalised_batch(model, batch=2, size=None):
    """A random batch at the model's input size, normalised as its default config says."""
    cfg = model.pretrained_cfg
    c, h, w = cfg["input_size"]
    if size is not None:
        h = w = size
    x = torch.rand(batch, c, h, w)
    mean = torch.tensor(cfg["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, -1, 1, 1)
    return (x - mean) / std


@functools.cache
def default_model(name):
    """One default (binary) model per name, in eval mode, for the tests that don't change it."""
    return create_model(name).eval()


def test_importing_the_package_registers_every_baseline():
    assert set(NAMES) <= set(list_models())
    assert len(NAMES) == 6


def test_task_names_match_the_training_tasks():
    from baselines.build import TASKS
    from forensics.training.tasks import TASKS as TRAINING_TASKS

    assert TASKS == TRAINING_TASKS


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("num_classes,task", [(1, "binary"), (3, "multiclass")])
def test_forward_backward_at_input_size(name, num_classes, task):
    torch.manual_seed(0)
    model = create_model(name, num_classes=num_classes, task=task)
    model.train()
    out = model(normalised_batch(model))
    assert out.shape == (2, num_classes)
    target = torch.tensor([0.0, 1.0]).unsqueeze(1) if num_classes == 1 else torch.tensor([0, 2])
    loss = (torch.nn.functional.binary_cross_entropy_with_logits(out, target) if num_classes == 1
            else torch.nn.functional.cross_entropy(out, target))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", NAMES)
def test_head_contract(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=1).eval()
    x = normalised_batch(model)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape[1] == model.num_features
        torch.testing.assert_close(model.forward_head(features), model(x))
        assert model.forward_head(features, pre_logits=True).shape == (2, model.head_hidden_size)
        model.reset_classifier(4)
        assert model(x).shape == (2, 4)
        model.reset_classifier(0)
        assert model(x).shape == (2, model.head_hidden_size)
    assert create_model(name, num_classes=0).eval()(x).shape == (2, model.head_hidden_size)


@pytest.mark.parametrize("name", NAMES)
def test_default_config_drives_the_transforms(name):
    """A crop of another size than the model expects is resized by the transforms its config builds."""
    model = default_model(name)
    cfg = resolve_data_config({}, model=model)
    assert cfg["input_size"] == model.pretrained_cfg["input_size"]
    assert cfg["mean"] == model.pretrained_cfg["mean"] and cfg["std"] == model.pretrained_cfg["std"]
    assert model.pretrained_cfg["paper"] and model.default_cfg is model.pretrained_cfg
    ours = data_config(model)  # what forensics' own transforms read
    assert tuple(ours["input_size"]) == cfg["input_size"] and tuple(ours["mean"]) == cfg["mean"]
    transform = create_transform(**cfg)
    crop = Image.new("RGB", (300, 300), (120, 90, 60))
    x = transform(crop).unsqueeze(0).repeat(2, 1, 1, 1)
    assert tuple(x.shape[1:]) == cfg["input_size"]
    with torch.no_grad():
        assert model(x).shape == (2, 1)


@pytest.mark.parametrize("name", NAMES)
def test_pretrained_weights_are_refused(name):
    with pytest.raises(ForensicsError, match="no pretrained weights"):
        create_model(name, pretrained=True)


@pytest.mark.parametrize("name", NAMES)
def test_multilabel_head_where_the_architecture_allows(name):
    if name == "steganalysis":
        with pytest.raises(ForensicsError, match="cannot have a multilabel head"):
            create_model(name, num_classes=3, task="multilabel")
    else:
        model = create_model(name, num_classes=3, task="multilabel").eval()
        with torch.no_grad():
            assert model(normalised_batch(model)).shape == (2, 3)


def test_unknown_task_is_refused():
    with pytest.raises(ForensicsError, match="unknown task"):
        create_model("meso4", task="regression")


@pytest.mark.parametrize("name", ["meso4", "mesoinception4", "rahmouni", "cozzolino", "bayar"])
def test_other_input_sizes_run(name):
    model = default_model(name)
    with torch.no_grad():
        assert model(normalised_batch(model, size=200)).shape == (2, 1)


def test_xception_is_timms_legacy_xception_at_299():
    model = create_model("legacy_xception", num_classes=1).eval()
    assert resolve_data_config({}, model=model)["input_size"] == (3, 299, 299)
    assert model.num_features == 2048
    with torch.no_grad():
        assert model(torch.randn(1, 3, 299, 299)).shape == (1, 1)
