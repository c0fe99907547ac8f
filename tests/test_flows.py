"""Flow models: normalised densities, the dequantisation bound, device-clean code paths, and
the CLI on 2-D data (the density picture)."""

from __future__ import annotations

import json
import math

import pytest
import torch

import dgm
from dgm.errors import ConfigError
from dgm.models.flows import TRANSFORMS, parse_transforms
from dgm.transforms import Flow, FlowSequence
from dgm.transforms.coupling import Coupling
from tests.helpers import TINY

FLOWS = ["flow", "glow", "maf", "nsf", "realnvp"]

# tiny 2-D configs of every flow model
TINY_2D: dict[str, dict] = {
    "realnvp": {"couplings": 4, "hidden": 16},
    "glow": {"steps": 3, "hidden": 16},
    "maf": {"transforms": 3, "hidden": 16},
    "nsf": {"transforms": 2, "hidden": 16, "bins": 4},
    "flow": {
        "transforms": "affine-coupling*2, actnorm, planar, radial, householder, lu, maf, "
        "iaf, spline-coupling, spline-ar, spline, affine, reverse, permute, additive-coupling",
        "hidden": 8,
    },
}


def _two_moons(n: int = 512) -> torch.Tensor:
    from dgm.data import load_dataset

    return load_dataset("two-moons").train.x[:n]


def _fitted(name: str, steps: int = 40) -> dgm.models.GenerativeModel:
    """A 2-D flow trained for a few steps, so its density is far from the base's."""
    torch.manual_seed(0)
    model = dgm.create(name, shape=(2,), levels=None, **TINY_2D[name])
    x = _two_moons()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        model.loss((x, None)).backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("name", FLOWS)
def test_density_integrates_to_one_on_a_2d_grid(name):
    model = _fitted(name)
    n, lim = 300, 6.0
    g = (torch.arange(n) + 0.5) / n * 2 * lim - lim
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).view(-1, 2)
    with torch.no_grad():
        mass = model.log_prob(grid).exp().sum().item() * (2 * lim / n) ** 2
    assert abs(mass - 1.0) < 0.03, f"{name}: density integrates to {mass:.4f}"
    # and it learned something: the data is likelier than under the standard normal
    x = _two_moons()
    base = -0.5 * x.pow(2).sum(1) - math.log(2 * math.pi)
    with torch.no_grad():
        assert model.log_prob(x).mean() > base.mean()


@pytest.mark.parametrize("name", FLOWS)
def test_samples_invert_log_prob(name):
    """Samples are f^-1 of base draws: mapping them forward recovers finite densities."""
    model = _fitted(name, steps=5)
    with torch.no_grad():
        s = model.sample(64)
        assert s.shape == (64, 2) and torch.isfinite(s).all()
        assert torch.isfinite(model.log_prob(s)).all()


def _discrete_flow(**kw) -> dgm.models.GenerativeModel:
    torch.manual_seed(0)
    model = dgm.create(
        "flow",
        shape=(2,),
        levels=4,
        transforms="affine-coupling*2, spline",
        hidden=8,
        alpha=0.0,  # the logit then maps [0, 1] onto all of R: no mass is left unused
        **kw,
    )
    with torch.no_grad():
        for p in model.flow.parameters():
            p.add_(torch.randn_like(p) * 0.15)
    return model.eval()


def test_uniform_dequantization_bound_converges_to_the_discrete_likelihood():
    """P(x) = int over x's cell of p(v) dv; the importance-weighted bound with uniform q rises
    with K towards log P(x), never above it, and P sums to 1 over the 16 levels of 2-D data."""
    model = _discrete_flow(dequantization="uniform").double()
    levels = torch.arange(4, dtype=torch.float64)
    xs = torch.cartesian_prod(levels, levels)  # [16, 2]
    # P(x) by the midpoint rule inside each cell
    m = 100
    offsets = (torch.arange(m, dtype=torch.float64) + 0.5) / m
    u = torch.cartesian_prod(offsets, offsets)  # [m*m, 2]
    with torch.no_grad():
        v = ((xs[:, None, :] + u[None]) / 4).reshape(-1, 2)
        y, ladj = model._preprocess(v)
        dens = (model.flow.log_prob(y) + ladj).exp().view(16, m * m)
        p_x = dens.mean(1) / 16  # cell volume (1/4)^2
        assert abs(p_x.sum().item() - 1.0) < 1e-3
        torch.manual_seed(1)
        k1 = model.log_prob(xs.repeat(200, 1)).view(200, 16).mean(0)
        k_big = model.log_prob(xs, num_samples=20000)
    assert (k1 <= p_x.log() + 1e-6).all(), "the bound may not exceed log P(x) on average"
    assert (k_big >= k1).all()
    torch.testing.assert_close(k_big, p_x.log(), atol=2e-2, rtol=0)


def test_variational_bound_tightens_with_more_samples(digits):
    torch.manual_seed(0)
    model = dgm.create("realnvp", shape=(1, 8, 8), levels=17, hidden=8, blocks=0).eval()
    x = digits.test.x[:32]
    with torch.no_grad():
        torch.manual_seed(0)
        one = model.log_prob(x).mean()
        torch.manual_seed(0)
        many = model.log_prob(x, num_samples=16).mean()
    assert many > one
    assert "lower bound" in model.likelihood_note(16) and "16" in model.likelihood_note(16)
    assert dgm.create("maf", shape=(2,), levels=None).likelihood_note().startswith("exact")


def test_discrete_samples_are_levels(digits):
    model = dgm.create("glow", shape=(1, 8, 8), levels=17, steps=1, hidden=8).eval()
    s = model.sample(5)
    assert s.shape == (5, 1, 8, 8) and torch.equal(s, s.round())
    assert s.min() >= 0 and s.max() <= 16


def test_glow_on_mnist_shapes():
    model = dgm.create("glow", shape=(1, 28, 28), levels=256, steps=1, hidden=8, scales=3)
    assert model.flow.base.shape == (784,)  # every scale's latents together
    x = torch.randint(0, 256, (2, 1, 28, 28)).float()
    assert model.log_prob(x).shape == (2,)


def test_flow_composition_on_its_own():
    """``Flow(transform, base)`` with a conditional coupling: a conditional density."""
    from dgm.distributions import StandardNormal

    flow = Flow(FlowSequence([Coupling((4,), "half", context_dim=3)]), StandardNormal((4,)))
    c = torch.randn(5, 3)
    x, lq = flow.sample_and_log_prob(5, c)
    torch.testing.assert_close(flow.log_prob(x, c), lq, atol=1e-5, rtol=1e-5)


def test_transforms_spec_is_parsed_and_checked():
    assert parse_transforms("maf*2, reverse") == ["maf", "maf", "reverse"]
    with pytest.raises(ConfigError, match="unknown transform 'sylvan'"):
        parse_transforms("sylvan")
    with pytest.raises(ConfigError, match="no inverse"):
        parse_transforms("sylvester-orthogonal*2")
    with pytest.raises(ConfigError, match="NAME or NAME\\*N"):
        parse_transforms("maf**2")
    with pytest.raises(ConfigError, match="transforms"):
        dgm.create("flow", transforms="planar*0")
    assert set(TRANSFORMS) >= {"planar", "radial", "maf", "iaf", "spline-coupling", "actnorm"}


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="alpha"):
        dgm.create("realnvp", alpha=0.7)
    with pytest.raises(ConfigError, match="arch=conv needs images"):
        dgm.create("realnvp", shape=(2,), levels=None, arch="conv")
    with pytest.raises(ConfigError, match="even height"):
        dgm.create("glow", shape=(1, 7, 7), levels=2)


def _tiny(name: str):
    return TINY[name]


@pytest.mark.slow
def test_cli_two_moons_density_picture(tmp_path, run_cli):
    run = tmp_path / "moons"
    code, out, err = run_cli(
        "train", "realnvp", "--data", "two-moons", "--epochs", "1", "--out", run,
        "--set", "couplings=2", "--set", "hidden=8", "--set", "epoch_batches=20",
        "--set", "sample_every=0",
    )  # fmt: skip
    assert code == 0, err
    assert (run / "density.png").is_file()
    code, out, err = run_cli("sample", run, "-n", "500", "--out", tmp_path / "d.png")
    assert code == 0, err
    assert "density mass" in out and (tmp_path / "d.png").stat().st_size > 10_000
    code, out, err = run_cli("eval", run, "--json")
    res = json.loads(out)
    assert code == 0 and res["exact"] and res["estimate"].startswith("exact")


@pytest.mark.slow
def test_cli_eval_states_the_bound(tmp_path, run_cli):
    run = tmp_path / "d"
    code, _, err = run_cli(
        "train", "maf", "--data", "digits", "--epochs", "1", "--out", run,
        "--set", "transforms=1", "--set", "hidden=16", "--set", "sample_every=0",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = run_cli("eval", run, "--num-samples", "4")
    assert code == 0, err
    assert "lower bound on the discrete log-likelihood" in out and "4 importance" in out
