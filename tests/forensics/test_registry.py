"""The one registry pattern: names to objects, plug-ins loaded from an entry-point group on first use."""

from __future__ import annotations

import pytest

from forensics.errors import ForensicsError
from forensics.registry import Registry


def test_register_get_and_refuse_a_second_object_under_one_name():
    registry: Registry[int] = Registry("widget")
    registry.register("one", 1)
    registry.register("one", 1)  # the same object again: fine (a module imported twice)
    assert registry.get("one") == 1 and "one" in registry and registry.names() == ["one"]
    with pytest.raises(ValueError, match="widget 'one' is registered twice"):
        registry.register("one", 2)
    with pytest.raises(ForensicsError, match=r"unknown widget 'two' \(choose from one\)"):
        registry.get("two")


def test_plugins_join_through_their_entry_point_group():
    # keypoints registers its task through `forensics.tasks` (pyproject.toml): the core names it nowhere.
    from forensics.training.tasks import REGISTRY, TASKS

    assert TASKS[:3] == ("binary", "multiclass", "multilabel") and "keypoints" in REGISTRY
    assert REGISTRY.get("keypoints").section[0] == "keypoints"
    assert not REGISTRY.get("keypoints").detector and REGISTRY.get("binary").detector


def test_a_plugin_task_adds_its_config_section_to_the_schema():
    from forensics.config import load_config
    from forensics.training.schema import TrainConfig

    cfg = load_config(TrainConfig, None, ["data.manifest=m", "output_dir=o", "task=keypoints",
                                          "train.best_metric=mse", "keypoints.missing=drop"])
    assert isinstance(cfg, TrainConfig) and cfg.keypoints.missing == "drop"


def test_help_lists_core_commands_first_and_plugins_where_they_ask():
    from forensics.cli import _available

    names = list(_available())
    assert names[:2] == ["synth", "preprocess"] and names.index("refiner") == names.index("predict") + 1
