"""OOD scores, detection metrics and calibration: against brute force, hand computation and
a Gaussian whose typical set is known."""

from __future__ import annotations

import bz2
import io
import lzma
import math
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from dgm.errors import ConfigError, DataError
from dgm.evaluation.classification import accuracy, expected_calibration_error
from dgm.evaluation.ood import (
    SCORES,
    _png_bytes,
    aupr,
    auroc,
    code_length_bits,
    complexity_score,
    detection_metrics,
    estimate_entropy,
    fpr_at_tpr,
    hybrid_score,
    likelihood_ratio_score,
    mutate,
    ood_report,
    score_inputs,
    typicality_scores,
    typicality_statistic,
    typicality_threshold,
    unavailable_scores,
)
from dgm.models.base import GenerativeModel
from dgm.models.capabilities import Classifier
from dgm.plotting import save_score_histograms
from tests.device_guard import DeviceGuard


# --------------------------------------------------------------------------- detection metrics
def _brute_auroc(a: np.ndarray, b: np.ndarray) -> float:
    diff = b[None, :] - a[:, None]  # [n_in, n_out]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_auroc_is_the_pair_count_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 6, size=37).astype(float)
    b = rng.integers(2, 8, size=23).astype(float)
    assert auroc(a, b) == pytest.approx(_brute_auroc(a, b), abs=1e-12)
    # tensors are accepted as well, and +inf (log p = -inf) ranks above everything
    b_inf = b.copy()
    b_inf[:3] = np.inf
    assert auroc(torch.tensor(a), torch.tensor(b_inf)) == pytest.approx(
        _brute_auroc(a, b_inf), abs=1e-12
    )


def test_auroc_aupr_extremes() -> None:
    a, b = np.arange(10.0), np.arange(10.0) + 100
    assert auroc(a, b) == 1.0
    assert auroc(b, a) == 0.0
    assert auroc(a, a) == 0.5
    assert aupr(a, b) == pytest.approx(1.0, abs=1e-12)
    # identical sets: every threshold has precision n_out / n, the chance level
    assert aupr(a, a) == pytest.approx(0.5)
    m = detection_metrics(a, b)
    assert m == pytest.approx({"auroc": 1.0, "aupr": 1.0, "fpr95": 0.0}, abs=1e-12)


def test_fpr95_by_hand_with_ties() -> None:
    a = np.arange(1.0, 21.0)  # 20 in-distribution scores: ceil(0.95 * 20) = 19 -> t = 19
    b = np.array([19.0, 19.5, 20.0, 25.0, 0.0])  # 19 (tied with t) and 0 pass
    assert fpr_at_tpr(a, b) == pytest.approx(2 / 5)
    # ties among in-distribution scores: t = 19th smallest of ten 1s and ten 2s = 2
    a2 = np.array([1.0] * 10 + [2.0] * 10)
    assert fpr_at_tpr(a2, np.array([2.0, 3.0, 1.5, 0.5])) == pytest.approx(3 / 4)
    # tpr 0.5 of [1, 2, 3, 4]: t = 2
    assert fpr_at_tpr([1.0, 2.0, 3.0, 4.0], [2.0, 2.5, 1.5], tpr=0.5) == pytest.approx(2 / 3)
    assert fpr_at_tpr([1.0, 2.0, 3.0, 4.0], [4.0, 5.0], tpr=1.0) == pytest.approx(1 / 2)
    with pytest.raises(ConfigError):
        fpr_at_tpr(a, b, tpr=0.0)


def test_metrics_reject_nan_and_empty() -> None:
    with pytest.raises(DataError, match="NaN"):
        auroc([1.0, float("nan")], [2.0])
    with pytest.raises(DataError, match="no OOD"):
        aupr([1.0], [])
    with pytest.raises(DataError):
        fpr_at_tpr(np.array([]), [1.0])


def test_ood_report_scores_in_both() -> None:
    s_in = {"likelihood": np.arange(5.0), "typicality": np.arange(5.0), "only-in": np.ones(5)}
    s_out = {"typicality": np.arange(5.0) + 2, "likelihood": np.arange(5.0) + 10}
    rep = ood_report(s_in, s_out)
    assert list(rep) == ["likelihood", "typicality"]
    assert rep["likelihood"]["auroc"] == 1.0
    assert rep["typicality"] == detection_metrics(s_in["typicality"], s_out["typicality"])


# --------------------------------------------------------------------------- typicality
D = 20


def _gauss_nll(x: Tensor) -> Tensor:
    """Exact -log N(x; 0, I_D), nats."""
    return 0.5 * (x**2).sum(-1) + 0.5 * x.shape[-1] * math.log(2 * math.pi)


def test_typicality_test_on_a_known_gaussian() -> None:
    g = torch.Generator().manual_seed(0)
    ref = _gauss_nll(torch.randn(4000, D, generator=g, dtype=torch.float64))
    h = estimate_entropy(ref)
    true_h = 0.5 * D * (1 + math.log(2 * math.pi))
    assert h == pytest.approx(true_h, abs=0.3)  # sd of the mean: sqrt(D/2 / 4000) = 0.05
    m = 10
    eps = typicality_threshold(ref, m, alpha=0.99, num_bootstrap=4000, seed=1)
    # batch means of NLL ~ H + N(0, (D/2)/M): the 0.99 quantile of |.| is 2.576 * 1
    assert eps == pytest.approx(2.576, rel=0.12)

    def rejected(x: Tensor) -> float:
        stat = typicality_scores(_gauss_nll(x), h, batch_size=m, seed=2)
        return float((stat > eps).double().mean())

    fresh = torch.randn(3000, D, generator=g, dtype=torch.float64)
    assert rejected(fresh) <= 0.04  # about 1% of in-distribution batches are rejected
    assert rejected(fresh + 1.0) == 1.0  # shifted: NLL higher by D/2 on average
    assert rejected(2.0 * fresh) == 1.0  # scaled: far outside the typical shell
    near_mode = 0.1 * fresh  # HIGHER likelihood than any typical input
    assert rejected(near_mode) == 1.0
    # per example: raw likelihood calls near-mode points the most in-distribution of all,
    # while typicality separates them
    nll_in, nll_mode = _gauss_nll(fresh[:1000]), _gauss_nll(near_mode[1000:2000])
    assert auroc(nll_in, nll_mode) < 0.01
    t_in, t_mode = typicality_scores(nll_in, h), typicality_scores(nll_mode, h)
    assert auroc(t_in, t_mode) > 0.97
    assert torch.allclose(t_in, (nll_in - h).abs())


def test_typicality_shapes_and_errors() -> None:
    nll = torch.arange(10.0, dtype=torch.float64)
    assert float(typicality_statistic(nll, 2.0)) == pytest.approx(2.5)
    s = typicality_scores(nll, 4.5, batch_size=3, seed=0)
    assert s.shape == (3,)  # the tenth input is left out
    # the three batches are disjoint subsets: their sums add to 45 minus the one left out
    s_full = typicality_scores(nll, 0.0, batch_size=5, seed=0)
    assert float(s_full.sum() * 5) == pytest.approx(45.0)
    assert typicality_scores(torch.tensor([1.0, math.inf]), 1.0).tolist() == [0.0, math.inf]
    with pytest.raises(DataError):
        typicality_scores(nll, 0.0, batch_size=11)
    with pytest.raises(DataError, match="NaN or infinite"):
        typicality_threshold(torch.tensor([1.0, math.nan]), 2)
    with pytest.raises(ConfigError):
        typicality_threshold(nll, 2, alpha=1.0)


def test_typicality_and_mutate_are_device_clean() -> None:
    x = torch.randint(0, 17, (50, 64)).double()
    nll = torch.rand(100, dtype=torch.float64)
    with DeviceGuard() as guard:
        typicality_threshold(nll, 5, num_bootstrap=20)
        typicality_scores(nll, 0.5, batch_size=5)
        mutate(x, 0.3, 17)
    assert guard.offenders == []


# --------------------------------------------------------------------------- mutate
def test_mutate_rate_levels_and_identity() -> None:
    levels, rate = 17, 0.3
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, levels, (2000, 64), generator=g).double()
    y = mutate(x, rate, levels, generator=torch.Generator().manual_seed(1))
    assert y.dtype == torch.float64 and y.shape == x.shape
    assert torch.equal(y, y.round()) and y.min() >= 0 and y.max() <= levels - 1
    # a replaced value equals the old one with probability 1/levels
    changed = float((y != x).double().mean())
    assert changed == pytest.approx(rate * (1 - 1 / levels), abs=0.005)
    # replacements are uniform over the levels
    z = mutate(torch.zeros(40_000), 1.0, 4, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(
        torch.bincount(z.long(), minlength=4) / 40_000.0, torch.full((4,), 0.25), atol=0.01
    )
    assert torch.equal(mutate(x, 0.0, levels), x)
    y2 = mutate(x, rate, levels, generator=torch.Generator().manual_seed(1))
    assert torch.equal(y, y2)


# --------------------------------------------------------------------------- code lengths
def _images(n: int, levels: int, seed: int = 0) -> Tensor:
    """Constant, quarter-noise, half-noise and noise images ``[4n, 1, 16, 16]``, in that order
    of complexity."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, levels, (4, n, 1, 16, 16), generator=g).double()
    for k, rows in enumerate((16, 12, 8)):  # rows of zeros on top
        noise[k, ..., :rows, :] = 0
    return noise.flatten(0, 1)


@pytest.mark.parametrize("compressor", ["png", "zlib", "bz2", "lzma"])
def test_code_length_orders_by_complexity(compressor: str) -> None:
    bits = code_length_bits(_images(3, 256), 256, compressor).view(4, 3)
    assert bits.dtype == torch.float64
    means = bits.mean(1)
    assert (means[1:] > means[:-1]).all(), means  # constant < quarter < half noise < noise
    assert (bits[0] == bits[0, 0]).all()  # identical images, identical sizes
    assert (bits % 8 == 0).all()


def test_png_zlib_agree_and_match_the_bytes() -> None:
    x = _images(2, 17)
    png = code_length_bits(x, 17, "png")
    zl = code_length_bits(x, 17, "zlib")
    # both order constant < quarter < half noise < noise
    assert torch.equal(torch.argsort(png[::2]), torch.arange(4))
    assert torch.equal(torch.argsort(zl[::2]), torch.arange(4))
    raw = x[5].to(torch.uint8).numpy()
    assert zl[5] == 8 * len(zlib.compress(raw.tobytes(), 9))
    assert code_length_bits(x[5:6], 17, "bz2")[0] == 8 * len(bz2.compress(raw.tobytes(), 9))
    assert code_length_bits(x[5:6], 17, "lzma")[0] == 8 * len(
        lzma.compress(raw.tobytes(), format=lzma.FORMAT_XZ, preset=9)
    )
    assert png[5] == 8 * len(_png_bytes(raw))


@pytest.mark.parametrize("channels", [1, 3])
def test_png_round_trip_is_lossless(channels: int) -> None:
    g = torch.Generator().manual_seed(channels)
    x = torch.randint(0, 256, (channels, 9, 7), generator=g).to(torch.uint8).numpy()
    img = Image.open(io.BytesIO(_png_bytes(x)))
    back = np.asarray(img)
    back = back[None] if channels == 1 else back.transpose(2, 0, 1)
    assert img.mode == ("L" if channels == 1 else "RGB")
    assert np.array_equal(back, x)
    # levels are stored as themselves: 17-level digits stay 0..16
    small = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(_png_bytes(small))))[None], small)


def test_code_length_rejects_what_it_cannot_code() -> None:
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ConfigError, match="continuous"):
        code_length_bits(x, None)
    with pytest.raises(ConfigError, match="65536 levels"):
        code_length_bits(x, 65536)
    with pytest.raises(ConfigError, match="png codes images"):
        code_length_bits(torch.zeros(2, 64), 17, "png")
    with pytest.raises(ConfigError, match="png codes images"):
        code_length_bits(torch.zeros(2, 2, 4, 4), 17, "png")
    assert code_length_bits(torch.zeros(2, 64), 17, "zlib").shape == (2,)  # any shape
    with pytest.raises(ConfigError, match="unknown compressor"):
        code_length_bits(x, 17, "gzip")
    with pytest.raises(DataError, match="fractions"):
        code_length_bits(x + 0.5, 17)
    with pytest.raises(DataError, match="outside"):
        code_length_bits(x + 17, 17)


# --------------------------------------------------------------------------- scores of a model
@dataclass
class _Cfg:
    shape: tuple[int, ...]
    levels: int | None


class CategoricalPixels(GenerativeModel):
    """Independent categorical per pixel with given probabilities ``[*shape, L]``."""

    name = "fake-categorical"

    def __init__(self, probs: Tensor) -> None:
        super().__init__(_Cfg(tuple(probs.shape[:-1]), probs.shape[-1]))
        self.logits = nn.Parameter(probs.log())

    def log_prob(self, x: Tensor) -> Tensor:
        logp = torch.log_softmax(self.logits, -1).expand(*x.shape, -1)  # [B, *shape, L]
        return logp.gather(-1, x.long().unsqueeze(-1)).flatten(1).sum(1)  # [B]


class HybridPixels(CategoricalPixels, Classifier):
    """Adds a fixed linear classifier over 3 classes (declared: a Classifier)."""

    name = "fake-hybrid"

    def __init__(self, probs: Tensor) -> None:
        super().__init__(probs)
        self.w = nn.Parameter(torch.linspace(-1, 1, 3 * math.prod(probs.shape[:-1])).view(3, -1))

    def classify(self, x: Tensor) -> Tensor:
        return torch.log_softmax(x.flatten(1) @ self.w.T / 10, -1)  # [B, 3]

    def predict(self, x: Tensor, num_samples: int = 1) -> tuple[Tensor, Tensor]:
        return self.log_prob(x), self.classify(x)


class LatentFake(CategoricalPixels):
    """An 'estimated' likelihood that records the importance samples it was asked for."""

    name = "fake-latent"
    exact_likelihood = False
    default_eval_samples = 7

    def log_prob(self, x: Tensor, num_samples: int = 1) -> Tensor:  # type: ignore[override]
        self.seen = num_samples
        return super().log_prob(x)


class Gaussian2D(GenerativeModel):
    name = "fake-gaussian"

    def __init__(self) -> None:
        super().__init__(_Cfg((2,), None))

    def log_prob(self, x: Tensor) -> Tensor:
        return -_gauss_nll(x)


SHAPE, LEVELS = (1, 3, 4), 5


def _probs(seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*SHAPE, LEVELS, generator=g, dtype=torch.float64), -1)


def _hand_log_prob(probs: Tensor, x: Tensor) -> np.ndarray:
    p, xs = probs.numpy(), x.long().numpy()
    out = np.zeros(len(xs))
    for b in range(len(xs)):
        for idx in np.ndindex(*SHAPE):
            out[b] += math.log(p[idx][xs[b][idx]])
    return out


def test_scores_of_a_fake_model_match_hand_computation() -> None:
    p, q = _probs(0), _probs(1)
    model, background = CategoricalPixels(p).double(), CategoricalPixels(q).double()
    x = torch.randint(0, LEVELS, (6, *SHAPE), generator=torch.Generator().manual_seed(3)).double()
    ref = torch.tensor([10.0, 12.0, 14.0], dtype=torch.float64)
    s = score_inputs(
        model, x, reference_nll=ref, background=background, compressor="zlib", batch_size=4
    )
    assert list(s) == ["likelihood", "typicality", "likelihood-ratio", "complexity"]
    lp, lq = _hand_log_prob(p, x), _hand_log_prob(q, x)
    np.testing.assert_allclose(s["likelihood"].numpy(), -lp, rtol=1e-12)
    np.testing.assert_allclose(s["typicality"].numpy(), np.abs(-lp - 12.0), rtol=1e-12)
    np.testing.assert_allclose(s["likelihood-ratio"].numpy(), -(lp - lq), rtol=1e-12)
    bits = [8 * len(zlib.compress(v.astype(np.uint8).tobytes(), 9)) for v in x.numpy()]
    np.testing.assert_allclose(s["complexity"].numpy(), -lp / math.log(2) - bits, rtol=1e-12)
    # the same numbers through the small functions
    lp_t = torch.from_numpy(lp)
    assert torch.allclose(likelihood_ratio_score(lp_t, torch.from_numpy(lq)), s["likelihood-ratio"])
    assert torch.allclose(complexity_score(-lp_t, torch.tensor(bits).double()), s["complexity"])


def test_hybrid_score_by_hand() -> None:
    p = _probs(2)
    model = HybridPixels(p).double()
    x = torch.randint(0, LEVELS, (5, *SHAPE), generator=torch.Generator().manual_seed(4)).double()
    s = score_inputs(model, x, batch_size=2)
    assert list(s) == ["likelihood", "complexity", "hybrid"]
    w = model.w.detach().numpy()
    logits = x.flatten(1).numpy() @ w.T / 10
    log_py = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(
        s["hybrid"].numpy(), -(_hand_log_prob(p, x) + log_py.max(1)), rtol=1e-12
    )
    assert torch.allclose(
        hybrid_score(torch.tensor([-1.0, -2.0]), torch.tensor([[-0.1, -3.0], [-2.0, -0.5]])),
        torch.tensor([1.1, 2.5]),
    )


def test_score_inputs_keys_and_sample_counts() -> None:
    model = CategoricalPixels(_probs(0)).double()
    x = torch.zeros(3, *SHAPE, dtype=torch.float64)
    assert list(score_inputs(model, x)) == ["likelihood", "complexity"]
    assert set(unavailable_scores(model)) == {"typicality", "likelihood-ratio", "hybrid"}
    # complexity: png codes (C, H, W) with C in {1, 3}; (2,) continuous data has no code length
    gauss = Gaussian2D()
    s = score_inputs(gauss, torch.zeros(4, 2), reference_nll=torch.ones(5))
    assert list(s) == ["likelihood", "typicality"]
    assert "continuous" in unavailable_scores(gauss)["complexity"]
    latent = LatentFake(_probs(0)).double()
    score_inputs(latent, x)
    assert latent.seen == 7  # default_eval_samples
    score_inputs(latent, x, num_samples=3, background=latent)
    assert latent.seen == 3  # the background (here the same model) gets the same K
    with pytest.raises(DataError):
        score_inputs(model, torch.zeros(3, 1, 4, 4))  # wrong shape
    with pytest.raises(DataError, match="empty"):
        score_inputs(model, x[:0])
    with pytest.raises(ConfigError, match="unknown compressor"):
        score_inputs(model, x, compressor="gzip")
    assert set(SCORES) == {"likelihood", "typicality", "likelihood-ratio", "complexity", "hybrid"}


# --------------------------------------------------------------------------- calibration
def test_ece_zero_when_calibrated() -> None:
    rows, labels = [], []
    for conf, n, n_right in ((0.8, 10, 8), (0.6, 5, 3), (1.0, 4, 4), (0.55, 20, 11)):
        for i in range(n):
            rows.append([conf, 1 - conf])
            labels.append(0 if i < n_right else 1)
    probs = torch.tensor(rows, dtype=torch.float64)
    y = torch.tensor(labels)
    assert expected_calibration_error(probs, y) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(probs.log(), y) == pytest.approx(0.0, abs=1e-12)
    assert accuracy(probs, y) == pytest.approx(26 / 39)


def test_ece_by_hand() -> None:
    probs = np.array([[0.85, 0.15], [0.65, 0.35], [0.25, 0.75]])
    y = np.array([0, 1, 1])  # right, wrong, right
    # 10 bins: one example per bin, |1 - .85| + |0 - .65| + |1 - .75| over 3
    assert expected_calibration_error(probs, y, bins=10) == pytest.approx(1.05 / 3)
    # 2 bins: all in (0.5, 1]: |2/3 - 0.75|
    assert expected_calibration_error(probs, y, bins=2) == pytest.approx(0.75 - 2 / 3)
    assert accuracy(np.log(probs), y) == pytest.approx(2 / 3)
    with pytest.raises(DataError, match="summing to 1"):
        expected_calibration_error(probs * 2, y)
    with pytest.raises(DataError, match="outside"):
        accuracy(probs, np.array([0, 1, 2]))
    with pytest.raises(DataError):
        accuracy(probs, np.array([0, 1]))


# --------------------------------------------------------------------------- histograms
def test_score_histograms_written(tmp_path) -> None:
    rng = np.random.default_rng(0)
    s_in = {"likelihood": rng.normal(size=200), "typicality": rng.exponential(size=200)}
    s_out = {
        "likelihood": np.concatenate([rng.normal(3, size=150), [np.inf, 1e30]]),
        "typicality": rng.exponential(3, size=152),
    }
    path = tmp_path / "sub" / "ood.png"
    save_score_histograms(s_in, s_out, path, "digits", "noise", metrics=ood_report(s_in, s_out))
    assert path.stat().st_size > 1000
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 400
    assert not list(path.parent.glob(".*tmp"))  # atomic: no temporary file left
