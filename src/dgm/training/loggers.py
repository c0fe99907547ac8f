"""Lightning's loggers for a run (``TrainConfig.logger``): CSV or TensorBoard files in the run
folder's ``logs/`` (one ``version_N`` folder per training session, so a resumed run adds one),
next to metrics.jsonl, which is written either way. ``tensorboard --logdir runs`` shows every
run under ``runs/``."""

from __future__ import annotations

import importlib.util
import warnings
from typing import TYPE_CHECKING

from dgm.errors import ConfigError
from dgm.training.config import LOGGERS

if TYPE_CHECKING:
    from lightning.pytorch.loggers import Logger

    from dgm.runs import RunFolder


def make_logger(name: str, run: RunFolder) -> Logger | bool:
    """The Lightning logger ``name`` (``none`` | ``csv`` | ``tensorboard``) writing into
    ``run.logs``; False (Lightning's "no logger") for ``none``. Built before training starts,
    so a missing package fails in one line before anything is written."""
    if name == "none":
        return False
    # metrics are logged per epoch: Lightning's per-step interval has nothing to say here
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
    save_dir, folder = str(run.logs.parent), run.logs.name
    if name == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir, name=folder)
    if name == "tensorboard":
        # Lightning writes with tensorboard's SummaryWriter, else tensorboardX's
        if not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
            raise ConfigError(
                "logger tensorboard needs the tensorboard package: pip install tensorboard "
                "(or pip install 'dgm[tensorboard]')"
            )
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(save_dir, name=folder, default_hp_metric=False)
    raise ConfigError(f"logger {name!r} unknown; use {', '.join(LOGGERS)}")


__all__ = ["make_logger"]
