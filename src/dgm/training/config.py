"""Training settings: everything about the loop, nothing about the model's maths."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dgm.config import opt

# what `logger` takes: Lightning's CSVLogger and TensorBoardLogger (dgm.training.loggers)
LOGGERS = ("none", "csv", "tensorboard")


@dataclass
class TrainConfig:
    epochs: int = opt(200, "upper bound; early stopping usually ends sooner")
    batch_size: int = opt(64, "training examples per step (per device)")
    eval_batch_size: int = opt(500, "examples per step when scoring validation and test data")
    optimizer: Literal["adamw", "adam", "adamax"] = opt("adamw", "adamw | adam | adamax")
    lr: float = opt(1e-3, "learning rate")
    weight_decay: float = opt(0.0, "decoupled weight decay (AdamW) or L2 (Adam, Adamax)")
    lr_schedule: Literal["constant", "cosine", "plateau"] = opt(
        "constant", "constant | cosine (to 0 at the last epoch) | plateau (halve when stuck)"
    )
    grad_clip: float = opt(1.0, "max gradient norm; 0 disables clipping")
    patience: int = opt(20, "epochs without a better validation NLL before stopping; 0 disables")
    ema: float = opt(
        0.98, "per-step decay of an average of the weights, used to validate and keep; 0 = off"
    )
    epoch_batches: int = opt(
        0, "training batches per epoch (0 = the whole training split): shorter epochs on big data"
    )
    max_time: float = opt(0.0, "seconds of training before stopping; 0 = no limit")
    perturb: float = opt(
        0.0,
        "replace each value of a training input by a random level with this probability: a "
        "background model for dgm ood's likelihood ratio (Ren et al. 2019 use 0.1-0.3, with "
        "weight_decay); discrete data only",
    )
    sample_every: int = opt(5, "epochs between sample grids")
    num_samples: int = opt(64, "samples in each grid")
    seed: int = opt(0, "seeds weights, shuffling and sampling: CPU runs repeat exactly")
    accelerator: str = opt("auto", "cpu | gpu | auto (passed to Lightning)")
    devices: str = opt("auto", "a number, a list, or auto (passed to Lightning)")
    num_nodes: int = opt(1, "machines (passed to Lightning)")
    strategy: str = opt("auto", "auto | ddp | ddp_spawn | ... (passed to Lightning)")
    precision: str = opt(
        "auto",
        "auto (bf16-mixed where the hardware has bf16 units and the family is proven equal, "
        "else 32) | 32 | bf16-mixed | 16-mixed (passed to Lightning)",
    )
    compile: bool = opt(False, "torch.compile the model for training")
    logger: Literal["none", "csv", "tensorboard"] = opt(
        "none",
        "none | csv | tensorboard: Lightning's logger, writing to RUN/logs/ (metrics.jsonl is "
        "written either way)",
    )
    test: bool = opt(True, "evaluate the best model on the test split at the end")

    def __post_init__(self) -> None:
        from dgm.errors import ConfigError

        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError("epochs, batch_size and eval_batch_size must be >= 1")
        if self.max_time < 0:
            raise ConfigError(f"max_time must be >= 0 (0 = no limit), got {self.max_time}")
        if self.logger not in LOGGERS:
            raise ConfigError(f"logger {self.logger!r} unknown; use {', '.join(LOGGERS)}")
        if self.epoch_batches < 0:
            raise ConfigError(f"epoch_batches must be >= 0, got {self.epoch_batches}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.perturb <= 1:
            raise ConfigError(f"perturb must be in [0, 1], got {self.perturb}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema must be in [0, 1), got {self.ema}")
        if self.precision not in (
            "auto",
            "32",
            "32-true",
            "64",
            "64-true",
            "bf16-mixed",
            "16-mixed",
            "bf16-true",
            "16-true",
        ):
            raise ConfigError(
                f"precision {self.precision!r} unknown; use auto, 32, bf16-mixed or 16-mixed"
            )
        if self.accelerator not in ("cpu", "gpu", "cuda", "mps", "auto", "tpu"):
            raise ConfigError(f"accelerator {self.accelerator!r} unknown; use cpu, gpu or auto")


def split_options(model_cls: Any, values: dict[str, Any]) -> tuple[dict, dict]:
    """Route each option by name to the model's config or to :class:`TrainConfig`: what
    ``dgm train --set`` and :func:`dgm.train`'s keywords share."""
    from dgm.config import field_types
    from dgm.errors import ConfigError

    model_keys, train_keys = set(field_types(model_cls.Config)), set(field_types(TrainConfig))
    for other in model_cls.also_builds:  # vqvae's audio options, for vqvae on audio
        model_keys |= set(field_types(other.Config))
    model_opts, train_opts = {}, {}
    for key, value in values.items():
        if key in model_cls.DATA_FIELDS and key in model_keys:
            raise ConfigError(f"{key!r} comes from the data and cannot be set; choose other data")
        if key in model_keys:
            model_opts[key] = value
        elif key in train_keys:
            train_opts[key] = value
        else:
            valid = sorted((model_keys - set(model_cls.DATA_FIELDS)) | train_keys)
            raise ConfigError(
                f"unknown option {key!r} for {model_cls.name}; valid options: {', '.join(valid)}"
            )
    return model_opts, train_opts
