"""The ``keypoints`` section of a training config (read when ``task: keypoints``).

The task plug-in (:mod:`keypoints.task`) adds it to ``forensics train``'s schema. The
defaults and why they are so are explained in :mod:`keypoints.data`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from forensics.errors import ConfigError
from keypoints.table import MISSING_POLICIES, OUTSIDE_POLICIES
from keypoints.transforms import KeypointAugmentConfig


@dataclass
class KeypointConfig:
    """Which keypoints, what to do with incomplete rows, how to split a file without a ``split`` column."""

    names: list[str] | None = None  # keypoints to learn (columns NAME_x, NAME_y); default: all in the file
    missing: str = "mask"  # mask | drop: rows missing some keypoints
    outside: str = "keep"  # keep | drop: rows with keypoints outside the image
    val_fraction: float = 0.1  # a file without a split column: share of rows held out for val
    test_fraction: float = 0.1  # ... and for test
    split_seed: int = 0  # that random split (independent of the training seed)
    augment: KeypointAugmentConfig = field(default_factory=KeypointAugmentConfig)

    def validate(self) -> None:
        if self.missing not in MISSING_POLICIES:
            raise ConfigError(f"keypoints.missing must be one of {', '.join(MISSING_POLICIES)}, got '{self.missing}'")
        if self.outside not in OUTSIDE_POLICIES:
            raise ConfigError(f"keypoints.outside must be one of {', '.join(OUTSIDE_POLICIES)}, got '{self.outside}'")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1):
            raise ConfigError("keypoints.val_fraction and keypoints.test_fraction must be in [0, 1) "
                              f"and leave rows for training, got {self.val_fraction} and {self.test_fraction}")
        self.augment.validate()
