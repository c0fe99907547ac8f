"""Device-clean checks that run without a GPU.

A tensor factory (``torch.zeros``, ``torch.randn``, ...) called without a ``device`` inside a
model's code makes a CPU tensor even when the model lives on a GPU: the classic "works on my
laptop" bug. :class:`DeviceGuard` records such calls while the model runs on the CPU, so the
check needs no second device. 0-dim results are allowed: PyTorch lets a CPU scalar meet a tensor
on any device.
"""

from __future__ import annotations

from torch import Tensor
from torch.overrides import TorchFunctionMode

from dgm.models.capabilities import Autoencoder

FACTORIES = {
    "zeros", "ones", "empty", "full", "rand", "randn", "randint", "randperm", "arange",
    "linspace", "logspace", "eye", "tensor", "as_tensor", "normal",
}  # fmt: skip


class DeviceGuard(TorchFunctionMode):
    """Collects the names of factory calls made without a ``device`` (non-scalar results)."""

    def __init__(self) -> None:
        super().__init__()
        self.offenders: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name in FACTORIES and "device" not in kwargs and getattr(out, "dim", lambda: 0)():
            self.offenders.append(name)
        return out


def exercise(model, x: Tensor, y: Tensor | None = None) -> list[str]:
    """Run a training step (on ``(x, y)``: labels for the models that need them), scoring and
    sampling under the guard; return the offenders."""
    guard = DeviceGuard()
    with guard:
        model.train()
        model.loss((x, y)).backward()
        model.eval()
        if not model.has_likelihood:
            model.metrics((x, y))
        elif model.exact_likelihood:
            model.log_prob(x)
        else:
            model.log_prob(x, num_samples=3)
        model.sample(2)
        if isinstance(model, Autoencoder):
            model.interpolate(x[0], x[1], 3)
    return guard.offenders
