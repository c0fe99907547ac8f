"""VQ-VAE on raw audio (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete
Representation Learning", sec. 4.3): a strided 1-D conv encoder turns a waveform into one code
per 2^n samples (the paper's 64x: six stride-2 convolutions of width 4), the EMA codebook with
restarts quantises them (:mod:`dgm.models.latent.vq`), and a WaveNet decoder models
p(x | codes, speaker): the code vectors, upsampled to the sample rate, condition every layer
(local conditioning) and a speaker embedding too (global conditioning). A causal WaveNet prior
p(codes | speaker) over the code sequence, trained jointly on the code indices, gives samples
and a likelihood bound.

With a deterministic encoder, ``log_prob`` reports one term of p(x | s) = sum_c p(c | s)
p(x | c, s), the one at the encoder's codes, so it is a lower bound (and -log_prob an upper
bound on the NLL); without a speaker, the mean over every speaker the model knows (a uniform
p(s)).

Because the encoder is told nothing of the speaker and the decoder is, the codes tend to keep
what is said and the decoder to add who says it: decoding an utterance's codes with another
speaker's embedding is the paper's voice conversion (:meth:`AudioVQVAE.convert`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm import progress
from dgm.config import opt
from dgm.data.base import DataSpec
from dgm.distributions.categorical import Categorical
from dgm.errors import ConfigError, DataError
from dgm.models.base import Batch, DiscreteConfig, GenerativeModel, unpack
from dgm.models.capabilities import Autoencoder, VoiceConverter, Waveform
from dgm.models.latent.vq import VectorQuantizer
from dgm.nn.wavenet import WaveNet, dilations
from dgm.registry import register

NOTE = "lower bound: p(codes(x)|s) p(x|codes(x), s), one term of the sum over code sequences"


@dataclass
class AudioVQVAEConfig(DiscreteConfig):
    shape: tuple[int, ...] = opt((4096,), "training crops (L,), from the data")
    levels: int = opt(256, "levels per sample (256: 8-bit mu-law), from the data")
    num_speakers: int | None = opt(None, "speakers, from the data")
    sample_rate: int | None = opt(8000, "samples per second, from the data")
    num_codes: int = opt(512, "codebook size K (the paper: 512)")
    code_dim: int = opt(64, "dimensions D of each code vector")
    hidden: int = opt(128, "channels of the strided encoder")
    downsample: int = opt(6, "stride-2 convolutions of the encoder: one code per 2^n samples")
    commitment: float = opt(0.25, "beta, weight of the commitment loss")
    ema: bool = opt(True, "codebook by exponential moving averages (else by the codebook loss)")
    decay: float = opt(0.99, "ema: decay gamma of the codebook's moving averages")
    dead_threshold: float = opt(1.0, "restart codes used fewer times per batch than this")
    speaker: bool = opt(True, "condition the decoder and the prior on the speaker")
    embedding: int = opt(32, "size of the speaker embedding")
    decoder_hidden: int = opt(64, "residual channels of the WaveNet decoder")
    decoder_skip: int = opt(128, "skip channels of the WaveNet decoder")
    decoder_max_dilation: int = opt(256, "the decoder's dilations double up to this")
    decoder_stacks: int = opt(2, "times the decoder's dilation cycle repeats")
    prior_hidden: int = opt(64, "residual channels of the WaveNet prior over the codes")
    prior_max_dilation: int = opt(16, "the prior's dilations double up to this")
    prior_stacks: int = opt(2, "times the prior's dilation cycle repeats")
    sample_seconds: float = opt(1.0, "seconds of audio each sample draws")

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.shape) != 1:
            raise ConfigError(f"vqvae-audio models waveforms (L,), got shape {self.shape}")
        sizes = (self.num_codes, self.code_dim, self.hidden, self.embedding,
                 self.decoder_hidden, self.decoder_skip, self.prior_hidden)  # fmt: skip
        if min(sizes) < 1 or self.downsample < 1:
            raise ConfigError("the sizes and downsample must be >= 1")
        if min(self.decoder_max_dilation, self.decoder_stacks, self.prior_max_dilation,
               self.prior_stacks) < 1:  # fmt: skip
            raise ConfigError("the dilations and stacks must be >= 1")
        if self.commitment < 0 or self.dead_threshold < 0 or not 0 <= self.decay < 1:
            raise ConfigError("need commitment >= 0, dead_threshold >= 0 and decay in [0, 1)")
        if self.levels > 1024:
            raise ConfigError(
                f"vqvae-audio's decoder is a categorical over the levels; {self.levels} is too "
                "many: read the audio with --set encoding=mulaw"
            )
        if self.sample_seconds <= 0:
            raise ConfigError(f"sample_seconds must be > 0, got {self.sample_seconds}")


class StridedEncoder(nn.Module):
    """``[B, 1, L] -> [B, D, L / 2^n]``: n convolutions of width 4 and stride 2 with ReLUs
    (the paper's audio encoder), then a 1x1 convolution to the code dimensions."""

    def __init__(self, hidden: int, code_dim: int, n: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n):
            layers += [
                nn.Conv1d(1 if i == 0 else hidden, hidden, 4, stride=2, padding=1),
                nn.ReLU(),
            ]
        self.net = nn.Sequential(*layers, nn.Conv1d(hidden, code_dim, 1))

    def forward(self, u: Tensor) -> Tensor:
        return self.net(u)


@register(
    "vqvae-audio",
    "latent",
    "VQ-VAE on waveforms: strided conv encoder (64x), EMA codebook, WaveNet decoder on codes "
    "and speaker, WaveNet code prior; voice conversion",
)
class AudioVQVAE(GenerativeModel, Autoencoder, Waveform, VoiceConverter):
    """``encoder`` (x -> z_e ``[B, D, T]``), ``quantizer``, ``decoder`` (a WaveNet over the
    one-hot levels, conditioned on the upsampled codes and the speaker), ``prior`` (a WaveNet
    over the one-hot codes, conditioned on the speaker). ``y`` is the data's ``[B, 2]``
    (label, speaker); only the speaker is read."""

    Config = AudioVQVAEConfig
    config: AudioVQVAEConfig
    exact_likelihood = False
    default_eval_samples = 1  # deterministic encoder: more samples change nothing
    discrete_only = True
    audio = True
    DATA_FIELDS = ("shape", "levels", "num_speakers", "sample_rate")

    def __init__(self, config: AudioVQVAEConfig) -> None:
        super().__init__(config)
        c = config
        self.hop = 2**c.downsample  # samples per code
        self.silence = c.levels // 2  # the level of amplitude 0 (mu-law and linear alike)
        self.likelihood = Categorical(c.levels)
        self.encoder = StridedEncoder(c.hidden, c.code_dim, c.downsample)
        self.quantizer = VectorQuantizer(
            c.num_codes, c.code_dim, c.commitment, ema=c.ema, decay=c.decay,
            dead_threshold=c.dead_threshold,
        )  # fmt: skip
        speakers = c.num_speakers if c.speaker else None
        self.speaker_embedding = nn.Embedding(speakers, c.embedding) if speakers else None
        g = c.embedding if speakers else 0
        self.decoder = WaveNet(
            c.levels, c.levels, hidden=c.decoder_hidden, skip_channels=c.decoder_skip,
            head_channels=c.decoder_skip, kernel_size=2,
            dilations=dilations(c.decoder_max_dilation, c.decoder_stacks),
            cond_channels=c.code_dim + g,
        )  # fmt: skip
        self.prior = WaveNet(
            c.num_codes, c.num_codes, hidden=c.prior_hidden, skip_channels=c.prior_hidden,
            head_channels=c.prior_hidden, kernel_size=2,
            dilations=dilations(c.prior_max_dilation, c.prior_stacks), cond_channels=g,
        )  # fmt: skip
        self._codes = Categorical(c.num_codes)

    # -- the data it takes --------------------------------------------------------------------
    @classmethod
    def data_config(cls, spec: DataSpec) -> dict[str, Any]:
        return {
            "shape": spec.shape,
            "levels": spec.levels,
            "num_speakers": len(spec.speakers) if spec.speakers else None,
            "sample_rate": spec.sample_rate,
        }

    @classmethod
    def check_spec(cls, spec: DataSpec) -> None:
        super().check_spec(spec)
        if not spec.is_audio:
            raise DataError(
                f"vqvae-audio models waveforms; {spec.name} is not audio: use vqvae for images"
            )

    @classmethod
    def train_defaults_for(cls, spec: DataSpec) -> dict[str, Any]:
        return {"batch_size": 8, "eval_batch_size": 32}

    def check_input(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[1] < 1:
            raise DataError(f"{self.name} scores audio as [B, L] levels, got {tuple(x.shape)}")

    # -- capabilities -------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return int(self.config.sample_rate or 0)

    @property
    def num_speakers(self) -> int:
        return (self.config.num_speakers or 0) if self.speaker_embedding is not None else 0

    @property
    def conditioned_on(self) -> tuple[str, ...]:
        return ("speaker",) if self.num_speakers else ()

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.decoder.parameters()).dtype

    # -- pieces -------------------------------------------------------------------------------
    def _padded(self, x: Tensor) -> Tensor:
        """``x`` padded with silence to a whole number of codes."""
        extra = -x.shape[1] % self.hop
        return F.pad(x, (0, extra), value=float(self.silence)) if extra else x

    def pre_quantize(self, x: Tensor) -> Tensor:
        """z_e ``[B, D, ceil(L / hop)]`` of levels ``[B, L]`` (scaled to [-1, 1])."""
        u = self._padded(x).to(self._dtype) * (2.0 / (self.config.levels - 1)) - 1.0
        return self.encoder(u.unsqueeze(1))

    def _speaker(self, y: Tensor | None, n: int) -> Tensor | None:
        """The speaker embedding ``[n, E]``; None for a model without speakers."""
        if self.speaker_embedding is None:
            return None
        if y is None:
            raise DataError(f"this {self.name} is conditioned on the speaker: pass y")
        s = y[:, 1] if y.dim() == 2 else y
        return self.speaker_embedding(s.long()).to(self._dtype).expand(n, -1)

    def _local(self, z_q: Tensor, length: int, spk: Tensor | None) -> Tensor:
        """The decoder's conditioning ``[B, D (+ E), L]``: each code repeated over its hop of
        samples, the speaker's embedding over all."""
        up = z_q.repeat_interleave(self.hop, dim=-1)[..., :length]
        if spk is None:
            return up
        return torch.cat([up, spk[..., None].expand(-1, -1, length)], 1)

    def _onehot(self, v: Tensor, k: int) -> Tensor:  # [B, L] -> [B, k, L]
        return F.one_hot(v.long(), k).movedim(-1, 1).to(self._dtype)

    def _recon_steps(self, x: Tensor, codes: Tensor, spk: Tensor | None) -> Tensor:
        """log p(x_t | x_<t, codes, s) ``[B, L]``."""
        cond = self._local(self.quantizer.lookup(codes).to(self._dtype), x.shape[1], spk)
        return self.likelihood.log_prob_per_dim(
            self.decoder(self._onehot(x, self.config.levels), cond), x
        )

    def _prior_steps(self, codes: Tensor, spk: Tensor | None) -> Tensor:
        """log p(c_j | c_<j, s) ``[B, T]``."""
        g = None if spk is None else spk[..., None]
        logits = self.prior(self._onehot(codes, self.config.num_codes), g)
        return self._codes.log_prob_per_dim(logits, codes)

    def _marginal(self, score: Callable[[Tensor | None], Tensor], y: Tensor | None, n: int):
        """``score(y)``; without ``y`` for a speaker-conditioned model, log mean_s over every
        speaker (a uniform p(s))."""
        if not self.num_speakers or y is not None:
            return score(y)
        each = [score(torch.full((n,), s, device=self.device)) for s in range(self.num_speakers)]
        return torch.logsumexp(torch.stack(each), 0) - math.log(self.num_speakers)

    # -- the contract -------------------------------------------------------------------------
    def log_prob(self, x: Tensor, y: Tensor | None = None, num_samples: int = 1) -> Tensor:
        """log p(codes(x) | s) + log p(x | codes(x), s), ``[B]`` nats: a lower bound on
        log p(x | s) (on log p(x), averaged over speakers, without ``y``); deterministic, so
        ``num_samples`` changes nothing."""
        return self.utterance_log_prob(x, torch.full((x.shape[0],), x.shape[1], device=x.device), y)

    def utterance_log_prob(self, x: Tensor, lengths: Tensor, y: Tensor | None = None) -> Tensor:
        """The bound over each utterance's first ``lengths[i]`` samples and its
        ceil(length / hop) codes; the encoder reads the utterance padded to whole codes."""
        lengths = lengths.to(x.device)
        codes = self.encode(x)  # [B, T]
        return self._marginal(lambda s: self._bound(x, lengths, codes, s), y, x.shape[0])

    def utterance_scores(
        self, x: Tensor, lengths: Tensor, y: Tensor | None = None
    ) -> dict[str, Tensor]:
        """:meth:`utterance_log_prob` as ``log_prob`` and, from the same encoding, the bound's
        parts given each speaker: ``recon`` = log p(x | codes, s) and ``prior`` =
        log p(codes | s) (``[B]`` nats each; not without ``y`` for a speaker-conditioned
        model, whose bound is then a mean over speakers), and ``code_counts`` ``[B, K]``, how
        often each code is used (for the codebook's perplexity)."""
        lengths = lengths.to(x.device)
        codes = self.encode(x)
        used = self._code_mask(lengths, codes.shape[1])
        counts = (F.one_hot(codes, self.config.num_codes) * used[..., None]).sum(1)
        if self.num_speakers and y is None:
            lp = self._marginal(lambda s: self._bound(x, lengths, codes, s), None, x.shape[0])
            return {"log_prob": lp, "code_counts": counts}
        terms = self._terms(x, lengths, codes, y)
        return {"log_prob": terms["recon"] + terms["prior"], **terms, "code_counts": counts}

    def _bound(self, x: Tensor, lengths: Tensor, codes: Tensor, y: Tensor | None) -> Tensor:
        terms = self._terms(x, lengths, codes, y)
        return terms["recon"] + terms["prior"]

    def _code_mask(self, lengths: Tensor, t_codes: int) -> Tensor:
        """The codes inside each utterance ``[B, T]``: ceil(length / hop) of them."""
        return torch.arange(t_codes, device=lengths.device) < (-(-lengths // self.hop))[:, None]

    def _terms(
        self, x: Tensor, lengths: Tensor, codes: Tensor, y: Tensor | None
    ) -> dict[str, Tensor]:
        spk = self._speaker(y, x.shape[0]) if self.num_speakers else None
        mask = torch.arange(x.shape[1], device=x.device) < lengths[:, None]
        cmask = self._code_mask(lengths, codes.shape[1])
        return {
            "recon": (self._recon_steps(x, codes, spk) * mask).sum(1),
            "prior": (self._prior_steps(codes, spk) * cmask).sum(1),
        }

    def likelihood_note(self, num_samples: int = 1) -> str:
        return NOTE

    def loss(self, batch: Batch) -> Tensor:
        """-log p(x | z_q, s) + commitment - log p(codes | s), mean over the batch in nats (the
        prior reads the code indices: no gradient from it reaches the encoder)."""
        x, y = unpack(batch)
        spk = self._speaker(y, x.shape[0]) if self.num_speakers else None
        q = self.quantizer(self.pre_quantize(x))
        cond = self._local(q.z_q, x.shape[1], spk)
        params = self.decoder(self._onehot(x, self.config.levels), cond)
        recon = self.likelihood.log_prob(params, x)
        prior = self._prior_steps(q.codes, spk).sum(1)
        return (-recon + q.loss - prior).mean()

    def metrics(self, batch: Batch) -> dict[str, Tensor]:
        """``[B]`` each: ``nll`` (the bound, given the speaker), ``recon`` = -log p(x | codes,
        s), ``prior_nll`` = -log p(codes | s), and the batch's code ``perplexity``."""
        x, y = unpack(batch)
        spk = self._speaker(y, x.shape[0]) if self.num_speakers else None
        codes = self.encode(x)
        recon = self._recon_steps(x, codes, spk).sum(1)
        prior = self._prior_steps(codes, spk).sum(1)
        perplexity = self.quantizer.perplexity(codes).to(recon.dtype).expand(x.shape[0])
        return {"nll": -(recon + prior), "recon": -recon, "prior_nll": -prior,
                "perplexity": perplexity}  # fmt: skip

    # -- codes and back -----------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """The code sequence of each utterance: ``[B, L] -> [B, ceil(L / hop)]`` (long)."""
        return self.quantizer.quantize(self.pre_quantize(x))

    @torch.no_grad()
    def decode(
        self,
        codes: Tensor,
        speakers: Any = None,
        length: int | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        """x ~ p(x | codes, s), sample by sample through the decoder's queues (Fast WaveNet):
        ``[B, T] -> [B, length]`` levels (default T * hop). The paper's reconstructions are
        such draws; temperature 0 takes each sample's mode (greedy, often near silence)."""
        n, t_codes = codes.shape
        length = t_codes * self.hop if length is None else length
        s = self.speakers_for(n, speakers)
        spk = None if s is None else self._speaker(s, n)
        cond = self._local(self.quantizer.lookup(codes.long()).to(self._dtype), length, spk)
        queues = self.decoder.start(n, self._dtype, self.device)
        x = torch.zeros(n, length, device=self.device)
        prev = torch.zeros(n, self.config.levels, dtype=self._dtype, device=self.device)
        for t in progress.track(range(length), "decoding", total=length, unit="samples"):
            params = self.decoder.step(prev, queues, cond[..., t])  # [n, K]
            x[:, t] = self.likelihood.sample(params[..., None], temperature)[:, 0]
            prev = F.one_hot(x[:, t].long(), self.config.levels).to(self._dtype)
        return x

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        """decode(encode(x)) with each utterance's own speaker (``y``; uniform without)."""
        speakers = None if y is None or not self.num_speakers else (y[:, 1] if y.dim() == 2 else y)
        return self.decode(self.encode(x), speakers, x.shape[1], temperature)

    @torch.no_grad()
    def convert(self, x: Tensor, speakers: Any, temperature: float = 1.0) -> Tensor:
        """Voice conversion (the paper's sec. 4.3): the codes of ``x`` ``[B, L]`` decoded with
        the embedding of ``speakers`` (one for all, or one each): ``[B, L]`` levels."""
        if not self.num_speakers:
            raise ConfigError(f"this {self.name} was trained without speakers: it cannot convert")
        return self.decode(self.encode(x), speakers, x.shape[1], temperature)

    @torch.no_grad()
    def interpolate(self, x1: Tensor, x2: Tensor, steps: int = 8) -> Tensor:
        """Decodes of ``steps`` points between the encoder outputs of two utterances (cut to
        the shorter), each quantised: ``[steps, L]`` for single utterances ``[L]``."""
        single = x1.dim() == 1
        if single:
            x1, x2 = x1[None], x2[None]
        length = min(x1.shape[1], x2.shape[1])
        z1, z2 = self.pre_quantize(x1[:, :length]), self.pre_quantize(x2[:, :length])
        t = torch.linspace(0, 1, steps, device=z1.device, dtype=z1.dtype).view(-1, 1, 1, 1)
        z = ((1 - t) * z1 + t * z2).flatten(0, 1)  # [steps * B, D, T]
        out = self.decode(self.quantizer.quantize(z), length=length).view(steps, -1, length)
        return out[:, 0] if single else out

    # -- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample_codes(self, n: int, length: int, spk: Tensor | None, temperature: float = 1.0):
        """``n`` code sequences ``[n, length]`` from the prior, code by code (a pass over the
        prefix each: a second of audio is 125 codes)."""
        g = None if spk is None else spk[..., None]
        codes = torch.zeros(n, length, dtype=torch.long, device=self.device)
        for j in range(length):
            logits = self.prior(self._onehot(codes[:, : j + 1], self.config.num_codes), g)
            codes[:, j] = self._codes.sample(logits[..., j : j + 1], temperature)[:, 0].long()
        return codes

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        speakers: Any = None,
        length: int | None = None,
    ) -> Tensor:
        """c ~ p(c | s), then x ~ p(x | c, s): ``[n, length]`` levels (default
        ``sample_seconds`` of audio); speakers uniform unless given."""
        c = self.config
        length = round(c.sample_seconds * self.sample_rate) if length is None else length
        if length < 1:
            raise ConfigError(f"length must be >= 1, got {length}")
        s = self.speakers_for(n, speakers)
        spk = None if s is None else self._speaker(s, n)
        codes = self.sample_codes(n, -(-length // self.hop), spk, temperature)
        return self.decode(codes, s, length, temperature)


__all__ = ["NOTE", "AudioVQVAE", "AudioVQVAEConfig"]
