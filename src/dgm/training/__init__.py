"""Training: the Lightning glue, callbacks that keep run folders, and ``train``."""

from dgm.training.config import TrainConfig
from dgm.training.fit import train

__all__ = ["TrainConfig", "train"]
