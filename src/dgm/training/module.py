"""The Lightning glue: one module that trains any model through its ``loss`` and scores it
through its ``metrics``; it knows nothing of any family's maths."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel

from dgm.data.inputs import mutate
from dgm.models.base import Batch, GenerativeModel, unpack
from dgm.training.config import TrainConfig


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

    @property
    def eval_model(self) -> GenerativeModel:
        return self.ema.module if self.ema is not None else self.model  # type: ignore[return-value]

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        if self.cfg.perturb > 0:  # a likelihood ratio's background model sees mutated inputs
            x, y = unpack(batch)
            batch = (mutate(x, self.cfg.perturb, self.model.config.levels), y)
        loss = self._train_forward(batch)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"training diverged: the loss is {loss.item()} at epoch {self.current_epoch}, "
                f"step {batch_idx}; lower the learning rate (--set lr=...) or clip gradients "
                "(--set grad_clip=1)"
            )
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

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        for key, values in self.eval_model.metrics(batch).items():
            self.log(
                f"val_{key}",
                values.float().mean(),
                on_epoch=True,
                batch_size=values.numel(),
                prog_bar=key == "nll",
                sync_dist=True,
            )

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
    """Alternating updates of a two-player model (a GAN) by Lightning's manual optimisation.

    The model gives ``discriminator_step(batch) -> (loss, stats)``, ``generator_step(batch)``,
    ``d_steps`` and ``player_params(lr)``: every batch is one D update, every ``d_steps``-th
    also a G update on fresh noise, so each critic step sees new real data. Both losses, D's
    outputs on real and fake data and both gradient norms go to the epoch's log line. A NaN
    stops training, and so does a discriminator that wins outright for ``collapse_epochs``
    epochs running (its loss ~0: G gets no signal and only degrades from there); the run
    folder keeps the weights of the last epoch before the collapse began.
    """

    collapse_epochs = 5
    collapse_loss = 1e-3

    def __init__(self, model: GenerativeModel, cfg: TrainConfig) -> None:
        super().__init__(model, cfg)
        self.automatic_optimization = False
        self._d_updates = 0
        self._collapsed = 0
        self._d_loss_sum = 0.0
        self._d_loss_n = 0

    def configure_optimizers(self) -> Any:
        cfg = self.cfg
        players = self.model.player_params(cfg.lr)  # type: ignore[operator]
        opts = []
        for name in ("generator", "discriminator"):
            group = players[name]
            kwargs: dict[str, Any] = {"lr": group["lr"], **_fused(cfg, group["params"])}
            if cfg.optimizer != "adamax" or "betas" in group:
                kwargs["betas"] = group["betas"]
            if cfg.weight_decay > 0 or cfg.optimizer == "adamw":
                kwargs["weight_decay"] = cfg.weight_decay
            opts.append(_optimizer_class(cfg)(group["params"], **kwargs))
        return opts

    def _update(self, opt: Any, loss: Tensor, params: list[torch.nn.Parameter]) -> Tensor:
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        # the norm is logged either way; with grad_clip > 0 it is also clipped to that
        limit = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, limit)
        opt.step()
        return norm

    def _check(self, what: str, loss: Tensor, batch_idx: int) -> None:
        if not torch.isfinite(loss):
            raise TrainingError(
                f"training diverged: the {what} loss is {loss.item()} at epoch "
                f"{self.current_epoch}, step {batch_idx}; lower the learning rates (--set "
                "lr=..., --set d_lr=...), try --set spectral_norm=true or objective=wgan-gp"
            )

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()  # type: ignore[misc]
        model = self.model
        n = batch[0].shape[0] if isinstance(batch, (tuple, list)) else batch.shape[0]
        log = {"on_step": False, "on_epoch": True, "batch_size": n, "sync_dist": True}
        d_loss, stats = model.discriminator_step(batch)  # type: ignore[operator]
        self._check("discriminator", d_loss, batch_idx)
        d_params = list(model.discriminator.parameters())  # type: ignore[union-attr]
        d_norm = self._update(opt_d, d_loss, d_params)
        self._d_updates += 1
        self._d_loss_sum += float(d_loss.detach())
        self._d_loss_n += 1
        self.log("d_loss", d_loss.detach(), prog_bar=True, **log)
        self.log("d_grad_norm", d_norm, **log)
        for key, value in stats.items():
            self.log(key, value, **log)
        if self._d_updates % model.d_steps == 0:  # type: ignore[operator]
            g_loss = model.generator_step(batch)  # type: ignore[operator]
            self._check("generator", g_loss, batch_idx)
            g_params = list(model.generator.parameters())  # type: ignore[union-attr]
            g_norm = self._update(opt_g, g_loss, g_params)
            self.log("g_loss", g_loss.detach(), prog_bar=True, **log)
            self.log("g_grad_norm", g_norm, **log)
            if self.ema is not None:
                self.ema.update_parameters(self.model)

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        pass  # the EMA moves after each G update (training_step), not after each D update

    @property
    def suspect(self) -> bool:
        """True while D has been winning outright: the run folder does not keep these weights."""
        return self._collapsed > 0

    def on_validation_epoch_start(self) -> None:
        # the epoch's training batches are done and nothing of it is saved yet: judge it now
        if self.trainer.sanity_checking or self._d_loss_n == 0:
            return
        mean = self._d_loss_sum / self._d_loss_n
        self._d_loss_sum, self._d_loss_n = 0.0, 0
        objective = getattr(self.model.config, "objective", "")
        # a Wasserstein critic's loss is no probability and may sit anywhere: not checked
        if objective != "wgan-gp" and abs(mean) < self.collapse_loss:
            self._collapsed += 1
        else:
            self._collapsed = 0
        if self._collapsed >= self.collapse_epochs:
            raise TrainingError(
                f"the discriminator's loss has been ~0 ({mean:.2e}) for {self._collapsed} "
                f"epochs: D wins outright and G gets no signal; the run keeps the weights of "
                "the last epoch before that. Try --set spectral_norm=true, dropout=0.3, a "
                "smaller d_lr, or objective=wgan-gp"
            )
