"""What a model can do beyond the contract, declared by the classes that can do it.

Every model follows :class:`~dgm.models.base.GenerativeModel` (``log_prob``, ``sample``,
``loss``). The trainer, evaluation and the command line ask for more only through these
declarations, ``isinstance(model, Autoencoder)``, never by probing for attribute names: a
model that declares a capability must implement it (the abstract methods say what), and one
that does not declare it is never asked.

- :class:`Autoencoder`: codes and back (``encode``, ``decode``, ``reconstruct``,
  ``interpolate``);
- :class:`EvidenceBound`: ``elbo``, the bound a latent-variable model trains on;
- :class:`DecoderMean`: E[x|z] at prior draws z, samples without the decoder's pixel noise;
- :class:`Classifier`: ``classify`` and ``predict``, for hybrids p(y, x) = p(y|x) p(x);
- :class:`LabelConditional`: samples and scores given a class label, when configured so;
- :class:`ImplicitGenerator`: x = g(z), z ~ N(0, I), for AIS estimates of p(x);
- :class:`Scheduled`: an objective that changes with the training step (KL warm-up);
- :class:`Adversarial`: two players trained by alternating updates (GANs);
- :class:`ReceptiveField`: how many past values each conditional sees;
- :class:`TextModel`: token sequences, and the tokenizer that turns them into text and back;
- :class:`LatentDiagnostics`: the collapse diagnostics of a latent code (KL, I(x; z), active
  units);
- :class:`IterativeSampler`: draws made by a sampler in a number of steps, both chosen per
  call (diffusion models);
- :class:`Waveform`: audio at a sample rate, scored as whole utterances of any length;
- :class:`SpeakerConditional`: samples and scores given a speaker (audio);
- :class:`VoiceConverter`: an utterance re-spoken in another speaker's voice;
- :class:`AggressiveInference`: extra encoder-only updates before each step while the code's
  mutual information still rises (He et al. 2019).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

import torch
from torch import Tensor, nn

from dgm.errors import ConfigError, DataError

if TYPE_CHECKING:
    from dgm.data.text import TextTokenizer


class Autoencoder(ABC):
    """Examples to codes and back: ``decode(encode(x))`` is a reconstruction of ``x``."""

    @abstractmethod
    def encode(self, x: Tensor) -> Tensor:
        """A code per example ``[B, *code]``, as :meth:`decode` reads it."""

    @abstractmethod
    def decode(self, z: Tensor) -> Tensor:
        """The likelihood's most likely value given codes: ``[B, *event_shape]``."""

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """``decode(encode(x))``: ``[B, *event_shape]``."""
        return self.decode(self.encode(x))

    @abstractmethod
    def interpolate(self, x1: Tensor, x2: Tensor, steps: int = 8) -> Tensor:
        """Decodes of ``steps`` points on the way between the codes of ``x1`` and ``x2``:
        ``[steps, *event_shape]`` for single examples, ``[steps, B, *event_shape]`` for
        batches."""


class StochasticAutoencoder(Autoencoder):
    """An autoencoder whose codes and decodes are draws: z ~ q(z|x), x ~ p(x|z). The molecule
    papers measure reconstruction by both (Kusner et al. 2017; Jin et al. 2018: several codes
    per molecule, several decodes per code)."""

    @abstractmethod
    def encode_draw(self, x: Tensor) -> Tensor:
        """One code per example drawn from q(z|x): ``[B, *code]``."""

    @abstractmethod
    def decode_draw(self, z: Tensor) -> Tensor:
        """One draw of p(x|z) per code: ``[B, *event_shape]``."""


class DecoderMean(ABC):
    """A model that draws x ~ p(x|z) at z ~ p(z) through a decoder, and can show instead the
    decoder's mean E[x|z] at those z: what the model has learnt, without the independent
    per-dimension noise of p(x|z) that makes image samples look grainy next to
    reconstructions (``dgm sample --mode mean``)."""

    @abstractmethod
    def sample_mean(self, n: int) -> Tensor:
        """E[x|z] at ``n`` draws z ~ p(z), ``[n, *event_shape]`` in the data's units (for
        discrete data the expected level, a real number); deterministic given the z."""


class EvidenceBound(ABC):
    """A latent-variable model whose ``log_prob(x, num_samples=K)`` is an importance-sampled
    estimate and whose training bound is the ELBO."""

    @abstractmethod
    def elbo(self, x: Tensor, num_samples: int = 1) -> Tensor:
        """The evidence lower bound in nats, ``[B]``."""


class Classifier(ABC):
    """A model of p(y, x) = p(y|x) p(x) that also classifies."""

    @abstractmethod
    def classify(self, x: Tensor) -> Tensor:
        """log p(y|x) ``[B, C]``, rows log-softmax, deterministic."""

    @abstractmethod
    def predict(self, x: Tensor, num_samples: int = 1) -> tuple[Tensor, Tensor]:
        """``(log p(x) [B], log p(y|x) [B, C])``, log p(x) as ``log_prob`` reports it."""


class LabelConditional:
    """A model that can be conditioned on a class label, when its config says so (the fields
    ``conditional`` and ``num_classes``): ``sample(n, labels=...)`` draws given labels, uniform
    ones when none are given."""

    @property
    def conditional(self) -> bool:
        """Whether this model was built class-conditional."""
        return bool(self.config.conditional)  # type: ignore[attr-defined]

    @property
    def num_classes(self) -> int:
        """How many classes its labels take (0 when not conditional)."""
        c: Any = self.config  # type: ignore[attr-defined]
        return (c.num_classes or 0) if self.conditional else 0

    def labels_for(self, n: int, labels: Any = None) -> Tensor | None:
        """The label of each of ``n`` draws ``[n]`` (long, on the model's device): the given
        ``labels`` checked (one for all, or one each), uniform draws when none are given; None
        for a model built unconditional, which refuses labels."""
        if not self.conditional:
            if labels is not None:
                raise ConfigError(
                    f"labels given, but this {self.name} is not class-conditional"  # type: ignore[attr-defined]
                )
            return None
        k, device = self.num_classes, self.device  # type: ignore[attr-defined]
        if labels is None:  # the uniform p(y) a class-conditional model's marginal assumes
            return torch.randint(k, (n,), device=device)
        y = torch.as_tensor(labels, device=device).long().reshape(-1)
        if y.numel() == 1:  # one label for every draw
            y = y.expand(n)
        if y.numel() != n:
            raise DataError(f"need one label per sample: got {y.numel()} labels for {n} samples")
        if y.numel() and (y.min() < 0 or y.max() >= k):
            raise DataError(f"labels must lie in 0..{k - 1}, got {y.min()}..{y.max()}")
        return y


class ImplicitGenerator(ABC):
    """x = g(z) with z ~ N(0, I_K): a decoder-based model without a likelihood of its own, whose
    p(x) annealed importance sampling estimates under x = g(z) + sigma eps (Wu et al. 2017;
    :mod:`dgm.evaluation.ais`)."""

    @property
    @abstractmethod
    def latent_dim(self) -> int:
        """K, the dimensions of z."""

    @abstractmethod
    def generator_mean(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """g(z) in the data's units ``[B, *event_shape]`` (deterministic: eval mode)."""


class Scheduled(ABC):
    """A training objective that changes with the step (a KL warm-up, a cycle of masks). The
    step is training state, so it lives in the trainer: a training loop calls
    ``set_step(global_step)`` before each step, and a resumed run continues where it was."""

    @abstractmethod
    def set_step(self, step: int) -> None:
        """Take the number of optimiser steps done so far."""


class Player(TypedDict):
    """One player's parameters and optimiser settings."""

    params: list[nn.Parameter]
    lr: float
    betas: tuple[float, float]


# update(player, loss) -> the gradient norm: one optimiser step of ``player`` on ``loss``
Update = Callable[[str, Tensor], Tensor]


class Adversarial(ABC):
    """Players trained by alternating updates (a GAN). The trainer builds one optimiser per
    player from :meth:`players` and calls :meth:`adversarial_step` once per batch with an
    ``update`` function; it knows nothing of the objectives. After each epoch it asks
    :meth:`collapsed` whether the game has failed, and stops after ``collapse_epochs``
    failed epochs in a row, keeping the weights of the last good one."""

    # the player whose weights the trainer's moving average follows (after each of its updates)
    averaged_player: ClassVar[str]
    # epochs in a row that :meth:`collapsed` may report before training stops
    collapse_epochs: ClassVar[int] = 5

    @abstractmethod
    def players(self, lr: float) -> dict[str, Player]:
        """Each player's parameters and optimiser settings, given the training lr."""

    @abstractmethod
    def adversarial_step(self, batch: Any, step: int, update: Update) -> dict[str, Tensor]:
        """One training step on ``batch`` (``step`` batches done before it): calls
        ``update(player, loss)`` for each player update and returns scalars to log."""

    @abstractmethod
    def collapsed(self, epoch_means: dict[str, float]) -> str | None:
        """Given the epoch's means of the logged scalars, why the game looks collapsed (a
        sentence with what to change), or None while it is healthy."""

    @property
    def sample_monitor(self) -> str | None:
        """The metric of ``metrics`` (lower is better) that says how good the samples are and
        so picks the weights to keep, the moving average's or the raw ones, in the best
        epoch; None: no cheap measure (the latest weights, averaged where there is an
        average, are kept)."""
        return None


class ReceptiveField(ABC):
    """An autoregressive model whose conditionals see a bounded window of the past."""

    @property
    @abstractmethod
    def receptive_field(self) -> int:
        """How many past values each conditional sees."""


class TextModel:
    """A model of token sequences (``[B, max_len]`` ids: the words, one end token, padding
    after it). ``tokenizer`` turns ids into text and back; it is None until ``dgm.load`` (from
    the run folder's tokenizer.json) or training (from the dataset) sets it."""

    tokenizer: TextTokenizer | None = None

    def _tokenizer(self) -> TextTokenizer:
        if self.tokenizer is None:
            raise ConfigError(
                f"{self.name} has no tokenizer: load it from its run folder with dgm.load, or "  # type: ignore[attr-defined]
                "set model.tokenizer (a dgm.data.text.TextTokenizer)"
            )
        return self.tokenizer

    def texts(self, x: Tensor) -> list[str]:
        """The text of each row of ids ``[B, max_len]`` (up to its end token)."""
        return self._tokenizer().decode_batch(x.detach().cpu())

    def ids(self, lines: Sequence[str]) -> Tensor:
        """Lines of text as rows of ids ``[len(lines), max_len]`` on the model's device: each
        cut to ``max_len - 1`` tokens, then the end token, then padding."""
        if isinstance(lines, str):
            raise DataError("ids takes a list of lines, got one string: pass [line]")
        max_len = self.event_shape[0]  # type: ignore[attr-defined]
        x, _ = self._tokenizer().encode_lines(list(lines), max_len)
        return x.to(self.device)  # type: ignore[attr-defined]


class PropertyPredictor(ABC):
    """A latent model trained jointly with a head that predicts properties of x from its code
    z (the chemical VAE's joint model, Gomez-Bombarelli et al. 2018): a continuous space to
    search for better properties (``dgm optimize``). Declared with :class:`Autoencoder`."""

    @property
    @abstractmethod
    def property_names(self) -> tuple[str, ...]:
        """What the head predicts, in order (``()``: this model has no head)."""

    @property
    @abstractmethod
    def latent_dim(self) -> int:
        """Dimensions of z."""

    @abstractmethod
    def predict_properties(self, z: Tensor) -> Tensor:
        """The head's predictions ``[B, P]`` in the properties' own units, differentiable in
        ``z [B, K]``."""


class LatentDiagnostics(ABC):
    """A model with a continuous code z and an amortised posterior q(z|x) that can report the
    numbers of posterior collapse over a set of examples (the trainer logs them at every
    validation): ``kl``, the mean KL(q(z|x) || p(z)) in nats; ``mi``, the mutual information
    I(x; z) under q (He et al. 2019's estimator); ``active_units``, the dimensions whose
    posterior mean varies over the examples, Cov_x(E_q[z_d]) > 0.01 (Burda et al. 2016)."""

    @abstractmethod
    def diagnostics(self, x: Tensor) -> dict[str, float]:
        """``{"kl", "mi", "active_units"}`` over the examples ``x`` ``[N, *event_shape]``."""


class IterativeSampler:
    """A model whose draws are made by one of several samplers in a number of steps (a
    diffusion model's ancestral or DDIM steps, an ODE solver's): ``sample(n, steps=...,
    sampler=...)``, both defaulting to the model's config. ``sample_options`` names the config
    fields a call may override (``dgm sample --set steps=50``); :meth:`sample_settings` checks
    them as the config does."""

    sample_options: ClassVar[tuple[str, ...]] = ("steps", "sampler")

    def sample_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` (strings from the command line, or Python values) checked and typed by
        the model's config: ``{name: value}`` for ``sample``. Unknown names, and values the
        config would refuse, raise a ConfigError that names the valid ones."""
        from dgm import config as cfg_

        unknown = sorted(set(values) - set(self.sample_options))
        if unknown:
            raise ConfigError(
                f"{self.name} takes no sampling option {unknown[0]!r}; sampling options: "  # type: ignore[attr-defined]
                f"{', '.join(self.sample_options)}"
            )
        c: Any = self.config  # type: ignore[attr-defined]
        built = cfg_.build(type(c), {**cfg_.to_dict(c), **values}, what=f"{self.name} sampling")  # type: ignore[attr-defined]
        return {k: getattr(built, k) for k in values}

    def describe_sampling(self, settings: dict[str, Any]) -> str:
        """The sampler and steps a call with ``settings`` uses, in words ("ddim, 50 steps")."""
        c: Any = self.config  # type: ignore[attr-defined]
        sampler = settings.get("sampler", c.sampler)
        steps = settings.get("steps", c.steps)
        return f"{sampler}, {steps} step{'s' if steps != 1 else ''}"


class AggressiveInference(LatentDiagnostics):
    """The aggressive training of the inference network (He et al. 2019, "Lagging inference
    networks and posterior collapse in variational autoencoders"), run by the trainer: while
    :attr:`aggressive` and the mutual information I(x; z) on the validation data has not
    fallen since the last validation, each training step first updates only
    :meth:`encoder_parameters` on fresh training batches, until the mean loss of a window of
    ``inner_window`` such updates is no lower than the window before (at most
    ``inner_max_steps``), and then updates the rest on :meth:`decoder_loss`, in which the
    encoder is held fixed. After that, ordinary steps on ``loss``."""

    inner_window: ClassVar[int] = 15  # inner updates per check of the loss (the paper's code)
    inner_max_steps: ClassVar[int] = 100  # at most this many inner updates per step

    @property
    @abstractmethod
    def aggressive(self) -> bool:
        """Whether this model was configured to start training aggressively."""

    @abstractmethod
    def encoder_parameters(self) -> list[nn.Parameter]:
        """The inference network's parameters: what the inner updates move."""

    @abstractmethod
    def decoder_loss(self, batch: Any) -> Tensor:
        """``loss(batch)`` with the encoder held fixed (no gradient reaches it)."""


class Waveform(ABC):
    """A model of audio: levels at ``sample_rate`` samples per second, trained on crops and
    scored on whole utterances of any length; ``sample(n, length=...)`` draws ``[n, length]``.
    ``y`` is the data's ``[B, 2]`` (label, speaker) or None."""

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Samples per second."""

    @abstractmethod
    def utterance_log_prob(self, x: Tensor, lengths: Tensor, y: Tensor | None = None) -> Tensor:
        """log p of each utterance's first ``lengths[i]`` values (given its ``y`` where the
        model is conditioned): ``[B, L]`` padded levels, ``[B]`` lengths -> ``[B]`` nats."""

    @property
    def conditioned_on(self) -> tuple[str, ...]:
        """What ``utterance_log_prob`` reads from ``y`` (``label``, ``speaker``), for reports."""
        return ()

    def utterance_scores(
        self, x: Tensor, lengths: Tensor, y: Tensor | None = None
    ) -> dict[str, Tensor]:
        """``log_prob`` (:meth:`utterance_log_prob`) and, from the same pass, the parts of
        the number where the model has them (a VQ-VAE's reconstruction and prior terms in
        nats, ``[B]``; its code usage ``[B, K]``)."""
        return {"log_prob": self.utterance_log_prob(x, lengths, y)}


class SpeakerConditional(ABC):
    """A model of speech told who speaks: ``sample(n, speakers=...)``; ``num_speakers`` is 0
    when it was built without speakers."""

    @property
    @abstractmethod
    def num_speakers(self) -> int:
        """How many speakers it knows (0: none)."""

    def speakers_for(self, n: int, speakers: Any = None) -> Tensor | None:
        """The speaker of each of ``n`` draws ``[n]`` (long): the given indices checked (one
        for all, or one each), uniform draws when none are given; None without speakers."""
        k = self.num_speakers
        device = self.device  # type: ignore[attr-defined]
        if not k:
            if speakers is not None:
                raise ConfigError(
                    f"speakers given, but this {self.name} is not conditioned on speakers"  # type: ignore[attr-defined]
                )
            return None
        if speakers is None:
            return torch.randint(k, (n,), device=device)
        s = torch.as_tensor(speakers, device=device).long().reshape(-1)
        if s.numel() == 1:
            s = s.expand(n)
        if s.numel() != n:
            raise DataError(f"need one speaker per sample: got {s.numel()} for {n} samples")
        if s.min() < 0 or s.max() >= k:
            raise DataError(f"speakers must lie in 0..{k - 1}, got {s.min()}..{s.max()}")
        return s


class VoiceConverter(SpeakerConditional):
    """Speech re-spoken by another speaker: the content of ``x`` kept, the voice of
    ``speakers`` (van den Oord et al. 2017, sec. 4.3)."""

    @abstractmethod
    def convert(self, x: Tensor, speakers: Any, temperature: float = 1.0) -> Tensor:
        """``x`` ``[B, L]`` levels -> ``[B, L]`` levels in the voice of ``speakers`` (one
        index for all, or one each)."""


__all__ = [
    "Adversarial",
    "AggressiveInference",
    "Autoencoder",
    "Classifier",
    "DecoderMean",
    "EvidenceBound",
    "ImplicitGenerator",
    "IterativeSampler",
    "LabelConditional",
    "LatentDiagnostics",
    "Player",
    "PropertyPredictor",
    "ReceptiveField",
    "Scheduled",
    "SpeakerConditional",
    "StochasticAutoencoder",
    "TextModel",
    "Update",
    "Waveform",
]
