"""Bayar & Stamm: the constrained first layer stays constrained through training."""

import logging

import torch

from baselines.bayar import BayarStamm
from forensics.models import create_model


def assert_constrained(weight):
    centre = weight[:, :, 2, 2]
    torch.testing.assert_close(centre, torch.full_like(centre, -1.0))
    off_centre = weight.sum(dim=(2, 3)) - centre
    # float32 sums of 24 weights: the rounding error grows with the weights' magnitude.
    tolerance = 1e-5 * max(1.0, weight.abs().max().item())
    torch.testing.assert_close(off_centre, torch.ones_like(off_centre), rtol=0, atol=tolerance)


def small_bayar(**kwargs):
    # The constraint lives in the first layer: a small input and head keep the test fast.
    return create_model("bayar", img_size=64, hidden=32, **kwargs)


def test_paper_layer_sizes_and_parameter_count():
    model = create_model("bayar", num_classes=2, in_chans=1, img_size=227)
    assert model.feature_size == 24  # 48x24x24 into the first fully connected layer, as in the paper
    assert BayarStamm._feature_size(224) == 24  # our 224 crops: the same layer sizes
    # 12*25 (constrained, no bias) + 64*12*49+64 + 48*64*25+48 + 27648*4096+4096 + 4096*4096+4096 + 4096*2+2
    assert sum(p.numel() for p in model.parameters()) == 130_154_654


def test_constraint_holds_after_optimizer_steps():
    torch.manual_seed(0)
    model = small_bayar(num_classes=1).train()
    assert_constrained(model.constrained.weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)  # the paper's
    x, y = torch.rand(4, 3, 64, 64) * 255, torch.tensor([[0.0], [1.0], [0.0], [1.0]])
    for _ in range(3):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
        # The step leaves the filters off the constraint; every read of them puts them back.
        assert model.constrained.weight[:, :, 2, 2].ne(-1).any()
        assert_constrained(model.state_dict()["constrained.weight"])
    model(x)
    assert_constrained(model.constrained.weight)
    assert model.constrain() is False  # already projected: weights left untouched


def test_evaluation_right_after_a_step_uses_constrained_filters():
    torch.manual_seed(0)
    model = small_bayar().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(2, 3, 64, 64)).sum().backward()
    optimizer.step()
    model.eval()
    with torch.inference_mode():
        model(torch.rand(2, 3, 64, 64))
    assert_constrained(model.constrained.weight)


def test_constrained_layer_outputs_prediction_errors():
    # Each filter's weights sum to 0: a flat image has no prediction error.
    model = small_bayar()
    flat = torch.full((1, 3, 64, 64), 117.0)
    with torch.no_grad():
        torch.testing.assert_close(model.constrained(flat), torch.zeros(1, 12, 60, 60), rtol=0, atol=1e-3)


def test_two_forwards_before_one_backward():
    # A second forward must not modify weights an earlier pending graph saved.
    model = small_bayar().train()
    x = torch.rand(2, 3, 64, 64)
    (model(x).sum() + model(x).sum()).backward()


def test_other_input_size_is_pooled_with_a_warning(caplog):
    model = small_bayar().eval()
    with caplog.at_level(logging.WARNING), torch.no_grad():
        assert model(torch.rand(2, 3, 80, 80)).shape == (2, 1)
        model(torch.rand(2, 3, 80, 80))
    assert sum("built for 64x64" in r.message for r in caplog.records) == 1
