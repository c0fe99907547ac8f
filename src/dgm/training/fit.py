"""Train a model into a run folder, resume it, and write the final report.

A run folder holds: config.json (model config + data + training settings), model.safetensors
(best on validation), last.ckpt (for --resume), metrics.jsonl, samples.png, loss.png,
results.json and summary.md.
"""

from __future__ import annotations

import logging
import math
import platform
import sys
import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, TQDMProgressBar
from lightning.pytorch.utilities import rank_zero_only

import dgm
from dgm import config as cfg_
from dgm import registry
from dgm.data.base import Dataset
from dgm.errors import CheckpointError, ConfigError
from dgm.evaluation.decision import classifies, evaluate_classifier
from dgm.evaluation.likelihood import evaluate_elbo, evaluate_nll
from dgm.io import CONFIG, WEIGHTS, atomic_write, read_config, write_json
from dgm.models.base import GenerativeModel
from dgm.plotting import save_curves, save_density, save_samples
from dgm.training.callbacks import (
    LAST,
    BestModel,
    LastCheckpoint,
    PlainProgress,
    RunLog,
    SampleGrid,
    read_metrics,
)
from dgm.training.config import TrainConfig
from dgm.training.data import TensorDataModule
from dgm.training.module import LitAdversarial, LitModel

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


def prepare_run(out: Path, overwrite: bool) -> None:
    """Refuse to mix a new run into a folder that holds something else."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; choose a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"--out {out} already holds files; continue it with --resume {out}, "
                "pick another folder, or pass --overwrite"
            )
        for name in (
            CONFIG,
            WEIGHTS,
            LAST,
            "metrics.jsonl",
            "samples.png",
            "loss.png",
            "results.json",
            "summary.md",
        ):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def train(
    model_name: str,
    dataset: Dataset,
    out: str | Path,
    model_config: dict[str, Any] | None = None,
    train_config: TrainConfig | dict[str, Any] | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    data_meta: dict[str, Any] | None = None,
    show: Show = _stderr,
) -> dict[str, Any]:
    """Train ``model_name`` on ``dataset`` into run folder ``out``; return the final results.

    ``resume=True`` continues the run in ``out`` from its ``last.ckpt``.
    """
    quiet_lightning()
    run = Path(out)
    entry = registry.get(model_name)
    cfg = (
        train_config
        if isinstance(train_config, TrainConfig)
        else cfg_.build(
            TrainConfig, {**entry.cls.train_defaults, **(train_config or {})}, what="training"
        )
    )
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = entry.cls.for_data(dataset.spec, **(model_config or {}))
    meta = {
        "data": {**(data_meta or {"name": dataset.spec.name}), "spec": dataset.spec.to_dict()},
        "train": cfg_.to_dict(cfg),
        "dgm_version": dgm.__version__,
    }
    adversarial = getattr(model, "adversarial", False)
    if cfg.perturb > 0 and (getattr(model.config, "levels", None) is None or adversarial):
        raise ConfigError(
            "perturb trains a likelihood model of discrete data on mutated inputs; "
            f"{model.name} on {dataset.spec.name} is not one: drop perturb"
        )
    lit = (LitAdversarial if adversarial else LitModel)(model, cfg)
    data = TensorDataModule(dataset, cfg.batch_size, cfg.eval_batch_size)
    on_terminal = sys.stderr.isatty()
    log = RunLog(run, dataset.spec, show=show)
    monitor = f"val_{model.monitor}" if model.has_likelihood else None
    callbacks: list[L.Callback] = [log, BestModel(run, meta, monitor)]
    if cfg.patience > 0 and monitor is not None:
        callbacks.append(
            EarlyStopping(monitor=monitor, mode="min", patience=cfg.patience, check_finite=True)
        )
    callbacks += [
        SampleGrid(run, dataset.spec, cfg.sample_every, cfg.num_samples),
        LastCheckpoint(run),
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
        precision=cfg.precision,  # type: ignore[arg-type]
        # two-player models clip inside their manual steps (Lightning refuses both)
        gradient_clip_val=cfg.grad_clip if cfg.grad_clip > 0 and not adversarial else None,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=on_terminal,
        num_sanity_val_steps=0,
        default_root_dir=str(run),
    )
    # the model and the Trainer are built (and so validated) before anything is written
    if resume:
        if not (run / LAST).is_file():
            raise CheckpointError(
                f"{run} has no {LAST}: it never finished an epoch; start a new run instead"
            )
    elif is_global_zero():
        prepare_run(run, overwrite)
        # written first, so even a run killed in epoch one says what it was
        write_json(
            run / CONFIG, {"model": model.name, "format": 1, "config": model.config_dict(), **meta}
        )
    if trainer.is_global_zero:
        show(
            f"training {model.name} ({model.num_parameters():,} parameters) on {dataset.spec.name} "
            f"({len(dataset.train)} train / {len(dataset.val)} val) -> {run}"
            + (" [resumed]" if resume else "")
        )
    ckpt = str(run / LAST) if resume else None
    trainer.fit(lit, datamodule=data, ckpt_path=ckpt, weights_only=True)
    if not trainer.is_global_zero:
        return {}
    device = trainer.strategy.root_device
    return finish(run, dataset, cfg, elapsed=log.elapsed(), device=device, show=show)


def finish(
    run: Path,
    dataset: Dataset,
    cfg: TrainConfig,
    elapsed: float,
    device: torch.device | None = None,
    show: Show = _stderr,
) -> dict[str, Any]:
    """Reload the best model from the run folder and write samples, curves and the summary."""
    if not (run / WEIGHTS).is_file():
        raise CheckpointError(f"{run}: training ended before any validation; no model to keep")
    model = dgm.load(run, map_location=str(device) if device is not None else None)
    records = read_metrics(run)
    save_curves(records, run / "loss.png", title=f"{model.name} on {dataset.spec.name}")
    t0 = time.perf_counter()
    samples = model.sample(cfg.num_samples)
    sample_s = time.perf_counter() - t0
    save_samples(samples, dataset.spec, run / "samples.png", title=f"{model.name} samples")
    if dataset.spec.shape == (2,) and dataset.spec.levels is None and model.exact_likelihood:
        # a 2-D density can be looked at directly, next to the data and the samples
        more = model.sample(2000) if cfg.num_samples < 2000 else samples
        save_density(
            model.log_prob, dataset.test.x[:5000], more, run / "density.png",
            title=f"{model.name} on {dataset.spec.name}",
        )  # fmt: skip
    key = f"val_{model.monitor}"
    scored = [r for r in records if r.get(key) is not None]
    best = min(scored, key=lambda r: r[key]) if scored else {}
    if not model.has_likelihood and records:  # the latest weights were kept
        best = {"epoch": records[-1]["epoch"]}
    results: dict[str, Any] = {
        "model": model.name,
        "data": dataset.spec.name,
        "parameters": model.num_parameters(),
        **({"receptive_field": model.receptive_field} if hasattr(model, "receptive_field") else {}),
        "epochs": len(records),
        "best_epoch": best.get("epoch"),
        "val_nll_nats": best.get("val_nll"),
        "train_time_s": round(elapsed, 2),
        "sample_time_s": round(sample_s, 3),
    }
    if cfg.test and len(dataset.test) and not model.has_likelihood:
        # no likelihood (GANs): how good the samples are, with dgm's own feature network
        from dgm.evaluation.sample_quality import (
            default_quality_metrics,
            evaluate_sample_quality,
        )

        if default_quality_metrics(dataset):
            quality = evaluate_sample_quality(model, dataset, run, show=show)
            results.update({f"test_{k}": v for k, v in quality.items()})
        else:
            show(
                f"note: {dataset.spec.name} has no labels for a feature network: no sample "
                "quality measured; dgm eval RUN --features DIR can use another run's"
            )
    elif cfg.test and len(dataset.test):
        test = evaluate_nll(model, dataset.test.x, cfg.eval_batch_size)
        if callable(getattr(model, "elbo", None)):  # latent models: also the bound trained on
            test.update(evaluate_elbo(model, dataset.test.x, cfg.eval_batch_size))
        test["estimate"] = model.likelihood_note()
        results.update({f"test_{k}": v for k, v in test.items()})
    if cfg.test and len(dataset.test) and dataset.test.y is not None and classifies(model):
        labels = evaluate_classifier(model, dataset.test.x, dataset.test.y, cfg.eval_batch_size)
        results.update({f"test_{k}": v for k, v in labels.items() if k != "n"})
    write_json(run / "results.json", results)
    write_summary(run, model, dataset, cfg, results)
    if results["val_nll_nats"] is not None:
        show(
            f"best epoch {results['best_epoch']}: val nll {results['val_nll_nats']:.3f} nats; "
            f"{results['epochs']} epochs in {elapsed:.1f}s"
        )
    else:
        show(f"{results['epochs']} epochs in {elapsed:.1f}s; kept epoch {results['best_epoch']}")
    if "test_accuracy" in results:
        show(
            f"test accuracy {results['test_accuracy']:.4f}, expected calibration error "
            f"{results['test_ece']:.4f}"
        )
    if "test_nll_nats" in results:
        show(
            f"test nll {results['test_nll_nats']:.3f} nats ({results['test_bpd']:.4f} bits/dim) "
            f"on {results['test_n']} test examples"
        )
    show(f"wrote {run / 'samples.png'}, {run / 'loss.png'}, {run / 'summary.md'}")
    return results


def write_summary(
    run: Path, model: GenerativeModel, dataset: Dataset, cfg: TrainConfig, res: dict[str, Any]
) -> None:
    """summary.md: what was trained, on what, how well, and how to use it."""

    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else str(v)

    cfg_json = read_config(run)
    rows = "\n".join(f"| {k} | {fmt(v)} |" for k, v in res.items())
    model_cfg = ", ".join(f"{k}={v}" for k, v in cfg_json["config"].items())
    nll_line = (
        f"NLL in nats per example ({model.likelihood_note()}); bits/dim = nats / (D ln 2), "
        f"D = {dataset.spec.dim}"
        if model.has_likelihood
        else "no likelihood: sample quality on dgm's own feature network (see its line above)"
    )
    text = f"""# {model.name} on {dataset.spec.name}

| result | value |
|---|---|
{rows}

- model config: {model_cfg}
- training: optimizer {cfg.optimizer}, lr {cfg.lr}, batch {cfg.batch_size}, seed {cfg.seed}, \
patience {cfg.patience}, ema {cfg.ema}, precision {cfg.precision}
- data: {dataset.source or dataset.spec.name}; {len(dataset.train)} train / {len(dataset.val)} \
val / {len(dataset.test)} test; shape {tuple(dataset.spec.shape)}, levels {dataset.spec.levels}
- {nll_line}
- machine: {platform.platform()}, torch {torch.__version__}

Use it: `dgm eval {run} --json`, `dgm sample {run} -n 64 --out samples.png`,
or in Python `model = dgm.load("{run}")`.
"""
    with atomic_write(run / "summary.md") as f:
        f.write(text)
