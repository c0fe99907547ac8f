"""The text models' maths (issue 16): sentence probabilities that sum to 1 over every sentence
up to max_len, causal decoders, padding that never counts, the importance-sampled estimate of
the text VAE against its ELBO, cached sampling, the training aids (KL annealing, word dropout,
free bits, aggressive encoder updates), the collapse diagnostics, and the refusals."""

from __future__ import annotations

import itertools
import json
import math
from types import SimpleNamespace

import pytest
import torch

import dgm
from dgm import registry
from dgm.data.base import DataSpec
from dgm.data.text import BOS, EOS, PAD, UNK, TextTokenizer
from dgm.errors import ConfigError, DataError
from dgm.models.base import trusted_inputs
from dgm.models.text.diagnostics import active_units, mutual_information
from dgm.models.text.networks import CNN_SCHEDULES
from dgm.training.config import TrainConfig
from dgm.training.module import LitModel
from tests.helpers import tiny_text_file

V, T = 7, 4  # a vocabulary of 3 real tokens (<unk>, 4, 5, 6 minus... see WORDS) and 4 places
WORDS = [UNK, 4, 5, 6]
SMALL = {
    "lstm-lm": {"embed": 6, "hidden": 6},
    "lstm-lm-tied": {"embed": 4, "hidden": 6, "tied": True, "layers": 2},
    "transformer-lm": {"dim": 8, "layers": 2, "heads": 2},
}
VAE = {"latent": 3, "embed": 6, "hidden": 6, "decoder_hidden": 6}
CNN = {**VAE, "decoder": "dilated-cnn", "cnn": "small", "channels": 8}
DECODERS = {"lstm": VAE, "dilated-cnn": CNN}


def build(name: str, shape=(T,), levels=V, **cfg):
    torch.manual_seed(0)
    model = dgm.create(name.removesuffix("-tied"), shape=shape, levels=levels, **cfg)
    with torch.no_grad():  # weights well away from uniform, so a wrong sum cannot hide
        for p in model.parameters():
            p.mul_(3.0)
    return model


def every_sentence(max_len: int = T) -> torch.Tensor:
    """Every sentence of up to ``max_len`` tokens (the end token included) over WORDS."""
    rows = []
    for n in range(max_len):
        for words in itertools.product(WORDS, repeat=n):
            rows.append([*words, EOS] + [PAD] * (max_len - n - 1))
    return torch.tensor(rows, dtype=torch.float32)


def sentences(lengths: list[int], max_len: int, vocab: int = V, seed: int = 0) -> torch.Tensor:
    """Random sentences with ``lengths`` words (then the end token, then padding)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((len(lengths), max_len), float(PAD))
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randint(4, vocab, (n,), generator=g).float()
        x[i, n] = EOS
    return x


# -- a proper distribution over sentences -----------------------------------------------------
@pytest.mark.parametrize("name", sorted(SMALL))
def test_language_model_probabilities_of_all_sentences_sum_to_one(name):
    model = build(name, **SMALL[name])
    x = every_sentence()
    assert len(x) == 1 + 4 + 16 + 64
    total = model.log_prob(x).double().exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_text_vae_decoder_sums_to_one_for_every_code(decoder):
    model = build("text-vae", **DECODERS[decoder])
    x = every_sentence()
    for z in torch.randn(3, 1, VAE["latent"]) * 2:
        with torch.no_grad():
            total = model.recon(x, z.expand(len(x), -1)).double().exp().sum()
        assert total.item() == pytest.approx(1.0, abs=1e-5)


def test_the_head_gives_no_mass_to_pad_or_bos_and_ends_at_max_len():
    model = build("transformer-lm", **SMALL["transformer-lm"])
    logp = model.head_log_probs(model.logits(every_sentence()))  # [N, T, V]
    assert torch.isinf(logp[..., PAD]).all() and torch.isinf(logp[..., BOS]).all()
    last = logp[:, -1].exp()
    assert torch.allclose(last[:, EOS], torch.ones(len(last)))
    for _ in range(3):  # sampled sentences have the data's form: one end token, padding after
        s = model.sample(50)
        ends = (s == EOS).sum(1)
        assert (ends == 1).all() and not (s == BOS).any()
        model.check_input(s)  # raises if not


# -- causality: output t sees the tokens before t only ------------------------------------------
def _outputs(model, name: str, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
    if name == "text-vae":
        return model.decoder_logits(model.shifted(x), z)
    return model.logits(x)


CAUSAL = [("lstm-lm", SMALL["lstm-lm"]), ("transformer-lm", SMALL["transformer-lm"])] + [
    ("text-vae", cfg) for cfg in DECODERS.values()
]


@pytest.mark.parametrize(
    ("name", "cfg"), CAUSAL, ids=["lstm-lm", "transformer-lm", "vae-lstm", "vae-cnn"]
)
def test_output_t_does_not_depend_on_tokens_from_t_on(name, cfg):
    """Change token j: the outputs at positions <= j must stay as they were (they predict
    x_0..x_j from what came before), and some later output must move (the test can fail)."""
    max_len = 7
    model = build(name, shape=(max_len,), **cfg).eval()
    x = sentences([6, 6, 6], max_len)
    z = torch.randn(3, VAE["latent"]) if name == "text-vae" else None
    with torch.no_grad():
        base = _outputs(model, name, x, z)
        for j in range(max_len - 1):
            y = x.clone()
            y[:, j] = 4 + (y[:, j] - 4 + 1) % (V - 4)  # another word
            out = _outputs(model, name, y, z)
            assert torch.allclose(out[:, : j + 1], base[:, : j + 1], atol=1e-6), j
            assert not torch.allclose(out[:, j + 1], base[:, j + 1], atol=1e-4), j


def test_dilated_cnn_schedules_and_receptive_field():
    """Yang et al.'s decoders: depth 3, 5, 10, 15; and a small decoder's output t + 15 no
    longer sees the token at t (receptive field 1 + 2 (1 + 2 + 4) = 15 inputs)."""
    depth = {k: len(v) for k, v in CNN_SCHEDULES.items()}
    assert depth == {"small": 3, "medium": 5, "large": 10, "very-large": 15}
    fields = {k: 1 + 2 * sum(v) for k, v in CNN_SCHEDULES.items()}
    assert fields == {"small": 15, "medium": 63, "large": 125, "very-large": 187}
    model = build("text-vae", shape=(20,), **CNN).eval()
    assert model.decoder.receptive_field == 15
    x, z = sentences([19], 20), torch.randn(1, VAE["latent"])
    with torch.no_grad():
        base = model.decoder_logits(model.shifted(x), z)
        y = x.clone()
        y[0, 2] = 4 + (y[0, 2] - 4 + 1) % (V - 4)  # read at input 3: outputs 3..17 see it
        out = model.decoder_logits(model.shifted(y), z)
    moved = (out - base).abs().amax(-1)[0] > 1e-6
    assert moved[3:18].all() and not moved[:3].any() and not moved[18:].any()


# -- padding never counts ----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SMALL))
def test_padding_partners_do_not_change_a_sentence_log_prob(name):
    model = build(name, shape=(8,), **SMALL[name])
    x = sentences([0, 7, 2, 5, 1], 8)
    together = model.log_prob(x)
    alone = torch.cat([model.log_prob(x[i : i + 1]) for i in range(len(x))])
    assert torch.allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("name", [*sorted(SMALL), "text-vae"])
def test_scoring_in_passes_gives_the_same_numbers(name, monkeypatch):
    import dgm.models.text.base as text_base

    model = build(name, shape=(8,), **SMALL.get(name, VAE))
    x = sentences([0, 7, 2, 5, 1, 3, 6], 8)
    torch.manual_seed(1)
    whole = model.log_prob(x)
    monkeypatch.setattr(text_base, "LOGITS_PER_PASS", 2 * 8 * V)  # two rows per pass
    torch.manual_seed(1)
    assert torch.allclose(model.log_prob(x), whole, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_scoring_real_tokens_only_matches_the_full_softmax(name):
    model = build(name, shape=(8,), **SMALL[name])
    x = sentences([0, 7, 2, 5], 8)
    full = model.sequence_log_prob(model.logits(x), x)  # every position's logits
    assert torch.allclose(model.score(model.features(x), x, model.head), full, atol=1e-5)
    assert model.trim(x).shape[1] == 8 and model.trim(x[[0, 2]]).shape[1] == 3
    assert torch.allclose(model.log_prob(x[[0, 2]]), full[[0, 2]], atol=1e-5)  # trimmed to 3


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_text_vae_never_reads_padding(decoder, bidirectional):
    """The posterior and log p(x|z) of each sentence are the same alone, beside sentences of
    other lengths, and with junk written where its padding is."""
    model = build("text-vae", shape=(8,), bidirectional=bidirectional, **DECODERS[decoder])
    x = sentences([0, 7, 2, 5], 8)
    junk = torch.where(x == PAD, torch.full_like(x, 5.0), x)  # not a valid row: trusted below
    z = torch.randn(4, VAE["latent"])
    with torch.no_grad(), trusted_inputs():
        mu, log_std = model.gaussian(x)
        for row in range(4):
            m1, s1 = model.gaussian(x[row : row + 1])
            assert torch.allclose(m1, mu[row : row + 1], atol=1e-6)
            assert torch.allclose(s1, log_std[row : row + 1], atol=1e-6)
        m2, s2 = model.gaussian(junk)
        assert torch.allclose(m2, mu, atol=1e-6) and torch.allclose(s2, log_std, atol=1e-6)
        assert torch.allclose(model.recon(junk, z), model.recon(x, z), atol=1e-5)


# -- the importance-sampled estimate ------------------------------------------------------------
def test_iwae_estimate_is_above_the_elbo_and_rises_with_k():
    model = build("text-vae", shape=(6,), **VAE).eval()
    with torch.no_grad():  # a posterior well away from the prior: a wide gap for K to close
        model.posterior.net.bias[: VAE["latent"]] += 1.5
    x = sentences([1, 3, 5, 2, 4, 0], 6)
    torch.manual_seed(1)
    with torch.no_grad():
        elbo = torch.stack([model.elbo(x) for _ in range(20)]).mean()
        means = [
            torch.stack([model.log_prob(x, num_samples=k) for _ in range(5)]).mean()
            for k in (1, 10, 100)
        ]
    assert means[0] == pytest.approx(float(elbo), abs=0.3)  # K = 1 is a one-draw ELBO
    assert elbo < means[1] < means[2]
    assert float(means[2] - elbo) > 0.5
    # passes of any size give the same numbers under the same seed
    torch.manual_seed(2)
    a = model.log_prob(x, num_samples=12)
    torch.manual_seed(2)
    b = model.log_prob(x, num_samples=12, chunk=len(x) * 5)  # 5 samples a pass
    assert torch.allclose(a, b, atol=1e-5)
    assert model.default_eval_samples == 500


# -- sampling --------------------------------------------------------------------------------
@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 0.9), (0, 1.0)])
def test_cached_and_uncached_transformer_sampling_agree(temperature, top_p):
    model = build("transformer-lm", shape=(10,), levels=20, **SMALL["transformer-lm"])
    torch.manual_seed(3)
    a = model.sample(16, temperature=temperature, top_p=top_p, cache=True)
    torch.manual_seed(3)
    b = model.sample(16, temperature=temperature, top_p=top_p, cache=False)
    assert torch.equal(a, b) and len(set(map(tuple, a.tolist()))) > (1 if temperature else 0)


def test_nucleus_sampling_keeps_only_the_top_of_the_distribution():
    from dgm.models.text.base import draw_tokens

    logp = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(4000, -1)
    torch.manual_seed(0)
    drawn = draw_tokens(logp, 1.0, 0.75)  # 0.5 + 0.3 reach 0.75: the rest never
    assert set(drawn.tolist()) == {0, 1}
    assert (drawn == 0).float().mean().item() == pytest.approx(0.5 / 0.8, abs=0.03)
    assert draw_tokens(logp[:2], 0, 1.0).tolist() == [0, 0]
    with pytest.raises(ConfigError, match="top_p"):
        build("lstm-lm", **SMALL["lstm-lm"]).sample(2, top_p=0)


# -- the training aids ---------------------------------------------------------------------------
def _vae_loss(model, x, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.loss((x, None))


def test_kl_annealing_weights_the_kl_from_zero_to_beta():
    model = build("text-vae", shape=(6,), warmup_steps=10, beta=2.0, dropout=0.0, **VAE).train()
    x = sentences([1, 3, 5, 2], 6)
    with torch.no_grad():
        mu, log_std = model.gaussian(x)
    kl = float(torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, log_std.exp()), torch.distributions.Normal(0, 1)
    ).sum(-1).mean())  # fmt: skip
    losses = {}
    for step in (0, 5, 10, 40):
        model.set_step(step)
        losses[step] = float(_vae_loss(model, x))
    assert model.kl_weight() == 2.0
    assert losses[5] - losses[0] == pytest.approx(1.0 * kl, rel=1e-4)
    assert losses[10] - losses[0] == pytest.approx(2.0 * kl, rel=1e-4)
    assert losses[40] == pytest.approx(losses[10], rel=1e-6)


def test_word_dropout_replaces_only_words_and_only_in_training():
    model = build("text-vae", shape=(8,), word_dropout=0.5, dropout=0.0, **VAE)
    x = sentences([7] * 200, 8)
    model.train()
    torch.manual_seed(0)
    read = model.word_dropped(x)
    shifted = model.shifted(x)
    changed = read != shifted
    assert (read[changed] == UNK).all()
    assert not changed[:, 0].any() and (read[:, 0] == BOS).all()  # <s> is never dropped
    assert changed[:, 1:].float().mean().item() == pytest.approx(0.5, abs=0.03)
    plain = build("text-vae", shape=(8,), dropout=0.0, **VAE).train()
    assert float(_vae_loss(model, x[:8])) != pytest.approx(float(_vae_loss(plain, x[:8])))
    model.eval()
    assert torch.equal(model.word_dropped(x), shifted)
    assert float(_vae_loss(model, x[:8])) == pytest.approx(float(_vae_loss(plain.eval(), x[:8])))


@pytest.mark.parametrize("per", ["dimension", "total"])
def test_free_bits_floor_the_kl_of_the_loss(per):
    """Free bits (Kingma et al. 2016): the loss pays max(lambda, batch-mean KL) per dimension
    (or for the whole code) instead of the KL itself; the reported ELBO never changes."""
    x = sentences([1, 3, 5, 2], 6)
    plain = build("text-vae", shape=(6,), dropout=0.0, **VAE).train()
    with torch.no_grad():
        mu, log_std = plain.gaussian(x)
    kl_dims = (0.5 * (mu**2 + (2 * log_std).exp() - 1) - log_std).mean(0)  # [K]
    if per == "dimension":  # a threshold above some dimensions' KL, below others'
        lam = float(kl_dims.sort().values[1]) + 0.05
        floor = (kl_dims.clamp_min(lam) - kl_dims).sum()
        assert (kl_dims > lam).any()
    else:
        lam = float(kl_dims.sum()) + 0.3
        floor = kl_dims.sum().clamp_min(lam) - kl_dims.sum()
    free = build("text-vae", shape=(6,), dropout=0.0, free_bits=lam, free_bits_per=per, **VAE)
    free.load_state_dict(plain.state_dict())
    free.train()
    assert float(floor) > 0.05
    gap = _vae_loss(free, x) - _vae_loss(plain, x)
    assert float(gap) == pytest.approx(float(floor), rel=1e-4)
    torch.manual_seed(0)
    e1 = free.eval().elbo(x)
    torch.manual_seed(0)
    assert torch.equal(e1, plain.eval().elbo(x))
    with pytest.raises(ConfigError, match="free_bits_per=total"):
        dgm.create("text-vae", shape=(6,), levels=V, free_bits=1, prior="mog")


def test_decoder_loss_holds_the_encoder_fixed():
    model = build("text-vae", shape=(6,), **VAE).train()
    x = sentences([1, 3, 5, 2], 6)
    assert float(_vae_loss(model, x)) == pytest.approx(
        float(_dec_loss(model, x).detach()), rel=1e-6
    )
    model.zero_grad()
    _dec_loss(model, x).backward()
    encoder = {id(p) for p in model.encoder_parameters()}
    assert encoder and all(p.grad is None for p in model.encoder_parameters())
    others = [p for p in model.parameters() if id(p) not in encoder]
    assert all(p.grad is not None for p in others)


def _dec_loss(model, x, seed=0):
    torch.manual_seed(seed)
    return model.decoder_loss((x, None))


def test_aggressive_step_updates_the_encoder_then_steps_on_the_decoder_loss():
    """The trainer's inner loop (He et al. 2019): encoder-only updates on fresh batches, at
    least one window of them and at most inner_max_steps, the decoder untouched; then the
    step's loss has no gradient into the encoder."""
    model = build("text-vae", shape=(8,), aggressive=True, **VAE).train()
    lit = LitModel(model, TrainConfig(lr=1e-2))
    assert lit.aggressive
    data = sentences([1, 3, 5, 2, 6, 4, 7, 2], 8)
    batches = [(data[i : i + 2], None) for i in range(0, 8, 2)]
    lit._trainer = SimpleNamespace(train_dataloader=batches)  # what the step reads
    calls = []
    loss_fn = model.loss
    model.loss = lambda b: calls.append(1) or loss_fn(b)  # type: ignore[method-assign]
    enc = [p.detach().clone() for p in model.encoder_parameters()]
    dec = [p.detach().clone() for p in model.decoder.parameters()]
    with trusted_inputs():
        loss = lit._aggressive_step(batches[0], 0)
    assert model.inner_window <= len(calls) <= model.inner_max_steps
    assert any(not torch.equal(a, p) for a, p in zip(enc, model.encoder_parameters()))
    assert all(torch.equal(a, p) for a, p in zip(dec, model.decoder.parameters()))
    assert all(p.grad is None for p in model.parameters())
    loss.backward()
    assert all(p.grad is None for p in model.encoder_parameters())


@pytest.mark.slow
def test_aggressive_training_stops_when_the_mutual_information_falls(tmp_path, run_cli):
    data = tiny_text_file(tmp_path / "t.txt", lines=80)
    sets = [f"{k}={v}" for k, v in {**VAE, "aggressive": "true", "batch_size": 16}.items()]
    code, _, err = run_cli(
        "train", "text-vae", "--data", data, "--epochs", "4", "--out", tmp_path / "run",
        *[a for s in sets for a in ("--set", s)],
    )  # fmt: skip
    assert code == 0, err
    rec = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    flags = [r["aggressive"] for r in rec]
    assert flags[0] in (0.0, 1.0) and flags == sorted(flags, reverse=True)  # once off, off
    for before, now in itertools.pairwise(rec):
        if before["aggressive"] == 1.0:  # on while I(x; z) has not fallen, off once it does
            assert (now["aggressive"] == 1.0) == (now["val_mi"] >= before["val_mi"])


# -- the collapse diagnostics --------------------------------------------------------------------
def test_mutual_information_runs_from_zero_to_log_n():
    n, k = 400, 2
    torch.manual_seed(0)
    same = torch.zeros(n, k)
    mi = mutual_information(same, same, torch.randn(n, k))  # q(z|x) = p(z) for every x
    assert abs(mi) < 0.2  # 0 up to the one-draw noise of the entropy term (sd ~0.05)
    mu = torch.randn(n, k) * 50  # narrow, far apart: z names its x
    log_std = torch.full((n, k), -3.0)
    z = mu + log_std.exp() * torch.randn(n, k)
    assert mutual_information(mu, log_std, z, chunk=64) == pytest.approx(math.log(n), abs=0.2)


def test_active_units_count_dimensions_whose_mean_moves():
    mu = torch.zeros(100, 5)
    mu[:, 1] = torch.linspace(-1, 1, 100)  # variance ~0.34
    mu[:, 3] = torch.linspace(-0.1, 0.1, 100)  # variance ~0.0034: inactive
    assert active_units(mu) == 1


def test_text_vae_diagnostics_report_kl_mi_and_active_units():
    model = build("text-vae", shape=(8,), **VAE)
    x = sentences([1, 3, 5, 2, 6, 4, 7, 2], 8)
    model.train()
    d = model.diagnostics(x)
    assert model.training  # the mode is restored
    assert set(d) == {"kl", "mi", "active_units"} and d["kl"] > 0
    assert 0 <= d["active_units"] <= VAE["latent"] and d["mi"] <= math.log(len(x)) + 1e-6
    torch.manual_seed(0)
    kl = model.eval().metrics((x, None))["kl"]
    assert d["kl"] == pytest.approx(float(kl.mean()), rel=1e-5)  # analytic: no noise


# -- text in and out, save and load ---------------------------------------------------------
def test_ids_and_texts_round_trip_through_the_tokenizer(tmp_path):
    lines = tiny_text_file(tmp_path / "t.txt", lines=20).read_text().splitlines()
    tok = TextTokenizer.train("word", lines)
    model = build("lstm-lm", shape=(9,), levels=tok.vocab_size, **SMALL["lstm-lm"])
    with pytest.raises(ConfigError, match="no tokenizer"):
        model.texts(torch.zeros(1, 9))
    model.tokenizer = tok
    x = model.ids(lines)
    assert x.shape == (20, 9) and model.texts(x) == lines
    assert torch.isfinite(model.log_prob(x)).all()
    with pytest.raises(DataError, match="list of lines"):
        model.ids("one string")


@pytest.mark.parametrize("name", ["lstm-lm", "transformer-lm", "text-vae"])
def test_save_load_gives_the_same_log_prob(name, tmp_path):
    cfg = {"text-vae": {**CNN, "bidirectional": True, "prior": "flow", "prior_hidden": 8}}
    model = build(name, shape=(8,), **cfg.get(name, SMALL.get(name, {}))).eval()
    model.save(tmp_path / "m")
    again = dgm.load(tmp_path / "m")
    x = sentences([1, 3, 5, 2, 6], 8)
    kwargs = {"num_samples": 7} if name == "text-vae" else {}
    torch.manual_seed(0)
    before = model.log_prob(x, **kwargs)
    torch.manual_seed(0)
    assert torch.equal(before, again.log_prob(x, **kwargs))


# -- what is refused -------------------------------------------------------------------------------
def test_text_and_array_models_refuse_each_others_data():
    text = DataSpec("ptb", (12,), 50, tokenizer="word")
    image = DataSpec("digits", (1, 8, 8), 17)
    for name in ("lstm-lm", "transformer-lm", "text-vae"):
        with pytest.raises(DataError, match=f"{name} models text; digits is an image dataset"):
            registry.get(name).cls.for_data(image)
        assert registry.get(name).cls.for_data(text).event_shape == (12,)
    for name in ("realnvp", "arm", "vae", "gan"):
        with pytest.raises(DataError, match="is text: use lstm-lm, transformer-lm or text-vae"):
            registry.get(name).cls.for_data(text)


def test_bad_configs_and_rows_are_refused():
    with pytest.raises(ConfigError, match="vampprior"):
        dgm.create("text-vae", shape=(6,), levels=V, prior="vampprior")
    with pytest.raises(ConfigError, match="special tokens"):
        dgm.create("lstm-lm", shape=(6,), levels=4)
    model = build("lstm-lm", **SMALL["lstm-lm"])
    bad = [
        [4, 5, 6, 4],  # no end token
        [EOS, 4, PAD, PAD],  # a word after the end
        [BOS, EOS, PAD, PAD],  # a begin token
        [4, PAD, EOS, PAD],  # padding before the end
    ]
    for row in bad:
        with pytest.raises(DataError, match="exactly one end token"):
            model.log_prob(torch.tensor([row], dtype=torch.float32))
