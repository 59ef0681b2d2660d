"""A non-finite loss: one line naming epoch and step, earlier checkpoints kept; or skipped steps."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from forensics.training.engine import train_one_epoch
from forensics.training.metrics import binary_metrics, multiclass_metrics, multilabel_metrics
from forensics.training.nonfinite import LossGuard, NonFiniteLoss


class PoisonedTask:
    """Mean squared output, made NaN on the batches whose ``poison`` flag is set."""

    def loss(self, outputs, batch):
        loss = outputs.pow(2).mean()
        return loss * math.nan if batch["poison"] else loss


def _loader(poisoned: set[int], steps: int = 6):
    gen = torch.Generator().manual_seed(0)
    return [{"image": torch.randn(4, 3, generator=gen), "poison": i in poisoned} for i in range(steps)]


def _epoch(model, loader, guard, log_every=2):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return train_one_epoch(model, PoisonedTask(), loader, optimizer, lambda b: b, epoch=3, log_every=log_every,
                           guard=guard)


def test_stop_names_epoch_and_step():
    model = nn.Linear(3, 1)
    with pytest.raises(NonFiniteLoss) as error:
        _epoch(model, _loader({2}), LossGuard("stop"))
    message = str(error.value)
    assert "epoch 3, step 4" in message and "nan" in message and "last.pt" in message
    assert len(message.splitlines()) == 1


def test_stop_checks_an_epoch_shorter_than_log_every():
    with pytest.raises(NonFiniteLoss, match="epoch 3, step 3"):
        _epoch(nn.Linear(3, 1), _loader({1}, steps=3), LossGuard("stop"), log_every=100)


def test_skip_drops_the_step_and_stops_after_max():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    guard = LossGuard("skip", max_skips=2)
    stats = _epoch(model, _loader({1, 4}), guard)
    assert guard.skipped == 2 and stats["steps"] == 6 and math.isfinite(stats["loss"])
    assert all(torch.isfinite(p).all() for p in model.parameters())  # no NaN reached the weights
    with pytest.raises(NonFiniteLoss, match="max_nonfinite=2"):
        _epoch(model, _loader({0}), guard)  # a third one over the run


def test_unknown_policy_is_refused():
    with pytest.raises(Exception, match="train.nonfinite"):
        LossGuard("ignore")


def test_metrics_over_nan_scores_are_undefined_not_an_error():
    labels = np.array([0, 1, 0, 1])
    out = binary_metrics(labels, np.array([0.1, np.nan, 0.2, 0.9]))
    assert out["auc"] is None and out["log_loss"] is None and out["acc"] is None and "not finite" in out["note"]
    assert out["n"] == 4
    probs = np.full((4, 2), np.nan)
    assert "not finite" in multiclass_metrics(labels, probs, ["a", "b"])["note"]
    assert multilabel_metrics(np.eye(2, dtype=int)[labels], probs, ["a", "b"])["mean_auc"] is None
