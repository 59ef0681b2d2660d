"""A training loss that turns NaN or infinite: stop in one line, or skip the step.

A diverging run (a learning rate far too high, an fp16 overflow outside the scaler, a bad
sample) makes the loss non-finite; from then on the weights are garbage. Left alone the run
goes on and dies later with a traceback from a metric over NaN scores. ``train.nonfinite``:

* ``stop`` (default): the loss is checked once per logging step (one device sync, which the
  logging step pays anyway) and at the end of every epoch; the first non-finite value stops
  the run with one line naming epoch and step. Checkpoints saved before (``last.pt``,
  ``best.pt`` of earlier epochs) are kept; nothing is saved from the broken weights.
* ``skip``: every optimizer step's loss is checked (one sync per step), a non-finite step is
  dropped before it reaches the weights, and the run stops after ``train.max_nonfinite``
  skipped steps.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.distributed as dist

from forensics.errors import ForensicsError

log = logging.getLogger(__name__)

POLICIES = ("stop", "skip")
ADVICE = "lower train.lr, set train.clip_grad, or use train.nonfinite=skip"


class NonFiniteLoss(ForensicsError):
    """The training loss became NaN or infinite."""


def all_finite(value: torch.Tensor | float) -> bool:
    """Whether ``value`` is finite on every rank (ranks must agree, or DDP would hang)."""
    if not (dist.is_available() and dist.is_initialized()):
        return bool(torch.isfinite(torch.as_tensor(value)).all())
    flag = torch.isfinite(torch.as_tensor(value, dtype=torch.float32)).all().float().reshape(1)
    if dist.get_backend() == "nccl":
        flag = flag.cuda()
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item() > 0)


@dataclass
class LossGuard:
    """What to do with a non-finite loss (``policy`` ``stop`` or ``skip``; see the module doc)."""

    policy: str = "stop"
    max_skips: int = 10
    skipped: int = 0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ForensicsError(f"train.nonfinite must be one of {', '.join(POLICIES)}, got '{self.policy}'")

    def skip_step(self, step_loss: torch.Tensor, epoch: int, step: int) -> bool:
        """Under ``skip``: whether this optimizer step must be dropped (its loss is not finite)."""
        if self.policy != "skip" or all_finite(step_loss):
            return False
        self.skipped += 1
        if self.skipped > self.max_skips:
            raise NonFiniteLoss(f"the training loss was non-finite on {self.skipped} steps (more than "
                                f"train.max_nonfinite={self.max_skips}), last at epoch {epoch}, step {step}: "
                                f"stopped; checkpoints saved before are kept; {ADVICE.split(', or')[0]}")
        log.warning("non-finite loss at epoch %d, step %d: step skipped (%d of at most %d)", epoch, step,
                    self.skipped, self.max_skips)
        return True

    def check(self, value: float, epoch: int, step: int) -> None:
        """Stop (raise :class:`NonFiniteLoss`) if the loss ``value`` logged at ``step`` is not finite."""
        if math.isfinite(value) and all_finite(value):
            return
        raise NonFiniteLoss(f"the training loss became {value} at epoch {epoch}, step {step}: stopped; "
                            f"checkpoints saved before (last.pt, best.pt) are kept; {ADVICE}")
