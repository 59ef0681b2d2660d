"""The refiner network: shapes, skips that leave the output unchanged, freezing by name, and
clear errors for a stage-1 checkpoint of another width or depth."""

from __future__ import annotations

import pytest
import torch

from forensics.training.checkpoint import save_checkpoint, load_checkpoint
from forensics.training.engine import train_one_epoch
from forensics.errors import ConfigError, ForensicsError
from forensics.data.transforms import batch_preparer
from refiner.model import Refiner, RefinerArch, build_from_info, data_config, freeze, load_refiner_weights
from refiner.task import ReconstructionTask

ARCH = dict(channels=[8, 16, 32], latent=8, input_size=32)


def pretrained(seed: int = 0, **arch) -> Refiner:
    """A refiner with random non-trivial weights, standing in for a pretrained one."""
    torch.manual_seed(seed)
    model = Refiner(RefinerArch(**(ARCH | arch)))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("channels,size", [([8], 16), ([8, 16], 32), ([4, 8, 16, 16], 64)])
def test_depth_and_width_are_configurable(channels, size):
    model = Refiner(RefinerArch(channels=channels, latent=4, input_size=size))
    x = torch.randn(2, 3, size, size)
    assert model(x).shape == x.shape
    assert len(model.encoder.levels) == len(channels) == len(model.decoder.levels)
    model.add_skips()
    assert model.skip_levels == list(range(len(channels)))
    assert model(x).shape == x.shape


def test_input_size_must_fit_the_depth():
    with pytest.raises(ConfigError, match="multiple of 4"):
        Refiner(RefinerArch(channels=[8, 16, 32], input_size=30))


@pytest.mark.parametrize("input_ramp", [None, 5])
@pytest.mark.parametrize("levels", [None, [0], [1, 2]])
def test_output_unchanged_when_skips_are_added(levels, input_ramp):
    model = pretrained()
    x = torch.randn(3, 3, 32, 32)
    model.eval()
    before = model(x)
    model.add_skips(levels, kernel=3, input_ramp=input_ramp)
    assert torch.equal(model(x), before)
    model.train()  # the first training batch too: the input skip's ramp starts at 0
    assert torch.equal(model(x), before)


def test_input_skip_blends_into_the_input_over_the_ramp():
    model = pretrained().add_skips(input_ramp=4)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    for _ in range(4):
        model(x)
    model.eval()
    assert model.input_weight == 1.0
    # Now the output is the input, re-coloured by the head's gain and offset maps...
    maps = []
    model.residual.register_forward_hook(lambda module, inputs, output: maps.append(output))
    with torch.no_grad():
        out = model(x)
        gain, offset = maps[-1].chunk(2, dim=1)
        assert torch.allclose(out, x + x * gain + offset, atol=1e-6) and not torch.allclose(out, x, atol=1e-3)
        # ... and with a zero head exactly the input: nothing of the reconstruction is left.
        model.residual.weight.zero_()
        model.residual.bias.zero_()
        assert torch.allclose(model(x), x, atol=1e-6)


def test_frozen_parts_unchanged_after_fine_tuning_steps():
    model = pretrained().add_skips(input_ramp=2)
    frozen = ["encoder", "decoder.levels.2"]
    trainable = freeze(model, frozen)
    assert trainable == sum(p.numel() for n, p in model.named_parameters()
                            if not n.startswith(("encoder.", "decoder.levels.2.")))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    arch = model.arch
    task = ReconstructionTask(*[data_config(arch)[k] for k in ("mean", "std")], paired=True)
    torch.manual_seed(1)
    batches = [{"image": torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8),
                "target": torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8),
                "index": torch.arange(4)} for _ in range(3)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    stats = train_one_epoch(model, task, batches, optimizer,
                            batch_preparer(data_config(arch), "cpu", keys=("image", "target")), epoch=0)
    assert stats["steps"] == 3
    for name, p in model.named_parameters():
        if name.startswith(("encoder.", "decoder.levels.2.")):
            assert torch.equal(p, before[name]), f"{name} changed although frozen"
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith("skips.") for n in changed) and any(n.startswith("residual") for n in changed)
    assert any(n.startswith("decoder.levels.0.") for n in changed)


def test_freeze_unknown_name_lists_the_choices():
    model = pretrained().add_skips()
    with pytest.raises(ConfigError, match=r"no parameters under 'encoder\.levels\.7'.*encoder\.levels\.0"):
        freeze(model, ["encoder.levels.7"])
    assert freeze(model, []) == sum(p.numel() for p in model.parameters())


def test_stage1_checkpoint_of_another_width_or_depth_lists_the_keys(tmp_path):
    path = tmp_path / "stage1.pt"
    stage1 = pretrained()
    save_checkpoint({"model": stage1.state_dict(), "model_info": stage1.info()}, path)
    state = load_checkpoint(path)
    wider = Refiner(RefinerArch(**(ARCH | {"channels": [8, 16, 48]})))
    with pytest.raises(ForensicsError) as error:
        load_refiner_weights(wider, state, str(path))
    message = str(error.value)
    assert "of another shape" in message and "encoder.levels.2.0.weight (32, 16, 3, 3) vs (48, 16, 3, 3)" in message
    assert "[8, 16, 32]" in message and "[8, 16, 48]" in message and len(message.splitlines()) == 1
    deeper = Refiner(RefinerArch(**(ARCH | {"channels": [8, 16, 32, 32]})))
    with pytest.raises(ForensicsError, match=r"missing: encoder\.levels\.3\.0\.weight"):
        load_refiner_weights(deeper, state, str(path))
    same = Refiner(RefinerArch(**ARCH))
    load_refiner_weights(same, state, str(path))
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(same.eval()(x), stage1.eval()(x))


def test_a_checkpoint_rebuilds_its_network():
    model = pretrained().add_skips([1, 2], kernel=3, input_ramp=7)
    rebuilt = build_from_info(model.info())
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 32, 32)
    assert rebuilt.skip_levels == [1, 2] and rebuilt.input_ramp == 7 and rebuilt.skip_kernel == 3
    assert torch.equal(rebuilt.eval()(x), model.eval()(x))
