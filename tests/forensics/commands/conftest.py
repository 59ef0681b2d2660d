"""A trained detector for the tests of explanations and reports (made once per session)."""

from __future__ import annotations

import pytest

from tests.forensics.commands.test_train import train


@pytest.fixture(scope="session")
def explained_run(crop_manifest, tmp_path_factory):
    """A finished 2-epoch run of configs/demo.yaml at 128x128 (the last feature map is 4x4, so
    Grad-CAM has a grid to point into; at the 32x32 of other tests it is one cell)."""
    out = tmp_path_factory.mktemp("explained") / "run"
    assert train(crop_manifest, out, "model.input_size=128", "wandb.samples=4") == 0
    return out
