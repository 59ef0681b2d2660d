"""Typed configs: load, override, and the one-line errors for bad input."""

from dataclasses import dataclass, field

import pytest
import yaml
from omegaconf import MISSING

from forensics.config import config_diff, load_config, to_dict, write_run_info
from forensics.errors import ConfigError


@dataclass
class Train:
    lr: float = 1e-3
    epochs: int = 3
    optimizer: str = "adam"


@dataclass
class Data:
    manifest: str = MISSING
    frames_per_video: int = 32
    methods: list[str] = field(default_factory=lambda: ["FaceSwap"])


@dataclass
class Experiment:
    data: Data = field(default_factory=Data)
    train: Train = field(default_factory=Train)

    def validate(self) -> None:
        if self.train.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"train.optimizer must be adam or sgd, got '{self.train.optimizer}'")


def write(tmp_path, data, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_file_then_overrides(tmp_path):
    path = write(tmp_path, {"data": {"manifest": "m.csv"}, "train": {"lr": 0.01}})
    cfg = load_config(Experiment, path, ["train.epochs=7", "data.methods=[A,B]"])
    assert isinstance(cfg, Experiment) and isinstance(cfg.train, Train)
    assert cfg.data.manifest == "m.csv"
    assert cfg.train.lr == 0.01 and cfg.train.epochs == 7
    assert cfg.data.methods == ["A", "B"]
    assert cfg.data.frames_per_video == 32  # default kept


def test_override_converts_types(tmp_path):
    path = write(tmp_path, {"data": {"manifest": "m.csv"}})
    cfg = load_config(Experiment, path, ["train.lr=1e-4"])
    assert cfg.train.lr == pytest.approx(1e-4)


@pytest.mark.parametrize("data, key", [
    ({"data": {"manifest": "m", "frames": 3}}, "data.frames"),
    ({"data": {"manifest": "m"}, "trian": {}}, "trian"),
])
def test_unknown_key_names_key_and_file(tmp_path, data, key):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(Experiment, path)
    message = str(info.value)
    assert key in message and str(path) in message and "\n" not in message


def test_wrong_type_names_key_and_file(tmp_path):
    path = write(tmp_path, {"data": {"manifest": "m"}, "train": {"epochs": "many"}})
    with pytest.raises(ConfigError, match=r"exp\.yaml.*train\.epochs"):
        load_config(Experiment, path)


def test_wrong_type_in_override_names_command_line(tmp_path):
    path = write(tmp_path, {"data": {"manifest": "m"}})
    with pytest.raises(ConfigError, match=r"command line.*train\.lr"):
        load_config(Experiment, path, ["train.lr=fast"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(Experiment, path, ["train.lr"])


def test_missing_required_value(tmp_path):
    path = write(tmp_path, {"train": {"lr": 0.1}})
    with pytest.raises(ConfigError, match=r"exp\.yaml.*data\.manifest"):
        load_config(Experiment, path)


def test_validate_hook_and_bad_yaml(tmp_path):
    path = write(tmp_path, {"data": {"manifest": "m"}, "train": {"optimizer": "lbfgs"}})
    with pytest.raises(ConfigError, match=r"exp\.yaml.*train\.optimizer"):
        load_config(Experiment, path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML"):
        load_config(Experiment, bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(Experiment, tmp_path / "absent.yaml")


def test_run_info_round_trips(tmp_path):
    path = write(tmp_path, {"data": {"manifest": "m.csv"}})
    cfg = load_config(Experiment, path, ["train.epochs=2"])
    write_run_info(cfg, tmp_path / "run")
    saved = load_config(Experiment, tmp_path / "run" / "config.yaml")
    assert saved == cfg
    assert (tmp_path / "run" / "run.json").read_text().count("commit") == 1


def test_config_diff_names_changed_keys():
    a = to_dict(Experiment(data=Data(manifest="m")))
    b = to_dict(Experiment(data=Data(manifest="m"), train=Train(lr=0.5)))
    assert config_diff(a, b) == ["train.lr"]
    assert config_diff(a, a) == []


def test_bad_value_from_the_command_line_names_the_override(tmp_path):
    path = write(tmp_path, {"data": {"manifest": "m"}, "train": {"optimizer": "adam"}})
    with pytest.raises(ConfigError) as error:
        load_config(Experiment, path, ["train.lr=0.1", "train.optimizer=adamm"])
    assert str(error.value) == ("train.optimizer=adamm (command line): train.optimizer must be adam or sgd, "
                                "got 'adamm'")
    # The same bad value in the file is still the file's.
    path = write(tmp_path, {"data": {"manifest": "m"}, "train": {"optimizer": "adamm"}})
    with pytest.raises(ConfigError, match=r"^.*exp\.yaml: train\.optimizer"):
        load_config(Experiment, path, ["train.lr=0.1"])
