"""The GAN family: each objective's players get the right gradients, the trainer alternates
them as documented (d_steps, EMA of G, the collapse guard), the conditional variant obeys its
labels, a GAN has no likelihood but says what to use, and a seeded non-saturating GAN covers
all 8 modes of the ring on CPU."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

import dgm
from dgm.data import load_dataset
from dgm.data.toy import MODES
from dgm.errors import ConfigError, DataError
from dgm.evaluation.ais import model_ais_log_prob
from dgm.evaluation.quality import mode_coverage
from dgm.models.gan.gan import GAN
from dgm.models.gan.objectives import OBJECTIVES
from dgm.pipeline import train
from dgm.training.callbacks import BestModel, read_metrics
from dgm.training.config import TrainConfig
from dgm.training.module import LitAdversarial, TrainingError

TINY = {"hidden": 16, "layers": 1, "channels": 8, "latent": 4}


def digits_like(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 17, (n, 1, 8, 8), generator=g).float()


def make(**kw) -> GAN:
    torch.manual_seed(0)
    return dgm.create("gan", **{**TINY, **kw})


def _grads(module: torch.nn.Module) -> list[bool]:
    """Which weight tensors got a nonzero gradient (biases aside: a Wasserstein critic's
    output bias cancels between E f(real) and E f(fake), so its gradient is exactly 0)."""
    return [
        p.grad is not None and bool(p.grad.abs().sum() > 0)
        for p in module.parameters()
        if p.dim() > 1
    ]


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("backbone", ["mlp", "conv"])
def test_each_player_gets_only_its_gradients(objective, backbone):
    model = make(objective=objective, backbone=backbone)
    x = digits_like(6)
    d_loss, stats = model.discriminator_step(x)
    assert d_loss.ndim == 0 and torch.isfinite(d_loss)
    assert set(stats) == {"d_real", "d_fake"}
    d_loss.backward()
    assert all(_grads(model.discriminator)), "D's loss must reach every D parameter"
    assert not any(_grads(model.generator)), "D's step must not touch G"
    model.zero_grad(set_to_none=True)
    g_loss = model.generator_step(x)
    assert torch.isfinite(g_loss)
    g_loss.backward()
    assert all(_grads(model.generator)), "G's loss must reach every G parameter"


@pytest.mark.parametrize("backbone", ["mlp", "conv"])
def test_packed_d_judges_whole_packs(backbone):
    """PacGAN: with pack=m, D scores B // m packs, each a function of all m of its samples
    and of no other; a remainder is left out, and the players still get only their grads."""
    model = make(pack=3, backbone=backbone, objective="wgan-gp")
    x = digits_like(7)  # two packs of 3, one example left over
    assert model.metrics(x)["d_real"].shape == (2,)
    v = model._real(x).requires_grad_(True)
    out = model.discriminator(model._pack(v), None)  # [2]
    (grad,) = torch.autograd.grad(out[0], v)
    moved = grad.flatten(1).abs().sum(1) > 0
    assert moved.tolist() == [True, True, True, False, False, False, False]
    d_loss, _ = model.discriminator_step(x)
    d_loss.backward()
    assert all(_grads(model.discriminator)) and not any(_grads(model.generator))
    with pytest.raises(DataError, match="at least 3"):
        model.discriminator_step(x[:2])
    with pytest.raises(ConfigError, match="pack"):
        make(pack=2, conditional=True, num_classes=10)
    with pytest.raises(ConfigError, match="pack"):
        make(pack=0)


def test_samples_are_whole_levels_and_scaled_like_the_data():
    model = make().eval()
    s = model.sample(50)
    assert s.shape == (50, 1, 8, 8)
    assert torch.equal(s, s.round()) and s.min() >= 0 and s.max() <= 16
    # real data enter D dequantised into [0, 1), like G's sigmoid output
    v = model._real(digits_like(20))
    assert v.min() >= 0 and v.max() < 1


def test_continuous_data_are_scaled_to_the_unit_box_and_back():
    model = make(shape=(2,), levels=None, low=-4.0, high=2.0)
    x = torch.tensor([[-4.0, 2.0], [-1.0, 0.5]])
    v = model._real(x)
    torch.testing.assert_close(v, torch.tensor([[-1.0, 1.0], [0.0, 0.5]]))
    torch.testing.assert_close(model._to_data(v), x)
    s = model.sample(7)
    assert s.shape == (7, 2) and not torch.equal(s, s.round())
    # AIS scores x in the data's units: mean() maps back like sample() does
    z = torch.randn(3, model.config.latent)
    torch.testing.assert_close(model.generator_mean(z), model._to_data(model.generator(z)))


def test_log_prob_names_the_ais_estimate():
    with pytest.raises(NotImplementedError, match="model_ais_log_prob"):
        make().log_prob(digits_like(2))


class _Linear(torch.nn.Module):
    """g(z) = W z + b, a generator whose p(x) under Gaussian noise is known in closed form."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.w, self.b = torch.nn.Parameter(w), torch.nn.Parameter(b)

    def forward(self, z, y=None):
        return z @ self.w.T + self.b


def test_ais_through_the_model_recovers_a_linear_gaussian_generator():
    """The GAN's AIS wiring (units, dtype, eval mode): with a linear G on continuous data,
    p(x) = N(b, W W^T + sigma^2 I) exactly."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 2, generator=g, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    # low, high = -1, 1: the players' space is the data's, so g(z) = W z + b exactly
    model = make(shape=(5,), levels=None, low=-1.0, high=1.0, latent=2, backbone="mlp").double()
    model.generator = _Linear(w, b)
    model.train()  # as in a training loop: AIS must score in eval mode and give the mode back
    sigma = 0.5
    truth = torch.distributions.MultivariateNormal(
        b, w @ w.T + sigma**2 * torch.eye(5, dtype=w.dtype)
    )
    torch.manual_seed(0)
    x = truth.sample((4,))
    est = model_ais_log_prob(model, x, sigma, steps=500, chains=32, seed=0)
    torch.testing.assert_close(est, truth.log_prob(x), atol=0.15, rtol=0)
    assert model.training  # put back as it was


def test_conditional_gan_uses_its_labels():
    model = make(conditional=True, num_classes=10, backbone="mlp").eval()
    torch.manual_seed(3)
    a = model.sample(4, labels=2)
    torch.manual_seed(3)
    b = model.sample(4, labels=7)
    assert not torch.equal(a, b), "the label must change the samples"
    x, y = digits_like(6), torch.arange(6)
    d_loss, _ = model.discriminator_step((x, y))
    d_loss.backward()
    assert model.discriminator.parameters().__next__().grad is not None
    with pytest.raises(DataError, match="labels"):
        model.discriminator_step(x)
    with pytest.raises(DataError, match=r"0\.\.9"):
        model.sample(2, labels=[0, 10])
    with pytest.raises(ConfigError, match="num_classes"):
        dgm.create("gan", conditional=True)


def test_wgan_gp_defaults_follow_the_paper():
    wgan, ns = make(objective="wgan-gp"), make()
    assert wgan.d_steps == 5 and ns.d_steps == 1
    assert wgan.players(1e-4)["generator"]["betas"] == (0.0, 0.9)
    groups = make(d_lr=4e-4).players(1e-4)  # two time-scale updates
    assert groups["generator"]["lr"] == 1e-4 and groups["discriminator"]["lr"] == 4e-4


def _digits_train(tmp_path, model_cfg, train_cfg):
    ds = load_dataset("digits")
    base = {"epochs": 1, "sample_every": 0, "test": False, "ema": 0.0, "batch_size": 50}
    train("gan", ds, tmp_path, {**TINY, **model_cfg}, {**base, **train_cfg}, show=lambda m: None)
    return dgm.load(tmp_path)


@pytest.mark.slow
def test_trainer_updates_g_once_per_d_steps(tmp_path):
    """Two batches with d_steps=3: D moves, G never does; with d_steps=1 both move."""
    init = make(backbone="mlp")
    slow = _digits_train(tmp_path / "a", {"backbone": "mlp", "d_steps": 3}, {"epoch_batches": 2})
    fast = _digits_train(tmp_path / "b", {"backbone": "mlp", "d_steps": 1}, {"epoch_batches": 2})
    same = lambda m1, m2: all(  # noqa: E731
        torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters(), strict=True)
    )
    assert same(slow.generator, init.generator) and not same(slow.discriminator, init.discriminator)
    assert not same(fast.generator, init.generator)
    recs = read_metrics(tmp_path / "b")
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"):
        assert recs[0][key] is not None, key


def test_the_gan_judges_collapse_by_its_discriminator_loss():
    ns, wgan = make(), make(objective="wgan-gp")
    assert ns.collapsed({"d_loss": 0.7}) is None
    assert "discriminator" in ns.collapsed({"d_loss": 1e-5})
    assert wgan.collapsed({"d_loss": 1e-5}) is None  # a critic's value is no probability


def test_collapse_guard_stops_and_keeps_the_last_healthy_weights(tmp_path):
    lit = LitAdversarial(make(), TrainConfig(ema=0.0))
    lit._trainer = SimpleNamespace(
        sanity_checking=False,
        current_epoch=0,
        is_global_zero=True,
        strategy=SimpleNamespace(reduce=lambda t, reduce_op: t),  # one process
    )
    keeper = BestModel(tmp_path, {}, monitor=None)

    def epoch(d_loss: float) -> None:  # what training_step accumulates over an epoch
        lit._sums, lit._counts = {"d_loss": torch.tensor(d_loss)}, {"d_loss": 1}
        lit.on_validation_epoch_start()

    epoch(0.7)  # a healthy game: kept
    keeper.on_validation_end(lit.trainer, lit)
    assert (tmp_path / "model.safetensors").is_file() and not lit.suspect
    saved = (tmp_path / "model.safetensors").stat().st_mtime_ns
    for _ in range(1, lit.collapse_epochs):  # D wins outright: not kept, not yet stopped
        epoch(1e-5)
        keeper.on_validation_end(lit.trainer, lit)
        assert lit.suspect and (tmp_path / "model.safetensors").stat().st_mtime_ns == saved
    with pytest.raises(TrainingError, match="discriminator"):
        epoch(1e-5)


def test_nan_loss_stops_with_a_clear_message():
    lit = LitAdversarial(make(), TrainConfig())
    with pytest.raises(TrainingError, match="diverged"):
        lit._check("discriminator", torch.tensor(float("nan")), 3)


@pytest.mark.slow
def test_non_saturating_gan_covers_the_8_gaussians(tmp_path):
    """The standard missing-mode check, seeded: all 8 modes of the ring within 20 short
    epochs on one CPU thread (modes count when >= 1/5 of their share of 2500 samples lies
    within 3 std)."""
    ds = load_dataset("8-gaussians")
    cfg = {"epochs": 20, "batch_size": 256, "lr": 2e-3, "sample_every": 0, "test": False}
    players = {"hidden": 128, "layers": 2, "latent": 8, "pack": 1}  # unpacked: the plain game
    train("gan", ds, tmp_path, players, {**cfg, "ema": 0.99},
          show=lambda m: None)  # fmt: skip
    torch.manual_seed(0)
    cover = mode_coverage(dgm.load(tmp_path).sample(2500), *MODES["8-gaussians"])
    assert cover["modes_covered"] == 8, cover
    assert cover["high_quality"] > 0.6, cover


@pytest.fixture(scope="module")
def digit_features(tmp_path_factory):
    """One feature net for the CLI runs below (training it takes a couple of seconds)."""
    from dgm.evaluation.features import feature_net_for

    folder = tmp_path_factory.mktemp("features")
    feature_net_for(load_dataset("digits"), folder, epochs=5)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_two_epoch_cli_run_per_objective(objective, tmp_path, run_cli, digit_features):
    run = tmp_path / objective
    sets = [a for k, v in {**TINY, "objective": objective}.items() for a in ("--set", f"{k}={v}")]
    code, _, err = run_cli(
        "train", "gan", "--epochs", "2", "--out", run, "--set", "test=false",
        "--set", "sample_every=1", *sets,
    )  # fmt: skip
    assert code == 0, err
    assert (run / "samples.png").is_file() and (run / "loss.png").is_file()
    recs = read_metrics(run)
    assert len(recs) == 2 and all(r["g_loss"] is not None for r in recs)
    code, out, err = run_cli("eval", run, "--json", "--features", digit_features)
    assert code == 0, err
    res = json.loads(out)
    assert res["fd"] > 0 and 0 <= res["precision"] <= 1 and 0 <= res["recall"] <= 1
    one, two = dgm.load(run), dgm.load(run)  # building a model draws from the RNG: first
    torch.manual_seed(0)
    a = one.sample(5)
    torch.manual_seed(0)
    assert torch.equal(a, two.sample(5))  # save -> load -> same samples


@pytest.mark.slow
def test_unlabelled_data_trains_and_says_why_no_quality(tmp_path, run_cli):
    """No labels, no feature network: training still ends well and says so; eval asks for
    --features."""
    import numpy as np

    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32))
    run = tmp_path / "g"
    code, _, err = run_cli(
        "train", "gan", "--data", data, "--epochs", "1", "--out", run, "--set", "hidden=8",
        "--set", "layers=1",
    )  # fmt: skip
    assert code == 0 and "no labels" in err, err
    code, _, err = run_cli("eval", run)
    assert code == 2 and "--features" in err


@pytest.mark.slow
def test_cli_toy_run_reports_modes(tmp_path, run_cli):
    run = tmp_path / "g"
    code, _, err = run_cli(
        "train", "gan", "--data", "25-gaussians", "--epochs", "1", "--out", run,
        "--set", "hidden=16", "--set", "layers=1", "--set", "epoch_batches=5",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = run_cli("eval", run, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["modes_total"] == 25 and 0 <= res["modes_covered"] <= 25
    assert 0 <= res["high_quality"] <= 1
    code, _, err = run_cli("eval", run, "--metrics", "nll")
    assert code == 2 and "ais" in err
    code, out, err = run_cli(
        "eval", run, "--json", "--metrics", "ais", "--limit", "4", "--ais-steps", "5",
        "--ais-chains", "2", "--sigma", "0.5",
    )  # fmt: skip
    assert code == 0, err
    res = json.loads(out)
    assert res["n"] == 4 and res["ais_sigma"] == 0.5 and res["ais_nll_nats"] == res["ais_nll_nats"]
    assert "Gaussian observation model" in res["ais_estimate"]
