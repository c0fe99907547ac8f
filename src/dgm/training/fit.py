"""Train a model into a run folder and resume it: the Lightning Trainer, its callbacks and the
data on the device. Training ends with the kept weights in the run folder; evaluating them and
writing the report is :mod:`dgm.pipeline`'s job (training knows no evaluation).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, TQDMProgressBar
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from dgm import config as cfg_
from dgm import registry
from dgm.data.base import Dataset, DataSpec
from dgm.errors import CheckpointError, ConfigError, Interrupted
from dgm.models.base import GenerativeModel
from dgm.models.capabilities import Adversarial, TextModel
from dgm.runs import RunFolder
from dgm.training.callbacks import BestModel, LastCheckpoint, PlainProgress, RunLog, SampleGrid
from dgm.training.config import TrainConfig
from dgm.training.data import TensorDataModule
from dgm.training.loggers import make_logger
from dgm.training.module import LitAdversarial, LitModel
from dgm.training.precision import resolve_precision
from dgm.version import __version__

Show = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def is_global_zero() -> bool:
    """True in the process that writes files (also before Lightning starts its processes)."""
    return rank_zero_only.rank == 0


def quiet_lightning() -> None:
    """Lightning's info lines (GPU available, seeds, ...) are noise in our output."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    warnings.filterwarnings("ignore", ".*on_train_epoch_end.*sync_dist.*")
    warnings.filterwarnings("ignore", ".*recommended to use `self.log.*sync_dist=True.*")


def _trainer_devices(devices: str) -> Any:
    if devices == "auto":
        return "auto"
    try:
        return int(devices)
    except ValueError:
        return devices  # e.g. "0,1" or "[0, 2]", understood by Lightning


class _Stop(L.Callback):
    """What stopped training: Ctrl-C or SIGTERM (``interrupted``), and the last epoch saved
    in last.ckpt (``saved``; None before the first). Listed after :class:`LastCheckpoint`,
    so its epoch-end hook runs once the checkpoint is written."""

    def __init__(self) -> None:
        self.saved: int | None = None
        self.interrupted = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after a resumed checkpoint is restored: current_epoch is the epoch that starts now
        self.saved = trainer.current_epoch - 1 if trainer.current_epoch > 0 else None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.saved = trainer.current_epoch

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.interrupted = isinstance(exception, KeyboardInterrupt | SIGTERMException)
        bar = trainer.progress_bar_callback
        if self.interrupted and isinstance(bar, TQDMProgressBar):
            # cleared now, so the line saying how to resume starts on a clean line
            with suppress(TypeError):  # (a bar never opened)
                bar.val_progress_bar.close()
            with suppress(TypeError):
                bar.train_progress_bar.close()


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (``kill``, a scheduler's stop) stops training as Ctrl-C does: Lightning's
    clean-up, then :class:`Interrupted`. The handlers of SIGTERM and SIGINT (which Lightning
    ignores after a Ctrl-C) are as before afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    before = signal.getsignal(signal.SIGINT), signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])


@dataclass(frozen=True)
class Fitted:
    """What training leaves for the pipeline: the run, its settings and where it ran."""

    run: RunFolder
    config: TrainConfig
    elapsed: float  # seconds of training, over all sessions of a resumed run
    device: torch.device


def build_train_config(
    model_name: str,
    train_config: TrainConfig | dict[str, Any] | None,
    spec: DataSpec | None = None,
) -> TrainConfig:
    """The training settings: a :class:`TrainConfig` as it is, or values (strings from the
    command line are parsed) over the family's ``train_defaults``."""
    if isinstance(train_config, TrainConfig):
        return train_config
    cls = registry.get(model_name).cls
    defaults = cls.train_defaults_for(spec) if spec is not None else cls.train_defaults
    return cfg_.build(TrainConfig, {**defaults, **(train_config or {})}, what="training")


def build(
    model_name: str,
    spec: DataSpec,
    model_config: dict[str, Any] | None = None,
    train_config: TrainConfig | dict[str, Any] | None = None,
) -> tuple[GenerativeModel, TrainConfig]:
    """A new run's model, sized for the data ``spec``, and its training settings; everything
    seeded first (``seed``), so one seed gives the same initial weights."""
    cfg = build_train_config(model_name, train_config, spec)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    return registry.get(model_name).cls.for_data(spec, **(model_config or {})), cfg


def _check_same_data(run: RunFolder, model: GenerativeModel) -> None:
    """A resumed run's data must be what it was: the checkpoint's weights have the shapes of
    the first session's data (a user file changed since gives a clear line, not a failed load)."""
    saved = run.read_config().get("config", {})
    for key in type(model).DATA_FIELDS:
        if key not in saved:
            continue
        was, now = saved[key], vars(model.config).get(key)
        if isinstance(was, list):  # JSON gives tuples back as lists
            was = tuple(was)
        if was != now:
            raise CheckpointError(
                f"--resume {run}: the data changed since the run started ({key} was {was}, "
                f"is now {now}); resume with the same data or start a new run"
            )


def fit(
    model: GenerativeModel,
    dataset: Dataset,
    out: str | Path,
    cfg: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    data_meta: dict[str, Any] | None = None,
    show: Show = _stderr,
) -> Fitted | None:
    """Train ``model`` (from :func:`build`) on ``dataset`` into run folder ``out``: the kept
    weights, the curves, ``last.ckpt``. None in every process but the one that writes files.

    ``resume=True`` continues the run in ``out`` from its ``last.ckpt``.
    """
    quiet_lightning()
    run = RunFolder(out)
    if isinstance(model, TextModel) and dataset.tokenizer is not None:
        model.tokenizer = dataset.tokenizer  # samples.txt and the report decode with it
    meta = {
        "data": {**(data_meta or {"name": dataset.spec.name}), "spec": dataset.spec.to_dict()},
        "train": cfg_.to_dict(cfg),
        "dgm_version": __version__,
    }
    adversarial = isinstance(model, Adversarial)
    # text: a random id in place of the end token or padding would break the sentence's layout
    if cfg.perturb > 0 and (model.levels is None or adversarial or dataset.spec.is_text):
        raise ConfigError(
            "perturb trains a likelihood model of discrete data on mutated inputs; "
            f"{model.name} on {dataset.spec.name} is not one: drop perturb"
        )
    precision, precision_note = resolve_precision(cfg.precision, model, cfg.accelerator)
    # what runs; config.json keeps the user's "auto", so a resumed run decides again where it runs
    cfg = replace(cfg, precision=precision)
    lit = (LitAdversarial if adversarial else LitModel)(model, cfg)
    data = TensorDataModule(dataset, cfg.batch_size, cfg.eval_batch_size)
    on_terminal = sys.stderr.isatty()
    log = RunLog(run, dataset.spec, show=show)
    monitor = f"val_{model.monitor}" if model.has_likelihood else None
    if isinstance(model, Adversarial) and model.sample_monitor is not None:
        monitor = f"val_{model.sample_monitor}"  # no likelihood: a measure of the samples
    callbacks: list[L.Callback] = [log, BestModel(run, meta, monitor)]
    if cfg.patience > 0 and monitor is not None:
        callbacks.append(
            EarlyStopping(monitor=monitor, mode="min", patience=cfg.patience, check_finite=True)
        )
    stop = _Stop()  # after LastCheckpoint: it sees the epochs last.ckpt holds
    callbacks += [
        SampleGrid(run, dataset.spec, cfg.sample_every, n=cfg.num_samples),
        LastCheckpoint(run),
        stop,
    ]
    callbacks.append(TQDMProgressBar(leave=False) if on_terminal else PlainProgress(show))
    trainer = L.Trainer(
        max_epochs=cfg.epochs,
        max_time=timedelta(seconds=cfg.max_time) if cfg.max_time > 0 else None,
        limit_train_batches=cfg.epoch_batches if cfg.epoch_batches > 0 else None,
        accelerator=cfg.accelerator,
        devices=_trainer_devices(cfg.devices),
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=precision,  # type: ignore[arg-type]
        # two-player models clip inside their manual steps (Lightning refuses both)
        gradient_clip_val=cfg.grad_clip if cfg.grad_clip > 0 and not adversarial else None,
        callbacks=callbacks,
        logger=make_logger(cfg.logger, run),
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=on_terminal,
        num_sanity_val_steps=0,
        default_root_dir=str(run),
    )
    # the model and the Trainer are built (and so validated) before anything is written
    if resume:
        if not run.has_checkpoint():
            raise CheckpointError(
                f"{run} has no {run.LAST}: it never finished an epoch; start a new run instead"
            )
        _check_same_data(run, model)
    elif is_global_zero():
        run.prepare(overwrite)
        # written first, so even a run killed in epoch one says what it was
        run.write_config(model, meta)
    if dataset.tokenizer is not None and is_global_zero() and not (resume and run.has_tokenizer()):
        run.write_tokenizer(dataset.tokenizer)  # what re-reads the run's text (never re-trained)
    if trainer.is_global_zero:
        if precision_note:
            show(precision_note)
        show(
            f"training {model.name} ({model.num_parameters():,} parameters) on {dataset.spec.name} "
            f"({len(dataset.train)} train / {len(dataset.val)} val) -> {run}"
            + (" [resumed]" if resume else "")
        )
    ckpt = str(run.checkpoint) if resume else None
    try:
        with _sigterm_interrupts():
            trainer.fit(lit, datamodule=data, ckpt_path=ckpt, weights_only=True)
    except (KeyboardInterrupt, SystemExit) as e:
        # Lightning answers Ctrl-C with its clean-up, then sys.exit(1), and its own SIGTERM
        # handling with SIGTERMException: either way say how far the run got and how to go on
        if isinstance(e, SystemExit) and not stop.interrupted:
            raise
        raise Interrupted(str(run), stop.saved) from None
    if not trainer.is_global_zero:
        return None
    return Fitted(run, cfg, elapsed=log.elapsed(), device=trainer.strategy.root_device)
