"""What the side-by-side speed benchmarks share: one training "side" (a model, its Adam and its
step), a timer and a profiler of dgm's side. The benchmarks import it as a sibling module."""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn


class Side:
    """One model, its Adam optimiser and its training step on ``loss(x)``."""

    def __init__(self, label: str, model: nn.Module, loss: Callable[[Tensor], Tensor]) -> None:
        self.label, self.model, self.loss = label, model, loss
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.params = sum(p.numel() for p in model.parameters())

    def step(self, x: Tensor) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(x)
        loss.backward()
        self.opt.step()
        return loss.item()


def seconds_per_step(side: Side, batches: list[Tensor], steps: int, start: int) -> float:
    """Mean seconds per step over ``steps`` consecutive training steps."""
    t0 = time.perf_counter()
    for i in range(steps):
        side.step(batches[(start + i) % len(batches)])
    return (time.perf_counter() - t0) / steps


def profile_side(side: Side, batches: list[Tensor], steps: int, top: int = 25) -> str:
    """Where a training step spends its time: cProfile (Python) and torch's op profiler."""
    out = io.StringIO()
    prof = cProfile.Profile()
    prof.enable()
    for i in range(steps):
        side.step(batches[i % len(batches)])
    prof.disable()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as tp:
        for i in range(steps):
            side.step(batches[i % len(batches)])
    out.write(tp.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))
    return out.getvalue()
