"""The run session every trainer shares: resume decisions, the run's record, eval-only."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from forensics.errors import ConfigError
from forensics.training.runlog import WandbConfig
from forensics.training.session import finish_eval_only, open_run, start_logging


@dataclass
class TinyConfig:
    output_dir: str
    seed: int = 0
    device: str = "cpu"
    wandb: WandbConfig = field(default_factory=lambda: WandbConfig(mode="disabled"))


def test_a_training_run_writes_its_record_and_eval_only_keeps_it(tmp_path):
    cfg = TinyConfig(str(tmp_path / "run"))
    run = open_run(cfg)
    start_logging(run, cfg)
    assert (run.dir / "config.yaml").is_file() and (run.dir / "run.json").is_file()
    (run.ckpt_dir).mkdir()
    (run.ckpt_dir / "last.pt").write_bytes(b"not read")
    record = {name: (run.dir / name).read_bytes() for name in ("config.yaml", "run.json")}

    with pytest.raises(ConfigError, match="already holds a run"):
        open_run(cfg)  # a fresh run in a folder that holds one
    other = TinyConfig(str(tmp_path / "run"), seed=5)
    evaluation = open_run(other, eval_only=True)
    start_logging(evaluation, other)
    assert finish_eval_only(evaluation, {"checkpoint": "best.pt"}, ["val"], lambda name: {"n": 3}) == 0
    assert {name: (run.dir / name).read_bytes() for name in record} == record
    assert '"val": {\n    "n": 3' in (run.dir / "eval_report.json").read_text()


def test_device_must_be_known(tmp_path):
    from forensics.config import load_config
    from forensics.training.schema import TrainConfig

    with pytest.raises(ConfigError, match="device must be one of auto, cpu, cuda"):
        load_config(TrainConfig, None, ["data.manifest=m", f"output_dir={tmp_path}", "device=tpu"])
