"""The Lightning glue: one module that trains any model through its ``loss`` and scores it
through its ``metrics``; it knows nothing of any family's maths."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel

from dgm.data.inputs import mutate
from dgm.models.base import Batch, GenerativeModel, trusted_inputs, unpack
from dgm.models.capabilities import (
    Adversarial,
    AggressiveInference,
    LatentDiagnostics,
    Scheduled,
)
from dgm.training.config import TrainConfig

# validation examples the latent diagnostics (KL, I(x; z), active units) are computed on
DIAGNOSTIC_EXAMPLES = 1000


def ema_update(decay: float) -> Callable[[list[Tensor], list[Tensor], Tensor], None]:
    """The EMA step for AveragedModel: floating tensors move towards the model's, others
    (integer buffers such as counters or permutations) are copied; a lerp would truncate them.

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates (TensorFlow's
    ExponentialMovingAverage): a plain 0.999 average after 780 steps (one MNIST epoch) would
    still hold 46% of the random initialisation."""
    seen: list[int] = []  # updates so far, counted on the host: no device sync per step

    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        if not seen:  # once, also after a resume: the average's own count
            seen.append(int(num_averaged))
        else:
            seen[0] += 1
        n = seen[0]
        d = min(decay, (1.0 + n) / (10.0 + n))
        pairs = list(zip(averaged, current))
        floats = [(a, c) for a, c in pairs if a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], 1.0 - d)
        for a, c in pairs:
            if not a.is_floating_point():
                a.copy_(c)

    return update


class TrainingError(RuntimeError):
    """Training cannot go on (diverged); the message says what to change."""


def _optimizer_class(cfg: TrainConfig) -> type[torch.optim.Optimizer]:
    return {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "adamax": torch.optim.Adamax}[
        cfg.optimizer
    ]


def _fused(cfg: TrainConfig, params: list[torch.nn.Parameter]) -> dict[str, Any]:
    """``fused=True`` where it is safe: one kernel per step instead of a loop over tensors
    (1.15x faster VAE steps on CPU, benchmarks/bench_vae_speed.py), the same update."""
    if (
        cfg.optimizer != "adamax"
        and "mixed" not in str(cfg.precision)  # Lightning's AMP clips before a fused step
        and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    ):
        return {"fused": True}
    return {}


class LitModel(L.LightningModule):
    def __init__(self, model: GenerativeModel, cfg: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        # an exponential moving average of the weights often generalises better; it is what
        # validation scores and what the run folder keeps
        self.ema = (
            AveragedModel(model, multi_avg_fn=ema_update(cfg.ema), use_buffers=True)
            if cfg.ema > 0
            else None
        )
        if self.ema is not None:  # averaged, never trained: DDP must not wait for its gradients
            self.ema.requires_grad_(False)
        self._train_forward = torch.compile(model.loss) if cfg.compile else model.loss
        # He et al. 2019's aggressive phase (AggressiveInference): on while the model asks for
        # it and I(x; z) on the validation data has not fallen; training state, kept in
        # last.ckpt (on_save_checkpoint)
        self.aggressive = isinstance(model, AggressiveInference) and model.aggressive
        self._last_mi: float | None = None
        self._inner_opt: torch.optim.Optimizer | None = None
        self._inner_batches: Iterator[Any] | None = None
        self._diagnose: list[Tensor] = []  # validation examples for the latent diagnostics
        self._val_keys: set[str] = set()  # what validation_step logged this epoch

    @property
    def suspect(self) -> bool:
        """Whether the run folder must not keep this epoch's weights (see LitAdversarial)."""
        return False

    @property
    def eval_model(self) -> GenerativeModel:
        return self.ema.module if self.ema is not None else self.model  # type: ignore[return-value]

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        if self.cfg.perturb > 0:  # a likelihood ratio's background model sees mutated inputs
            x, y = unpack(batch)
            batch = (mutate(x, self.cfg.perturb, self.model.levels), y)
        if isinstance(self.model, Scheduled):  # the step is the trainer's: resumes continue it
            self.model.set_step(self.global_step)
        with trusted_inputs():  # the batches were checked once, when the data loaded
            if self.aggressive:
                loss = self._aggressive_step(batch, batch_idx)
            else:
                loss = self._train_forward(batch)
        self._check_finite(loss, batch_idx)
        n = batch[0].shape[0] if isinstance(batch, (tuple, list)) else batch.shape[0]
        self.log(
            "train_loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=n,
            sync_dist=True,
        )
        return loss

    def _check_finite(self, loss: Tensor, batch_idx: int) -> None:
        if not torch.isfinite(loss):
            raise TrainingError(
                f"training diverged: the loss is {loss.item()} at epoch {self.current_epoch}, "
                f"step {batch_idx}; {self.model.divergence_advice}"
            )

    # -- He et al. 2019's aggressive inference-network training ------------------------------
    def on_fit_start(self) -> None:
        if self.aggressive and self.trainer.world_size > 1:
            raise TrainingError(
                "aggressive=true runs its encoder-only updates on one device; train on one "
                "device (--devices 1) or drop aggressive"
            )

    def _next_train_batch(self) -> Batch:
        """A training batch for the inner updates: the next of a pass of its own over the
        (shuffled) training data, on the model's device."""
        loader = self.trainer.train_dataloader
        batch = next(self._inner_batches, None) if self._inner_batches is not None else None
        if batch is None:
            self._inner_batches = iter(loader)  # type: ignore[arg-type]
            batch = next(self._inner_batches)
        x, y = unpack(batch)
        return x.to(self.device), None if y is None else y.to(self.device)

    def _aggressive_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """Encoder-only updates, on this batch and then fresh ones, until the mean loss of a
        window of ``inner_window`` updates is no lower than the window's before (at most
        ``inner_max_steps``); then the loss of the step itself, with the encoder held fixed,
        which Lightning's optimiser steps on (the encoder gets no gradient)."""
        model = self.model
        assert isinstance(model, AggressiveInference)
        params = model.encoder_parameters()
        if self._inner_opt is None:
            self._inner_opt = _optimizer_class(self.cfg)(params, lr=self.cfg.lr)
        previous, total, count = math.inf, torch.zeros((), device=self.device), 0
        inner = batch
        for _ in range(model.inner_max_steps):
            loss = self.model.loss(inner)
            self._check_finite(loss, batch_idx)
            self._inner_opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
            self._inner_opt.step()
            total, count = total + loss.detach(), count + 1
            if count == model.inner_window:  # one host sync per window
                mean = float(total) / count
                if mean >= previous:
                    break
                previous, total, count = mean, torch.zeros_like(total), 0
            inner = self._next_train_batch()
        self.model.zero_grad(set_to_none=True)  # the decoder's gradients of the inner updates
        return model.decoder_loss(batch)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["dgm_aggressive"] = {"on": self.aggressive, "last_mi": self._last_mi}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("dgm_aggressive")
        if state is not None:
            self.aggressive, self._last_mi = bool(state["on"]), state["last_mi"]

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        with trusted_inputs():
            metrics = self.eval_model.metrics(batch)
        self._val_keys.update(metrics)
        if isinstance(self.eval_model, LatentDiagnostics):
            kept = sum(len(x) for x in self._diagnose)
            if kept < DIAGNOSTIC_EXAMPLES:
                self._diagnose.append(unpack(batch)[0][: DIAGNOSTIC_EXAMPLES - kept])
        for key, values in metrics.items():
            self.log(
                f"val_{key}",
                values.float().mean(),
                on_epoch=True,
                batch_size=values.numel(),
                prog_bar=key == "nll",
                sync_dist=True,
            )

    def on_validation_epoch_end(self) -> None:
        """The latent diagnostics of a :class:`LatentDiagnostics` model on (up to
        ``DIAGNOSTIC_EXAMPLES`` of) the validation examples, logged as ``val_kl`` (unless
        ``metrics`` gave it over all of them), ``val_mi`` and ``val_active_units``; the end of
        the aggressive phase once I(x; z) falls."""
        model, examples = self.eval_model, self._diagnose
        keys, self._diagnose, self._val_keys = self._val_keys, [], set()
        if not isinstance(model, LatentDiagnostics) or not examples:
            return
        with trusted_inputs():
            numbers = model.diagnostics(torch.cat(examples))
        for key, value in numbers.items():
            if key not in keys:
                self.log(f"val_{key}", float(value), on_epoch=True, sync_dist=True)
        if self.trainer.sanity_checking or not isinstance(self.model, AggressiveInference):
            return
        mi = float(numbers["mi"])
        if self.aggressive and self._last_mi is not None and mi < self._last_mi:
            self.aggressive = False  # I(x; z) stopped rising: ordinary steps from now on
        self._last_mi = mi
        if self.model.aggressive:
            self.log("aggressive", float(self.aggressive), on_epoch=True)

    def configure_optimizers(self) -> Any:
        cfg = self.cfg
        params = [p for p in self.model.parameters() if p.requires_grad]
        kwargs: dict[str, Any] = {"lr": cfg.lr, **_fused(cfg, params)}
        if cfg.weight_decay > 0 or cfg.optimizer == "adamw":
            kwargs["weight_decay"] = cfg.weight_decay
        opt = _optimizer_class(cfg)(params, **kwargs)
        if cfg.lr_schedule == "cosine":
            total = max(1, int(self.trainer.estimated_stepping_batches))
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        if cfg.lr_schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, factor=0.5, patience=max(2, cfg.patience // 4)
            )
            monitor = f"val_{self.model.monitor}"
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": monitor}}
        return opt


class LitAdversarial(LitModel):
    """Alternating updates of a model with several players (an
    :class:`~dgm.models.capabilities.Adversarial` model, a GAN) by Lightning's manual
    optimisation.

    One optimiser per player from ``model.players(lr)``; each batch the model's
    ``adversarial_step`` decides which players move and calls back :meth:`_update` for each,
    which steps that player's optimiser (the moving average follows ``averaged_player`` after
    each of its updates). The numbers the step returns go to the epoch's log line. A NaN stops
    training, and so do ``collapse_epochs`` epochs running that the model judges
    :meth:`~dgm.models.capabilities.Adversarial.collapsed`; the run folder keeps the weights of
    the last epoch before the collapse began (see :attr:`suspect`).

    Validation scores both the moving average and the raw weights where the model has a
    ``sample_monitor``, and :attr:`eval_model` (what the run folder keeps) is the better of
    the two: an average of a generator that still circles between modes is the centroid of
    its phases (all samples near the data's mean), worse than any weights it averaged.
    """

    model: Any  # a GenerativeModel that is Adversarial

    def __init__(self, model: GenerativeModel, cfg: TrainConfig) -> None:
        if not isinstance(model, Adversarial):
            raise TypeError(f"{model.name} is not an adversarial model")
        super().__init__(model, cfg)
        self.automatic_optimization = False
        self.collapse_epochs = model.collapse_epochs
        self._batches = 0  # batches stepped on, in this process
        self._collapsed = 0  # epochs in a row the model judged collapsed
        self._sums: dict[str, Tensor] = {}  # the epoch's sums of each logged number, on device
        self._counts: dict[str, int] = {}
        self._names: list[str] = []
        # validation: per candidate weights ("ema", "raw"), each metric's sum and count
        self._val: dict[str, dict[str, list[Tensor]]] = {}
        self._train_means: dict[str, float] = {}  # the epoch's means of the step's numbers
        self._kept = "ema" if self.ema is not None else "raw"

    @property
    def eval_model(self) -> GenerativeModel:
        """The weights validation judged better: the moving average's or the raw ones."""
        if self.ema is not None and self._kept == "ema":
            return self.ema.module  # type: ignore[return-value]
        return self.model

    def _candidates(self) -> dict[str, GenerativeModel]:
        if self.ema is None:
            return {"raw": self.model}
        if self.model.sample_monitor is None:  # nothing to compare them on: the average
            return {"ema": self.ema.module}  # type: ignore[dict-item]
        return {"ema": self.ema.module, "raw": self.model}  # type: ignore[dict-item]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        for name, model in self._candidates().items():
            with trusted_inputs():
                metrics = model.metrics(batch)
            sums = self._val.setdefault(name, {})
            for key, values in metrics.items():
                total = sums.setdefault(key, [values.new_zeros((), dtype=torch.float64)] * 2)
                sums[key] = [total[0] + values.double().sum(), total[1] + values.numel()]

    def on_validation_epoch_end(self) -> None:
        """Each candidate's means over the validation set (summed over processes); the one
        with the lower ``sample_monitor`` is kept, and its metrics are the epoch's ``val_*``
        (each candidate's monitor is logged too, as ``val_<monitor>_ema`` / ``_raw``)."""
        means: dict[str, dict[str, Tensor]] = {}
        for name, sums in self._val.items():
            reduce = self.trainer.strategy.reduce
            means[name] = {
                k: reduce(s, reduce_op="sum") / reduce(n, reduce_op="sum")
                for k, (s, n) in sums.items()
            }
        self._val = {}
        for key, mean in self._train_means.items():
            self.log(key, mean, on_epoch=True, prog_bar=key.endswith("_loss"))
        self._train_means = {}
        if not means:
            return
        monitor = self.model.sample_monitor
        if len(means) > 1 and monitor is not None and all(monitor in m for m in means.values()):
            self._kept = min(means, key=lambda name: float(means[name][monitor]))
            for name, m in means.items():
                self.log(f"val_{monitor}_{name}", m[monitor].float(), on_epoch=True)
        else:
            self._kept = next(iter(means))
        for key, value in means[self._kept].items():
            self.log(f"val_{key}", value.float(), on_epoch=True, prog_bar=key == monitor)

    def configure_optimizers(self) -> Any:
        cfg = self.cfg
        opts = []
        self._names = []
        for name, group in self.model.players(cfg.lr).items():
            kwargs: dict[str, Any] = {"lr": group["lr"], **_fused(cfg, group["params"])}
            if cfg.optimizer != "adamax" or "betas" in group:
                kwargs["betas"] = group["betas"]
            if cfg.weight_decay > 0 or cfg.optimizer == "adamw":
                kwargs["weight_decay"] = cfg.weight_decay
            opts.append(_optimizer_class(cfg)(group["params"], **kwargs))
            self._names.append(name)
        return opts

    def _update(self, player: str, loss: Tensor, batch_idx: int) -> Tensor:
        """One optimiser step of ``player`` on ``loss``; its gradient norm (clipped to
        ``grad_clip`` when that is > 0)."""
        self._check(player, loss, batch_idx)
        optimizers = self.optimizers()
        opts = optimizers if isinstance(optimizers, list) else [optimizers]
        opt = opts[self._names.index(player)]
        params = [p for group in opt.param_groups for p in group["params"]]
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        limit = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, limit)
        opt.step()
        if self.ema is not None and player == self.model.averaged_player:
            self.ema.update_parameters(self.model)
        return norm

    def _check(self, player: str, loss: Tensor, batch_idx: int) -> None:
        if not torch.isfinite(loss):
            raise TrainingError(
                f"training diverged: the {player} loss is {loss.item()} at epoch "
                f"{self.current_epoch}, step {batch_idx}; {self.model.divergence_advice}"
            )

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        stats = self.model.adversarial_step(
            batch, self._batches, lambda player, loss: self._update(player, loss, batch_idx)
        )
        self._batches += 1
        # summed here and logged once per epoch (on_validation_epoch_start): a self.log per
        # number per step took half the time of a step of a small GAN
        for key, value in stats.items():
            value = value.detach()
            self._sums[key] = self._sums[key] + value if key in self._sums else value
            self._counts[key] = self._counts.get(key, 0) + 1

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        pass  # the moving average follows its player's updates (_update), not every batch

    @property
    def suspect(self) -> bool:
        """True while the model has judged the game collapsed: the run folder does not keep
        these weights."""
        return self._collapsed > 0

    def on_validation_epoch_start(self) -> None:
        # the epoch's training batches are done and nothing of it is saved yet: judge it now
        if self.trainer.sanity_checking or not self._counts:
            return
        reduce = self.trainer.strategy.reduce  # the mean over every process's batches
        means = {
            k: float(reduce(self._sums[k], reduce_op="mean")) / self._counts[k] for k in self._sums
        }
        self._sums, self._counts = {}, {}
        self._train_means = means  # logged with the validation numbers, at its epoch's end
        reason = self.model.collapsed(means)
        self._collapsed = self._collapsed + 1 if reason is not None else 0
        if reason is not None and self._collapsed >= self.collapse_epochs:
            raise TrainingError(
                f"{self._collapsed} epochs in a row: {reason} (the run keeps the weights of the "
                "last epoch before that)"
            )
