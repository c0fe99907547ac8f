"""The model contract, checked for every registry entry (docs/architecture.md, "Tests").

Every model needs a tiny config here: a new registry entry without one fails
``test_every_model_has_a_tiny_config``, so none escapes these checks.
"""

from __future__ import annotations

import json

import pytest
import torch

import dgm
from dgm import registry
from tests.device_guard import exercise

# small enough to train two epochs on digits in a second or two
TINY: dict[str, dict] = {
    "arm": {"hidden": 16, "layers": 3, "kernel_size": 3},
    "made": {"hidden": 16, "layers": 1},
    "pixelcnn": {"hidden": 8, "layers": 1, "first_kernel": 3, "head": 8},
    "gated-pixelcnn": {"hidden": 8, "layers": 2, "first_kernel": 3, "head": 8},
    "gan": {"hidden": 16, "layers": 1, "channels": 8, "latent": 4},
    "svae": {"latent": 4, "hidden": 16, "layers": 1, "channels": 4},
    "transformer-arm": {"dim": 16, "layers": 1, "heads": 2},
    "realnvp": {"hidden": 8, "blocks": 0, "dequant_hidden": 8, "dequant_layers": 1},
    "glow": {"steps": 1, "hidden": 8, "dequant_hidden": 8, "dequant_layers": 1},
    "maf": {"transforms": 2, "hidden": 16, "dequant_hidden": 8, "dequant_layers": 1},
    "nsf": {"transforms": 1, "hidden": 16, "bins": 4, "dequant_hidden": 8, "dequant_layers": 1},
    "flow": {
        "transforms": "affine-coupling*2, actnorm, spline",
        "hidden": 16,
        "dequant_hidden": 8,
        "dequant_layers": 1,
    },
    "hvae": {
        "latent": 4,
        "latent2": 4,
        "hidden": 16,
        "layers": 1,
        "channels": 4,
        "prior": "vampprior",
    },
    "hybrid-flow": {"hidden": 8, "blocks": 0, "head": "mlp", "head_hidden": 8},
    "hybrid-vae": {"latent": 4, "hidden": 16, "layers": 1, "channels": 4, "head_dropout": 0.1},
    "vae": {"latent": 4, "hidden": 16, "layers": 1, "channels": 4, "prior": "vampprior"},
    "vqvae": {
        "num_codes": 8,
        "code_dim": 4,
        "hidden": 8,
        "blocks": 1,
        "prior_hidden": 8,
        "prior_layers": 1,
        "prior_kernel": 3,
    },
    "wavenet": {
        "hidden": 8,
        "skip_channels": 8,
        "head_channels": 8,
        "max_dilation": 4,
        "stacks": 1,
    },
}


def _names() -> list[str]:
    return [e.name for e in registry.entries()]


def test_every_model_has_a_tiny_config():
    missing = sorted(set(_names()) - set(TINY))
    assert not missing, f"add a tiny config for {missing} to tests/test_contract.py"


@pytest.fixture(params=sorted(TINY))
def model(request, digits):
    torch.manual_seed(0)
    return registry.get(request.param).cls.for_data(digits.spec, **TINY[request.param])


def test_log_prob_sample_loss_shapes(model, digits):
    x, y = digits.train.x[:6], digits.train.y[:6]
    if model.has_likelihood:
        lp = model.log_prob(x)
        assert lp.shape == (6,) and torch.isfinite(lp).all() and (lp <= 0).all()
    else:  # the contract: a clear error that names what to use instead
        with pytest.raises(NotImplementedError, match="ais"):
            model.log_prob(x)
    loss = model.loss((x, y))
    assert loss.ndim == 0 and torch.isfinite(loss)
    model.eval()
    s = model.sample(3)
    assert s.shape == (3, *digits.spec.shape)
    assert s.min() >= 0 and s.max() <= digits.spec.levels - 1 and torch.equal(s, s.round())


def test_device_clean(model, digits):
    """No tensor made on the CPU by default inside loss, log_prob or sample."""
    offenders = exercise(model, digits.train.x[:4], digits.train.y[:4])
    assert not offenders, f"{model.name} makes CPU tensors in forward: {offenders}"


def test_gradients_reach_every_parameter(model, digits):
    model.train()
    model.loss((digits.train.x[:16], digits.train.y[:16])).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not dead, f"no gradient reaches {dead}"


def test_save_load_identical_log_prob(model, digits, tmp_path):
    model.eval()
    model.save(tmp_path / "m")
    again = dgm.load(tmp_path / "m")
    x = digits.test.x[:8]
    # seeded: dequantised flows draw noise inside log_prob; models without one are compared
    # on their samples
    score = (lambda m: m.log_prob(x)) if model.has_likelihood else (lambda m: m.sample(8))
    torch.manual_seed(1)
    before = score(model)
    torch.manual_seed(1)
    assert torch.equal(before, score(again))
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model"] == model.name


@pytest.mark.parametrize("name", sorted(TINY))
def test_two_epoch_cli_run_on_digits(name, tmp_path, run_cli):
    sets = [a for k, v in TINY[name].items() for a in ("--set", f"{k}={v}")]
    run = tmp_path / name
    code, _, err = run_cli(
        "train",
        name,
        "--data",
        "digits",
        "--epochs",
        "2",
        "--out",
        run,
        "--set",
        "sample_every=0",
        "--set",
        "num_samples=4",
        *sets,
    )
    assert code == 0, err
    # a few importance samples where log p(x) is estimated (the default 5000 is a benchmark)
    code, out, err = run_cli("eval", run, "--json", "--num-samples", "8")
    assert code == 0, err
    res = json.loads(out)
    assert res["model"] == name and res["n"] == 447
    if not registry.get(name).cls.has_likelihood:  # sample quality instead, by default
        assert res["fd"] > 0 and 0 <= res["precision"] <= 1 and 0 <= res["recall"] <= 1
        assert "FeatureNet" in res["features"]
    else:
        assert res["nll_nats"] > 0
    if "elbo_nats" in res:  # the bound trained on is never below the estimate's NLL on average
        assert res["elbo_nats"] >= res["nll_nats"] - 0.5
    code, _, err = run_cli("sample", run, "-n", "4", "--out", tmp_path / "s.png")
    assert code == 0 and (tmp_path / "s.png").is_file(), err
    if callable(getattr(registry.get(name).cls, "reconstruct", None)):
        code, _, err = run_cli("reconstruct", run, "-n", "8", "--out", tmp_path / "r.png")
        assert code == 0 and (tmp_path / "r.png").stat().st_size > 500, err
