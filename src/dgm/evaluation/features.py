"""dgm's own feature network for sample-quality metrics.

The Frechet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update
Rule Converge to a Local Nash Equilibrium") measures samples in the features of an ImageNet
classifier. That network cannot be downloaded here, and it fits 8x8 digits, binary MNIST or
2-D points badly, so dgm follows the common practice for small datasets (e.g. the "FID with a
LeNet trained on MNIST" of the GAN literature): train a small classifier on the dataset's own
labelled training split and use its penultimate layer as the feature space. The network is
stored in a run folder (``RUN/features``) as ``config.json`` + ``model.safetensors``, so every
evaluation of a run uses the same features.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from dgm import progress
from dgm.data.base import Dataset, DataSpec, Split
from dgm.errors import ConfigError, DataError
from dgm.io import CONFIG, WEIGHTS, atomic_save, write_json

if TYPE_CHECKING:
    from dgm.evaluation.audio_features import AudioFeatureNet

KIND = "dgm-feature-net"  # marks a feature-net folder, so a model folder is not mistaken for one
FORMAT_VERSION = 1
TARGET_STEPS = 4000  # optimiser steps the automatic epoch count aims for (see train_feature_net)
MAX_AUTO_EPOCHS = 60


class FeatureNet(nn.Module):
    """A small classifier for data described by ``spec``; its penultimate layer is the feature.

    Images ``(C, H, W)``: two 3x3 conv layers (``width`` and ``2*width`` channels), each followed
    by 2x2 max-pooling while the map is at least 4 pixels wide (8x8 -> 2x2, 28x28 -> 7x7), then
    a fully connected feature layer. Vectors ``(D,)``: a two-layer MLP, then the feature layer.
    The feature layer is ``feature_dim`` units with ReLU, followed by dropout and a linear head.

    Inputs are scaled by the buffers ``shift`` and ``scale``: discrete levels to ``[0, 1]``
    (divided by ``levels - 1``); continuous data standardised with the training split's
    statistics (set by :func:`train_feature_net`; identity until then).
    """

    folder_kind = KIND  # what its saved folder says it is

    def __init__(
        self, spec: DataSpec, feature_dim: int = 64, width: int = 32, dropout: float = 0.3
    ) -> None:
        super().__init__()
        if not spec.num_classes or spec.num_classes < 2:
            raise DataError(
                f"{spec.name} has no class labels; sample-quality metrics need a labelled "
                "dataset or a named feature-net folder"
            )
        if len(spec.shape) not in (1, 3):
            raise DataError(f"FeatureNet takes images (C, H, W) or vectors (D,), not {spec.shape}")
        self.spec = spec
        self.feature_dim, self.width, self.dropout = int(feature_dim), int(width), float(dropout)
        self.kind = "conv" if spec.is_image else "mlp"
        if spec.is_image:
            c, h, w = spec.shape
            layers: list[nn.Module] = []
            for c_in, c_out in ((c, width), (width, 2 * width)):
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
                if min(h, w) >= 4:  # pool while the map is big enough to keep some layout
                    layers.append(nn.MaxPool2d(2))
                    h, w = h // 2, w // 2
            self.body = nn.Sequential(*layers, nn.Flatten())
            flat = 2 * width * h * w
        else:
            hidden = 4 * width
            self.body = nn.Sequential(
                nn.Linear(spec.dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
            )
            flat = hidden
        self.feature = nn.Sequential(nn.Linear(flat, feature_dim), nn.ReLU())
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, spec.num_classes)
        # input scaling; scalar for images, per dimension for vectors (tables mix units)
        stat_shape = spec.shape if not spec.is_image else (1,)
        discrete = spec.levels is not None
        self.register_buffer("shift", torch.zeros(stat_shape))
        self.register_buffer(
            "scale", torch.full(stat_shape, float(spec.levels - 1) if discrete else 1.0)
        )
        self.metrics: dict[str, Any] = {}  # filled by training and loading

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments besides ``spec`` (JSON-able)."""
        return {"feature_dim": self.feature_dim, "width": self.width, "dropout": self.dropout}

    def describe(self) -> str:
        """One line that says which feature network produced a number."""
        acc = self.metrics.get("test_accuracy")
        acc_txt = f"test acc {acc:.3f}" if isinstance(acc, float) else "test acc n/a"
        return (
            f"dgm FeatureNet ({self.kind}, {self.feature_dim}-d penultimate layer) trained on "
            f"{self.spec.name} train split, {acc_txt}"
        )

    def set_standardization(self, x: Tensor) -> None:
        """For continuous data: scale inputs by the mean and std of ``x`` (``[N, *shape]``)."""
        if self.spec.levels is not None:
            return
        x = x.to(self.shift.dtype)
        if self.spec.is_image:
            mean, std = x.mean().reshape(1), x.std().reshape(1)
        else:
            mean, std = x.mean(0), x.std(0)
        std = torch.where(std > 0, std, torch.ones_like(std))  # constant columns: leave them
        self.shift.copy_(mean)
        self.scale.copy_(std)

    def _embed(self, x: Tensor) -> Tensor:
        x = (x - self.shift) / self.scale  # [B, *shape]
        return self.feature(self.body(x))  # [B, F]

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``[B, num_classes]`` for ``x`` ``[B, *shape]``."""
        return self.head(self.drop(self._embed(x)))

    def _check(self, x: Tensor, what: str) -> None:
        if x.dim() < 1 or tuple(x.shape[1:]) != tuple(self.spec.shape):
            raise DataError(
                f"{what} have shape {tuple(x.shape[1:])} per example but the feature network "
                f"was trained on {self.spec.name} with shape {tuple(self.spec.shape)}"
            )
        if x.numel() and not torch.isfinite(x).all():
            raise DataError(f"{what} contain NaN or infinite values; fix the model or drop them")

    @torch.no_grad()
    def _batched(self, fn: Any, x: Tensor, batch_size: int, what: str) -> Tensor:
        """``fn`` on ``x`` batch by batch, in eval mode, on the net's device and dtype; the
        result goes back to ``x``'s device."""
        self._check(x, what)
        p = next(self.parameters())
        was_training = self.training
        self.eval()
        try:
            out = [
                fn(x[i : i + batch_size].to(device=p.device, dtype=p.dtype)).to(x.device)
                for i in range(0, x.shape[0], batch_size)
            ]
        finally:
            self.train(was_training)
        if not out:
            raise DataError(f"{what} are empty; pass at least one example")
        return torch.cat(out)

    def features(self, x: Tensor, batch_size: int = 500, what: str = "samples") -> Tensor:
        """Penultimate-layer features ``[N, feature_dim]`` of ``x`` ``[N, *shape]``."""
        return self._batched(self._embed, x, batch_size, what)

    def logits(self, x: Tensor, batch_size: int = 500, what: str = "samples") -> Tensor:
        """Class logits ``[N, num_classes]`` of ``x``, batched, in eval mode, without grad."""
        return self._batched(self.forward, x, batch_size, what)


# --------------------------------------------------------------------------- training


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Translate each image of ``x`` (``[B, C, H, W]``) by up to ``max_shift`` pixels in each
    direction, filling with zeros: the standard augmentation that lets a small classifier
    generalise across writers (the digits test split is written by other people)."""
    b, _, h, w = x.shape
    s = max_shift
    xp = nn.functional.pad(x, (s, s, s, s))  # [B, C, H+2s, W+2s]
    off = torch.randint(0, 2 * s + 1, (2, b), generator=generator, device=x.device)  # [2, B]
    rows = off[0][:, None] + torch.arange(h, device=x.device)  # [B, H]
    cols = off[1][:, None] + torch.arange(w, device=x.device)  # [B, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2)


def _evaluate(net: FeatureNet, split: Split) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``net`` on a labelled split."""
    assert split.y is not None
    logits = net.logits(split.x, what="examples")  # [N, K]
    y = split.y.to(logits.device)
    acc = (logits.argmax(1) == y).double().mean()
    return float(acc), float(nn.functional.cross_entropy(logits.double(), y))


def _accuracy(net: FeatureNet, split: Split) -> float | None:
    if split.y is None or len(split) == 0:
        return None
    return _evaluate(net, split)[0]


def train_feature_net(
    dataset: Dataset,
    *,
    epochs: int | None = None,
    batch_size: int = 64,
    lr: float = 2e-3,
    patience: int = 15,
    augment: bool = True,
    seed: int = 0,
    max_time: float | None = None,
    device: torch.device | str | None = None,
    **net_config: Any,
) -> tuple[FeatureNet, dict[str, Any]]:
    """Train a :class:`FeatureNet` on ``dataset.train`` with Adam; keep the best on val accuracy.

    ``epochs=None`` picks about ``TARGET_STEPS`` optimiser steps (at least 3 epochs, at most
    ``MAX_AUTO_EPOCHS``): 60 epochs on digits, 6 on MNIST. Training stops early when val accuracy
    has not improved for ``patience`` epochs or after ``max_time`` seconds. Binarized datasets
    are binarized afresh in every batch, as their models see them. Runs on ``device`` (default:
    the data's device); the global RNG state is left untouched.

    Returns the network (in eval mode, ``net.metrics`` set) and its metrics: ``val_accuracy``,
    ``test_accuracy``, ``train_accuracy``, ``epochs``, ``best_epoch``, ``steps``, ``seconds``.
    """
    spec, train = dataset.spec, dataset.train
    if train.y is None or not spec.num_classes:
        raise DataError(
            f"{spec.name} has no class labels; sample-quality metrics need a labelled dataset "
            "or a named feature-net folder"
        )
    if len(train) < 2:
        raise DataError(f"{spec.name} has {len(train)} training examples; need at least 2")
    if batch_size < 1 or lr <= 0:
        raise ConfigError(f"batch_size must be >= 1 and lr > 0, got {batch_size} and {lr}")
    dev = torch.device(device) if device is not None else train.x.device
    x, y = train.x.to(dev), train.y.to(dev)  # [N, *shape], [N]
    val = dataset.val.to(dev) if len(dataset.val) and dataset.val.y is not None else None
    n = x.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    if epochs is None:
        epochs = min(MAX_AUTO_EPOCHS, max(3, math.ceil(TARGET_STEPS / steps_per_epoch)))

    # image augmentation: shifts of about 1/14 of the side (1 px on 8x8, 2 px on 28x28)
    shift = max(1, round(min(spec.shape[1:]) / 14)) if augment and spec.is_image else 0

    start = time.monotonic()
    fork_devices = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):  # seeded init and dropout, RNG restored
        torch.manual_seed(seed)
        net = FeatureNet(spec, **net_config).to(dev)
        net.set_standardization(x)
        gen = torch.Generator(device=dev).manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        # cosine decay over the planned steps: the last epochs refine instead of jitter
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
        best_key, best_epoch, best_state, step, epoch = (-1.0, 0.0), 0, None, 0, 0
        bar = progress.task(epochs, f"feature net ({spec.name})", unit="epochs")
        out_of_time = False
        for epoch in range(1, epochs + 1):
            net.train()
            perm = torch.randperm(n, generator=gen, device=dev)  # [N]
            for i in range(0, n, batch_size):
                idx = perm[i : i + batch_size]
                xb = x[idx]
                if spec.binarize:  # training data are probabilities: binarize like the models
                    xb = torch.bernoulli(xb, generator=gen)
                if shift:
                    xb = random_shift(xb, shift, gen)
                loss = nn.functional.cross_entropy(net(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                if max_time is not None and time.monotonic() - start > max_time:
                    out_of_time = True
                    break
            # model selection on val accuracy (train accuracy when there is no labelled val)
            # (ties in accuracy, common once val is nearly all right, go to the lower loss)
            acc, val_loss = _evaluate(net, val if val is not None else Split(x, y))
            if (acc, -val_loss) > best_key:
                best_key, best_epoch = (acc, -val_loss), epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if progress.enabled():  # (.item() waits for a GPU: only when shown)
                bar.set_postfix(loss=f"{loss.item():.3f}", val_acc=f"{acc:.4f}")
            bar.update(1)
            if out_of_time or epoch - best_epoch >= patience:
                break
        bar.close()
    assert best_state is not None
    net.load_state_dict(best_state)
    net.eval()
    test = dataset.test.to(dev)
    metrics: dict[str, Any] = {
        "train_accuracy": _accuracy(net, Split(x, y)),
        "val_accuracy": _accuracy(net, val) if val is not None else None,
        "test_accuracy": _accuracy(net, test),
        "epochs": epoch,
        "best_epoch": best_epoch,
        "steps": step,
        "seconds": round(time.monotonic() - start, 2),
        "train_examples": n,
        "seed": seed,
    }
    net.metrics = metrics
    return net, metrics


# --------------------------------------------------------------------------- save / load


def save_feature_net(net: FeatureNet | AudioFeatureNet, folder: str | Path) -> None:
    """Write ``config.json`` and ``model.safetensors`` into ``folder``, each atomically (an
    image or vector :class:`FeatureNet`, or the audio one)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    # weights first: a folder whose config.json exists always has the matching weights
    kind = net.folder_kind
    atomic_save(folder / WEIGHTS, lambda tmp: save_file(state, tmp, metadata={"kind": kind}))
    cfg = {
        "kind": kind,
        "format": FORMAT_VERSION,
        "spec": net.spec.to_dict(),
        "config": net.config,
        "metrics": net.metrics,
    }
    write_json(folder / CONFIG, cfg)


def load_feature_net(
    folder: str | Path, map_location: str | torch.device | None = None
) -> FeatureNet | AudioFeatureNet:
    """Load a network saved by :func:`save_feature_net`; anything damaged raises DataError."""
    from dgm.evaluation.audio_features import AUDIO_KIND, AudioFeatureNet

    folder = Path(folder)
    cfg_file, weights = folder / CONFIG, folder / WEIGHTS
    if not cfg_file.is_file():
        raise DataError(f"{folder} holds no feature network (no {CONFIG}); train one first")
    try:
        cfg = json.loads(cfg_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{cfg_file} is not valid JSON ({e}); delete {folder} to retrain") from None
    if not isinstance(cfg, dict) or cfg.get("kind") not in (KIND, AUDIO_KIND):
        raise DataError(f"{cfg_file} does not describe a dgm feature network")
    cls = AudioFeatureNet if cfg["kind"] == AUDIO_KIND else FeatureNet
    try:
        spec = DataSpec.from_dict(cfg["spec"])
        net = cls(spec, **cfg.get("config", {}))
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(
            f"{cfg_file} has a bad spec or config ({e}); delete {folder} to retrain"
        ) from None
    if not weights.is_file():
        raise DataError(f"{weights} is missing; delete {folder} to retrain the feature network")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(
            f"{weights} is not a valid safetensors file ({str(e).splitlines()[0]}); "
            f"delete {folder} to retrain the feature network"
        ) from None
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise DataError(
            f"{weights} does not match its {CONFIG}: {str(e).splitlines()[0]}"
        ) from None
    net.metrics = dict(cfg.get("metrics") or {})
    net.eval()
    if map_location is not None:
        net.to(map_location)
    return net


def _matches(net: FeatureNet, spec: DataSpec) -> bool:
    s = net.spec
    return (s.name, tuple(s.shape), s.levels, s.num_classes) == (
        spec.name,
        tuple(spec.shape),
        spec.levels,
        spec.num_classes,
    )


def feature_net_for(dataset: Dataset, folder: str | Path, **train_kwargs: Any) -> FeatureNet:
    """The feature network for ``dataset`` cached in ``folder`` (``RUN/features``).

    Loads it when ``folder`` holds one for the same data (name, shape, levels, classes);
    otherwise (absent, damaged, or for other data) trains one with
    :func:`train_feature_net` (``train_kwargs``) and saves it there, replacing what was there.
    """
    folder = Path(folder)
    device = train_kwargs.get("device")
    if (folder / CONFIG).is_file():
        try:
            net = load_feature_net(folder, map_location=device)
        except DataError:
            net = None  # a damaged cache is rebuilt rather than trusted
        if net is not None and _matches(net, dataset.spec):
            return net
    net, _ = train_feature_net(dataset, **train_kwargs)
    save_feature_net(net, folder)
    return net
