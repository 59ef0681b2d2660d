"""W&B mode: empty WANDB_MODE is unset, a bad one is one line, the config wins, an unreachable
server means offline (or a stop, when online was asked for). No test reaches the network: the
"server" is a closed local port."""

import logging

import pytest

from forensics.errors import ConfigError, ForensicsError
from forensics.training.runlog import RunLogger, WandbConfig, resolve_mode

#: A W&B server that refuses every connection, and a key of the right shape for it.
UNREACHABLE = {"WANDB_BASE_URL": "http://127.0.0.1:1", "WANDB_API_KEY": "0" * 40}


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """No key, no netrc, no W&B settings of the user's, no error reports sent anywhere."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    import wandb

    # W&B reads the environment once per process (its server address included): start afresh.
    wandb.teardown()
    yield
    wandb.teardown()


def _offline_runs(run_dir):
    return list(run_dir.glob("wandb/offline-run-*"))


def test_empty_wandb_mode_is_unset(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "")
    assert resolve_mode(None) == "offline"  # no key: offline, as with WANDB_MODE unset
    monkeypatch.setenv("WANDB_MODE", "  ")
    assert resolve_mode(None) == "offline"


def test_invalid_wandb_mode_is_one_line_naming_it(no_credentials, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offlien")
    with pytest.raises(ConfigError) as error:
        RunLogger(tmp_path / "run", wandb_cfg=WandbConfig())
    message = str(error.value)
    assert "WANDB_MODE='offlien'" in message and "online, offline, disabled" in message
    assert len(message.splitlines()) == 1


def test_config_mode_wins_over_environment(no_credentials, monkeypatch, tmp_path):
    # W&B itself would reject this value with a pydantic traceback, even with mode= given.
    monkeypatch.setenv("WANDB_MODE", "offlien")
    logger = RunLogger(tmp_path / "run", wandb_cfg=WandbConfig(mode="offline"))
    logger.log({"loss": 1.0}, step=1)
    logger.finish()
    assert len(_offline_runs(tmp_path / "run")) == 1
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode("disabled") == "disabled"
    assert RunLogger(tmp_path / "other", wandb_cfg=WandbConfig(mode="disabled")).run is None


def test_unreachable_server_goes_offline_with_one_warning(no_credentials, monkeypatch, tmp_path, caplog):
    for name, value in UNREACHABLE.items():
        monkeypatch.setenv(name, value)
    assert resolve_mode(None) == "online"  # a key and no mode: online is tried
    with caplog.at_level(logging.WARNING, logger="forensics.training.runlog"):
        logger = RunLogger(tmp_path / "run", wandb_cfg=WandbConfig(init_timeout=2))
    logger.log({"loss": 1.0}, step=1)
    logger.finish()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "wandb sync" in warnings[0] and "2 s" in warnings[0], warnings
    assert "127.0.0.1:1" in warnings[0]  # the closed local port was tried, not the internet
    assert len(_offline_runs(tmp_path / "run")) == 1


@pytest.mark.parametrize("where", ["config", "environment"])
def test_unreachable_server_stops_when_online_was_asked_for(no_credentials, monkeypatch, tmp_path, where):
    for name, value in UNREACHABLE.items():
        monkeypatch.setenv(name, value)
    if where == "environment":
        monkeypatch.setenv("WANDB_MODE", "online")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    cfg = WandbConfig(mode="online" if where == "config" else None, init_timeout=2)
    with pytest.raises(ForensicsError) as error:
        RunLogger(tmp_path / "run", wandb_cfg=cfg)
    message = str(error.value)
    assert "online" in message and "wandb.mode=offline" in message and len(message.splitlines()) == 1
    assert "127.0.0.1:1" in message
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == '{"step": 1, "loss": 0.5}\n'  # nothing touched


def test_init_timeout_is_validated():
    with pytest.raises(ConfigError, match="init_timeout"):
        WandbConfig(init_timeout=0).validate()
