"""Glow's building blocks (Kingma & Dhariwal 2018, "Glow: Generative Flow with Invertible 1x1
Convolutions"): actnorm, the invertible 1x1 convolution, and the squeeze / channel slicing of
the multi-scale architecture (Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using
Real NVP", section 3.6).

Every transform acts on channels, dim 1 of the batch: ``[B, C, H, W]`` images (event_dim 3)
or ``[B, D]`` vectors (event_dim 1, where each feature is its own channel and the 1x1
convolution is a learned invertible linear map). A per-channel log-det counts once per
pixel: ``ladj = H * W * (per-pixel log-det)`` (1 for vectors).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.transforms.base import Bijection, FlowLayer, zeros_like_batch


def _check_batch(x: Tensor, event_dim: int, channels: int | None, who: str) -> None:
    """Shape errors here, not as a silent broadcast of ``[C, 1, 1]`` against ``[B, D]``."""
    if x.dim() != 1 + event_dim:
        raise ValueError(
            f"{who} expects a batch [B, *event] with {event_dim} event dim(s) "
            f"({'[B, C, H, W]' if event_dim == 3 else '[B, D]' if event_dim == 1 else ''}), "
            f"got shape {tuple(x.shape)}"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{who} has {channels} channels (dim 1), got shape {tuple(x.shape)}")


def _pixels(x: Tensor) -> int:
    """How many times a per-channel map is applied per example: ``H * W`` (1 for vectors)."""
    return math.prod(x.shape[2:])


# -- actnorm --------------------------------------------------------------------------------


class ActNormTransform(Bijection):
    """``y = (x + loc) * exp(log_scale)`` per channel; ladj = ``H * W * sum(log_scale)``.

    ``loc`` and ``log_scale`` are ``[C]`` (shared: actnorm is not conditional). ``initialize``,
    if given, is called with the input of every forward call before the parameters are read:
    it is how :class:`ActNorm` sets them from the first batch (data-dependent initialisation).
    The inverse never initialises (it sees noise, not data).
    """

    def __init__(
        self,
        loc: Tensor,
        log_scale: Tensor,
        event_dim: int = 3,
        initialize: Callable[[Tensor], None] | None = None,
    ) -> None:
        super().__init__(event_dim)
        self.loc = loc
        self.log_scale = log_scale
        self.initialize = initialize

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        _check_batch(x, self._event_dim, self.loc.shape[0], "ActNorm")
        view = (-1,) + (1,) * (self._event_dim - 1)  # [C] -> [C, 1, 1] for images
        ladj = self.log_scale.sum() * _pixels(x) * x.new_ones(x.shape[0])  # [B]
        return self.loc.view(view), self.log_scale.view(view), ladj

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.initialize is not None:
            self.initialize(x)  # in place on the layer's parameters, which we read below
        loc, log_scale, ladj = self._params(x)
        return (x + loc) * torch.exp(log_scale), ladj

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        loc, log_scale, ladj = self._params(y)
        return y * torch.exp(-log_scale) - loc, -ladj


class ActNorm(FlowLayer):
    """Glow's activation normalisation: a per-channel affine map, ``y = (x + loc) * exp(s)``.

    Data-dependent initialisation (Glow, section 3.1): the first forward call in training mode
    sets ``loc = -mean`` and ``log_scale = -log std`` of that batch per channel, so that the
    output has zero mean and unit variance per channel; afterwards they are ordinary
    parameters. The persistent buffer ``initialized`` (float 0/1, so that safetensors stores
    it and weight averaging keeps it: an average of ones is one) records that it happened; a
    model loaded from a checkpoint is not re-initialised.

    ``event_dim`` 3 for images ``[B, C, H, W]`` (channels on dim 1), 1 for vectors ``[B, D]``
    (each feature its own channel).
    """

    initialized: Tensor

    def __init__(self, num_features: int, event_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        if event_dim < 1:
            raise ValueError(f"event_dim must be >= 1, got {event_dim}")
        self.num_features = num_features
        self.event_dim = event_dim
        self.eps = eps
        # the identity until the data-dependent initialisation
        self.loc = nn.Parameter(torch.zeros(num_features))
        self.log_scale = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("initialized", torch.zeros(()))
        # a Python-side copy of `initialized`, so that reading the buffer (a device sync) is
        # paid once, not on every training step; reset whenever a state dict is loaded
        self._known_initialized = False

    def forward(self, context: Tensor | None = None) -> ActNormTransform:
        init = self._initialize if self.training and not self._known_initialized else None
        return ActNormTransform(self.loc, self.log_scale, self.event_dim, initialize=init)

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        """Set ``loc`` / ``log_scale`` from the batch ``x`` unless that already happened.

        Under DDP every rank initialises from its own batch, so the ranks' parameters differ by
        their batches' statistics (DDP broadcasts parameters only at construction): harmless,
        each is a valid initialisation, and the checkpoint keeps rank 0's.
        """
        if self._known_initialized:
            return
        if bool(self.initialized > 0.5):
            self._known_initialized = True
            return
        _check_batch(x, self.event_dim, self.num_features, "ActNorm")
        xc = x.detach().transpose(0, 1).reshape(self.num_features, -1)  # [C, B*H*W]
        mean = xc.mean(dim=1)
        std = xc.std(dim=1, correction=0)
        self.loc.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.initialized.fill_(1.0)
        self._known_initialized = True

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._known_initialized = False  # the loaded buffer decides, on the next call

    def extra_repr(self) -> str:
        return f"{self.num_features}, event_dim={self.event_dim}"


# -- invertible 1x1 convolution -------------------------------------------------------------


def _channel_matmul(w: Tensor, x: Tensor) -> Tensor:
    """``y[:, i, ...] = sum_j w[i, j] x[:, j, ...]``: a 1x1 convolution, or ``x @ w.T``."""
    if x.dim() == 2:
        return F.linear(x, w)
    if x.dim() == 4:
        return F.conv2d(x, w[:, :, None, None])
    return torch.einsum("ij,bj...->bi...", w, x)


class Conv1x1Transform(Bijection):
    """``y = W x`` on the channels of every pixel; ladj = ``H * W * log|det W|``.

    ``weight`` is ``[C, C]``. ``log_det`` is the per-pixel ``log|det W|`` (a scalar tensor;
    computed by ``slogdet`` when not given). ``weight_inv`` is ``W^-1`` or a callable that
    computes it (only when the inverse is asked for); by default ``torch.linalg.inv``. The
    inverse is computed once per call on the ``C x C`` matrix, never per pixel.
    """

    def __init__(
        self,
        weight: Tensor,
        log_det: Tensor | None = None,
        weight_inv: Tensor | Callable[[], Tensor] | None = None,
        event_dim: int = 3,
    ) -> None:
        super().__init__(event_dim)
        self.weight = weight
        self.log_det = torch.linalg.slogdet(weight)[1] if log_det is None else log_det
        self.weight_inv = weight_inv

    def _ladj(self, x: Tensor) -> Tensor:
        return self.log_det * _pixels(x) * x.new_ones(x.shape[0])  # [B]

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _check_batch(x, self._event_dim, self.weight.shape[0], "Conv1x1Transform")
        return _channel_matmul(self.weight, x), self._ladj(x)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        _check_batch(y, self._event_dim, self.weight.shape[0], "Conv1x1Transform")
        w_inv = self.weight_inv
        if w_inv is None:
            w_inv = torch.linalg.inv(self.weight)
        elif callable(w_inv):
            w_inv = w_inv()
        return _channel_matmul(w_inv, y), -self._ladj(y)


class InvertibleConv1x1(FlowLayer):
    """Glow's invertible 1x1 convolution (section 3.2), a learned channel mixing ``y = W x``.

    Initialised from a random rotation (QR of a Gaussian matrix, from torch's global RNG).
    ``lu=True`` (Glow's LU-decomposed form): ``W = P L (U + diag(sign(s) exp(log|s|))))`` with
    ``P`` a fixed permutation (buffer), ``L`` unit lower-triangular, ``U`` strictly upper-
    triangular and ``sign(s)`` fixed (buffer): log|det W| = ``sum(log|s|)`` costs ``O(C)``.
    ``lu=False``: ``W`` is a plain parameter, log|det| by ``slogdet`` (``O(C^3)``).
    ``event_dim`` 3 for images ``[B, C, H, W]``, 1 for vectors ``[B, D]``.
    """

    def __init__(self, channels: int, lu: bool = True, event_dim: int = 3) -> None:
        super().__init__()
        self.channels = channels
        self.lu = lu
        self.event_dim = event_dim
        dtype = torch.get_default_dtype()
        # a random orthogonal matrix (|det| = 1); computed in float64 so that the LU factors
        # reproduce it to rounding, then stored in the default dtype
        q = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))[0]
        if torch.linalg.det(q) < 0:  # a rotation: det +1 rather than -1
            q[:, 0] = -q[:, 0]
        if lu:
            p, lower, upper = torch.linalg.lu(q)
            s = torch.diagonal(upper)
            self.register_buffer("perm", p.to(dtype))  # float: ±0/1 survive averaging and casts
            self.register_buffer("sign_s", torch.sign(s).to(dtype))
            self.lower = nn.Parameter(torch.tril(lower, -1).to(dtype))  # strictly lower part
            self.upper = nn.Parameter(torch.triu(upper, 1).to(dtype))  # strictly upper part
            self.log_s = nn.Parameter(torch.log(s.abs()).to(dtype))
        else:
            self.weight = nn.Parameter(q.to(dtype))

    def _factors(self) -> tuple[Tensor, Tensor]:
        """``L`` (unit lower) and ``U + diag(s)`` (upper); the masks keep the triangles."""
        eye = torch.eye(self.channels, device=self.lower.device, dtype=self.lower.dtype)
        lower = torch.tril(self.lower, -1) + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign_s * torch.exp(self.log_s))
        return lower, upper

    def weight_matrix(self) -> Tensor:
        """``W`` ``[C, C]``: ``y[:, i] = sum_j W[i, j] x[:, j]``."""
        if not self.lu:
            return self.weight
        lower, upper = self._factors()
        return self.perm @ lower @ upper

    def _inverse_matrix(self) -> Tensor:
        # W^-1 = (U + diag s)^-1 L^-1 P^T by two triangular solves; P^-1 = P^T
        lower, upper = self._factors()
        rhs = self.perm.transpose(0, 1)
        a = torch.linalg.solve_triangular(lower, rhs, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, a, upper=True)

    def forward(self, context: Tensor | None = None) -> Conv1x1Transform:
        if not self.lu:
            return Conv1x1Transform(self.weight, event_dim=self.event_dim)
        return Conv1x1Transform(
            self.weight_matrix(), self.log_s.sum(), self._inverse_matrix, event_dim=self.event_dim
        )

    def extra_repr(self) -> str:
        return f"{self.channels}, lu={self.lu}, event_dim={self.event_dim}"


# -- multi-scale: squeeze and channel slicing -----------------------------------------------


class SqueezeTransform(Bijection):
    """Space-to-depth: ``[B, C, H, W] -> [B, 4C, H/2, W/2]`` (RealNVP section 3.6, Glow).

    Glow's channel order (= ``pixel_unshuffle``): output channel ``4c + 2i + j`` at ``(h, w)``
    is input channel ``c`` at ``(2h + i, 2w + j)``, so each input channel's 2x2 blocks stay
    together. A permutation of the entries: log-det 0. ``factor`` generalises the 2.
    """

    def __init__(self, factor: int = 2) -> None:
        if factor < 2:
            raise ValueError(f"factor must be >= 2, got {factor}")
        super().__init__(event_dim=3)
        self.factor = factor

    def _check_spatial(self, shape: Sequence[int]) -> None:
        if len(shape) < 3:
            raise ValueError(f"SqueezeTransform expects [..., C, H, W], got shape {tuple(shape)}")
        h, w = shape[-2], shape[-1]
        if h % self.factor or w % self.factor:
            raise ValueError(
                f"SqueezeTransform needs height and width divisible by {self.factor}, got "
                f"H={h}, W={w} (shape {tuple(shape)}); pad or crop the images, or squeeze fewer "
                "times"
            )

    def _check_channels(self, shape: Sequence[int]) -> None:
        if len(shape) < 3 or shape[-3] % (self.factor**2):
            raise ValueError(
                f"the inverse of SqueezeTransform needs [..., C, H, W] with C divisible by "
                f"{self.factor**2}, got shape {tuple(shape)}"
            )

    def forward_shape(self, shape: Sequence[int]) -> Sequence[int]:
        self._check_spatial(shape)
        *lead, c, h, w = shape
        f = self.factor
        return (*lead, c * f * f, h // f, w // f)

    def inverse_shape(self, shape: Sequence[int]) -> Sequence[int]:
        self._check_channels(shape)
        *lead, c, h, w = shape
        f = self.factor
        return (*lead, c // (f * f), h * f, w * f)

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check_spatial(x.shape)
        return F.pixel_unshuffle(x, self.factor), zeros_like_batch(x)

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        self._check_channels(y.shape)
        return F.pixel_shuffle(y, self.factor), zeros_like_batch(y)

    def __repr__(self) -> str:
        return f"SqueezeTransform(factor={self.factor})"


class ChannelSlice(Bijection):
    """``inner`` on channels ``start:`` (dim 1), the identity on channels ``:start``.

    Glow's multi-scale architecture (RealNVP section 3.6): after each scale, half the channels
    are factored out, i.e. left alone by all later transforms and handed to the base
    distribution as they are; wrapping the later transforms in ``ChannelSlice`` does that
    without changing the shape of the batch. log-det = ``inner``'s.
    """

    def __init__(self, inner: Bijection, start: int) -> None:
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        super().__init__(inner._event_dim)
        self.inner = inner
        self.start = start

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() < 2 or x.shape[1] <= self.start:
            raise ValueError(
                f"ChannelSlice(start={self.start}) needs more than {self.start} channels on "
                f"dim 1, got shape {tuple(x.shape)}"
            )
        return x[:, : self.start], x[:, self.start :]

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        kept, rest = self._split(x)
        y, ladj = self.inner.call_and_ladj(rest)
        return torch.cat([kept, y], dim=1), ladj

    def inverse_and_ladj(self, y: Tensor) -> tuple[Tensor, Tensor]:
        kept, rest = self._split(y)
        x, ladj = self.inner.inverse_and_ladj(rest)
        return torch.cat([kept, x], dim=1), ladj

    def _map_shape(
        self, shape: Sequence[int], fn: Callable[[Sequence[int]], Sequence[int]]
    ) -> tuple[int, ...]:
        axis = len(shape) - self._event_dim  # the channel axis
        rest = list(shape)
        rest[axis] -= self.start
        out = list(fn(rest))
        out[axis] += self.start
        return tuple(out)

    def forward_shape(self, shape: Sequence[int]) -> Sequence[int]:
        return self._map_shape(shape, self.inner.forward_shape)

    def inverse_shape(self, shape: Sequence[int]) -> Sequence[int]:
        return self._map_shape(shape, self.inner.inverse_shape)

    def __repr__(self) -> str:
        return f"ChannelSlice({self.inner!r}, start={self.start})"


class ChannelSliceLayer(FlowLayer):
    """A layer applied to channels ``start:`` only: builds ``ChannelSlice(layer(c), start)``."""

    def __init__(self, layer: FlowLayer, start: int) -> None:
        super().__init__()
        self.layer = layer
        self.start = start

    def forward(self, context: Tensor | None = None) -> ChannelSlice:
        return ChannelSlice(self.layer(context), self.start)

    def extra_repr(self) -> str:
        return f"start={self.start}"


__all__ = [
    "ActNorm",
    "ActNormTransform",
    "ChannelSlice",
    "ChannelSliceLayer",
    "Conv1x1Transform",
    "InvertibleConv1x1",
    "SqueezeTransform",
]
