"""The model factory: heads, pretrained weights from a local file, other inputs, freezing."""

import pytest
import torch

from forensics.errors import ForensicsError
from forensics.training.freeze import head_parameter_names, param_groups, set_trainable, train_mode
from forensics.models import create_model, data_config
from forensics.commands.train import ParamGroupConfig

NAME = "mobilenetv3_small_050"


@pytest.mark.parametrize("num_classes", [1, 3])
def test_heads(num_classes):
    model = create_model(NAME, num_classes=num_classes)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, num_classes)
    features = create_model(NAME, num_classes=0)
    width = getattr(features, "head_hidden_size", None) or features.num_features
    assert features(torch.randn(2, 3, 64, 64)).shape == (2, width)


def test_grayscale_96_input():
    model = create_model(NAME, num_classes=1, in_chans=1)
    assert model(torch.randn(2, 1, 96, 96)).shape == (2, 1)
    cfg = data_config(model, input_size=96)
    assert cfg["input_size"] == [1, 96, 96] and len(cfg["mean"]) == 1


def test_data_config_comes_from_the_model():
    xception = data_config(create_model("legacy_xception", num_classes=1))
    assert xception["input_size"] == [3, 299, 299] and xception["mean"] == [0.5, 0.5, 0.5]
    mobilenet = data_config(create_model(NAME, num_classes=1))
    assert mobilenet["input_size"] == [3, 224, 224] and mobilenet["mean"][0] == pytest.approx(0.485)


def test_pretrained_file_is_adapted(tmp_path):
    """ImageNet-style weights (1000 classes, RGB) load into a 1-logit grayscale model."""
    imagenet = create_model(NAME, num_classes=1000)
    path = tmp_path / "weights.pth"
    torch.save(imagenet.state_dict(), path)
    model = create_model(NAME, num_classes=1, in_chans=1, pretrained_file=path)
    assert model.get_classifier().out_features == 1
    # The first convolution's RGB kernels are summed into one channel.
    first = "conv_stem.weight"
    assert torch.allclose(model.state_dict()[first], imagenet.state_dict()[first].sum(1, keepdim=True))
    later = "blocks.2.0.conv_pw.weight"
    assert torch.equal(model.state_dict()[later], imagenet.state_dict()[later])


def test_missing_pretrained_file_is_a_clear_error(tmp_path):
    with pytest.raises(ForensicsError, match="pretrained weights file not found: .*nope.pth"):
        create_model(NAME, pretrained_file=tmp_path / "nope.pth")


def test_pretrained_file_of_another_architecture(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(create_model("resnet18", num_classes=1000).state_dict(), path)
    with pytest.raises(ForensicsError, match="don't fit mobilenetv3_small_050"):
        create_model(NAME, pretrained_file=path)


def test_unknown_model():
    with pytest.raises(ForensicsError, match="unknown model 'no_such_net'"):
        create_model("no_such_net")


def test_head_only_freezing_leaves_backbone_unchanged():
    torch.manual_seed(0)
    model = create_model(NAME, num_classes=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    set_trainable(model, head_only=True)
    head = head_parameter_names(model)
    optimizer = torch.optim.Adam([p for p in model.parameters()], lr=1e-2)
    for _ in range(3):
        train_mode(model)
        loss = model(torch.randn(4, 3, 64, 64)).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    # Weights and batch-norm statistics of the backbone are untouched; the head learned.
    assert changed and changed <= head | {k for k in changed if k.startswith("classifier")}
    assert all(k.startswith("classifier") for k in changed)
    # Then everything trains.
    set_trainable(model, head_only=False)
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_until_named_layer():
    model = create_model(NAME, num_classes=1)
    count = set_trainable(model, freeze_until="blocks.3")
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("conv_stem", "bn1", "blocks.0", "blocks.1", "blocks.2")) for n in frozen)
    assert count == sum(p.numel() for p in model.parameters() if p.requires_grad)
    with pytest.raises(ForensicsError, match="no parameter named 'blocks.99'"):
        set_trainable(model, freeze_until="blocks.99")


def test_per_group_learning_rates():
    model = create_model(NAME, num_classes=1)
    groups = param_groups(model, 1e-3, 1e-4, [ParamGroupConfig("head", 1e-2), ParamGroupConfig("conv_stem", 0.0)])
    lrs = {g["lr"] for g in groups}
    assert lrs == {1e-2, 1e-3}
    in_optimizer = {id(p) for g in groups for p in g["params"]}
    assert id(model.conv_stem.weight) not in in_optimizer  # lr 0: not handed to the optimizer
    head_group = [g for g in groups if g["lr"] == 1e-2]
    assert sum(len(g["params"]) for g in head_group) == len(list(model.get_classifier().parameters()))
