"""Training settings: everything about the loop, nothing about the model's maths."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class TrainConfig:
    epochs: int = 200  # upper bound; early stopping usually ends sooner
    batch_size: int = 64
    eval_batch_size: int = 500
    optimizer: Literal["adamw", "adam", "adamax"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: Literal["constant", "cosine", "plateau"] = "constant"
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    patience: int = 20  # epochs without a better validation NLL before stopping; 0 disables
    ema: float = 0.0  # decay of an exponential moving average of the weights; 0 disables
    max_time: float = 0.0  # seconds of training before stopping; 0 = no limit
    sample_every: int = 5  # epochs between sample grids
    num_samples: int = 64  # samples in each grid
    seed: int = 0
    accelerator: str = "auto"  # cpu | gpu | auto (passed to Lightning)
    devices: str = "auto"  # a number, a list, or auto (passed to Lightning)
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | ddp_spawn | ... (passed to Lightning)
    precision: str = "32"  # 32 | bf16-mixed | 16-mixed (passed to Lightning)
    compile: bool = False  # torch.compile the model for training
    test: bool = True  # evaluate the best model on the test split at the end

    def __post_init__(self) -> None:
        from dgm.errors import ConfigError

        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError("epochs, batch_size and eval_batch_size must be >= 1")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema must be in [0, 1), got {self.ema}")
        if self.precision not in (
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
                f"precision {self.precision!r} unknown; use 32, bf16-mixed or 16-mixed"
            )
        if self.accelerator not in ("cpu", "gpu", "cuda", "mps", "auto", "tpu"):
            raise ConfigError(f"accelerator {self.accelerator!r} unknown; use cpu, gpu or auto")
