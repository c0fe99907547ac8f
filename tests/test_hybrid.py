"""Hybrid models p(y, x) = p(y|x) p(x) (Nalisnick et al. 2019): the weighted objective is the
sum of its two terms with gradients where they belong, the flow's one-pass density is its
log_prob, predictions are deterministic log-probabilities, labels are required, and a short
training on digits classifies far above chance."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import dgm
from dgm.data.base import DataSpec
from dgm.errors import ConfigError, DataError
from dgm.models.hybrid import HybridFlow, HybridVAE

TINY_FLOW = {"hidden": 8, "blocks": 0}
TINY_VAE = {"latent": 4, "hidden": 16, "layers": 1, "channels": 4}


def flow(digits, **kw) -> HybridFlow:
    torch.manual_seed(0)
    return HybridFlow.for_data(digits.spec, **{**TINY_FLOW, **kw})


def vae(digits, **kw) -> HybridVAE:
    torch.manual_seed(0)
    return HybridVAE.for_data(digits.spec, **{**TINY_VAE, **kw})


def grads(loss: torch.Tensor, model: torch.nn.Module) -> dict[str, bool]:
    """Parameter name -> whether ``loss`` sends it a non-zero gradient."""
    names, params = zip(*model.named_parameters())
    gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return {n: g is not None and bool(g.any()) for n, g in zip(names, gs)}


def test_flow_objective_terms_and_their_gradients(digits):
    # no head dropout: the terms are compared draw for draw (dropout draws would differ)
    model = flow(
        digits, dequantization="variational", dequant_hidden=8, dequant_layers=1, head_dropout=0
    )
    model.train()
    x, y = digits.train.x[:16], digits.train.y[:16]
    torch.manual_seed(1)
    z, log_px = model._latent_and_bound(x)
    assert z.shape == (16, 64)
    gen = -(model.density_weight * log_px).mean()
    cls = F.cross_entropy(model.head(z), y)
    assert torch.isfinite(gen) and torch.isfinite(cls) and cls > 0
    # the loss is exactly the two terms of the same pass (same dequantisation draw)
    torch.manual_seed(1)
    assert torch.allclose(model.loss((x, y)), gen + cls)
    g_gen, g_cls = grads(gen, model), grads(cls, model)
    head = [n for n in g_gen if n.startswith("head.")]
    rest = [n for n in g_gen if not n.startswith("head.")]
    assert head and all(g_cls[n] and not g_gen[n] for n in head)  # the head: classifier only
    # every flow and dequantiser parameter shapes z, so both terms reach all of them (q(u|x)
    # is the variational posterior of the joint bound, trained by both)
    assert all(g_gen[n] and g_cls[n] for n in rest), [n for n in rest if not g_cls[n]]
    # weight 0: the density leaves the loss; what remains is the head's cross-entropy
    plain = flow(digits, weight=0.0, dequantization="variational", head_dropout=0)
    plain.train()
    torch.manual_seed(2)
    z, _ = plain._latent_and_bound(x)
    expected = F.cross_entropy(plain.head(z), y)
    torch.manual_seed(2)
    assert torch.allclose(plain.loss((x, y)), expected)


def test_vae_objective_terms_and_their_gradients(digits):
    model = vae(digits, weight=0.5, head_dropout=0)
    model.train()
    x, y = digits.train.x[:16], digits.train.y[:16]
    torch.manual_seed(1)
    gen = 0.5 * dgm.models.latent.vae.VAE.loss(model, (x, y))  # the VAE's own loss, weighted
    cls = F.nll_loss(model._log_py_all(x), y)
    assert torch.isfinite(gen) and torch.isfinite(cls)
    torch.manual_seed(1)
    assert torch.allclose(model.loss((x, y)), gen + cls)
    g_gen, g_cls = grads(gen, model), grads(cls, model)
    head = [n for n in g_gen if n.startswith("head.")]
    assert head and all(g_cls[n] and not g_gen[n] for n in head)
    assert all(g_gen[n] and g_cls[n] for n in g_gen if n.startswith("encoder."))
    decoder = [n for n in g_gen if n.startswith("decoder.")]
    assert decoder and all(g_gen[n] and not g_cls[n] for n in decoder)  # generative only
    # weight 0: a plain classifier; the decoder gets nothing, the encoder and head everything
    plain = vae(digits, weight=0)
    plain.train()
    g = grads(plain.loss((x, y)), plain)
    assert not any(g[n] for n in g if n.startswith("decoder."))
    assert all(g[n] for n in g if n.startswith(("encoder.", "head.")))


@pytest.mark.parametrize("make", [flow, vae])
def test_labels_are_required(make, digits):
    model = make(digits)
    x = digits.train.x[:4]
    for batch in (x, (x, None)):
        with pytest.raises(DataError, match="labelled"):
            model.loss(batch)
    with pytest.raises(DataError, match="one label per example"):
        model.loss((x, digits.train.y[:3]))
    unlabelled = DataSpec("plain", (1, 8, 8), levels=17)
    with pytest.raises(DataError, match="needs labelled data"):
        type(model).for_data(unlabelled)
    with pytest.raises(DataError, match="at least 2 classes"):
        type(model).for_data(DataSpec("one", (1, 8, 8), levels=17, num_classes=1))
    with pytest.raises(ConfigError, match="comes from the data"):
        type(model).for_data(digits.spec, num_classes=3)


@pytest.mark.parametrize("make", [flow, vae])
def test_weight_and_head_config(make, digits):
    assert make(digits).density_weight == pytest.approx(1 / 64)  # auto: 1/D
    assert make(digits, weight="0.25").density_weight == 0.25
    assert make(digits, weight=0).density_weight == 0.0
    for bad in (-1, "nan", "big"):
        with pytest.raises(ConfigError, match="weight"):
            make(digits, weight=bad)
    with pytest.raises(ConfigError, match="head_dropout"):
        make(digits, head_dropout=1.0)
    mlp = make(digits, head="mlp", head_hidden=7, head_dropout=0.1)
    assert mlp.classify(digits.test.x[:3]).shape == (3, 10)
    features = 64 if make is flow else TINY_VAE["latent"]  # flow: all of z; vae: the code
    # features -> 7 hidden -> 10 classes, with biases
    assert sum(p.numel() for p in mlp.head.parameters()) == (features + 1) * 7 + 8 * 10
    linear = make(digits)
    assert sum(p.numel() for p in linear.head.parameters()) == (features + 1) * 10


@pytest.mark.parametrize("make", [flow, vae])
def test_classify_is_deterministic_log_probabilities(make, digits):
    model = make(digits, head_dropout=0.5).eval()
    x = digits.test.x[:10]
    torch.manual_seed(0)
    a = model.classify(x)
    torch.manual_seed(1)  # other noise: classify draws none
    b = model.classify(x)
    assert a.shape == (10, 10) and torch.equal(a, b) and not a.requires_grad
    assert torch.allclose(a.logsumexp(1), torch.zeros(10), atol=1e-5) and (a <= 0).all()


def test_flow_predict_and_metrics_match_log_prob_and_classify(digits):
    model = flow(digits).eval()
    x, y = digits.test.x[:12], digits.test.y[:12]
    torch.manual_seed(3)
    log_px, log_py = model.predict(x, num_samples=4)
    torch.manual_seed(3)
    assert torch.allclose(log_px, model.log_prob(x, num_samples=4))
    assert torch.equal(log_py, model.classify(x))
    # the one-pass bound of the loss is the flow's own bound, draw for draw
    torch.manual_seed(4)
    one_pass = model._latent_and_bound(x)[1]
    torch.manual_seed(4)
    assert torch.allclose(one_pass, model.log_prob(x), atol=1e-4)
    torch.manual_seed(5)
    m = model.metrics((x, y))
    torch.manual_seed(5)
    assert torch.allclose(m["nll"], -model.log_prob(x))
    assert torch.allclose(m["ce"], -log_py.gather(1, y[:, None]).squeeze(1))
    assert torch.equal(m["error"], (log_py.argmax(1) != y).float())
    assert torch.allclose(m["objective"], m["nll"] / 64 + m["ce"])
    assert set(model.metrics(x)) == {"nll"}  # no labels: the flow's usual metric only


def test_vae_predict_and_metrics_match_log_prob_and_classify(digits):
    model = vae(digits).eval()
    x, y = digits.test.x[:12], digits.test.y[:12]
    torch.manual_seed(3)
    log_px, log_py = model.predict(x, num_samples=5)
    torch.manual_seed(3)
    assert torch.allclose(log_px, model.log_prob(x, num_samples=5))
    assert torch.equal(log_py, model.classify(x)) and not model.exact_likelihood
    torch.manual_seed(5)
    m = model.metrics((x, y))
    torch.manual_seed(5)
    assert torch.allclose(m["nll"], -model.elbo(x))
    assert torch.equal(m["error"], (log_py.argmax(1) != y).float())
    assert torch.allclose(m["objective"], m["nll"] / 64 + m["ce"])


def test_continuous_data_predict_is_one_exact_pass():
    torch.manual_seed(0)
    model = dgm.create(
        "hybrid-flow", shape=(2,), levels=None, num_classes=2, couplings=2, hidden=8
    ).eval()
    x = torch.randn(7, 2)
    log_px, log_py = model.predict(x)
    assert model.exact_likelihood and torch.allclose(log_px, model.log_prob(x))
    assert torch.allclose(log_py, model.classify(x))


def _train(digits, weight, epochs: int = 10) -> tuple[float, float, float]:
    """A small mlp hybrid-flow trained ``epochs`` x 16 steps: (test accuracy, test NLL before
    training, after)."""
    torch.manual_seed(0)
    model = HybridFlow.for_data(
        digits.spec, arch="mlp", couplings=2, hidden=32, layers=1, weight=weight
    ).eval()
    x, y, test = digits.train.x, digits.train.y, digits.test.x
    torch.manual_seed(1)
    nll0 = -model.log_prob(test).mean().item()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(64):
            opt.zero_grad()
            model.loss((x[idx], y[idx])).backward()
            opt.step()
    model.eval()
    acc = (model.classify(test).argmax(1) == digits.test.y).float().mean().item()
    torch.manual_seed(1)
    return acc, nll0, -model.log_prob(test).mean().item()


@pytest.mark.slow
def test_short_training_classifies_and_models_digits(digits):
    """160 steps: both the hybrid and the plain classifier (weight 0) classify the test split
    far above chance (10%); only the hybrid's density learns (measured: 239 -> 125 nats, and
    thousands of nats for the plain classifier, whose flow is free to distort)."""
    acc, nll0, nll = _train(digits, "auto")
    acc_plain, _, nll_plain = _train(digits, 0)
    assert acc > 0.85 and acc_plain > 0.85, (acc, acc_plain)
    assert nll < nll0 - 80, (nll0, nll)
    assert nll_plain > nll + 200, (nll, nll_plain)


@pytest.mark.slow
def test_cli_run_keeps_the_epoch_with_the_best_joint_objective(tmp_path, run_cli):
    """A hybrid's best epoch is picked by its validation objective (lambda NLL + CE), not by
    the NLL alone, and dgm train reports its test accuracy and calibration."""
    run = tmp_path / "h"
    sets = [a for k, v in {**TINY_FLOW, "sample_every": 0}.items() for a in ("--set", f"{k}={v}")]
    code, _, err = run_cli(
        "train", "hybrid-flow", "--data", "digits", "--epochs", "3", "--out", run, *sets
    )
    assert code == 0, err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    results = json.loads((run / "results.json").read_text())
    best = min(records, key=lambda r: r["val_objective"])
    assert results["best_epoch"] == best["epoch"]
    assert results["val_nll_nats"] == pytest.approx(best["val_nll"])
    assert 0 <= results["test_ece"] <= 1 and 0.1 < results["test_accuracy"] <= 1


@pytest.mark.slow
def test_detect_on_the_example_inputs(tmp_path, run_cli, monkeypatch):
    """The README's path: train a hybrid, write examples/detect_inputs.py's folder, detect."""
    run, inputs = tmp_path / "h", tmp_path / "inputs"
    sets = [a for k, v in {**TINY_FLOW, "sample_every": 0}.items() for a in ("--set", f"{k}={v}")]
    code, _, err = run_cli(
        "train", "hybrid-flow", "--data", "digits", "--epochs", "2", "--out", run, *sets
    )
    assert code == 0, err
    script = Path(__file__).parents[1] / "examples" / "detect_inputs.py"
    monkeypatch.setattr(sys, "argv", [str(script), str(inputs), "-n", "3"])
    runpy.run_path(str(script), run_name="__main__")
    code, out, err = run_cli("detect", run, inputs, "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    rows, summary = lines[:-1], lines[-1]["summary"]
    # 3 digits, 3 inverted, 3 noise, 1 shifted, a batch of 3, and 2 files it must refuse
    assert summary["inputs"] == len(rows) == 15 and summary["invalid"] == 2
    by_name = {r["input"].split("/")[-1]: r for r in rows}
    assert "28x28" in by_name["wrong-size.png"]["error"] and "error" in by_name["notes.txt"]
    scored = [r for r in rows if "error" not in r]
    assert all(0 <= r["label"] < 10 and 0 < r["p_label"] <= 1 for r in scored)
    # even two epochs put noise far below the digits, under the calibrated threshold
    assert all(by_name[f"noise-{i}.png"]["decision"] == "uncertain-object" for i in range(3))
    assert max(by_name[f"noise-{i}.png"]["log_px"] for i in range(3)) < min(
        by_name[f"digit-{i}.png"]["log_px"] for i in range(3)
    )
