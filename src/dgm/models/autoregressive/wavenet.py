"""WaveNet: an autoregressive model of dilated causal convolutions over any 1-D sequence.

p(x) = prod_t p(x_t | x_<t) over the flattened example (a raster-order image, or raw audio),
each conditional's parameters from a WaveNet stack: gated residual blocks of dilated causal
convolutions with skip connections (van den Oord et al. 2016, "WaveNet: A generative model for
raw audio"). Sampling is ancestral; with ``cache=True`` each step reuses per-layer queues of
past activations (Paine et al. 2016, "Fast WaveNet generation algorithm"), so a step costs
O(layers) rather than a full pass over the prefix.

On audio (data with a sample rate, :mod:`dgm.data.audio`) the model reads 8-bit mu-law levels
(a categorical over 256 values, the paper's choice) or linear 16-bit levels (a discretized
logistic mixture, Salimans et al. 2017, as in Parallel WaveNet), trains on fixed-length crops
and scores whole utterances of any length. ``condition`` adds the paper's global conditioning:
an embedding of the label (FSDD's digit) and/or the speaker, projected into every layer before
the gate, so the model is p(x | label, speaker).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from dgm.config import opt
from dgm.data.base import DataSpec
from dgm.errors import ConfigError, DataError
from dgm.models.autoregressive.base import AutoregressiveModel, InputEncoding
from dgm.models.base import Batch, DiscreteConfig, unpack
from dgm.models.capabilities import (
    LabelConditional,
    ReceptiveField,
    SpeakerConditional,
    Waveform,
)
from dgm.nn.wavenet import WaveNet as WaveNetStack
from dgm.nn.wavenet import dilations
from dgm.registry import register

# what each value of `condition` conditions on; fsdd's label is the spoken digit
CONDITIONS: dict[str, tuple[str, ...]] = {
    "none": (),
    "label": ("label",),
    "digit": ("label",),
    "speaker": ("speaker",),
    "label+speaker": ("label", "speaker"),
    "digit+speaker": ("label", "speaker"),
}
# a categorical over more levels than this is too big a head (linear 16-bit audio has 65536)
MAX_CATEGORICAL = 1024


@dataclass
class WaveNetConfig(DiscreteConfig):
    hidden: int = opt(64, "residual channels of the dilated stack")
    skip_channels: int = opt(128, "channels of the skip connections")
    head_channels: int = opt(128, "channels of the 1x1 output head")
    kernel_size: int = opt(2, "kernel width of the causal convolutions")
    max_dilation: int = opt(32, "dilations double 1, 2, 4, ... up to this")
    stacks: int = opt(2, "times the dilation cycle repeats")
    input: InputEncoding = opt(
        "onehot", "values enter as one channel per level, or as one scaled value"
    )
    condition: str = opt(
        "none",
        "global conditioning of every layer: none | label | speaker | label+speaker (fsdd's "
        "label is the digit: digit and digit+speaker say the same)",
    )
    embedding: int = opt(32, "size of the label and speaker embeddings")
    num_classes: int | None = opt(None, "labels 0..K-1, from the data")
    num_speakers: int | None = opt(None, "speakers, from the data (audio)")
    sample_rate: int | None = opt(None, "audio: samples per second, from the data")
    sample_seconds: float = opt(1.0, "audio: seconds of audio each sample draws")

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.hidden, self.skip_channels, self.head_channels, self.embedding) < 1:
            raise ConfigError("hidden, skip_channels, head_channels and embedding must be >= 1")
        if self.kernel_size < 1 or self.max_dilation < 1 or self.stacks < 1:
            raise ConfigError("need kernel_size >= 1, max_dilation >= 1 and stacks >= 1")
        if self.condition not in CONDITIONS:
            raise ConfigError(
                f"unknown condition {self.condition!r}; use one of {', '.join(CONDITIONS)}"
            )
        factors = CONDITIONS[self.condition]
        if "label" in factors and not self.num_classes:
            raise ConfigError(
                f"condition={self.condition} needs labelled data, but the data has no labels; "
                "drop condition or choose labelled data"
            )
        if "speaker" in factors and not self.num_speakers:
            raise ConfigError(
                f"condition={self.condition} needs data that names its speakers (fsdd, or wav "
                "files named label_speaker_take.wav); drop condition or choose such data"
            )
        if self.levels > MAX_CATEGORICAL and self.likelihood in ("auto", "categorical"):
            raise ConfigError(
                f"a categorical over {self.levels} levels is too big a head: set "
                "likelihood=logistic-mixture (and input=scalar)"
            )
        if self.levels > MAX_CATEGORICAL and self.input == "onehot":
            raise ConfigError(f"one input channel per level of {self.levels}: set input=scalar")
        if self.sample_seconds <= 0:
            raise ConfigError(f"sample_seconds must be > 0, got {self.sample_seconds}")


@register(
    "wavenet",
    "autoregressive",
    "WaveNet: gated dilated causal convolutions over a sequence (audio, or a flattened image); "
    "label and speaker conditioning, cached sampling",
)
class WaveNet(AutoregressiveModel, ReceptiveField, LabelConditional, SpeakerConditional, Waveform):
    """WaveNet(stack, likelihood, embeddings): exact log-likelihood, cached ancestral sampling.

    Conditioned (``condition`` not none) it is p(x | y) with ``y`` the data's ``[B, 2]``
    (label, speaker): ``loss((x, y))`` trains it, ``log_prob(x, y)`` scores it, and
    ``log_prob(x)`` without ``y`` gives log p(x) = log mean_y p(x | y) under a uniform p(y)
    over every label (and speaker) combination.
    """

    Config = WaveNetConfig
    config: WaveNetConfig
    DATA_FIELDS = ("shape", "levels", "num_classes", "num_speakers", "sample_rate")

    def __init__(self, config: WaveNetConfig) -> None:
        super().__init__(config)
        c = config
        self.in_channels = c.levels if c.input == "onehot" else 1
        self.factors = CONDITIONS[c.condition]
        # global conditioning: one learnt vector per label and per speaker (the paper's h)
        self.label_embedding = (
            nn.Embedding(c.num_classes or 0, c.embedding) if "label" in self.factors else None
        )
        self.speaker_embedding = (
            nn.Embedding(c.num_speakers or 0, c.embedding) if "speaker" in self.factors else None
        )
        cond = c.embedding * len(self.factors)
        self.net = WaveNetStack(
            self.in_channels,
            self.likelihood.params_per_dim,
            hidden=c.hidden,
            skip_channels=c.skip_channels,
            head_channels=c.head_channels,
            kernel_size=c.kernel_size,
            dilations=dilations(c.max_dilation, c.stacks),
            cond_channels=cond,
        )

    # -- the data it takes --------------------------------------------------------------------
    @classmethod
    def data_config(cls, spec: DataSpec) -> dict[str, Any]:
        return {
            "shape": spec.shape,
            "levels": spec.levels,
            "num_classes": spec.num_classes,
            "num_speakers": len(spec.speakers) if spec.speakers else None,
            "sample_rate": spec.sample_rate,
        }

    @classmethod
    def sized_defaults(cls, spec: DataSpec) -> dict[str, Any]:
        """Audio: dilations to 512 twice (a receptive field of 2048 samples, a quarter second
        at 8 kHz); linear 16-bit levels take a logistic mixture and a scalar input."""
        if not spec.is_audio:
            return {}
        out: dict[str, Any] = {"max_dilation": 512, "stacks": 2}
        if (spec.levels or 0) > MAX_CATEGORICAL:
            out.update(likelihood="logistic-mixture", input="scalar", mixtures=10)
        return out

    sizing_note = "audio: dilations 1..512 twice (receptive field 2048 samples)"

    @classmethod
    def train_defaults_for(cls, spec: DataSpec) -> dict[str, Any]:
        # a batch of 8 crops of half a second: about 2.5 s a step on one CPU core; validation
        # in batches of 32 crops keeps the activations of a pass to a few hundred MB
        if spec.is_audio:
            return {"batch_size": 8, "eval_batch_size": 32}
        return dict(cls.train_defaults)

    def check_input(self, x: Tensor) -> None:
        if self.config.sample_rate is None:
            return super().check_input(x)
        if x.dim() != 2 or x.shape[1] < 1:
            raise DataError(
                f"{self.name} scores audio as [B, L] levels (any L >= 1), got {tuple(x.shape)}"
            )
        return None

    # -- capabilities -------------------------------------------------------------------------
    @property
    def receptive_field(self) -> int:
        """Number of past values each conditional sees (of ``dim`` in the sequence)."""
        return self.net.receptive_field

    @property
    def conditional(self) -> bool:
        return "label" in self.factors

    @property
    def num_speakers(self) -> int:
        return (self.config.num_speakers or 0) if "speaker" in self.factors else 0

    @property
    def sample_rate(self) -> int | None:  # type: ignore[override]
        """Samples per second of the audio it models; None for a model of images or vectors."""
        return self.config.sample_rate

    @property
    def conditioned_on(self) -> tuple[str, ...]:
        return self.factors

    def extra_repr(self) -> str:
        return f"sequence_length={self.dim}, receptive_field={self.receptive_field}"

    # -- conditioning -------------------------------------------------------------------------
    def embed(self, y: Tensor | None, n: int) -> Tensor | None:
        """The global conditioning ``[n, G, 1]`` of labels ``y`` (``[n, 2]`` label and speaker,
        or ``[n]`` when the model reads one of them); None for an unconditioned model."""
        if not self.factors:
            return None
        if y is None:
            raise DataError(
                f"this {self.name} is conditioned on {'+'.join(self.factors)}: pass y, the "
                "[B, 2] labels (label, speaker)"
            )
        y = y.long()
        if y.dim() == 1:
            if len(self.factors) != 1:
                raise DataError(f"pass y as [B, 2] (label, speaker), got {tuple(y.shape)}")
            columns = {self.factors[0]: y}
        else:
            columns = {"label": y[:, 0], "speaker": y[:, 1]}
        parts = []
        if self.label_embedding is not None:
            parts.append(self.label_embedding(columns["label"]))
        if self.speaker_embedding is not None:
            parts.append(self.speaker_embedding(columns["speaker"]))
        return torch.cat(parts, 1).unsqueeze(-1).to(self._dtype).expand(n, -1, 1)

    def _combinations(self, n: int) -> list[Tensor]:
        """Every (label, speaker) the model knows, each as ``[n, 2]`` labels."""
        labels = range(self.config.num_classes or 0) if "label" in self.factors else [-1]
        speakers = range(self.num_speakers) if "speaker" in self.factors else [-1]
        return [
            torch.tensor([a, b], device=self.device).expand(n, 2)
            for a, b in itertools.product(labels, speakers)
        ]

    def _marginal(self, score: Callable[[Tensor | None], Tensor], y: Tensor | None, n: int):
        """``score(y)``; without ``y`` for a conditioned model, log mean_y exp score(y) over
        every combination (the uniform p(y) of its marginal)."""
        if not self.factors or y is not None:
            return score(y)
        scores = torch.stack([score(c) for c in self._combinations(n)])  # [C, n]
        return torch.logsumexp(scores, 0) - math.log(scores.shape[0])

    # -- the likelihood -----------------------------------------------------------------------
    def logits(self, flat: Tensor, y: Tensor | None = None) -> Tensor:
        """Parameters of every conditional: ``[B, L] -> [B, P, L]``; output t sees x_<t only
        (and the conditioning)."""
        return self.net(self.encode_sequence(flat), self.embed(y, flat.shape[0]))

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(x | y) with labels; without them log p(x) (the marginal over y when
        conditioned): ``[B]`` nats."""
        flat = x.reshape(x.shape[0], -1)  # [B, L]
        return self._marginal(
            lambda c: self.likelihood.log_prob(self.logits(flat, c), flat), y, flat.shape[0]
        )

    def utterance_log_prob(self, x: Tensor, lengths: Tensor, y: Tensor | None = None) -> Tensor:
        """log p of each utterance's first ``lengths[i]`` values: causal, so the padding after
        an utterance changes none of its conditionals; ``[B, L], [B] -> [B]`` nats."""
        mask = torch.arange(x.shape[1], device=x.device) < lengths[:, None].to(x.device)

        def score(c: Tensor | None) -> Tensor:
            per = self.likelihood.log_prob_per_dim(self.logits(x, c), x)  # [B, L]
            return (per * mask).sum(1)

        return self._marginal(score, y, x.shape[0])

    def loss(self, batch: Batch) -> Tensor:
        x, y = unpack(batch)
        if self.factors and y is None:
            raise DataError(
                f"wavenet with condition={self.config.condition} trains on (audio, labels) "
                "batches, but the batch has no labels"
            )
        return -self.log_prob(x, y).mean()

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """``nll``: -log p(x | y) for a conditioned model (its labels are in every batch),
        else -log p(x)."""
        x, y = unpack(batch)
        return {"nll": -self.log_prob(x, y if self.factors else None)}

    # -- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        cache: bool = True,
        labels: Any = None,
        speakers: Any = None,
        length: int | None = None,
    ) -> Tensor:
        """Ancestral sampling in sequence order: ``[n, *shape]`` levels, or for audio
        ``[n, length]`` (default ``sample_seconds`` of audio).

        ``labels`` / ``speakers``: one for all or one each (uniform draws when not given).
        ``cache=True``: the Fast WaveNet queues, O(layers) per step. ``cache=False``: each
        step runs the whole network on the prefix. Both draw with the same calls in the same
        order, so one seed gives the same samples either way.
        """
        c = self.config
        y = None
        if self.factors:
            lab = self.labels_for(n, labels)
            spk = self.speakers_for(n, speakers)
            fill = torch.full((n,), -1, dtype=torch.long, device=self.device)
            y = torch.stack([fill if lab is None else lab, fill if spk is None else spk], 1)
        else:
            self.labels_for(n, labels)  # refuses labels or speakers given to a model without
            self.speakers_for(n, speakers)
        audio = c.sample_rate is not None
        if length is None:
            length = round(c.sample_seconds * c.sample_rate) if audio else self.dim
        elif not audio and length != self.dim:
            raise ConfigError(f"length applies to audio; this {self.name} draws {self.dim} values")
        if length < 1:
            raise ConfigError(f"length must be >= 1, got {length}")
        queues = self.net.start(n, self._dtype, self.device) if cache else None
        g = self.embed(y, n)
        x = self.ancestral(n, temperature, state=(queues, g), length=length)
        return x if audio else x.view(n, *c.shape)

    def conditional_params(self, x: Tensor, t: int, state: Any = None) -> Tensor:
        """p(x_t | x_<t)'s parameters ``[n, P, 1]``: one queue step when ``state`` holds the
        queues (they hold the past), else a pass over the prefix; ``state`` also holds the
        global conditioning."""
        queues, g = state if state is not None else (None, None)
        if queues is None:
            return self.net(self.encode_sequence(x[:, : t + 1]), g)[..., t : t + 1]
        # the input layer's queue takes x_{t-1}; before the sequence, the zero padding
        n = x.shape[0]
        prev = (
            self.encode_sequence(x[:, t - 1 : t])[..., 0]
            if t > 0
            else torch.zeros(n, self.in_channels, dtype=self._dtype, device=self.device)
        )
        cond = None if g is None else g[..., 0]
        return self.net.step(prev, queues, cond).unsqueeze(-1)  # [n, P, 1]
