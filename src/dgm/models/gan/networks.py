"""Generator and discriminator networks of a GAN (Goodfellow et al. 2014, "Generative
Adversarial Nets"), sized from the data's event shape: images are ``(C, H, W)``, vectors
``(D,)``.

- :class:`MLPGenerator` / :class:`MLPDiscriminator`: fully connected, on flattened examples.
- :class:`DCGANGenerator` / :class:`DCGANDiscriminator`: Radford et al. (2016), "Unsupervised
  Representation Learning with Deep Convolutional Generative Adversarial Networks": G projects
  z to a small feature map and doubles it with stride-2 transposed convolutions (BatchNorm,
  ReLU); D halves the image with stride-2 convolutions and LeakyReLU(0.2).

Generators return *unbounded pre-activations* ``[B, *shape]``: the model maps them to the
data's range (a sigmoid for data in [0, 1], nothing for continuous data). Discriminators return
one logit (critic value) per example, ``[B]``.

Class-conditional nets (``num_classes > 0``): G concatenates a learned class embedding to z;
D is a projection discriminator (Miyato & Koyama 2018, "cGANs with Projection Discriminator"):
``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>``. ``spectral_norm=True`` normalises every weight
of D, the projection embedding included as in that paper (Miyato et al. 2018, "Spectral
Normalization for Generative Adversarial Networks").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

from dgm.errors import ConfigError, DataError
from dgm.nn.activations import Activation
from dgm.nn.activations import activation as _activation

if TYPE_CHECKING:
    from dgm.models.gan.gan import GANConfig

Norm = Literal["none", "batch", "layer"]
Backbone = Literal["auto", "mlp", "conv"]

LEAKY_SLOPE = 0.2  # DCGAN's slope for D; the house `activation("leaky_relu")` uses 0.01


def _d_act(name: str) -> nn.Module:
    """D's activation: LeakyReLU(0.2) as in DCGAN for ``leaky_relu``, else the house one."""
    return nn.LeakyReLU(LEAKY_SLOPE) if name == "leaky_relu" else _activation(name)


def _check_labels(net: nn.Module, num_classes: int, y: Tensor | None) -> None:
    name = type(net).__name__
    if num_classes > 0 and y is None:
        raise ConfigError(f"{name} is class-conditional ({num_classes} classes): pass labels y")
    if num_classes == 0 and y is not None:
        raise ConfigError(f"{name} is not class-conditional: call it without labels")


def _check_shape(net: nn.Module, x: Tensor, shape: tuple[int, ...], what: str) -> None:
    if tuple(x.shape[1:]) != shape:
        raise DataError(
            f"{type(net).__name__} expects {what} of shape [B, {', '.join(map(str, shape))}], "
            f"got {list(x.shape)}"
        )


def _image_shape(shape: Sequence[int], net: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ConfigError(f"{net} needs an image shape (C, H, W), got {tuple(shape)}: use mlp")
    c, h, w = (int(s) for s in shape)
    if min(h, w) < 4:
        raise ConfigError(f"{net} needs images of at least 4x4, got {h}x{w}: use mlp")
    return c, h, w


def stages(height: int, width: int) -> int:
    """Stride-2 stages of the DCGAN pair: 2, plus one per doubling that keeps the smallest
    feature map at 8 or more (8x8, 28x28, 32x32 -> 2; 64x64 -> 3; 128x128 -> 4)."""
    n = 2
    while math.ceil(min(height, width) / 2**n) >= 16:
        n += 1
    return n


def apply_spectral_norm(net: nn.Module) -> nn.Module:
    """Spectral normalisation (one power iteration per training forward) of every Linear,
    convolution and Embedding weight of ``net``, in place; returns ``net``."""
    for m in list(net.modules()):
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)):
            _sn(m)
    return net


class _Projection(nn.Module):
    """The projection head: ``psi(phi) + <embed(y), phi>`` -> ``[B]`` (Miyato & Koyama 2018)."""

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.psi = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features) if num_classes > 0 else None

    def forward(self, phi: Tensor, y: Tensor | None) -> Tensor:  # [B, F] -> [B]
        out = self.psi(phi).squeeze(-1)
        if self.embed is not None and y is not None:
            out = out + (self.embed(y.long()) * phi).sum(-1)
        return out


class _ConditionalInput(nn.Module):
    """z, or z concatenated with a learned embedding of the class (of z's size)."""

    def __init__(self, latent: int, num_classes: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, latent) if num_classes > 0 else None
        self.out_dim = latent * (2 if num_classes > 0 else 1)

    def forward(self, z: Tensor, y: Tensor | None) -> Tensor:  # [B, K] -> [B, K or 2K]
        if self.embed is None or y is None:
            return z
        return torch.cat([z, self.embed(y.long()).to(z.dtype)], dim=1)


# -- fully connected ------------------------------------------------------------------------
class MLPGenerator(nn.Module):
    """``z [B, latent] -> [B, *shape]`` unbounded pre-activations: ``layers`` hidden layers of
    ``hidden`` units, then a linear output layer (``layers=0``: linear in z)."""

    def __init__(
        self,
        latent: int,
        shape: Sequence[int],
        hidden: int = 256,
        layers: int = 3,
        activation: Activation = "relu",
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.latent, self.shape, self.num_classes = latent, tuple(shape), num_classes
        self.input = _ConditionalInput(latent, num_classes)
        sizes = [self.input.out_dim] + [hidden] * layers
        body: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            body += [nn.Linear(a, b), _activation(activation)]
        self.body = nn.Sequential(*body)
        self.last = nn.Linear(sizes[-1], math.prod(self.shape))

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        _check_labels(self, self.num_classes, y)
        _check_shape(self, z, (self.latent,), "noise z")
        out = self.last(self.body(self.input(z, y)))  # [B, D]
        return out.view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    """``x [B, *shape] -> [B]`` logits: ``phi`` = ``layers`` hidden layers of ``hidden`` units
    on the flattened example (``layers=0``: the example itself), then the projection head."""

    def __init__(
        self,
        shape: Sequence[int],
        hidden: int = 256,
        layers: int = 3,
        activation: Activation = "leaky_relu",
        spectral_norm: bool = False,
        num_classes: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.shape, self.num_classes = tuple(shape), num_classes
        sizes = [math.prod(self.shape)] + [hidden] * layers
        body: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            body += [nn.Linear(a, b), _d_act(activation)]
            if dropout > 0:
                body.append(nn.Dropout(dropout))
        self.phi = nn.Sequential(*body)
        self.head = _Projection(sizes[-1], num_classes)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        _check_labels(self, self.num_classes, y)
        _check_shape(self, x, self.shape, "inputs")
        return self.head(self.phi(x.flatten(1)), y)  # [B]


# -- DCGAN ----------------------------------------------------------------------------------
class DCGANGenerator(nn.Module):
    """``z [B, latent] -> [B, C, H, W]`` unbounded pre-activations (Radford et al. 2016).

    A linear layer projects z to ``channels * 2^n`` maps of ``ceil(H / 2^n) x ceil(W / 2^n)``
    (BatchNorm, ReLU); ``n`` stride-2 4x4 transposed convolutions double the maps while halving
    the channels (BatchNorm, ReLU), the last of which emits the C output maps, as in DCGAN: no
    full-resolution hidden maps, which keeps the many G evaluations of AIS light. At each
    resolution G has twice :class:`DCGANDiscriminator`'s channels, as in the paper. A centre
    crop trims the ``2^n``-multiple to exactly ``H x W`` (28 = 7 * 4 and 8 = 2 * 4 need none;
    12x12 starts from 3x3; any side >= 4 works).
    """

    def __init__(
        self,
        latent: int,
        shape: Sequence[int],
        channels: int = 64,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        c, h, w = _image_shape(shape, "DCGANGenerator")
        self.latent, self.shape, self.num_classes = latent, (c, h, w), num_classes
        n = stages(h, w)
        self.start = (channels * 2**n, math.ceil(h / 2**n), math.ceil(w / 2**n))
        self.input = _ConditionalInput(latent, num_classes)
        # BatchNorm follows each layer, so their biases would be redundant
        self.project = nn.Linear(self.input.out_dim, math.prod(self.start), bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(self.start[0]), nn.ReLU()]
        for i in range(n - 1):
            a, b = channels * 2 ** (n - i), channels * 2 ** (n - i - 1)
            layers += [
                nn.ConvTranspose2d(a, b, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(b),
                nn.ReLU(),
            ]
        layers.append(nn.ConvTranspose2d(channels * 2, c, 4, stride=2, padding=1))
        self.convs = nn.Sequential(*layers)
        size_h, size_w = self.start[1] * 2**n, self.start[2] * 2**n
        self.crop = ((size_h - h) // 2, (size_w - w) // 2)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        _check_labels(self, self.num_classes, y)
        _check_shape(self, z, (self.latent,), "noise z")
        h = self.project(self.input(z, y)).view(z.shape[0], *self.start)  # [B, C0, H0, W0]
        out = self.convs(h)  # [B, C, H0 * 2^n, W0 * 2^n]
        (top, left), (_, height, width) = self.crop, self.shape
        return out[:, :, top : top + height, left : left + width]


class DCGANDiscriminator(nn.Module):
    """``x [B, C, H, W] -> [B]`` logits (Radford et al. 2016): ``n`` stride-2 4x4 convolutions
    with ``channels * 2^i`` channels and LeakyReLU(0.2) halve the image (floor), the flattened
    maps are ``phi(x)``, and the projection head gives the logit.

    ``norm`` follows every convolution but the first (DCGAN leaves D's input layer bare):
    ``"none"`` by default because a gradient penalty (wgan-gp) is per example, and BatchNorm
    couples the examples of a batch; ``"layer"`` (over C, H, W) is the WGAN-GP paper's choice.
    """

    def __init__(
        self,
        shape: Sequence[int],
        channels: int = 64,
        spectral_norm: bool = False,
        num_classes: int = 0,
        dropout: float = 0.0,
        norm: Norm = "none",
    ) -> None:
        super().__init__()
        c, h, w = _image_shape(shape, "DCGANDiscriminator")
        if norm not in ("none", "batch", "layer"):
            raise ConfigError(f"unknown norm {norm!r}: choose none, batch or layer")
        self.shape, self.num_classes = (c, h, w), num_classes
        n = stages(h, w)
        layers: list[nn.Module] = []
        for i in range(n):
            out_c = channels * 2**i
            layers.append(nn.Conv2d(c, out_c, 4, stride=2, padding=1))
            if i > 0 and norm == "batch":
                layers.append(nn.BatchNorm2d(out_c))
            elif i > 0 and norm == "layer":
                layers.append(nn.GroupNorm(1, out_c))  # one group: LayerNorm over (C, H, W)
            layers.append(nn.LeakyReLU(LEAKY_SLOPE))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            c = out_c
        self.phi = nn.Sequential(*layers, nn.Flatten())
        self.head = _Projection(c * (h // 2**n) * (w // 2**n), num_classes)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        _check_labels(self, self.num_classes, y)
        _check_shape(self, x, self.shape, "images")
        return self.head(self.phi(x), y)  # [B]


def make_gan_nets(c: GANConfig) -> tuple[nn.Module, nn.Module]:
    """``(G, D)`` for a GAN's config: DCGAN for images of 8x8 and up under ``backbone=auto``, the
    MLP pair otherwise. ``activation`` is G's (mlp); D uses LeakyReLU(0.2). ``pack`` > 1: D
    reads ``pack`` samples stacked along the event's first axis (PacGAN)."""
    shape = tuple(int(s) for s in c.shape)
    d_shape = (shape[0] * c.pack, *shape[1:])
    k = int(c.num_classes or 0) if c.conditional else 0
    backbone = c.backbone
    if backbone == "auto":
        backbone = "conv" if len(shape) == 3 and min(shape[1:]) >= 8 else "mlp"
    if backbone == "conv":
        return (
            DCGANGenerator(c.latent, shape, c.channels, num_classes=k),
            DCGANDiscriminator(
                d_shape, c.channels, c.spectral_norm, num_classes=k, dropout=c.dropout
            ),
        )
    if backbone == "mlp":
        return (
            MLPGenerator(
                c.latent, shape, c.hidden, layers=c.layers, activation=c.activation, num_classes=k
            ),
            MLPDiscriminator(
                d_shape,
                c.hidden,
                c.layers,
                activation="leaky_relu",
                spectral_norm=c.spectral_norm,
                num_classes=k,
                dropout=c.dropout,
            ),
        )
    raise ConfigError(f"unknown gan backbone {backbone!r}: choose auto, mlp or conv")


__all__ = [
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "apply_spectral_norm",
    "make_gan_nets",
    "stages",
]
