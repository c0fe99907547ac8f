"""Pictures: sample grids and training curves, written atomically as PNG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

from dgm.data.base import DataSpec
from dgm.io import atomic_write


def _to_images(x: Tensor, spec: DataSpec) -> np.ndarray | None:
    """``[N, *shape]`` -> ``[N, H, W, C]`` floats in [0, 1], or None if not image-like."""
    x = x.detach().float().cpu()
    if len(spec.shape) == 3:
        imgs = x
    elif len(spec.shape) == 2:
        imgs = x.unsqueeze(1)
    elif len(spec.shape) == 1 and math.isqrt(spec.shape[0]) ** 2 == spec.shape[0] > 4:
        side = math.isqrt(spec.shape[0])
        imgs = x.view(-1, 1, side, side)
    else:
        return None
    low, high = spec.low, spec.high
    if spec.levels is not None:
        low, high = 0.0, float(spec.levels - 1)
    if high <= low:
        low, high = float(imgs.min()), float(imgs.max()) + 1e-8
    imgs = ((imgs - low) / (high - low)).clamp(0, 1)
    if imgs.shape[1] not in (1, 3):
        imgs = imgs[:, :1]
    return imgs.permute(0, 2, 3, 1).numpy()


def grid_image(x: Tensor, spec: DataSpec, min_cell: int = 48) -> Image.Image | None:
    """Tile images into one grid picture, upscaled so small images stay visible."""
    imgs = _to_images(x, spec)
    if imgs is None:
        return None
    n, h, w, c = imgs.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    pad = 1
    canvas = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.float32)
    for i in range(n):
        r, k = divmod(i, cols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) :][:, :w] = imgs[
            i
        ]
    scale = max(1, math.ceil(min_cell / max(h, w)))
    arr = (canvas * 255).round().astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if c == 1 else arr, mode="L" if c == 1 else "RGB")
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def save_samples(x: Tensor, spec: DataSpec, path: str | Path, title: str = "") -> None:
    """Write samples as a picture: an image grid, a scatter plot (2-D) or a heatmap."""
    img = grid_image(x, spec)
    if img is not None:
        with atomic_write(path, "wb") as f:
            img.save(f, format="PNG")
        return
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.subplots()
    flat = x.detach().float().cpu().reshape(x.shape[0], -1).numpy()
    if flat.shape[1] == 2:
        ax.scatter(flat[:, 0], flat[:, 1], s=4, alpha=0.6)
        ax.set_aspect("equal")
    else:
        ax.imshow(flat, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_xlabel("dimension")
        ax.set_ylabel("sample")
    ax.set_title(title)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", bbox_inches="tight")


def save_curves(records: Sequence[dict], path: str | Path, title: str = "") -> None:
    """Training loss and validation NLL per epoch (nats) from metrics.jsonl records."""
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    for key, label in (("train_loss", "train loss"), ("val_nll", "validation NLL")):
        pts = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
        if pts:
            ep, val = zip(*pts)
            ax.plot(ep, val, label=label, marker="." if len(pts) < 40 else None)
    best = [r for r in records if r.get("val_nll") is not None]
    if best:
        b = min(best, key=lambda r: r["val_nll"])
        ax.axvline(b["epoch"], color="gray", ls=":", lw=1, label=f"best epoch {b['epoch']}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per example")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", bbox_inches="tight")
