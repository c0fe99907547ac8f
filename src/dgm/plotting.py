"""Pictures: sample grids, training curves and 2-D densities, written atomically as PNG."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
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


def grid_image(
    x: Tensor, spec: DataSpec, min_cell: int = 48, cols: int | None = None
) -> Image.Image | None:
    """Tile images into one grid picture, upscaled so small images stay visible."""
    imgs = _to_images(x, spec)
    if imgs is None:
        return None
    n, h, w, c = imgs.shape
    cols = cols or math.ceil(math.sqrt(n))
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


def save_reconstructions(x: Tensor, recon: Tensor, spec: DataSpec, path: str | Path) -> None:
    """Inputs and their reconstructions: rows of inputs, each followed by its reconstructions."""
    cols = min(len(x), 8)
    rows = [t for i in range(0, len(x), cols) for t in (x[i : i + cols], recon[i : i + cols])]
    img = grid_image(torch.cat(rows), spec, cols=cols)
    if img is None:
        raise ValueError(f"reconstructions need image-like data, got shape {spec.shape}")
    with atomic_write(path, "wb") as f:
        img.save(f, format="PNG")


def _plot_keys(ax: Any, records: Sequence[dict], keys: Sequence[tuple[str, str]]) -> None:
    for key, label in keys:
        pts = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
        if pts:
            ep, val = zip(*pts)
            ax.plot(ep, val, label=label, marker="." if len(pts) < 40 else None)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


def save_game_curves(records: Sequence[dict], path: str | Path, title: str = "") -> None:
    """A two-player game per epoch: both losses, and D's outputs on real and fake data
    (training and validation), the first things to look at when a GAN misbehaves."""
    fig = Figure(figsize=(10, 4), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    _plot_keys(ax1, records, (("d_loss", "D loss"), ("g_loss", "G loss")))
    ax1.set_ylabel("loss")
    ax1.set_title(title)
    _plot_keys(
        ax2,
        records,
        (("d_real", "D(real), train"), ("d_fake", "D(fake), train"),
         ("val_d_real", "D(real), validation"), ("val_d_fake", "D(fake), validation")),
    )  # fmt: skip
    ax2.set_ylabel("D's output (probability, or critic value)")
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", bbox_inches="tight")


def save_curves(records: Sequence[dict], path: str | Path, title: str = "") -> None:
    """Training loss and validation NLL per epoch (nats) from metrics.jsonl records; the
    game's curves (:func:`save_game_curves`) for two-player models."""
    if any(r.get("d_loss") is not None for r in records):
        save_game_curves(records, path, title)
        return
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


def save_density(
    log_prob: Callable[[Tensor], Tensor],
    data: Tensor,
    samples: Tensor,
    path: str | Path,
    title: str = "",
    resolution: int = 200,
) -> float:
    """For 2-D models: the data, the model's samples and its density exp(log p) on a grid,
    side by side on the same axes. Returns the density's integral over the grid (about 1
    for a normalised model whose mass lies in the window)."""
    pts = data.detach().float().cpu()[:, :2]
    smp = samples.detach().float().cpu()[:, :2]
    both = torch.cat([pts, smp])
    lo = torch.quantile(both, 0.005, dim=0)
    hi = torch.quantile(both, 0.995, dim=0)
    pad = 0.15 * (hi - lo).clamp_min(1e-3)
    lo, hi = lo - pad, hi + pad
    xs = torch.linspace(float(lo[0]), float(hi[0]), resolution)
    ys = torch.linspace(float(lo[1]), float(hi[1]), resolution)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    with torch.no_grad():
        dens = torch.cat([log_prob(g).exp().cpu() for g in grid.split(10_000)]).view(gx.shape)
    cell = float((xs[1] - xs[0]) * (ys[1] - ys[0]))
    mass = float(dens.sum()) * cell
    fig = Figure(figsize=(13, 4.4), dpi=100)
    axes = fig.subplots(1, 3)
    extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    for ax, p, name in ((axes[0], pts, "data"), (axes[1], smp, "samples")):
        ax.scatter(p[:, 0].numpy(), p[:, 1].numpy(), s=2, alpha=0.5)
        ax.set_title(f"{name} (n={len(p)})")
    axes[2].imshow(dens.numpy(), origin="lower", extent=extent, cmap="magma", aspect="auto")
    axes[2].set_title(f"learned density (mass in view {mass:.3f})")
    for ax in axes:
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
    fig.suptitle(title)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", bbox_inches="tight")
    return mass


def save_score_histograms(
    scores_in: dict[str, np.ndarray],
    scores_out: dict[str, np.ndarray],
    path: str | Path,
    in_name: str = "in",
    out_name: str = "out",
    metrics: dict[str, dict[str, float]] | None = None,
) -> None:
    """OOD scores of in- and out-of-distribution inputs: one panel per score (those in both
    dicts), overlaid density-normalised histograms on shared bins, the AUROC in the title when
    ``metrics`` (``{score: {"auroc": ...}}``) has it. Bins span the 0.5-99.5 percentiles of
    both sets; values beyond (infinities included) fall into the edge bins."""
    names = [k for k in scores_in if k in scores_out]
    if not names:
        raise ValueError("no score present in both sets to plot")
    cols = min(len(names), 3)
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(4.5 * cols, 3.4 * rows), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax, name in zip(axes, names):
        a = np.asarray(scores_in[name], dtype=np.float64).reshape(-1)
        b = np.asarray(scores_out[name], dtype=np.float64).reshape(-1)
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        both = np.concatenate([a, b])
        fin = both[np.isfinite(both)]
        if fin.size:
            lo, hi = np.percentile(fin, [0.5, 99.5])
        else:
            lo, hi = -1.0, 1.0
        if hi <= lo:  # one value: a window around it
            lo, hi = lo - 0.5, hi + 0.5
        bins = np.linspace(lo, hi, 41)
        for v, label in ((a, in_name), (b, out_name)):
            if v.size:  # clipping keeps the tails (and +-inf) visible in the edge bins
                ax.hist(np.clip(v, lo, hi), bins=bins, density=True, alpha=0.55,
                        label=f"{label} (n={v.size})")  # fmt: skip
        auroc = (metrics or {}).get(name, {}).get("auroc")
        ax.set_title(name if auroc is None else f"{name} (AUROC {auroc:.3f})")
        ax.set_xlabel("score (higher = more OOD)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel("density")
    fig.suptitle(f"{in_name} (in) vs {out_name} (out)")
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", bbox_inches="tight")
