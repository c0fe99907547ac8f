"""Callbacks that keep the run folder: metrics.jsonl, model.safetensors (best), last.ckpt,
sample grids. Every write is atomic and happens on global rank zero only."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar

from dgm.data.base import DataSpec
from dgm.models.capabilities import TextModel
from dgm.plotting import AUDIO_PANELS, save_audio_samples, save_curves, save_samples
from dgm.runs import RunFolder

PROGRESS_EVERY = 60.0  # seconds between plain progress lines when there is no terminal


def _scalar(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v.item() if isinstance(v, torch.Tensor) else v)
    return v if math.isfinite(v) else None


def read_metrics(run: str | Path) -> list[dict]:
    """The epochs of a run's metrics.jsonl."""
    return RunFolder(run).read_metrics()


class RunLog(Callback):
    """One JSON line per epoch in metrics.jsonl, a plain line for people, and the curves."""

    def __init__(self, run: str | Path, spec: DataSpec, show: Any = None) -> None:
        self.run, self.spec = RunFolder(run), spec
        self.show = show or (lambda s: print(s, file=sys.stderr, flush=True))
        self.start = time.perf_counter()
        self.elapsed_before = 0.0  # training seconds of earlier (resumed) sessions

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed": self.elapsed()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.elapsed_before = float(state.get("elapsed", 0.0))

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.start

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # runs after a checkpoint is restored, so current_epoch is the epoch we resume at
        if trainer.is_global_zero:
            # a resumed run repeats the epoch it was killed in: drop lines from that epoch on
            epoch = trainer.current_epoch
            self.run.keep_metrics(r for r in self.run.read_metrics() if r["epoch"] < epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        m = trainer.callback_metrics
        rec: dict[str, Any] = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "time_s": round(self.elapsed(), 3),
            "lr": trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None,
        }
        for key, value in sorted(m.items()):
            rec[key] = _scalar(value)
        text = rec.get("val_tokens") is not None  # per token, not per dimension of max_len
        if rec.get("val_nll") is not None and text:
            rec["val_ppl"] = math.exp(min(rec["val_nll"] / rec["val_tokens"], 700.0))
        elif rec.get("val_nll") is not None:
            rec["val_bpd"] = rec["val_nll"] / (self.spec.dim * math.log(2))
        if not trainer.is_global_zero:
            return
        self.run.append_metrics(rec)
        parts = [f"epoch {rec['epoch']:>3}"]
        if rec.get("train_loss") is not None:
            parts.append(f"train {rec['train_loss']:.3f}")
        if rec.get("val_nll") is not None and text:
            parts.append(f"val nll {rec['val_nll']:.3f} nats (ppl {rec['val_ppl']:.2f})")
        elif rec.get("val_nll") is not None:
            parts.append(f"val nll {rec['val_nll']:.3f} nats ({rec['val_bpd']:.4f} bpd)")
        for key in ("val_kl", "val_mi", "val_active_units"):  # a latent text model's collapse
            if rec.get(key) is not None:
                parts.append(f"{key.removeprefix('val_')} {rec[key]:.3g}")
        for key in ("d_loss", "g_loss", "d_real", "d_fake"):  # two-player models
            if rec.get(key) is not None:
                parts.append(f"{key} {rec[key]:.3f}")
        parts.append(f"{rec['time_s']:.1f}s")
        bar = trainer.progress_bar_callback
        if isinstance(bar, TQDMProgressBar) and bar.is_enabled:
            bar.print("  ".join(parts), file=sys.stderr)  # above the bar, not through it
        else:
            self.show("  ".join(parts))


class BestModel(Callback):
    """Keep the model (the training module's ``eval_model``: EMA weights if used) with the
    lowest ``monitor`` (the validation NLL, or the model's own ``monitor`` metric: a hybrid's
    joint objective, a GAN's MMD of samples to data) as safetensors.

    ``monitor=None`` (models without a likelihood or a measure of their samples: GANs on
    images) keeps the latest weights instead. Neither keeps weights while the training module
    says they are ``suspect`` (a collapsing game)."""

    def __init__(
        self, run: str | Path, extra: dict[str, Any], monitor: str | None = "val_nll"
    ) -> None:
        self.run, self.extra, self.monitor = RunFolder(run), extra, monitor
        self.best = math.inf
        self.best_epoch = -1

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if self.monitor is None:
            if not pl_module.suspect:  # type: ignore[attr-defined]
                self.best_epoch = trainer.current_epoch
                if trainer.is_global_zero:
                    self.run.save_model(pl_module.eval_model, self.extra)  # type: ignore[arg-type]
            return
        value = _scalar(trainer.callback_metrics.get(self.monitor))
        if value is None or value >= self.best or pl_module.suspect:  # type: ignore[attr-defined]
            return
        self.best, self.best_epoch = value, trainer.current_epoch
        if trainer.is_global_zero:
            self.run.save_model(pl_module.eval_model, self.extra)  # type: ignore[arg-type]


class LastCheckpoint(Callback):
    """Write last.ckpt at the end of every epoch (temp file, then rename), for --resume."""

    def __init__(self, run: str | Path) -> None:
        self.run = RunFolder(run)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # every rank takes part in save_checkpoint; only global rank zero writes the file
        final = self.run.checkpoint
        tmp = final.with_name(f".{final.name}.tmp")
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            tmp.replace(final)  # a rename is atomic: last.ckpt is old or new, never half


class SampleGrid(Callback):
    """A samples.png grid every few epochs (and loss.png), to watch the model learn; for a
    text model, samples.txt: its samples decoded, one a line."""

    def __init__(self, run: str | Path, spec: DataSpec, every: int, n: int) -> None:
        self.run, self.spec, self.every, self.n = RunFolder(run), spec, every, n

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or self.every <= 0:
            return
        epoch = trainer.current_epoch
        if (epoch + 1) % self.every:
            return
        model = pl_module.eval_model  # type: ignore[attr-defined]
        was_training = model.training
        model.eval()
        with torch.no_grad():  # audio: a few seconds, each drawn one sample at a time
            x = model.sample(min(self.n, AUDIO_PANELS) if self.spec.is_audio else self.n)
        model.train(was_training)
        if self.spec.is_audio:
            save_audio_samples(
                x, self.spec, self.run.samples_audio, self.run.samples_plot, title=f"epoch {epoch}"
            )
        elif isinstance(model, TextModel) and model.tokenizer is not None:
            self.run.write_samples_text(model.texts(x))
        elif not self.spec.is_text:
            save_samples(x, self.spec, self.run.samples_plot, title=f"epoch {epoch}")
        save_curves(self.run.read_metrics(), self.run.loss_plot)


class PlainProgress(Callback):
    """Without a terminal, a plain line every ``every`` seconds inside long epochs, so a log
    shows that a run lives (on a terminal the progress bar does this)."""

    def __init__(self, show: Any, every: float | None = None) -> None:
        self.show = show
        self.every = PROGRESS_EVERY if every is None else every
        self.last = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.last = time.perf_counter()

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        now = time.perf_counter()
        if now - self.last < self.every or not trainer.is_global_zero:
            return
        self.last = now
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        total = trainer.num_training_batches
        of = f"/{total}" if isinstance(total, int) else ""
        text = f"  loss {_scalar(loss):.3f}" if _scalar(loss) is not None else ""
        self.show(f"epoch {trainer.current_epoch:>3}  batch {batch_idx + 1}{of}{text}")
