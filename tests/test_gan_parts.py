"""GAN networks (dgm.models.gan.networks) and the players' objectives
(dgm.models.gan.objectives)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dgm.errors import ConfigError, DataError
from dgm.models.gan.gan import GANConfig
from dgm.models.gan.networks import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    make_gan_nets,
)
from dgm.models.gan.objectives import (
    OBJECTIVES,
    d_real_fake_stats,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
)

LATENT = 6
SMALL = {"hidden": 16, "channels": 4, "layers": 2}
CASES = [
    ((2,), "mlp"),
    ((1, 8, 8), "mlp"),
    ((1, 8, 8), "conv"),
    ((1, 28, 28), "conv"),
    ((1, 28, 28), "mlp"),
    ((3, 12, 12), "conv"),
    ((2, 5, 7), "conv"),  # odd, non-square: G crops 8x8 to 5x7, D floors to 1x1
]


def _nets(shape, **kw):
    """make_gan_nets for a GAN config of data shaped ``shape``."""
    return make_gan_nets(GANConfig(shape=shape, **kw))


def _pair(shape, backbone, k=0, **kw):
    torch.manual_seed(0)
    labels = {"num_classes": k, "conditional": True} if k else {}
    return _nets(shape, latent=LATENT, backbone=backbone, **labels, **{**SMALL, **kw})


# -- networks -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,backbone", CASES)
@pytest.mark.parametrize("k", [0, 3])
def test_shapes_and_gradients(shape, backbone, k):
    g, d = _pair(shape, backbone, k)
    y = torch.tensor([0, 1, 2, 1, 0]) if k else None
    z = torch.randn(5, LATENT)
    fake = g(z, y)
    assert fake.shape == (5, *shape)
    logits = d(fake, y)
    assert logits.shape == (5,)
    logits.pow(2).sum().backward()  # every parameter of both nets takes part
    for name, p in [*g.named_parameters(), *d.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("shape,backbone", [((2,), "mlp"), ((1, 8, 8), "conv")])
def test_labels_change_outputs_and_projection_formula(shape, backbone):
    g, d = _pair(shape, backbone, k=3)
    g.eval()  # BatchNorm on running stats: each example on its own
    z = torch.randn(1, LATENT).expand(3, -1)
    y = torch.arange(3)
    fake = g(z, y)
    assert (fake[0] - fake[1]).abs().max() > 1e-4  # G reads the label
    x = fake.detach()[:1].expand(3, *shape)
    phi = d.phi(x.flatten(1) if backbone == "mlp" else x)  # [3, F]
    want = d.head.psi(phi).squeeze(-1) + (d.head.embed.weight[y] * phi).sum(-1)
    torch.testing.assert_close(d(x, y), want)
    assert (d(x, y)[0] - d(x, y)[1]).abs() > 1e-6


@pytest.mark.parametrize("shape,backbone", [((2,), "mlp"), ((1, 8, 8), "conv")])
def test_label_errors(shape, backbone):
    g, d = _pair(shape, backbone, k=3)
    z, x = torch.randn(2, LATENT), torch.randn(2, *shape)
    with pytest.raises(ConfigError, match="labels"):
        g(z)
    with pytest.raises(ConfigError, match="labels"):
        d(x)
    g0, d0 = _pair(shape, backbone, k=0)
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ConfigError, match="not class-conditional"):
        g0(z, y)
    with pytest.raises(ConfigError, match="not class-conditional"):
        d0(x, y)
    with pytest.raises(DataError, match="shape"):
        d0(torch.randn(2, 3, 4))
    with pytest.raises(DataError, match="noise"):
        g0(torch.randn(2, LATENT + 1))


def test_make_gan_nets_choice_and_errors():
    g, d = _nets((1, 8, 8), latent=4, **SMALL)
    assert isinstance(g, DCGANGenerator) and isinstance(d, DCGANDiscriminator)
    for shape in [(2,), (1, 6, 6), (64,)]:
        g, d = _nets(shape, latent=4, **SMALL)
        assert isinstance(g, MLPGenerator) and isinstance(d, MLPDiscriminator)
    with pytest.raises(ConfigError, match="image shape"):
        _nets((64,), latent=4, backbone="conv")
    with pytest.raises(ConfigError, match="at least 4x4"):
        DCGANDiscriminator((1, 3, 8))
    with pytest.raises(ConfigError, match="auto, mlp or conv"):
        _nets((2,), latent=4, backbone="resnet")
    with pytest.raises(ConfigError, match="none, batch or layer"):
        DCGANDiscriminator((1, 8, 8), norm="instance")


def test_generator_is_unbounded_and_d_leaky_slope():
    g, d = _pair((2,), "mlp")
    with torch.no_grad():
        g.last.bias.fill_(5.0)  # pre-activations: nothing squashes them into [0, 1] or [-1, 1]
    assert g(torch.randn(4, LATENT)).min() > 4.0
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, nn.LeakyReLU))
    assert any(isinstance(m, nn.LeakyReLU) for m in d.modules())


def test_float64():
    g, d = _pair((1, 8, 8), "conv", k=2)
    g, d = g.double(), d.double()
    y = torch.tensor([0, 1, 0])
    fake = g(torch.randn(3, LATENT, dtype=torch.float64), y)
    assert fake.dtype == torch.float64 and d(fake, y).dtype == torch.float64


def test_norms_in_d():
    d = DCGANDiscriminator((1, 8, 8), channels=4)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules())
    d = DCGANDiscriminator((1, 8, 8), channels=4, norm="batch")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 1  # not on the input layer
    d = DCGANDiscriminator((1, 8, 8), channels=4, norm="layer")
    assert sum(isinstance(m, nn.GroupNorm) and m.num_groups == 1 for m in d.modules()) == 1


def _weighted(d: nn.Module) -> list[nn.Module]:
    kinds = (nn.Linear, nn.Conv2d, nn.Embedding)
    return [m for m in d.modules() if isinstance(m, kinds)]


@pytest.mark.parametrize("backbone", ["mlp", "conv"])
def test_spectral_norm(backbone):
    torch.manual_seed(0)
    shape = (1, 8, 8)
    _, d = _pair(shape, backbone, k=3, spectral_norm=True)
    layers = _weighted(d)
    assert len(layers) >= 4 and all(hasattr(m, "parametrizations") for m in layers)
    d.train()
    x, y = torch.randn(8, *shape), torch.randint(3, (8,))
    for _ in range(10):  # one power iteration per training forward
        d(x, y)
    d.eval()
    with torch.no_grad():
        for m in layers:
            w = m.weight  # the normalised weight forward uses
            sigma = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2)
            assert 1 - 1e-4 < sigma < 1.02, (m, sigma)
            raw = m.parametrizations.weight.original
            sigma_raw = torch.linalg.matrix_norm(raw.reshape(raw.shape[0], -1), ord=2)
            torch.testing.assert_close(w, raw / sigma_raw, atol=0.03 * w.abs().max().item(), rtol=0)


@pytest.mark.parametrize("backbone", ["mlp", "conv"])
def test_spectral_norm_adds_buffers_not_weights(backbone):
    _, d0 = _pair((1, 8, 8), backbone, k=3)
    _, d1 = _pair((1, 8, 8), backbone, k=3, spectral_norm=True)
    count = lambda it: sum(t.numel() for t in it)  # noqa: E731
    assert count(d0.parameters()) == count(d1.parameters())
    # each normalised weight [out, ...] keeps u [out] and v [prod(...)] for the power method
    uv = sum(m.weight.shape[0] + m.weight[0].numel() for m in _weighted(d1))
    assert count(d1.buffers()) - count(d0.buffers()) == uv


# -- objectives -----------------------------------------------------------------------------
def test_losses_at_known_logits():
    zero = torch.zeros(4, dtype=torch.float64)
    log2 = math.log(2)
    for obj in ("minimax", "non-saturating"):
        assert discriminator_loss(obj, zero, zero).item() == pytest.approx(2 * log2)
    assert generator_loss("minimax", zero).item() == pytest.approx(-log2)
    assert generator_loss("non-saturating", zero).item() == pytest.approx(log2)
    real = torch.tensor([2.0, 0.5], dtype=torch.float64)
    fake = torch.tensor([-2.0, 0.5], dtype=torch.float64)
    # hinge: D = mean(relu(1 - r)) + mean(relu(1 + f)) = (0 + 0.5) / 2 + (0 + 1.5) / 2
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx(1.0)
    assert generator_loss("hinge", fake).item() == pytest.approx(0.75)
    # wgan: mean f(fake) - mean f(real) = -0.75 - 1.25
    assert discriminator_loss("wgan-gp", real, fake).item() == pytest.approx(-2.0)
    assert generator_loss("wgan-gp", fake).item() == pytest.approx(0.75)


def test_losses_match_probability_formulas():
    torch.manual_seed(0)
    r, f = torch.randn(7, dtype=torch.float64) * 3, torch.randn(7, dtype=torch.float64) * 3
    dr, df = torch.sigmoid(r), torch.sigmoid(f)
    want_d = -(torch.log(dr).mean() + torch.log(1 - df).mean())
    for obj in ("minimax", "non-saturating"):
        torch.testing.assert_close(discriminator_loss(obj, r, f), want_d)
    torch.testing.assert_close(generator_loss("minimax", f), torch.log(1 - df).mean())
    torch.testing.assert_close(generator_loss("non-saturating", f), -torch.log(df).mean())


def test_non_saturating_gradient():
    # D confidently rejects G's samples: minimax's G gradient vanishes, non-saturating's does not
    grads = {}
    for obj in ("minimax", "non-saturating"):
        f = torch.full((4,), -20.0, dtype=torch.float64, requires_grad=True)
        generator_loss(obj, f).backward()
        grads[obj] = f.grad.abs().max().item()
    assert grads["minimax"] < 1e-8
    assert grads["non-saturating"] == pytest.approx(0.25, rel=1e-6)  # sigmoid(20) / B


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_extreme_logits_are_finite(objective):
    for sign in (1.0, -1.0):
        r = torch.full((3,), sign * 1e4, requires_grad=True)
        f = torch.full((3,), -sign * 1e4, requires_grad=True)
        loss = discriminator_loss(objective, r, f) + generator_loss(objective, f)
        loss.backward()
        assert (
            torch.isfinite(loss) and torch.isfinite(r.grad).all() and torch.isfinite(f.grad).all()
        )
    big = torch.full((3,), 1e4)
    if objective in ("minimax", "non-saturating"):  # a perfect D has zero loss, a wrong one 2e4
        assert discriminator_loss(objective, big, -big).item() == 0.0
        assert discriminator_loss(objective, -big, big).item() == pytest.approx(2e4)


def test_unknown_objective_and_stats():
    x = torch.zeros(2)
    for call in (
        lambda: discriminator_loss("wgan", x, x),
        lambda: generator_loss("lsgan", x),
        lambda: d_real_fake_stats("ls", x, x),
    ):
        with pytest.raises(ConfigError, match="non-saturating"):
            call()
    r, f = torch.tensor([0.0, 2.0]), torch.tensor([-1.0, -3.0])
    s = d_real_fake_stats("minimax", r, f)
    assert s["d_real"].item() == pytest.approx((0.5 + torch.sigmoid(r[1]).item()) / 2)
    assert s["d_fake"].item() == pytest.approx(torch.sigmoid(f).mean().item())
    s = d_real_fake_stats("wgan-gp", r, f)
    assert (s["d_real"].item(), s["d_fake"].item()) == (1.0, -2.0)


# -- penalties ------------------------------------------------------------------------------
class LinearCritic(nn.Module):
    """f(x) = <w, flatten(x)> + b: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.zeros((), dtype=w.dtype))
        self.seen: list[torch.Tensor] = []

    def forward(self, x, y=None):
        self.seen.append(x.detach())
        return x.flatten(1) @ self.w + self.b


def test_gradient_penalty_linear_critic():
    torch.manual_seed(0)
    real, fake = torch.randn(6, 1, 2, 3, dtype=torch.float64), torch.randn(6, 1, 2, 3).double()
    w = torch.randn(6, dtype=torch.float64)
    unit = LinearCritic(w / w.norm())
    assert gradient_penalty(unit, real, fake).abs().item() < 1e-10
    critic = LinearCritic(w)
    gp = gradient_penalty(critic, real, fake, weight=3.0)
    torch.testing.assert_close(gp, 3.0 * (w.norm() - 1) ** 2)
    gp.backward()  # trains D: d/dw 3 (|w| - 1)^2 = 6 (|w| - 1) w / |w|
    torch.testing.assert_close(critic.w.grad, 6 * (w.norm() - 1) * w / w.norm())
    # interpolates: x_hat = fake + eps (real - fake), one eps in [0, 1] per example
    (x_hat,) = critic.seen
    assert x_hat.dtype == torch.float64
    eps = (x_hat - fake) / (real - fake)  # [6, 1, 2, 3]
    per_example = eps.flatten(1)
    torch.testing.assert_close(per_example, per_example[:, :1].expand(-1, 6))
    assert (per_example >= 0).all() and (per_example <= 1).all()
    assert per_example[:, 0].std() > 0.05


def test_gradient_penalty_trains_a_conditional_net():
    _, d = _pair((1, 8, 8), "conv", k=3)
    real, fake = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    gp = gradient_penalty(d, real, fake, torch.tensor([0, 1, 2, 0]))
    assert gp.dim() == 0 and gp.item() > 0
    gp.backward()
    assert d.head.embed.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in d.phi.parameters())
    with pytest.raises(DataError, match="one shape"):
        gradient_penalty(d, real, fake[:2])


def test_r1_penalty_linear_critic():
    w = torch.tensor([3.0, 4.0], dtype=torch.float64)
    real = torch.randn(5, 2, dtype=torch.float64)
    critic = LinearCritic(w)
    r1 = r1_penalty(critic, real, weight=2.0)
    assert r1.item() == pytest.approx(25.0)  # weight / 2 * |w|^2
    r1.backward()
    torch.testing.assert_close(critic.w.grad, 2.0 * w)
