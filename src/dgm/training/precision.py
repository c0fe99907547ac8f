"""``--precision auto``: bf16 mixed precision where it is both fast and proven equal.

Fast: the hardware multiplies bf16 matrices in dedicated units (CPUs with AMX or AVX512-BF16,
CUDA GPUs with bf16 support); elsewhere bf16 is emulated and slower than float32. Proven equal:
the family declares ``bf16_proven`` because tests/test_precision.py trains it on digits under
both precisions and finds the validation NLL within 1%. Under autocast only the matrix products
and convolutions run in bf16; the models score their log-densities, log-determinants and
importance weights in float32 (``dgm.distributions.base``), so the reported numbers keep their
precision.
"""

from __future__ import annotations

import torch

from dgm.models.base import GenerativeModel

AUTO = "auto"


def device_type(accelerator: str) -> str:
    """``cuda`` or ``cpu``: where an ``accelerator`` setting (cpu | gpu | cuda | auto) trains."""
    if accelerator in ("gpu", "cuda") or (accelerator == AUTO and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def fast_bf16(device: str) -> tuple[bool, str]:
    """Whether ``device`` (cpu | cuda) has bf16 matrix units, and what it has, in words."""
    if device == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{torch.cuda.get_device_name()} has bf16 tensor cores"
        return False, "this GPU has no bf16 tensor cores"
    if torch.cpu._is_amx_tile_supported():
        return True, "this CPU has AMX"
    if torch.cpu._is_avx512_bf16_supported():
        return True, "this CPU has AVX512-BF16"
    return False, "this CPU has no bf16 matrix units (AMX or AVX512-BF16)"


def resolve_precision(
    requested: str, model: GenerativeModel, accelerator: str
) -> tuple[str, str | None]:
    """Lightning's precision for ``requested`` (``auto`` or an explicit value, kept as it is)
    and a note that says what ``auto`` chose and why (None for explicit values)."""
    if requested != AUTO:
        return requested, None
    fast, why = fast_bf16(device_type(accelerator))
    if not fast:
        return "32-true", f"precision auto: float32 ({why})"
    if not model.bf16_proven:
        return "32-true", f"precision auto: float32 ({model.name} is not proven equal under bf16)"
    return (
        "bf16-mixed",
        f"precision auto: bf16 mixed precision ({why}; {model.name} is proven equal)",
    )


__all__ = ["AUTO", "device_type", "fast_bf16", "resolve_precision"]
