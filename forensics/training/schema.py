"""The configuration schema of a training run: typed sections, one validation.

``forensics train`` reads a YAML file into :class:`TrainConfig` (see
:func:`forensics.config.load_config`); plug-in trainers reuse :class:`LoopConfig`,
:class:`ParamGroupConfig` and :func:`validate_run` for their own schemas. A task plug-in adds
its config section to :class:`TrainConfig` through its
:class:`~forensics.training.tasks.TaskSpec` (``section``), so a section the core has never
heard of is still typed and checked key by key.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, make_dataclass
from typing import Any

from omegaconf import MISSING

from forensics.data.transforms import AugmentConfig
from forensics.errors import ConfigError
from forensics.training.runlog import WandbConfig

#: Metrics where lower is better (``train.best_mode`` defaults from this).
LOWER_IS_BETTER = ("eer", "log_loss", "loss", "mse", "rmse")
#: Keys a resumed run may change: they don't change what is computed.
RESUME_MAY_CHANGE = ("data.num_workers", "data.eval_batch_size", "train.log_every", "train.progress",
                     "wandb.mode", "wandb.tags", "wandb.log_checkpoint")


def check_choices(choices: list[tuple[str, Any, tuple]]) -> None:
    """:class:`ConfigError` for the first ``(key, value, allowed)`` whose value is not allowed."""
    for key, value, allowed in choices:
        if value not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, allowed))}, got '{value}'")


def validate_run(loop: LoopConfig, device: str, batch_size: int) -> None:
    """The checks every trainer's config shares: the ``train`` section, ``device``, the batch size."""
    check_choices([("train.optimizer", loop.optimizer, ("adam", "adamw", "sgd")),
                   ("train.schedule", loop.schedule, ("constant", "step", "cosine")),
                   ("train.amp", loop.amp, ("none", "bf16", "fp16")),
                   ("train.best_mode", loop.best_mode, (None, "max", "min")),
                   ("train.nonfinite", loop.nonfinite, ("stop", "skip"))])
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ConfigError(f"device must be one of auto, cpu, cuda (or cuda:N), got '{device}'")
    for key, value in [("train.epochs", loop.epochs), ("data.batch_size", batch_size),
                       ("train.accum_steps", loop.accum_steps), ("train.log_every", loop.log_every)]:
        if value < 1:
            raise ConfigError(f"{key} must be at least 1, got {value}")
    if loop.lr <= 0:
        raise ConfigError(f"train.lr must be positive, got {loop.lr}")


def choose_best_mode(loop: LoopConfig, lower_is_better: tuple[str, ...] = LOWER_IS_BETTER) -> str:
    """``train.best_mode``, or ``min``/``max`` from the metric's last name."""
    return loop.best_mode or ("min" if loop.best_metric.split("/")[-1] in lower_is_better else "max")


@dataclass
class DataConfig:
    manifest: str = MISSING
    datasets: list[str] | None = None
    methods: list[str] | None = None  # exact list: name "original" to keep the reals
    compressions: list[str] | None = None
    train_split: str = "train"
    val_split: str | None = "val"  # empty: no validation, best.pt is the last epoch
    test_split: str | None = "test"
    frames_per_video: int | None = 8  # training: K random frames per video, redrawn every epoch
    eval_frames_per_video: int | None = None  # val/test: K evenly spaced frames (empty: all)
    balance: str = "loss_weight"  # loss_weight | sampler | none (see forensics/data/datasets.py)
    batch_size: int = 32  # per process
    eval_batch_size: int | None = None  # default: 2 x batch_size
    num_workers: int = 4
    check_files: bool = True
    on_corrupt: str = "stop"  # a truncated tar shard: stop | skip its missing samples (forensics/data/shards.py)
    # sbi: a self-blended twin of every train and val real crop (forensics/data/sbi.py; needs landmarks)
    pseudo_fakes: str | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ModelConfig:
    name: str = "mobilenetv3_small_100"  # any timm model or registered baseline
    pretrained: bool = False
    pretrained_file: str | None = None  # local ImageNet weights (offline clusters)
    checkpoint: str | None = None  # forensics checkpoint to start from (strict)
    in_chans: int | None = None
    input_size: int | None = None  # default: the model's pretrained config
    drop_rate: float | None = None
    sync_bn: bool = False  # SyncBatchNorm under multi-GPU DDP
    compile: bool = False  # torch.compile
    # On CUDA, NHWC memory layout: cuDNN's fast convolution kernels want it (Xception trains
    # 1.9x faster on an H200: benchmarks/train_step.py --channels-last). Ignored on CPU.
    channels_last: bool = True


@dataclass
class ParamGroupConfig:
    prefix: str = MISSING  # parameter-name prefix ("head" names the classifier)
    lr: float = MISSING  # 0: not handed to the optimizer


@dataclass
class FreezeConfig:
    head_only_epochs: int = 0  # train only the classifier for the first K epochs
    until: str | None = None  # freeze every parameter before this one (e.g. "blocks.3")
    groups: list[ParamGroupConfig] = field(default_factory=list)  # per-group learning rates


@dataclass
class LoopConfig:
    epochs: int = 10
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 2e-4
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd
    schedule: str = "constant"  # constant | step | cosine
    step_epochs: int = 7  # step: multiply lr by gamma every step_epochs
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    min_lr: float = 0.0  # cosine floor
    amp: str = "none"  # none | bf16 | fp16
    accum_steps: int = 1
    clip_grad: float | None = None
    ema_decay: float | None = None  # e.g. 0.999: evaluate and keep EMA weights
    best_metric: str = "video/auc"  # chosen on the validation split
    best_mode: str | None = None  # max | min (default from the metric's name)
    early_stop_patience: int | None = None  # epochs without improvement before stopping
    video_strategy: str = "mean"  # mean | median | confident
    log_every: int = 10
    progress: bool = True
    nonfinite: str = "stop"  # stop | skip: a NaN/inf loss stops the run, or its step is skipped
    max_nonfinite: int = 10  # skip: stop after this many skipped steps


@dataclass
class RunConfig:
    """What every trainer's config starts with (what :func:`forensics.training.session.open_run` reads)."""

    output_dir: str = MISSING
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda


@dataclass
class TrainConfig(RunConfig):
    task: str = "binary"  # binary | multiclass | multilabel, or a plug-in's task
    classes: list[str] | None = None  # multiclass/multilabel; default: methods in the train split
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    # A task plug-in may add its own section (TaskSpec.section): see extended_schema.

    def validate(self) -> None:
        from forensics.data.datasets import BALANCE
        from forensics.training.metrics import VIDEO_STRATEGIES
        from forensics.training.tasks import REGISTRY

        check_choices([("task", self.task, tuple(REGISTRY.names())), ("data.balance", self.data.balance, BALANCE),
                       ("train.video_strategy", self.train.video_strategy, tuple(VIDEO_STRATEGIES)),
                       ("data.pseudo_fakes", self.data.pseudo_fakes, (None, "sbi", "sbi_lowres"))])
        validate_run(self.train, self.device, self.data.batch_size)
        if self.freeze.head_only_epochs and self.freeze.until:
            raise ConfigError("freeze.head_only_epochs and freeze.until are exclusive: pick one")
        self.data.augment.validate()
        from forensics.data.shards import check_on_corrupt

        check_on_corrupt(self.data.on_corrupt)
        self.wandb.validate()
        check = REGISTRY.get(self.task).check
        if check is not None:
            check(self)

    @classmethod
    def extended_schema(cls) -> type:
        """This schema plus the config sections of the registered task plug-ins (``load_config`` uses it)."""
        from forensics.training.tasks import REGISTRY

        sections = tuple(spec.section for spec in map(REGISTRY.get, REGISTRY.names()) if spec.section)
        return _with_sections(cls, sections)

    @property
    def best_mode(self) -> str:
        return choose_best_mode(self.train)


@functools.cache
def _with_sections(schema: type, sections: tuple[tuple[str, type], ...]) -> type:
    """``schema`` with one more dataclass field per ``(key, dataclass)`` section (same name, same module)."""
    if not sections:
        return schema
    fields = [(key, section, field(default_factory=section)) for key, section in sections]
    extended = make_dataclass(schema.__name__, fields, bases=(schema,))
    extended.__module__, extended.__qualname__ = schema.__module__, schema.__qualname__
    return extended
