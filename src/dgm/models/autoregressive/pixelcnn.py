"""PixelCNN and Gated PixelCNN: autoregressive models over images with masked 2-D convolutions.

p(x) = prod_{i,j} prod_c p(x_{c,i,j} | x_{<(i,j)}, x_{<c,(i,j)}): pixels in raster order and,
for colour images, the colours of a pixel in R -> G -> B order (van den Oord et al. 2016,
"Pixel Recurrent Neural Networks"). Each conditional comes from the likelihood chosen by
config (categorical over the K levels by default) with parameters from a masked network:

- ``pixelcnn``: a mask A ``k x k`` convolution, then residual blocks with mask B (sec. 3.4).
- ``gated-pixelcnn``: vertical and horizontal stacks of gated tanh * sigmoid layers with no
  blind spot, optionally conditioned on the class ("Conditional Image Generation with PixelCNN
  Decoders", sec. 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dgm.config import opt
from dgm.data.base import DataSpec
from dgm.errors import ConfigError, DataError
from dgm.models.autoregressive.base import AutoregressiveModel, InputEncoding
from dgm.models.base import Batch, DiscreteConfig, unpack
from dgm.models.capabilities import LabelConditional
from dgm.nn.pixelcnn import GatedPixelCNNNet, PixelCNNNet
from dgm.registry import register


@dataclass
class PixelConfig(DiscreteConfig):
    """The fields both pixel models share (their own add the network's sizes)."""

    shape: tuple[int, ...] = opt((1, 8, 8), "event shape (C, H, W), from the data")
    first_kernel: int = opt(7, "kernel size of the mask A input layer")
    kernel_size: int = opt(3, "kernel size of the mask B convolutions after it")
    head: int = opt(64, "channels of the 1x1 ReLU output layer")
    input: InputEncoding = opt(
        "scalar",
        "pixels enter as one scaled value per colour (generalises better on small data), or "
        "as one channel per level",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        c: Any = self
        if len(c.shape) != 3:
            raise ConfigError(f"{c.shape} is not an image shape (C, H, W)")
        if c.hidden < c.shape[0] or c.head < c.shape[0]:
            raise ConfigError(
                f"hidden and head need at least one channel per colour ({c.shape[0]})"
            )
        for name, k in (("first_kernel", c.first_kernel), ("kernel_size", c.kernel_size)):
            if k < 1 or k % 2 == 0:
                raise ConfigError(f"{name} must be odd and >= 1, got {k}")
        if not 0 <= c.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {c.dropout}")
        if c.layers < 0:
            raise ConfigError(f"layers must be >= 0, got {c.layers}")


@dataclass
class PixelCNNConfig(PixelConfig):
    hidden: int = opt(64, "channels of the residual stream (2h in the paper)")
    layers: int = opt(6, "residual blocks after the mask A layer")
    dropout: float = opt(0.5, "dropout on each residual branch")


@dataclass
class GatedPixelCNNConfig(PixelConfig):
    num_classes: int | None = opt(None, "number of classes, from the data (None: unlabelled)")
    hidden: int = opt(32, "channels p of each stack (the gates see 2p)")
    layers: int = opt(6, "gated layers after the mask A input layer")
    skip: bool = opt(True, "feed the sum of every layer's skip output to the head")
    conditional: bool = opt(False, "condition on the class label (needs labelled data)")
    dropout: float = opt(0.3, "dropout on the gated horizontal features")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.conditional and not self.num_classes:
            raise ConfigError(
                "conditional=true needs num_classes: train on labelled data or set num_classes"
            )


class _PixelModel(AutoregressiveModel):
    """What both models share: the image layout of the parameters and raster-order sampling
    (pixels row by row, the colours of a pixel in turn).

    Subclasses build ``self.net`` and implement ``_net(inputs, y)``:
    ``[B, C_in, H, W] -> [B, C * P, H, W]`` with the P parameters of colour c contiguous.
    """

    def _net_args(self, c: Any) -> dict[str, Any]:
        """What both networks take from the config: the channels in and out (``colours``
        groups of ``hidden``), the kernels, the head and the dropout."""
        colours = c.shape[0]
        return {
            "in_channels": colours * (c.levels if c.input == "onehot" else 1),
            "hidden": c.hidden,
            "out_channels": colours * self.likelihood.params_per_dim,
            "first_kernel": c.first_kernel,
            "kernel_size": c.kernel_size,
            "head": c.head,
            "colours": colours,
            "dropout": c.dropout,
        }

    @classmethod
    def check_spec(cls, spec: DataSpec) -> None:
        super().check_spec(spec)
        if len(spec.shape) != 3:
            raise DataError(
                f"{cls.name} models images (C, H, W), but {spec.name} has shape {spec.shape}"
            )

    def _net(self, inputs: Tensor, y: Tensor | None) -> Tensor:
        raise NotImplementedError

    def params(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Parameters of every conditional: ``[B, C, H, W] -> [B, P, C, H, W]``."""
        out = self._net(self.encode_inputs(x), y)  # [B, C*P, H, W]
        b, _, h, w = out.shape
        return out.view(b, x.shape[1], -1, h, w).transpose(1, 2)

    def _log_prob_given(self, x: Tensor, y: Tensor | None) -> Tensor:  # [B]
        return self.likelihood.log_prob(self.params(x, y), x)

    def logits(self, flat: Tensor) -> Tensor:
        """``[B, D] -> [B, P, D]``, D in the data's (C, H, W) order."""
        return self.params(flat.view(-1, *self.config.shape)).flatten(2)

    def log_prob(self, x: Tensor) -> Tensor:
        return self._log_prob_given(x, None)

    def _labels(self, n: int, labels: Any = None) -> Tensor | None:
        """The class of each of ``n`` samples: none, for a model that is not conditional."""
        if labels is not None:
            raise ConfigError(f"labels given, but this {self.name} is not class-conditional")
        return None

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, labels: Any = None) -> Tensor:
        """Ancestral sampling pixel by pixel in raster order (colours in turn)."""
        y = self._labels(n, labels)
        colours, height, width = self.config.shape
        order = [
            c * height * width + i * width + j
            for i in range(height)
            for j in range(width)
            for c in range(colours)
        ]
        return self.ancestral(n, temperature, state=y, order=order).view(n, *self.config.shape)

    def conditional_params(self, x: Tensor, d: int, state: Any = None) -> Tensor:
        """p(x_d | x_<d)'s parameters ``[n, P, 1]`` for the value at (colour c, row i, column j),
        ``state`` the labels: the network recomputed on the rows drawn so far (the masks make
        the rows below irrelevant)."""
        colours, height, width = self.config.shape
        c, rest = divmod(d, height * width)
        i, j = divmod(rest, width)
        image = x.view(x.shape[0], colours, height, width)
        return self.params(image[:, :, : i + 1], state)[:, :, c : c + 1, i, j]


@register("pixelcnn", "autoregressive", "PixelCNN: masked 2-D convolutions, residual blocks")
class PixelCNN(_PixelModel):
    """PixelCNN (van den Oord et al. 2016): exact log-likelihood, ancestral sampling."""

    Config = PixelCNNConfig
    bf16_proven = True  # tests/test_precision.py
    config: PixelCNNConfig

    def __init__(self, config: PixelCNNConfig) -> None:
        super().__init__(config)
        self.net = PixelCNNNet(blocks=config.layers, **self._net_args(config))

    def _net(self, inputs: Tensor, y: Tensor | None) -> Tensor:
        return self.net(inputs)


@register(
    "gated-pixelcnn",
    "autoregressive",
    "Gated PixelCNN: gated vertical + horizontal stacks, no blind spot, optional class labels",
)
class GatedPixelCNN(_PixelModel, LabelConditional):
    """Gated PixelCNN (van den Oord et al. 2016b), optionally class-conditional.

    With ``conditional=True`` the model is p(x | y) with a uniform p(y): ``loss((x, y))``
    trains p(x | y); ``log_prob(x, y)`` scores it; ``log_prob(x)`` without labels gives the
    exact marginal log (1/K) sum_y p(x | y), so evaluation works on unlabelled test data.
    """

    Config = GatedPixelCNNConfig
    config: GatedPixelCNNConfig
    DATA_FIELDS = ("shape", "levels", "num_classes")

    def __init__(self, config: GatedPixelCNNConfig) -> None:
        super().__init__(config)
        c = config
        labels = c.num_classes if c.conditional else None
        self.net = GatedPixelCNNNet(
            layers=c.layers, skip=c.skip, num_classes=labels, **self._net_args(c)
        )

    # -- the contract -------------------------------------------------------------------
    def _net(self, inputs: Tensor, y: Tensor | None) -> Tensor:
        return self.net(inputs, y)

    def _check_labels(self, y: Tensor, n: int) -> Tensor:
        labels = self.labels_for(n, y)
        assert labels is not None  # conditional models only
        return labels

    def _labels(self, n: int, labels: Any = None) -> Tensor | None:
        return self.labels_for(n, labels)

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(x | y) with labels; without, log p(x) = log mean_y p(x | y) (conditional) or
        the unconditional log p(x)."""
        if not self.config.conditional:
            return self._log_prob_given(x, None)
        if y is not None:
            return self._log_prob_given(x, self._check_labels(y, x.shape[0]))
        return self._all_classes(x).logsumexp(0) - math.log(self.config.num_classes or 1)

    def _all_classes(self, x: Tensor) -> Tensor:
        """log p(x | y = k) for every class k: ``[K, B]`` (one pass per class, little memory)."""
        b = x.shape[0]
        per_class = [
            self._log_prob_given(x, torch.full((b,), k, device=x.device, dtype=torch.long))
            for k in range(self.config.num_classes or 0)
        ]
        return torch.stack(per_class)

    def loss(self, batch: Batch) -> Tensor:
        x, y = unpack(batch)
        if self.config.conditional and y is None:
            raise DataError(
                "gated-pixelcnn with conditional=true trains on (image, label) batches, "
                "but the batch has no labels"
            )
        return -self.log_prob(x, y).mean()

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """``nll`` is -log p(x) (marginal over classes when conditional, as evaluation scores
        it); a conditional model also reports ``cond_nll`` = -log p(x | y)."""
        x, y = unpack(batch)
        if not self.config.conditional:
            return {"nll": -self.log_prob(x)}
        per_class = self._all_classes(x)  # [K, B]
        out = {"nll": math.log(self.config.num_classes or 1) - per_class.logsumexp(0)}
        if y is not None:
            y = self._check_labels(y, x.shape[0])
            out["cond_nll"] = -per_class.gather(0, y.view(1, -1))[0]
        return out
