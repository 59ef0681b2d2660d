"""Checkpoints: atomic plain dicts, weights_only loading, prefixes, EMA, and clear errors."""

import pytest
import torch
import torch.nn as nn

from forensics.training.checkpoint import (check_compatible, load_checkpoint, load_weights, model_weights, save_checkpoint,
                                  strip_prefixes)
from forensics.errors import ForensicsError
from forensics.models import create_model


def small():
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))


def test_round_trip_with_weights_only(tmp_path):
    model = small()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3,
             "metric": {"name": "video/auc", "value": 0.9, "best": None}, "config": {"seed": 0, "tags": ["a"]}}
    save_checkpoint(state, tmp_path / "c.pt")
    loaded = load_checkpoint(tmp_path / "c.pt")  # weights_only=True inside
    assert loaded["epoch"] == 3 and loaded["metric"]["value"] == 0.9
    restored = small()
    load_weights(restored, loaded)
    assert all(torch.equal(a, b) for a, b in zip(restored.state_dict().values(), model.state_dict().values()))
    assert not list(tmp_path.glob(".c.pt.tmp*"))  # no temporary file left behind


def test_prefixes_stripped_and_ema_preferred():
    model = small()
    plain = model.state_dict()
    wrapped = {f"module._orig_mod.{k}": v for k, v in plain.items()}
    assert strip_prefixes(wrapped).keys() == plain.keys()
    ema = {k: v + 1 for k, v in plain.items()}
    state = {"model": wrapped, "model_ema": ema}
    assert torch.equal(model_weights(state)["0.weight"], ema["0.weight"])
    assert torch.equal(model_weights(state, prefer_ema=False)["0.weight"], plain["0.weight"])


def test_corrupt_checkpoint(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint({"model": small().state_dict()}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    for path in (truncated, garbage):
        with pytest.raises(ForensicsError, match=f"{path.name}: not a readable checkpoint"):
            load_checkpoint(path)
    with pytest.raises(ForensicsError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_arbitrary_objects_are_refused(tmp_path):
    path = tmp_path / "pickle.pt"
    torch.save({"model": {}, "evil": nn.Linear(1, 1)}, path)  # a whole module: needs unpickling code
    with pytest.raises(ForensicsError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_another_architecture_is_a_clear_error(tmp_path):
    state = {"model": create_model("resnet18", num_classes=1).state_dict(), "model_info": {"name": "resnet18"}}
    model = create_model("mobilenetv3_small_050", num_classes=1)
    with pytest.raises(ForensicsError, match=r"architecture 'resnet18'.* don't fit this model"):
        load_weights(model, state, "c.pt")
    with pytest.raises(ForensicsError, match="checkpoint is for name 'resnet18'"):
        check_compatible(state, {"name": "mobilenetv3_small_050"}, "c.pt")


def test_another_task_is_a_clear_error():
    three = create_model("mobilenetv3_small_050", num_classes=3)
    state = {"model": three.state_dict(), "model_info": {"name": "mobilenetv3_small_050", "task": "multiclass"}}
    with pytest.raises(ForensicsError, match="checkpoint is for task 'multiclass', but this run uses 'binary'"):
        check_compatible(state, {"name": "mobilenetv3_small_050", "task": "binary"}, "c.pt")
    with pytest.raises(ForensicsError, match=r"another shape \(e.g. classifier.weight"):
        load_weights(create_model("mobilenetv3_small_050", num_classes=1), state)
