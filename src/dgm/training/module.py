"""The Lightning glue: one module that trains any model through its ``loss`` and scores it
through its ``metrics``; it knows nothing of any family's maths."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from dgm.models.base import Batch, GenerativeModel
from dgm.training.config import TrainConfig


def ema_update(decay: float) -> Callable[[list[Tensor], list[Tensor], Tensor], None]:
    """The EMA step for AveragedModel: floating tensors move towards the model's, others
    (integer buffers such as counters or permutations) are copied; a lerp would truncate them."""
    lerp = get_ema_multi_avg_fn(decay)

    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        pairs = list(zip(averaged, current))
        floats = [(a, c) for a, c in pairs if a.is_floating_point()]
        if floats:
            lerp([a for a, _ in floats], [c for _, c in floats], num_averaged)
        for a, c in pairs:
            if not a.is_floating_point():
                a.copy_(c)

    return update


class TrainingError(RuntimeError):
    """Training cannot go on (diverged); the message says what to change."""


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
        opt_cls = {
            "adamw": torch.optim.AdamW,
            "adam": torch.optim.Adam,
            "adamax": torch.optim.Adamax,
        }[cfg.optimizer]
        kwargs: dict[str, Any] = {"lr": cfg.lr}
        if cfg.weight_decay > 0 or cfg.optimizer == "adamw":
            kwargs["weight_decay"] = cfg.weight_decay
        if (
            cfg.optimizer != "adamax"
            and "mixed" not in str(cfg.precision)  # Lightning's AMP clips before a fused step
            and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
        ):
            # one fused kernel per step instead of a loop over tensors: 1.15x faster VAE steps
            # on CPU (benchmarks/bench_vae_speed.py); the same update
            kwargs["fused"] = True
        opt = opt_cls(params, **kwargs)
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
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_nll"}}
        return opt
