"""Cozzolino et al.: the recast descriptor computes the hand-crafted co-occurrence histogram."""

import numpy as np
import torch

from baselines.cozzolino import ResidualDescriptor
from forensics.models import create_model


def reference_histogram(gray, q=3.0, t=2):
    """The descriptor by hand: third-order residuals, round, truncate, count 4-sample patterns."""
    residual_h = gray[:, :-3] - 3 * gray[:, 1:-2] + 3 * gray[:, 2:-1] - gray[:, 3:]
    residual_v = (gray[:-3] - 3 * gray[1:-2] + 3 * gray[2:-1] - gray[3:]).T
    out = []
    for residual in (residual_h, residual_v):
        quantised = np.clip(np.round(residual / q), -t, t).astype(int) + t
        hist = np.zeros((2 * t + 1) ** 4)
        for row in quantised:
            for j in range(len(row) - 3):
                hist[((row[j] * 5 + row[j + 1]) * 5 + row[j + 2]) * 5 + row[j + 3]] += 1
        out.append(hist / hist.sum())
    return np.concatenate(out)


def test_hard_descriptor_equals_the_hand_crafted_histogram():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 1, 12, 15)).float()
    features = ResidualDescriptor(in_chans=1, softness=0)(images)
    for image, feature in zip(images, features):
        np.testing.assert_allclose(feature.numpy(), reference_histogram(image[0].numpy()), atol=1e-6)


def test_soft_descriptor_is_a_histogram_close_to_the_hard_one():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 1, 24, 24)).float()
    soft = ResidualDescriptor(in_chans=1, softness=0.1)(images)
    hard = ResidualDescriptor(in_chans=1, softness=0)(images)
    torch.testing.assert_close(soft.sum(dim=1), torch.full((2,), 2.0))
    assert (soft - hard).abs().sum(dim=1).max() < 0.1


def test_descriptor_is_trained_end_to_end():
    model = create_model("cozzolino").train()
    model(torch.rand(2, 3, 32, 32) * 255).sum().backward()
    descriptor = model.descriptor
    for p in (descriptor.filter_h, descriptor.filter_v, descriptor.log_q):
        assert p.grad is not None and p.grad.abs().sum() > 0
    frozen = create_model("cozzolino", trainable_descriptor=False)
    assert not frozen.descriptor.filter_h.requires_grad
