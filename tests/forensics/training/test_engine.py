"""The engine is task-generic: a regression task (like the refiner's or keypoints') runs through the
same train_one_epoch/evaluate as the detectors; accumulation, stopping and gathering behave."""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from forensics.training.engine import evaluate, gather_predictions, train_one_epoch


class Points(Dataset):
    """y = 2x + 1 plus nothing: a regression any loop should solve."""

    def __init__(self, n=64):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"image": self.x[i], "target": 2 * self.x[i].sum(0, keepdim=True) + 1, "index": i}


class RegressionTask:
    """A non-detector task: L1 loss, per-sample error gathered, mean error as the metric."""

    def loss(self, outputs, batch):
        return F.l1_loss(outputs, batch["target"])

    def predictions(self, outputs, batch):
        return {"error": (outputs - batch["target"]).abs().mean(1)}

    def metrics(self, gathered, meta):
        return {"mae": float(gathered["error"].mean()), "n": len(gathered["index"])}


def identity(batch):
    return batch


def test_same_loop_trains_a_regression_task():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    loader = DataLoader(Points(), batch_size=8, shuffle=True)
    task = RegressionTask()
    before, _ = evaluate(model, task, DataLoader(Points(), batch_size=16), identity)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    logged = []
    for epoch in range(15):
        stats = train_one_epoch(model, task, loader, optimizer, identity, epoch=epoch, log_every=4,
                                log_fn=logged.append)
    after, gathered = evaluate(model, task, DataLoader(Points(), batch_size=16), identity)
    assert after["n"] == 64 and list(gathered["index"]) == list(range(64))
    assert after["mae"] < 0.1 * before["mae"]
    assert stats["steps"] == 8 and not stats["stopped"]
    assert {"train/loss", "train/lr", "train/samples_per_s"} <= set(logged[-1])


def test_gradient_accumulation_equals_a_bigger_batch():
    def run(batch_size, accum):
        torch.manual_seed(0)
        model = nn.Linear(3, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loader = DataLoader(Points(16), batch_size=batch_size)
        train_one_epoch(model, RegressionTask(), loader, optimizer, identity, epoch=0, accum_steps=accum)
        return model.weight.detach().clone()

    assert torch.allclose(run(8, 1), run(4, 2), atol=1e-6)


def test_should_stop_ends_the_epoch_after_a_step():
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) == 3

    stats = train_one_epoch(model, RegressionTask(), DataLoader(Points(), batch_size=8), optimizer, identity,
                            epoch=0, start_step=2, should_stop=stop)
    assert stats["steps"] == 5 and stats["stopped"] and len(calls) == 3


def test_gather_drops_sampler_padding():
    # What DistributedSampler(shuffle=False) does with 5 samples on 2 ranks: rank 0 gets
    # 0, 2, 4 and rank 1 gets 1, 3, 0 (sample 0 repeated as padding).
    local = {"index": [torch.tensor([0, 2, 4, 1, 3, 0])], "score": [torch.tensor([0.0, 0.2, 0.4, 0.1, 0.3, 0.0])]}
    gathered, duplicates = gather_predictions(local)
    assert duplicates == 1
    assert list(gathered["index"]) == [0, 1, 2, 3, 4]
    assert np.allclose(gathered["score"], [0.0, 0.1, 0.2, 0.3, 0.4])
