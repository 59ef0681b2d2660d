"""The W&B sweeps under configs/sweeps/: the command the agent runs parses with our config loader.

The command is expanded by wandb's own code (``create_sweep_command_args``, the macro loop of
``wandb_agent.Agent._command_run``) with a value for every swept parameter, then handed to
``load_config`` as ``forensics train`` would get it: every swept key must exist in the schema
and arrive with the value the agent chose.
"""

from pathlib import Path

import pytest
import yaml

from forensics.commands.train import TrainConfig
from forensics.config import load_config, write_run_info

ROOT = Path(__file__).resolve().parents[3]
SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))


def example_value(spec: dict):
    """A value the agent could choose for one parameter."""
    if "values" in spec:
        return spec["values"][-1]
    if "value" in spec:
        return spec["value"]
    return (spec["min"] * spec["max"]) ** 0.5 if "log" in spec.get("distribution", "") else spec["min"]


def agent_command(sweep: dict, params: dict) -> list[str]:
    """The argv ``wandb agent`` starts for a run with ``params`` (wandb_agent.py, non-Windows)."""
    from wandb.sdk.launch.sweeps import utils

    variables = utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})
    variables |= {"interpreter": ["python"], "program": [sweep["program"]], "env": ["/usr/bin/env"]}
    argv: list[str] = []
    for chunk in map(str, utils.create_sweep_command(sweep["command"])):
        argv += (variables.get(chunk[2:-1]) or []) if chunk.startswith("${") and chunk.endswith("}") else [chunk]
    return argv


def dotted(cfg, key: str):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def test_sweeps_exist():
    assert {p.stem for p in SWEEPS} >= {"demo", "xception_ffpp"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_agent_command_parses_with_every_swept_key(path, monkeypatch):
    sweep = yaml.safe_load(path.read_text())
    assert sweep["metric"]["name"].startswith("val/")  # chosen on validation, never on test
    params = {key: example_value(spec) for key, spec in sweep["parameters"].items()}
    argv = agent_command(sweep, params)
    assert argv[:5] == ["/usr/bin/env", "python", "-m", "forensics", "train"]
    config, overrides = argv[5], argv[6:]
    assert [o for o in overrides if o.split("=")[0] in params] == [f"{k}={v}" for k, v in params.items()]
    monkeypatch.setenv("WANDB_RUN_ID", "abc123")
    cfg = load_config(TrainConfig, ROOT / config, overrides)
    for key, value in params.items():
        assert dotted(cfg, key) == pytest.approx(value) if isinstance(value, float) else dotted(cfg, key) == value, key
    assert Path(cfg.output_dir).name == "abc123"  # one folder per run of the sweep


def test_run_record_names_its_sweep(tmp_path, monkeypatch):
    cfg = load_config(TrainConfig, ROOT / "configs" / "demo.yaml", ["data.manifest=m.csv", f"output_dir={tmp_path}"])
    write_run_info(cfg, tmp_path / "plain")
    monkeypatch.setenv("WANDB_SWEEP_ID", "sw33p")
    monkeypatch.setenv("WANDB_RUN_ID", "r1")
    write_run_info(cfg, tmp_path / "swept")
    assert "wandb_sweep" not in yaml.safe_load((tmp_path / "plain" / "run.json").read_text())
    assert yaml.safe_load((tmp_path / "swept" / "run.json").read_text())["wandb_sweep"] == {"id": "sw33p", "run": "r1"}
