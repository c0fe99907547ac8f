"""Training: the Lightning glue (``module``), callbacks that keep the run folder, the data on
the device, and :func:`fit`. Training knows no evaluation: :func:`dgm.pipeline.train` trains,
then evaluates the kept weights and writes the report."""

from dgm.training.config import TrainConfig
from dgm.training.fit import Fitted, build, fit
from dgm.training.module import TrainingError

__all__ = ["Fitted", "TrainConfig", "TrainingError", "build", "fit"]
