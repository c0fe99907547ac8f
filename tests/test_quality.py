"""Sample-quality metrics: Frechet distance, precision/recall, mode coverage, the feature net."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.distance import cdist

from dgm.data import load_dataset
from dgm.data.base import Dataset, Split
from dgm.data.toy import MODES
from dgm.errors import ConfigError, DataError
from dgm.evaluation.features import (
    FeatureNet,
    feature_net_for,
    load_feature_net,
    random_shift,
    save_feature_net,
    train_feature_net,
)
from dgm.evaluation.quality import (
    classifier_accuracy,
    feature_stats,
    frechet_distance,
    frechet_distance_from_features,
    mode_coverage,
    modes_by_classifier,
    precision_recall,
    sample_quality,
)
from tests.device_guard import DeviceGuard

# --------------------------------------------------------------------------- Frechet distance


def test_fd_of_a_sample_with_itself_is_zero():
    x = torch.randn(2000, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert frechet_distance_from_features(x, x) == pytest.approx(0.0, abs=1e-9)


def test_fd_of_shifted_copy_is_squared_shift():
    g = torch.Generator().manual_seed(1)
    x = (
        torch.randn(1000, 4, dtype=torch.float64, generator=g)
        @ torch.randn(4, 4, generator=g).double()
    )
    delta = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    # same covariance, so the trace terms cancel exactly: FD = |delta|^2 = 14.25
    assert frechet_distance_from_features(x, x + delta) == pytest.approx(14.25, rel=1e-9)


def test_fd_closed_form_for_diagonal_covariances():
    mu1 = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    mu2 = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    s1 = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    s2 = torch.tensor([3.0, 0.5, 0.5], dtype=torch.float64)
    expected = ((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum()  # 5 + 4 + 2.25 = 11.25
    fd = frechet_distance(mu1, torch.diag(s1**2), mu2, torch.diag(s2**2))
    assert fd == pytest.approx(11.25, rel=1e-12)
    assert fd == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fd_agrees_with_scipy_sqrtm_on_random_spd(seed):
    rng = np.random.default_rng(seed)
    f = 12
    a, b = rng.standard_normal((f, f)), rng.standard_normal((f, f))
    cov1, cov2 = a @ a.T + 0.1 * np.eye(f), b @ b.T + 0.1 * np.eye(f)
    mu1, mu2 = rng.standard_normal(f), rng.standard_normal(f)
    covmean = scipy.linalg.sqrtm(cov1 @ cov2).real  # the reference FID computation
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean)
    fd = frechet_distance(*(torch.from_numpy(t) for t in (mu1, cov1, mu2, cov2)))
    assert fd == pytest.approx(ref, rel=1e-8)


def test_fd_is_finite_and_nonnegative_for_singular_covariances():
    # fewer samples than features: rank-deficient covariances, where sqrtm struggles
    g = torch.Generator().manual_seed(3)
    x = torch.randn(10, 30, dtype=torch.float64, generator=g)
    y = torch.randn(10, 30, dtype=torch.float64, generator=g)
    assert frechet_distance_from_features(x, x) == pytest.approx(0.0, abs=1e-6)
    fd = frechet_distance_from_features(x, y)
    assert math.isfinite(fd) and fd > 1.0


def test_feature_stats_match_numpy():
    x = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    mu, cov = feature_stats(x)
    assert torch.allclose(mu, x.mean(0))
    assert np.allclose(cov.numpy(), np.cov(x.numpy(), rowvar=False))


def test_fd_refuses_bad_input():
    eye = torch.eye(3, dtype=torch.float64)
    with pytest.raises(DataError):
        frechet_distance(torch.zeros(3), eye, torch.zeros(4), torch.eye(4))
    with pytest.raises(DataError):
        frechet_distance(torch.full((3,), math.nan), eye, torch.zeros(3), eye)
    with pytest.raises(DataError, match="at least 2"):
        frechet_distance_from_features(torch.randn(1, 3), torch.randn(5, 3))


# --------------------------------------------------------------------------- precision / recall


def _pr_reference(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Unblocked, straight from the paper: the full distance matrices at once."""
    r_real = np.sort(cdist(real, real), axis=1)[:, k]
    r_fake = np.sort(cdist(fake, fake), axis=1)[:, k]
    precision = (cdist(fake, real) <= r_real[None, :]).any(axis=1).mean()
    recall = (cdist(real, fake) <= r_fake[None, :]).any(axis=1).mean()
    return float(precision), float(recall)


def test_precision_recall_of_identical_sets_is_one():
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(0))
    assert precision_recall(x, x.clone()) == (1.0, 1.0)


def test_precision_recall_of_far_apart_sets_is_zero():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(300, 5, generator=g), torch.randn(200, 5, generator=g) + 100.0
    assert precision_recall(real, fake) == (0.0, 0.0)


def test_precision_recall_when_fake_covers_half_of_real():
    rng = np.random.default_rng(2)
    real = rng.random((4000, 2))  # uniform on the unit square
    fake = rng.random((2000, 2)) * np.array([0.5, 1.0])  # same density on its left half
    precision, recall = precision_recall(torch.from_numpy(real), torch.from_numpy(fake), k=3)
    assert precision > 0.97
    assert 0.45 < recall < 0.56


def test_blocked_precision_recall_equals_unblocked():
    rng = np.random.default_rng(3)
    real = rng.standard_normal((257, 4))
    fake = rng.standard_normal((131, 4)) + np.array([2.5, 2.5, 0.0, 0.0])  # overlapping
    ref = _pr_reference(real, fake, k=5)
    assert 0.2 < ref[0] < 0.95 and 0.2 < ref[1] < 0.95  # a case with something to get wrong
    r, f = torch.from_numpy(real), torch.from_numpy(fake)
    for block in (None, 1, 7, 100, 10_000):
        assert precision_recall(r, f, k=5, block_size=block) == pytest.approx(ref, abs=1e-12)


def test_precision_recall_refuses_too_few_samples_and_bad_k():
    with pytest.raises(DataError, match="at least 4"):
        precision_recall(torch.randn(3, 2), torch.randn(10, 2), k=3)
    with pytest.raises(ConfigError):
        precision_recall(torch.randn(10, 2), torch.randn(10, 2), k=0)
    with pytest.raises(DataError, match="feature sizes"):
        precision_recall(torch.randn(10, 2), torch.randn(10, 3))


# --------------------------------------------------------------------------- mode coverage


def _mixture_samples(name: str, n: int, modes: list[int] | None, seed: int) -> torch.Tensor:
    centres, std = MODES[name]
    rng = np.random.default_rng(seed)
    pick = rng.choice(modes if modes is not None else len(centres), n)
    return torch.from_numpy(centres[pick] + std * rng.standard_normal((n, 2)))


def test_exact_samples_cover_all_25_modes():
    centres, std = MODES["25-gaussians"]
    out = mode_coverage(_mixture_samples("25-gaussians", 10_000, None, 0), centres, std)
    assert out["modes_covered"] == 25 and out["modes_total"] == 25
    # within 3 std in 2-D: 1 - exp(-9/2) = 0.98889 (the 1-D rule's 0.997 does not apply)
    assert out["high_quality_expected"] == pytest.approx(1 - math.exp(-4.5), rel=1e-9)
    assert out["high_quality"] == pytest.approx(0.98889, abs=0.004)
    assert sum(out["per_mode"]) == pytest.approx(0.98889 * 10_000, abs=40)


def test_samples_from_three_modes_cover_three():
    centres, std = MODES["25-gaussians"]
    x = _mixture_samples("25-gaussians", 2500, [0, 7, 13], 1)
    out = mode_coverage(x, centres, std)
    assert out["modes_covered"] == 3
    assert [i for i, c in enumerate(out["per_mode"]) if c] == [0, 7, 13]


def test_modes_with_too_few_samples_do_not_count():
    centres, std = MODES["8-gaussians"]
    x = torch.cat(
        [
            _mixture_samples("8-gaussians", 2490, [0, 1], 2),
            _mixture_samples("8-gaussians", 10, [5], 3),  # 10 < ceil(2500 / 40) = 63
        ]
    )
    out = mode_coverage(x, centres, std)
    assert out["min_count"] == 63 and out["per_mode"][5] > 0
    assert out["modes_covered"] == 2
    assert mode_coverage(x, centres, std, min_count=1)["modes_covered"] == 3
    noise = torch.rand(1000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert mode_coverage(noise * 8 - 4, centres, std)["high_quality"] < 0.01


# --------------------------------------------------------------------------- the feature net


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def digits_net(digits):
    net, metrics = train_feature_net(digits, epochs=30, seed=0)
    return net, metrics


@pytest.mark.slow
def test_feature_net_trains_fast_on_digits(digits_net):
    net, metrics = digits_net
    assert metrics["test_accuracy"] >= 0.9
    assert metrics["val_accuracy"] >= 0.9
    assert metrics["seconds"] < 30
    assert net.features(torch.zeros(3, 1, 8, 8)).shape == (3, 64)
    assert not net.training


@pytest.mark.slow
def test_classifier_accuracy_and_classes(digits_net, digits):
    net, metrics = digits_net
    test = digits.test
    assert classifier_accuracy(net, test.x, test.y) == pytest.approx(metrics["test_accuracy"])
    out = modes_by_classifier(net, test.x)
    assert out["classes_covered"] == 10 and out["confident"] > 0.7
    assert out["kl_to_uniform"] < 0.05
    two = test.x[(test.y == 3) | (test.y == 7)]
    out2 = modes_by_classifier(net, two)
    assert out2["classes_covered"] == 2
    assert out2["entropy"] == pytest.approx(math.log(2), abs=0.1)


@pytest.mark.slow
def test_fd_separates_real_digits_from_noise(digits_net, digits):
    net, _ = digits_net
    noise = torch.randint(0, 17, (447, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    real = sample_quality(net, digits.test.x, digits.train.x)
    fake = sample_quality(
        net, digits.test.x, noise.float(), metrics=("fd", "precision", "recall", "classes")
    )
    assert fake["classes"]["classes_covered"] <= 5  # noise looks like few classes, if any
    assert real["fd"] < 0.1 * fake["fd"]
    assert real["precision"] > 0.6 and real["recall"] > 0.6
    # noise lands partly in the balls of outlying real points (a known weakness of k-NN
    # manifolds on small sets), but far less than real digits do
    assert fake["precision"] < 0.5 and fake["recall"] < 0.3
    assert "FeatureNet" in real["features"] and "digits" in real["features"]
    assert "test acc 0.9" in real["features"]
    assert (real["n_real"], real["n_fake"]) == (447, 1000)


@pytest.mark.slow
def test_sample_quality_refuses_bad_samples(digits_net, digits):
    net, _ = digits_net
    x = digits.test.x
    with pytest.raises(DataError, match="shape"):
        sample_quality(net, x, torch.zeros(10, 1, 28, 28))
    bad = x[:20].clone()
    bad[3, 0, 2, 2] = math.nan
    with pytest.raises(DataError, match="NaN"):
        sample_quality(net, x, bad)
    with pytest.raises(DataError, match="at least 4"):
        sample_quality(net, x, x[:3])
    with pytest.raises(DataError, match="at least 2"):
        sample_quality(net, x, x[:1], metrics=("fd",))
    with pytest.raises(ConfigError, match="fid"):
        sample_quality(net, x, x, metrics=("fid",))


@pytest.mark.slow
def test_save_load_gives_identical_features(digits_net, digits, tmp_path):
    net, metrics = digits_net
    save_feature_net(net, tmp_path / "features")
    loaded = load_feature_net(tmp_path / "features")
    x = digits.test.x
    assert torch.equal(net.features(x), loaded.features(x))
    assert loaded.metrics == pytest.approx(metrics)
    assert loaded.describe() == net.describe()
    assert not list((tmp_path / "features").glob("*.tmp"))  # atomic writes leave no temp files
    # a cached net is loaded, not retrained: same weights, and no dataset labels needed
    again = feature_net_for(digits, tmp_path / "features")
    assert torch.equal(again.features(x), net.features(x))


@pytest.mark.slow
def test_damaged_feature_folders_are_refused(digits_net, tmp_path):
    net, _ = digits_net
    save_feature_net(net, tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x80\x04 not a safetensors file")
    with pytest.raises(DataError, match="not a valid safetensors") as e:
        load_feature_net(tmp_path)
    assert "\n" not in str(e.value)
    weights.unlink()
    with pytest.raises(DataError, match="missing"):
        load_feature_net(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_feature_net(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": "arm", "config": {}}))
    with pytest.raises(DataError, match="does not describe"):
        load_feature_net(tmp_path)
    with pytest.raises(DataError, match=r"no config\.json"):
        load_feature_net(tmp_path / "nowhere")


def _small(ds: Dataset, n: int) -> Dataset:
    cut = lambda s: Split(s.x[:n], None if s.y is None else s.y[:n])  # noqa: E731
    return Dataset(ds.spec, cut(ds.train), cut(ds.val), cut(ds.test))


@pytest.mark.slow
def test_feature_net_for_retrains_for_other_data_and_on_vectors(digits_net, tmp_path):
    net, _ = digits_net
    save_feature_net(net, tmp_path)
    toy = _small(load_dataset("8-gaussians"), 2000)
    got = feature_net_for(toy, tmp_path, epochs=3)
    assert got.spec.name == "8-gaussians" and got.kind == "mlp"
    assert got.metrics["test_accuracy"] > 0.97  # 8 well separated modes
    # continuous inputs are standardised with the training split's statistics
    assert torch.allclose(got.shift, toy.train.x.mean(0), atol=1e-5)
    assert torch.allclose(got.scale, toy.train.x.std(0), atol=1e-5)
    assert load_feature_net(tmp_path).spec.name == "8-gaussians"  # the folder now holds it


@pytest.mark.slow
def test_unlabelled_data_is_refused():
    board = load_dataset("checkerboard")
    with pytest.raises(DataError, match="labelled dataset"):
        train_feature_net(board)
    with pytest.raises(DataError, match="labelled dataset"):
        FeatureNet(board.spec)


def test_random_shift_moves_each_image_by_at_most_the_shift():
    x = torch.zeros(64, 1, 8, 8)
    x[:, 0, 4, 3] = 1.0
    out = random_shift(x, 1, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out.sum((1, 2, 3)), torch.ones(64))
    rows, cols = out[:, 0].nonzero()[:, 1], out[:, 0].nonzero()[:, 2]
    assert set(rows.tolist()) == {3, 4, 5} and set(cols.tolist()) == {2, 3, 4}


@pytest.mark.slow
def test_metrics_are_device_clean(digits_net, digits):
    net, _ = digits_net
    centres, std = MODES["8-gaussians"]
    guard = DeviceGuard()
    with guard:
        metrics = ("fd", "precision", "recall", "classes")
        sample_quality(net, digits.test.x[:50], digits.train.x[:40], metrics=metrics)
        classifier_accuracy(net, digits.test.x[:10], digits.test.y[:10])
        mode_coverage(_mixture_samples("8-gaussians", 100, None, 0), centres, std)
        random_shift(digits.test.x[:4], 1, torch.Generator().manual_seed(0))
    assert guard.offenders == []


@pytest.mark.slow
def test_float64_samples_and_stable_global_rng(digits_net, digits):
    net, _ = digits_net
    x = digits.test.x[:30]
    assert torch.allclose(net.features(x.double()), net.features(x))
    state = torch.random.get_rng_state()
    train_feature_net(_small(digits, 100), epochs=1, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # training forks the RNG
