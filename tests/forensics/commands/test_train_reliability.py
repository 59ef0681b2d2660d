"""`forensics train` when things go wrong: a diverging loss, a set-up that fails."""

from __future__ import annotations

import re

import pytest

from forensics.cli import main as cli_main
from tests.forensics.commands.test_train import DEMO, tiny


def _cli(capsys, *overrides: str, flags=()) -> tuple[int, str]:
    status = cli_main(["train", *flags, str(DEMO), *overrides])
    return status, capsys.readouterr().err


@pytest.mark.slow
def test_diverging_loss_stops_in_one_line_and_keeps_earlier_checkpoints(crop_manifest, tmp_path, capsys):
    import torch

    from forensics.training.checkpoint import load_checkpoint

    out = tmp_path / "run"
    # Epoch 0 trains normally; at epoch 1 the step schedule multiplies the lr by infinity, and
    # the weights are NaN after the first step (as lr=1e6 made them in the report that found this).
    status, err = _cli(capsys, *tiny(crop_manifest, out, "train.epochs=3", "train.schedule=step",
                                     "train.step_epochs=1", "train.gamma=inf"))
    lines = [line for line in err.splitlines() if line.startswith("forensics train:")]
    assert status == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and re.search(r"loss became (nan|-?inf) at epoch 1, step 2:", lines[0]), err
    assert "last.pt" in lines[0]
    for name in ("last.pt", "best.pt"):  # from the end of epoch 0, untouched by the broken weights
        state = load_checkpoint(out / "checkpoints" / name)
        assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values()
                                           if v.is_floating_point())
    assert (out / "config.yaml").is_file() and (out / "run.json").is_file()  # set-up had succeeded


def test_failed_set_up_leaves_no_run_record(crop_manifest, tmp_path, capsys):
    out = tmp_path / "run"
    status, err = _cli(capsys, *tiny(crop_manifest, out, "data.batch_size=100000", "wandb.mode=offline"))
    assert status == 2 and "Traceback" not in err, err
    assert not out.exists() or not {"config.yaml", "run.json", "wandb"} & {p.name for p in out.iterdir()}
