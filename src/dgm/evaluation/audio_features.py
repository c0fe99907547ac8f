"""dgm's own feature network for audio, and what it measures: the Frechet distance between the
features of samples and of test utterances, the share of conditional samples it hears as the
label they were asked for, and the share of converted utterances it hears as their target
speaker (van den Oord et al. 2017's voice-conversion test, with a classifier for the ear).

As for images (:mod:`dgm.evaluation.features`), no pretrained audio network can be downloaded
here, so dgm trains a small classifier on the dataset's own labelled training split and uses
its penultimate layer as the feature space ("FAD-like", after Kilgour et al. 2019's Frechet
Audio Distance with a VGGish network). It reads a log-magnitude spectrogram (32 ms Hann
windows, hop 16 ms), three 1-D convolutions over time, the mean over the utterance's own
frames, a feature layer, and two heads: the label (FSDD's digit) and the speaker. It is kept in
the run folder (``RUN/features``, the format of :func:`~dgm.evaluation.features.save_feature_net`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm import progress
from dgm.data.audio import decode
from dgm.data.base import Dataset, DataSpec, Split
from dgm.errors import DataError
from dgm.evaluation.audio import batches
from dgm.models.base import GenerativeModel
from dgm.models.capabilities import LabelConditional, SpeakerConditional, VoiceConverter, Waveform

AUDIO_KIND = "dgm-audio-feature-net"
# utterances per batch when scoring, and the longest stretch of audio the net reads at once
SCORE_BATCH = 64


class AudioFeatureNet(nn.Module):
    """Log spectrogram -> conv1d x 3 over time -> mean over the frames -> ``feature_dim``
    (ReLU) -> heads for the label and the speaker (those the data has)."""

    folder_kind = AUDIO_KIND  # what its saved folder says it is

    def __init__(
        self, spec: DataSpec, feature_dim: int = 64, width: int = 64, dropout: float = 0.3
    ) -> None:
        super().__init__()
        if not spec.is_audio:
            raise DataError(f"{spec.name} is not audio")
        if not spec.num_classes and not spec.speakers:
            raise DataError(
                f"{spec.name} names neither labels nor speakers: the audio feature network has "
                "nothing to learn from"
            )
        self.spec = spec
        self.feature_dim, self.width, self.dropout = int(feature_dim), int(width), float(dropout)
        rate = spec.sample_rate or 8000
        self.n_fft = 2 ** round(math.log2(0.032 * rate))  # 256 at 8 kHz
        self.hop = self.n_fft // 2
        bins = self.n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        # per-frequency standardisation of the log spectrogram (from the training split)
        self.register_buffer("shift", torch.zeros(bins, 1))
        self.register_buffer("scale", torch.ones(bins, 1))
        self.body = nn.Sequential(
            nn.Conv1d(bins, width, 5, padding=2), nn.ReLU(),
            nn.Conv1d(width, width, 5, padding=2), nn.ReLU(),
            nn.Conv1d(width, width, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.feature = nn.Sequential(nn.Linear(width, feature_dim), nn.ReLU())
        self.drop = nn.Dropout(dropout)
        k, s = spec.num_classes or 0, len(spec.speakers or ())
        self.label_head = nn.Linear(feature_dim, k) if k >= 2 else None
        self.speaker_head = nn.Linear(feature_dim, s) if s >= 2 else None
        self.metrics: dict[str, Any] = {}

    @property
    def config(self) -> dict[str, Any]:
        return {"feature_dim": self.feature_dim, "width": self.width, "dropout": self.dropout}

    def describe(self) -> str:
        m = self.metrics
        parts = [
            f"{what} acc {m[key]:.3f}"
            for what, key in (
                ("label", "test_label_accuracy"),
                ("speaker", "test_speaker_accuracy"),
            )
            if isinstance(m.get(key), float)
        ]
        return (
            f"dgm AudioFeatureNet (log spectrogram, {self.feature_dim}-d penultimate layer) "
            f"trained on {self.spec.name} train split, test {', '.join(parts) or 'n/a'}"
        )

    def spectrogram(self, x: Tensor) -> Tensor:
        """Levels ``[B, L]`` -> log magnitudes ``[B, F, T]`` (frame t centred at t * hop)."""
        a = decode(x, self.spec.encoding or "mulaw", self.spec.levels).to(self.window.dtype)
        if a.shape[1] < self.n_fft // 2 + 1:  # reflect padding needs a little room
            a = F.pad(a, (0, self.n_fft // 2 + 1 - a.shape[1]))
        s = torch.stft(a, self.n_fft, self.hop, window=self.window, return_complex=True)
        return torch.log(s.abs() + 1e-4)

    def set_standardization(self, x: Tensor, lengths: Tensor) -> None:
        """Per-frequency mean and std of the log spectrogram over the frames of ``x``."""
        spec = self.spectrogram(x)  # [B, F, T]
        mask = self._mask(lengths, spec.shape[-1]).to(spec.dtype)[:, None]  # [B, 1, T]
        n = mask.sum()
        mean = (spec * mask).sum((0, 2)) / n
        var = (((spec - mean[:, None]) ** 2) * mask).sum((0, 2)) / n
        self.shift.copy_(mean[:, None])
        self.scale.copy_(var.clamp_min(1e-6).sqrt()[:, None])

    def _mask(self, lengths: Tensor, frames: int) -> Tensor:
        """Frames inside each utterance ``[B, T]``: frame t is centred at sample t * hop."""
        t = torch.arange(frames, device=lengths.device)
        return t[None] * self.hop < lengths[:, None].clamp_min(1)

    def embed(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Features ``[B, feature_dim]`` of levels ``[B, L]`` (each its first ``lengths``)."""
        spec = (self.spectrogram(x) - self.shift) / self.scale
        h = self.body(spec)  # [B, W, T]
        mask = self._mask(lengths.to(h.device), h.shape[-1]).to(h.dtype)[:, None]
        pooled = (h * mask).sum(-1) / mask.sum(-1).clamp_min(1)
        return self.feature(pooled)

    def forward(self, x: Tensor, lengths: Tensor) -> dict[str, Tensor]:
        """Logits of the heads it has: ``{"label": [B, K], "speaker": [B, S]}``."""
        f = self.drop(self.embed(x, lengths))
        out = {}
        if self.label_head is not None:
            out["label"] = self.label_head(f)
        if self.speaker_head is not None:
            out["speaker"] = self.speaker_head(f)
        return out

    @torch.no_grad()
    def score(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        """Features and logits of utterances ``[N, L]`` (padded; ``lengths`` default L), in
        batches of similar length, in eval mode: ``{"features", "label", "speaker"}``."""
        n = x.shape[0]
        if n == 0:
            raise DataError("no utterances to score")
        lengths = torch.full((n,), x.shape[1]) if lengths is None else lengths.cpu()
        was = self.training
        self.eval()
        device = self.shift.device
        out: dict[str, Tensor] = {}
        try:
            for idx in batches(lengths, SCORE_BATCH * 8000):
                longest = int(lengths[idx].max())
                xb, lb = x[idx, :longest].to(device), lengths[idx].to(device)
                f = self.embed(xb, lb)
                parts = {"features": f}
                if self.label_head is not None:
                    parts["label"] = self.label_head(f)
                if self.speaker_head is not None:
                    parts["speaker"] = self.speaker_head(f)
                for k, v in parts.items():
                    if k not in out:
                        out[k] = torch.zeros(n, v.shape[1], dtype=v.dtype)
                    out[k][idx] = v.cpu()
        finally:
            self.train(was)
        return out


def _accuracies(net: AudioFeatureNet, split: Split) -> dict[str, float]:
    """Label and speaker accuracy on a split's whole utterances (those with the column)."""
    if split.y is None or not len(split):
        return {}
    s = net.score(split.x, split.lengths)
    out = {}
    for col, head in ((0, "label"), (1, "speaker")):
        y = split.y[:, col]
        keep = y >= 0
        if head in s and keep.any():
            out[head] = float((s[head][keep].argmax(1) == y[keep]).double().mean())
    return out


def train_audio_feature_net(
    dataset: Dataset,
    *,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    max_seconds: float = 1.0,
    device: torch.device | str | None = None,
) -> AudioFeatureNet:
    """Train an :class:`AudioFeatureNet` on ``dataset.train`` (cross-entropy on each head, the
    label's and the speaker's), on crops of at most ``max_seconds`` from a random place in each
    utterance with a random gain of +-6 dB (in amplitude, before the levels: it reads levels, so
    the gain is applied as re-encoded levels); keeps the epoch best on val accuracy."""
    from dgm.data.audio import encode

    spec, train = dataset.spec, dataset.train
    if train.y is None or train.lengths is None:
        raise DataError(f"{spec.name} has no labels or speakers to train a feature network on")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    crop = max(1, int(max_seconds * (spec.sample_rate or 8000)))
    n = len(train)
    start = time.monotonic()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = AudioFeatureNet(spec).to(dev)
        net.set_standardization(
            train.x[: min(n, 256)].to(dev), train.lengths[: min(n, 256)].to(dev)
        )
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        steps = epochs * math.ceil(n / batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        best, best_state, best_epoch = -1.0, None, 0
        enc = spec.encoding or "mulaw"
        bar = progress.task(epochs, f"audio feature net ({spec.name})", unit="epochs")
        for epoch in range(1, epochs + 1):
            net.train()
            for idx in torch.randperm(n).split(batch_size):
                lengths = train.lengths[idx].clamp(max=crop)
                room = (train.lengths[idx] - lengths).clamp_min(0)
                first = (torch.rand(len(idx)) * (room + 1)).long()
                cols = (first[:, None] + torch.arange(int(lengths.max()))).clamp(
                    max=train.x.shape[1] - 1
                )
                xb = train.x[idx[:, None], cols]  # [B, L] levels
                gain = 2 ** (torch.rand(len(idx), 1) * 2 - 1)  # +-6 dB
                xb = encode(decode(xb, enc, spec.levels) * gain, enc, spec.levels)
                logits = net(xb.to(dev), lengths.to(dev))
                y = train.y[idx].to(dev)
                loss = sum(
                    F.cross_entropy(logits[h], y[:, c], ignore_index=-1)
                    for c, h in ((0, "label"), (1, "speaker"))
                    if h in logits and (y[:, c] >= 0).any()
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[union-attr]
                opt.step()
                sched.step()
            acc = _accuracies(net, dataset.val if len(dataset.val) else train)
            key = sum(acc.values()) / max(len(acc), 1)
            if key > best:
                best, best_epoch = key, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            bar.update(1)
        bar.close()
    assert best_state is not None
    net.load_state_dict(best_state)
    net.eval()
    metrics: dict[str, Any] = {"epochs": epochs, "best_epoch": best_epoch,
                               "seconds": round(time.monotonic() - start, 2)}  # fmt: skip
    for split in ("val", "test"):
        for head, acc in _accuracies(net, dataset.split(split)).items():
            metrics[f"{split}_{head}_accuracy"] = acc
    net.metrics = metrics
    return net


def audio_feature_net_for(dataset: Dataset, folder: str | Path, **train_kwargs: Any):
    """The audio feature network cached in ``folder`` (``RUN/features``) for this data; trained
    and saved there when absent, damaged or for other data."""
    from dgm.evaluation.features import load_feature_net, save_feature_net
    from dgm.io import CONFIG

    folder = Path(folder)
    if (folder / CONFIG).is_file():
        try:
            net = load_feature_net(folder)
        except DataError:
            net = None  # a damaged cache is rebuilt rather than trusted
        s = dataset.spec
        if isinstance(net, AudioFeatureNet) and (
            net.spec.name, net.spec.sample_rate, net.spec.num_classes, net.spec.speakers
        ) == (s.name, s.sample_rate, s.num_classes, s.speakers):  # fmt: skip
            return net
    net = train_audio_feature_net(dataset, **train_kwargs)
    save_feature_net(net, folder)  # type: ignore[arg-type]
    return net


# --------------------------------------------------------------------------- what it measures


def _frechet(real: Tensor, fake: Tensor) -> float:
    from dgm.evaluation.quality import frechet_distance_from_features

    return frechet_distance_from_features(real, fake)


@torch.no_grad()
def audio_sample_quality(
    model: GenerativeModel,
    dataset: Dataset,
    net: AudioFeatureNet,
    num_samples: int = 100,
    batch: int = 20,
) -> dict[str, Any]:
    """Draw ``num_samples`` utterances of the test set's median length (labels cycled through
    every class when the model takes labels, speakers uniform), and measure them in the
    network's features: ``fd`` to the test utterances, ``accuracy`` (the share heard as the
    label asked for; conditional models only) next to ``real_accuracy`` (the network on the
    real test takes), ``generated`` (how many), ``sample_seconds`` each and ``features``."""
    if not isinstance(model, Waveform):
        raise DataError(f"{model.name} does not model audio")
    test = dataset.test
    assert test.lengths is not None
    length = int(test.lengths.float().median())
    conditional = isinstance(model, LabelConditional) and model.conditional
    labels = torch.arange(num_samples) % model.num_classes if conditional else None
    drawn = []
    bar = progress.task(num_samples, "drawing audio samples", unit="samples")
    for first in range(0, num_samples, batch):
        m = min(batch, num_samples - first)
        kwargs: dict[str, Any] = {"length": length}
        if labels is not None:
            kwargs["labels"] = labels[first : first + m]
        drawn.append(model.sample(m, **kwargs).cpu())  # type: ignore[call-arg]
        bar.update(m)
    bar.close()
    samples = torch.cat(drawn)
    fake = net.score(samples)
    real = net.score(test.x, test.lengths)
    out: dict[str, Any] = {
        "fd": _frechet(real["features"], fake["features"]),
        "generated": num_samples,
        "sample_seconds": round(length / (dataset.spec.sample_rate or 1), 3),
        "features": net.describe(),
        "real_accuracy": net.metrics.get("test_label_accuracy"),
    }
    if labels is not None and "label" in fake:
        out["accuracy"] = float((fake["label"].argmax(1) == labels).double().mean())
    return out


@torch.no_grad()
def speaker_swap_accuracy(
    model: GenerativeModel, dataset: Dataset, net: AudioFeatureNet, num: int = 60
) -> dict[str, Any]:
    """Convert the first ``num`` test utterances each to another speaker (the next one in
    turn) and report ``swap_accuracy``, the share the network hears as the target speaker, and
    ``swap_label_accuracy``, the share still heard as their own label (the content kept), next
    to the network's accuracies on the real test takes."""
    if not isinstance(model, VoiceConverter) or not isinstance(model, SpeakerConditional):
        raise DataError(f"{model.name} cannot convert voices")
    test = dataset.test
    assert test.y is not None and test.lengths is not None
    keep = (test.y[:, 1] >= 0).nonzero()[:, 0][:num]
    s = model.num_speakers
    target = (test.y[keep, 1] + 1 + torch.arange(len(keep)) % max(s - 1, 1)) % s
    converted = torch.full_like(test.x[keep], float(test.x[0, -1]))
    lengths = test.lengths[keep]
    for idx in progress.track(batches(lengths, 16 * 8000), "converting", unit="batches"):
        longest = int(lengths[idx].max())
        x = test.x[keep[idx], :longest].to(model.device)
        out = model.convert(x, target[idx].to(model.device)).cpu()
        converted[idx, :longest] = out
    scored = net.score(converted, lengths)
    result: dict[str, Any] = {
        "swap_n": len(keep),
        "swap_accuracy": float((scored["speaker"].argmax(1) == target).double().mean()),
        "real_speaker_accuracy": net.metrics.get("test_speaker_accuracy"),
        "features": net.describe(),
    }
    if "label" in scored:
        own = test.y[keep, 0]
        result["swap_label_accuracy"] = float((scored["label"].argmax(1) == own).double().mean())
    return result


__all__ = [
    "AUDIO_KIND",
    "AudioFeatureNet",
    "audio_feature_net_for",
    "audio_sample_quality",
    "speaker_swap_accuracy",
    "train_audio_feature_net",
]
