"""The draft configs under configs/ffpp/ load into the training schema and name their baseline."""

from pathlib import Path

import pytest

from forensics.config import load_config
from forensics.models import create_model
from forensics.commands.train import TrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "ffpp"
NAMES = ["meso4", "mesoinception4", "bayar", "rahmouni", "cozzolino", "steganalysis"]


@pytest.mark.parametrize("name", NAMES)
def test_config_loads_and_matches_the_models_default_size(name, tmp_path):
    cfg = load_config(TrainConfig, CONFIGS / f"{name}.yaml",
                      [f"data.manifest={tmp_path / 'manifest.csv'}", f"output_dir={tmp_path / 'run'}"])
    assert cfg.model.name == name
    model = create_model(name, num_classes=1)
    assert cfg.model.input_size == model.pretrained_cfg["input_size"][-1]
