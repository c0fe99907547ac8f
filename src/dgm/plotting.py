"""Pictures: sample grids, training curves and 2-D densities, written atomically as PNG.

Each picture says what it shows: sample grids carry a title (samples or decoder means),
reconstructions name their rows, heatmaps have a colour bar, 2-D samples are drawn over the
data on the data's axes, and the curves put each scale in its own panel on a view that one
early spike cannot flatten (:func:`curve_panels`, :func:`y_view`)."""

from __future__ import annotations

import importlib
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


def _write_figure(fig: Figure, path: str | Path) -> None:
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", bbox_inches="tight")


def grid_figure(
    img: Image.Image, title: str = "", row_labels: Sequence[str] | None = None
) -> Figure:
    """A grid picture (:func:`grid_image`) at about one screen pixel per picture pixel, with a
    title and, when given, a label at the left of each row of cells."""
    dpi = 100
    arr = np.asarray(img)
    h, w = arr.shape[:2]
    fig = Figure(figsize=(max(w, 160) / dpi, h / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=255,
              interpolation="nearest")  # fmt: skip
    ax.set_xticks([])
    if row_labels:
        step = h / len(row_labels)
        ax.set_yticks([step * (i + 0.5) for i in range(len(row_labels))], list(row_labels))
        ax.tick_params(axis="y", length=0)
        for side in ("top", "right", "bottom", "left"):
            ax.spines[side].set_visible(False)
    else:
        ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def data_view(data: Tensor, pad: float = 0.05) -> tuple[float, float, float, float]:
    """``(x0, x1, y0, y1)``: the range of 2-D ``data`` ``[N, 2]``, widened by ``pad`` of
    each side's span, the fixed axes samples are drawn on (so a generator that puts all
    its mass in one corner or at the origin looks like it)."""
    d = data.detach().float().cpu().reshape(len(data), -1)[:, :2]
    lo, hi = d.min(0).values, d.max(0).values
    margin = pad * (hi - lo).clamp_min(1e-3)
    lo, hi = lo - margin, hi + margin
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def samples_figure(
    x: Tensor, spec: DataSpec, title: str = "", data: Tensor | None = None
) -> Figure:
    """The picture :func:`save_samples` writes for data that is not image-like: 2-D points
    as a scatter (over ``data`` in grey, on axes fixed to its range by :func:`data_view`),
    other vectors as a heatmap of samples by dimension with its colour bar."""
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.subplots()
    flat = x.detach().float().cpu().reshape(x.shape[0], -1).numpy()
    if flat.shape[1] == 2:
        if data is not None and len(data):
            x0, x1, y0, y1 = data_view(data)
            d = data.detach().float().cpu().reshape(len(data), -1)[:, :2].numpy()
            ax.scatter(d[:, 0], d[:, 1], s=3, alpha=0.3, color="0.6", label=f"data (n={len(d)})")
            outside = int(
                (
                    (flat[:, 0] < x0) | (flat[:, 0] > x1) | (flat[:, 1] < y0) | (flat[:, 1] > y1)
                ).sum()
            )
            ax.scatter(flat[:, 0], flat[:, 1], s=4, alpha=0.7, color="C0",
                       label=f"samples (n={len(flat)})")  # fmt: skip
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
            if outside:  # the view is the data's: say what falls out of it
                title = f"{title}\n{outside} of {len(flat)} samples outside the data's range"
            ax.legend(loc="upper right", fontsize=8)
        else:
            ax.scatter(flat[:, 0], flat[:, 1], s=4, alpha=0.6)
        ax.set_aspect("equal")
    else:
        im = ax.imshow(flat, aspect="auto", cmap="viridis", interpolation="nearest")
        fig.colorbar(im, ax=ax, label="value")
        ax.set_xlabel("dimension")
        ax.set_ylabel("sample")
    ax.set_title(title)
    return fig


def save_samples(
    x: Tensor, spec: DataSpec, path: str | Path, title: str = "", data: Tensor | None = None
) -> None:
    """Write samples as a picture: an image grid under ``title``, a scatter plot (2-D; over
    ``data`` on its range when given, see :func:`samples_figure`) or a heatmap."""
    img = grid_image(x, spec)
    fig = grid_figure(img, title) if img is not None else samples_figure(x, spec, title, data)
    _write_figure(fig, path)


def reconstructions_figure(x: Tensor, recon: Tensor, spec: DataSpec, title: str = "") -> Figure:
    """Rows of inputs, each followed by the row of their reconstructions, every row labelled
    ``input`` or ``reconstruction``."""
    cols = min(len(x), 8)
    rows = [t for i in range(0, len(x), cols) for t in (x[i : i + cols], recon[i : i + cols])]
    img = grid_image(torch.cat(rows), spec, cols=cols)
    if img is None:
        raise ValueError(f"reconstructions need image-like data, got shape {spec.shape}")
    labels = ["input" if i % 2 == 0 else "reconstruction" for i in range(len(rows))]
    return grid_figure(img, title, row_labels=labels)


def save_reconstructions(
    x: Tensor, recon: Tensor, spec: DataSpec, path: str | Path, title: str = ""
) -> None:
    """Inputs and their reconstructions (:func:`reconstructions_figure`) as a PNG."""
    _write_figure(reconstructions_figure(x, recon, spec, title), path)


@dataclass(frozen=True)
class Panel:
    """One panel of loss.png: quantities on one scale, ``(record key, legend label)`` each;
    ``best`` names the key whose minimum marks the best epoch."""

    title: str
    ylabel: str
    keys: tuple[tuple[str, str], ...]
    best: str | None = None


def _series(records: Sequence[dict], key: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` of ``key`` over the records; ``val_accuracy`` is 1 - ``val_error``
    where only the error was logged."""
    pts = []
    for r in records:
        v = r.get(key)
        if v is None and key == "val_accuracy" and r.get("val_error") is not None:
            v = 1.0 - r["val_error"]
        if v is not None:
            pts.append((r["epoch"], float(v)))
    return pts


def curve_panels(records: Sequence[dict]) -> list[Panel]:
    """The panels of loss.png, one per scale, holding only quantities the records have.

    A model that picks its best epoch by a joint objective (a hybrid's lambda log p(x) +
    log p(y|x), ``val_objective``) trains on that objective, so the training loss shares its
    panel, and the NLL (about D times larger) gets its own; otherwise the training loss and
    the validation NLL are both nats per example and share one. Classifiers add their
    validation accuracy, a number in [0, 1]."""
    has = {k for r in records for k, v in r.items() if v is not None}
    if "val_objective" in has:
        panels = [
            Panel("training objective", "objective per example",
                  (("train_loss", "train"), ("val_objective", "validation")), "val_objective"),
            Panel("validation NLL", "nats per example", (("val_nll", "validation NLL"),)),
        ]  # fmt: skip
    else:
        panels = [
            Panel("loss", "nats per example",
                  (("train_loss", "train loss"), ("val_nll", "validation NLL")), "val_nll"),
        ]  # fmt: skip
    if has & {"val_accuracy", "val_error"}:
        panels.append(Panel("classification", "accuracy", (("val_accuracy", "validation"),)))
    if "val_error" in has:
        has.add("val_accuracy")
    return [p for p in panels if any(k in has for k, _ in p.keys)]


def y_view(values: Sequence[float], decades: float = 1.0) -> tuple[str, tuple[float, float] | None]:
    """How to show ``values`` on a y-axis: ``("linear", limits)`` or ``("log", None)``.

    A few values far above the bulk (at most a tenth of them beyond the third quartile plus
    three interquartile ranges: an early spike) are left out of a linear view that keeps the
    minimum in sight, the part of a loss curve worth reading; otherwise values all positive
    and spanning more than ``decades`` decades get a log scale, and the rest matplotlib's own
    linear limits (``limits`` None)."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return "linear", None
    q1, q3 = np.percentile(v, [25, 75])
    iqr = q3 - q1 if q3 > q1 else 0.05 * max(abs(q3), 1e-6)
    top = float(q3 + 3 * iqr)
    outliers = int((v > top).sum())
    if 0 < outliers <= 0.1 * v.size:
        bottom = float(v.min())
        pad = 0.05 * (top - bottom)
        return "linear", (bottom - pad, top + pad)
    if v.min() > 0 and v.max() / v.min() > 10**decades:
        return "log", None
    return "linear", None


def _plot_panel(ax: Any, records: Sequence[dict], keys: Sequence[tuple[str, str]]) -> str:
    """Draw ``keys`` per epoch on ``ax`` on the scale :func:`y_view` picks; returns a note
    on what the view leaves out ("" when nothing)."""
    values: list[float] = []
    for key, label in keys:
        pts = _series(records, key)
        if pts:
            ep, val = zip(*pts)
            values += val
            ax.plot(ep, val, label=label, marker="." if len(pts) < 40 else None)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    scale, limits = y_view(values)
    note = ""
    if scale == "log":
        ax.set_yscale("log")
    elif limits is not None:
        ax.set_ylim(*limits)
        above = sum(1 for x in values if x > limits[1])
        note = f"{above} value{'s' if above > 1 else ''} above the view"
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    return note


def _plot_keys(ax: Any, records: Sequence[dict], keys: Sequence[tuple[str, str]]) -> None:
    for key, label in keys:
        pts = _series(records, key)
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
    note = _plot_panel(ax1, records, (("d_loss", "D loss"), ("g_loss", "G loss")))
    ax1.set_ylabel("loss")
    ax1.set_title(f"{title} ({note})" if note else title)
    _plot_keys(
        ax2,
        records,
        (("d_real", "D(real), train"), ("d_fake", "D(fake), train"),
         ("val_d_real", "D(real), validation"), ("val_d_fake", "D(fake), validation")),
    )  # fmt: skip
    ax2.set_ylabel("D's output (probability, or critic value)")
    _write_figure(fig, path)


def save_curves(records: Sequence[dict], path: str | Path, title: str = "") -> None:
    """The curves of metrics.jsonl records, one panel per scale (:func:`curve_panels`), each
    on a log or clipped view (:func:`y_view`); the game's curves (:func:`save_game_curves`)
    for two-player models."""
    if any(r.get("d_loss") is not None for r in records):
        save_game_curves(records, path, title)
        return
    panels = curve_panels(records) or [Panel("loss", "nats per example", ())]
    fig = Figure(figsize=(5 * len(panels), 4), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels))).reshape(-1)
    for ax, panel in zip(axes, panels):
        note = _plot_panel(ax, records, panel.keys)
        pts = _series(records, panel.best) if panel.best else []
        if pts:
            epoch = min(pts, key=lambda p: p[1])[0]
            ax.axvline(epoch, color="gray", ls=":", lw=1, label=f"best epoch {epoch}")
            ax.legend()
        ax.set_ylabel(panel.ylabel)
        ax.set_title(f"{panel.title} ({note})" if note else panel.title, fontsize=10)
    if title:
        fig.suptitle(title)
    _write_figure(fig, path)


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
    im = axes[2].imshow(dens.numpy(), origin="lower", extent=extent, cmap="magma", aspect="auto")
    fig.colorbar(im, ax=axes[2], label="p(x)")
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


def property_histograms(
    gen_values: dict[str, np.ndarray],
    ref_values: dict[str, np.ndarray],
    path: str | Path,
    title: str = "generated vs reference molecules",
    distances: dict[str, float | None] | None = None,
    gen_name: str = "generated",
    ref_name: str = "reference",
) -> None:
    """Molecular properties (logP, QED, SA, MW: :mod:`dgm.data.chem`) of generated and
    reference molecules: one panel per property in both dicts, overlaid density-normalised
    histograms on shared bins, the 1-D Wasserstein distance in each panel's title (MOSES's
    property metric; taken from ``distances`` when given, else computed here). Bins span the
    0.5-99.5 percentiles of both sets; values beyond fall into the edge bins."""
    from scipy.stats import wasserstein_distance

    from dgm.data.chem import PROPERTIES

    names = [k for k in gen_values if k in ref_values]
    if not names:
        raise ValueError("no property present in both sets to plot")
    cols = min(len(names), 4)
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax, name in zip(axes, names):
        g = np.asarray(gen_values[name], dtype=np.float64).reshape(-1)
        r = np.asarray(ref_values[name], dtype=np.float64).reshape(-1)
        g, r = g[np.isfinite(g)], r[np.isfinite(r)]
        both = np.concatenate([g, r])
        lo, hi = np.percentile(both, [0.5, 99.5]) if both.size else (-1.0, 1.0)
        if hi <= lo:  # one value: a window around it
            lo, hi = lo - 0.5, hi + 0.5
        bins = np.linspace(lo, hi, 41)
        for v, label in ((r, ref_name), (g, gen_name)):
            if v.size:  # clipping keeps the tails visible in the edge bins
                ax.hist(np.clip(v, lo, hi), bins=bins, density=True, alpha=0.55,
                        label=f"{label} (n={v.size})")  # fmt: skip
        w1 = (distances or {}).get(name)
        if w1 is None and g.size and r.size:
            w1 = float(wasserstein_distance(r, g))
        ax.set_title(name if w1 is None else f"{name} (W1 {w1:.3g})")
        ax.set_xlabel(PROPERTIES[name][1] if name in PROPERTIES else name, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel("density")
    if title:
        fig.suptitle(title)
    _write_figure(fig, path)


def save_molecules(
    smiles: Sequence[str],
    path: str | Path,
    title: str = "",
    legends: Sequence[str] | None = None,
    per_row: int = 8,
    limit: int = 64,
) -> None:
    """The molecules of ``smiles`` drawn by RDKit in a grid (at most ``limit``, ``per_row`` a
    row), each captioned by its legend (default: its SMILES, shortened), the title above."""
    from PIL import ImageDraw

    from dgm.data import chem

    draw = importlib.import_module("rdkit.Chem.Draw")
    shown = list(smiles)[:limit]
    mols = [chem.mol(s) for s in shown]
    names = (
        list(legends)[:limit]
        if legends is not None
        else [s if len(s) <= 28 else s[:25] + "..." for s in shown]
    )
    grid = draw.MolsToGridImage(
        mols, molsPerRow=min(per_row, max(len(mols), 1)), subImgSize=(200, 200), legends=names
    )
    img = grid if isinstance(grid, Image.Image) else Image.open(io.BytesIO(grid.data))
    if title:
        canvas = Image.new("RGB", (img.width, img.height + 28), "white")
        canvas.paste(img, (0, 28))
        ImageDraw.Draw(canvas).text((8, 8), title, fill="black")
        img = canvas
    with atomic_write(Path(path), "wb") as f:
        img.save(f, format="PNG")


# --------------------------------------------------------------------------- audio
# at most this many utterances in one picture (each a waveform over its spectrogram)
AUDIO_PANELS = 8


def audio_figure(
    waves: Sequence[np.ndarray], rate: int, titles: Sequence[str] | None = None, title: str = ""
) -> Figure:
    """Each utterance (amplitudes in [-1, 1]) as its waveform over its spectrogram (a 32 ms
    window, 75% overlap, in dB), on a shared time axis in seconds; up to two columns. Every
    spectrogram shares one colour scale (the loudest bin of the figure down 80 dB), so a
    quiet utterance looks quiet next to a loud one."""
    waves = list(waves)[:AUDIO_PANELS]
    n = len(waves)
    cols = 1 if n <= 2 else 2
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(6.0 * cols, 3.2 * rows), layout="constrained")
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[1, 2] * rows)
    nfft = max(16, int(0.032 * rate))
    from matplotlib import mlab

    spectra = [  # the power of every bin, to put all panels on one dB scale
        mlab.specgram(np.asarray(w, dtype=np.float64), NFFT=nfft, Fs=rate,
                      noverlap=nfft * 3 // 4)[0].max()
        for w in waves
        if len(w) >= nfft
    ]  # fmt: skip
    loudest = max(spectra, default=0.0)
    vmax = 10 * np.log10(loudest) if loudest > 0 else 0.0
    for i, w in enumerate(waves):
        r, c = divmod(i, cols)
        top = fig.add_subplot(grid[2 * r, c])
        bottom = fig.add_subplot(grid[2 * r + 1, c], sharex=top)
        w = np.asarray(w, dtype=np.float64)
        t = np.arange(len(w)) / rate
        top.plot(t, w, linewidth=0.5, color="tab:blue")
        top.set_ylim(-1.05, 1.05)
        top.set_ylabel("amplitude")
        top.tick_params(labelbottom=False)
        if titles is not None and i < len(titles):
            top.set_title(titles[i], fontsize=9)
        if len(w) >= nfft:
            with np.errstate(divide="ignore"):  # digital silence is -inf dB: drawn black
                bottom.specgram(
                    w, NFFT=nfft, Fs=rate, noverlap=nfft * 3 // 4, cmap="magma", scale="dB",
                    vmin=vmax - 80, vmax=vmax,
                )  # fmt: skip
        bottom.set_ylabel("Hz")
        bottom.set_xlabel("seconds")
        bottom.set_xlim(0, max(len(w), 1) / rate)
    if title:
        fig.suptitle(title)
    return fig


def save_audio_figure(
    waves: Sequence[np.ndarray],
    rate: int,
    path: str | Path,
    titles: Sequence[str] | None = None,
    title: str = "",
) -> None:
    """Write :func:`audio_figure` as a PNG."""
    _write_figure(audio_figure(waves, rate, titles, title), path)


def save_audio_samples(
    levels: Tensor,
    spec: DataSpec,
    folder: str | Path,
    picture: str | Path | None = None,
    titles: Sequence[str] | None = None,
    title: str = "",
    stem: str = "sample",
) -> list[Path]:
    """Audio levels ``[n, L]`` (``spec``'s encoding) as ``folder/{stem}-00.wav``, ... (16-bit
    PCM at the spec's rate) and, with ``picture``, their waveforms over spectrograms; returns
    the wav paths."""
    from dgm.data.audio import decode, write_wav

    assert spec.sample_rate is not None and spec.levels is not None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    waves = decode(levels.detach().float().cpu(), spec.encoding or "mulaw", spec.levels).numpy()
    width = max(2, len(str(len(waves) - 1)))
    paths = []
    for i, w in enumerate(waves):
        path = folder / f"{stem}-{i:0{width}d}.wav"
        write_wav(path, w, spec.sample_rate)
        paths.append(path)
    if picture is not None:
        save_audio_figure(list(waves), spec.sample_rate, picture, titles, title)
    return paths
