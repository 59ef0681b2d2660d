"""Rahmouni et al.: the statistical pooling layer."""

import torch

from baselines.rahmouni import StatsPool
from forensics.models import create_model


def test_stats_pool_is_mean_max_min_variance_per_channel():
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0]]).view(1, 1, 2, 2).repeat(1, 2, 1, 1)
    x[:, 1] *= -1
    out = StatsPool()(x)
    torch.testing.assert_close(out, torch.tensor([[3.0, -3.0, 6.0, -1.0, 1.0, -6.0, 3.5, 3.5]]))


def test_layers_follow_stats_2l():
    model = create_model("rahmouni", num_classes=2, in_chans=1)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(32, (3, 3)), (64, (3, 3))]
    assert model.pre_logits[1].in_features == 4 * 64 and model.head_hidden_size == 1024
