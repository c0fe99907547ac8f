"""The model contract, checked for every registry entry and the variants of tests/helpers.py
(docs/architecture.md, "The model contract" and "Capabilities"): shapes, a finite loss,
gradients to every parameter, device-clean code, save -> load -> the same outputs, what each
declared capability promises, and a two-epoch CLI run per registry entry.

Every model needs a tiny config in tests/helpers.py: a new registry entry without one fails
``test_every_model_has_a_tiny_config``, so none escapes these checks.
"""

from __future__ import annotations

import json

import pytest
import torch

import dgm
from dgm import registry
from dgm.models.capabilities import (
    Autoencoder,
    Classifier,
    EvidenceBound,
    LabelConditional,
    LatentDiagnostics,
    ReceptiveField,
    SpeakerConditional,
    StochasticAutoencoder,
    Waveform,
)
from tests.device_guard import exercise
from tests.helpers import TINY, VARIANTS, tiny_smiles_file, tiny_text_file, tiny_wav_folder

CASES = [(name, name, cfg) for name, cfg in sorted(TINY.items())] + VARIANTS


def test_every_model_has_a_tiny_config():
    missing = sorted({e.name for e in registry.entries()} - set(TINY))
    assert not missing, f"add a tiny config for {missing} to tests/helpers.py"


@pytest.fixture(scope="session")
def text_data(tmp_path_factory):
    """Sentences for the text models (which refuse digits, as every other model refuses text)."""
    from dgm.data import load_dataset

    return load_dataset(tiny_text_file(tmp_path_factory.mktemp("text") / "tiny.txt"))


@pytest.fixture(params=CASES, ids=[case[0] for case in CASES])
def case(request):
    return request.param


@pytest.fixture(scope="session")
def molecule_data(tmp_path_factory):
    """Molecules for the molecule models (which refuse other text), properties included."""
    from dgm.data import load_dataset

    folder = tmp_path_factory.mktemp("molecules")
    return load_dataset(tiny_smiles_file(folder / "tiny.smi"), properties="logp,qed")


@pytest.fixture(scope="session")
def audio_data(tmp_path_factory):
    """Utterances for the audio models: labels and speakers, crops of 200 samples."""
    from dgm.data import load_dataset

    return load_dataset(str(tiny_wav_folder(tmp_path_factory.mktemp("wavs") / "w")), crop=200)


@pytest.fixture
def data(case, digits, text_data, molecule_data, audio_data):
    """The data the case's model takes: molecules for molecule models, text for text models,
    audio for audio models (and the audio variants), the digits for the rest."""
    cls = registry.get(case[1]).cls
    if cls.audio or "audio" in case[0]:
        return audio_data
    return molecule_data if cls.molecules else text_data if cls.text else digits


@pytest.fixture
def model(case, data):
    _, name, cfg = case
    torch.manual_seed(0)
    return registry.get(name).cls.for_data(data.spec, **cfg)


def first(split, n: int):
    """The first ``n`` examples and labels (None where the data has none)."""
    return split.x[:n], None if split.y is None else split.y[:n]


def test_log_prob_sample_loss_shapes(model, data):
    x, y = first(data.train, 6)
    if model.has_likelihood:
        lp = model.log_prob(x)
        assert lp.shape == (6,) and torch.isfinite(lp).all() and (lp <= 0).all()
    else:  # the contract: a clear error that names what to use instead
        with pytest.raises(NotImplementedError, match="ais"):
            model.log_prob(x)
    loss = model.loss((x, y))
    assert loss.ndim == 0 and torch.isfinite(loss)
    metrics = model.metrics((x, y))
    assert model.monitor in metrics or not model.has_likelihood
    assert all(v.shape == (6,) for v in metrics.values()), {k: v.shape for k, v in metrics.items()}
    model.eval()
    s = model.sample(3)
    assert s.shape == (3, *data.spec.shape)
    assert s.min() >= 0 and s.max() <= data.spec.levels - 1 and torch.equal(s, s.round())
    coldest = model.sample(2, temperature=0)  # the likelihood's mode: still whole levels
    assert coldest.shape == (2, *data.spec.shape) and torch.equal(coldest, coldest.round())


def test_device_clean(model, data):
    """No tensor made on the CPU by default inside loss, log_prob or sample."""
    offenders = exercise(model, *first(data.train, 4))
    assert not offenders, f"{model.name} makes CPU tensors in forward: {offenders}"


def test_gradients_reach_every_parameter(model, data):
    model.train()
    model.loss(first(data.train, 16)).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not dead, f"no gradient reaches {dead}"


def test_save_load_identical_outputs(model, data, tmp_path):
    model.eval()
    model.save(tmp_path / "m")
    again = dgm.load(tmp_path / "m")
    x = data.test.x[:8]
    # seeded: dequantised flows draw noise inside log_prob; models without one are compared
    # on their samples
    score = (lambda m: m.log_prob(x)) if model.has_likelihood else (lambda m: m.sample(8))
    torch.manual_seed(1)
    before = score(model)
    torch.manual_seed(1)
    assert torch.equal(before, score(again))
    if isinstance(model, Classifier):
        assert torch.equal(model.classify(x), again.classify(x))
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model"] == model.name
    assert again.config == model.config and not again.training


def test_declared_capabilities_keep_their_promises(model, data):
    x = data.test.x[:5]
    model.eval()
    checked = 0
    if isinstance(model, EvidenceBound):
        elbo, lp = model.elbo(x), model.log_prob(x, num_samples=4)
        assert elbo.shape == lp.shape == (5,) and torch.isfinite(elbo).all()
        assert not model.exact_likelihood and "K=4" in model.likelihood_note(num_samples=4)
        m = model.metrics((x, None))
        assert torch.equal(m["nll"], -m["elbo"])  # validation scores the bound trained on
        checked += 1
    if isinstance(model, Autoencoder):
        z = model.encode(x)
        assert z.shape[0] == 5 and model.decode(z).shape == x.shape
        assert model.reconstruct(x).shape == x.shape
        assert model.interpolate(x[0], x[1], steps=4).shape == (4, *x.shape[1:])
        assert model.interpolate(x[:2], x[2:4], steps=3).shape == (3, 2, *x.shape[1:])
        checked += 1
    if isinstance(model, StochasticAutoencoder):
        torch.manual_seed(0)
        z1, z2 = model.encode_draw(x), model.encode_draw(x)
        assert z1.shape == model.encode(x).shape and not torch.equal(z1, z2)  # draws differ
        assert model.decode_draw(z1).shape == x.shape
        checked += 1
    if isinstance(model, Classifier):
        log_py = model.classify(x)  # [B, C], rows log-softmax
        assert log_py.shape == (5, data.spec.num_classes)
        torch.testing.assert_close(log_py.exp().sum(1), torch.ones(5))
        torch.manual_seed(0)
        log_px, log_py2 = model.predict(x)
        torch.manual_seed(0)
        assert torch.equal(log_px, model.log_prob(x)) and torch.equal(log_py2, log_py)
        checked += 1
    if isinstance(model, LabelConditional):
        if model.conditional:
            assert model.num_classes == data.spec.num_classes
            labels = [i % model.num_classes for i in range(4)]
            shape = (4, *(data.spec.shape if data.spec.is_audio else x.shape[1:]))
            assert model.sample(4, labels=labels).shape == shape
        else:
            assert model.num_classes == 0 and model.labels_for(3) is None
        checked += 1
    if isinstance(model, ReceptiveField):
        assert model.receptive_field > 0
        checked += 1
    if isinstance(model, Waveform) and data.spec.is_audio:
        # whole utterances: each scored over its own length, as log_prob scores it alone
        test = data.test
        y = test.y[:3] if model.conditioned_on else None
        lp = model.utterance_log_prob(test.x[:3], test.lengths[:3], y)
        for i in range(3):
            n = int(test.lengths[i])
            alone = model.log_prob(test.x[i : i + 1, :n], None if y is None else y[i : i + 1])
            torch.testing.assert_close(lp[i : i + 1], alone, rtol=1e-4, atol=1e-3)
        assert model.sample_rate == data.spec.sample_rate
        checked += 1
    if isinstance(model, SpeakerConditional):
        if model.num_speakers:
            assert model.num_speakers == len(data.spec.speakers)
            assert model.sample(2, speakers=[0, 1]).shape[0] == 2
        else:
            assert model.speakers_for(3) is None
        checked += 1
    declared = (
        Autoencoder, Classifier, EvidenceBound, LabelConditional, ReceptiveField,
        StochasticAutoencoder, SpeakerConditional,
    )  # fmt: skip
    checked -= isinstance(model, Waveform) and data.spec.is_audio
    assert checked == sum(isinstance(model, c) for c in declared)


# molecule models run their two epochs in tests/test_molecules.py, on a .smi file; audio
# models theirs in tests/test_audio_cli.py, on wav files
MOLECULES = {name for name in TINY if registry.get(name).cls.molecules}
AUDIO = {name for name in TINY if registry.get(name).cls.audio}
TEXT = sorted(name for name in TINY if registry.get(name).cls.text and name not in MOLECULES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(TINY) - set(TEXT) - MOLECULES - AUDIO))
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
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1]
    # a few importance samples where log p(x) is estimated (the default 5000 is a benchmark);
    # two averaged draws where each is an ODE solve (diffusion)
    k = "2" if registry.get(name).cls.averaged_samples else "8"
    code, out, err = run_cli("eval", run, "--json", "--num-samples", k)
    assert code == 0, err
    res = json.loads(out)
    assert res["model"] == name and res["n"] == 447
    cls = registry.get(name).cls
    if not cls.has_likelihood:  # sample quality instead, by default
        assert res["fd"] > 0 and 0 <= res["precision"] <= 1 and 0 <= res["recall"] <= 1
        assert "FeatureNet" in res["features"]
    else:
        assert res["nll_nats"] > 0
    if "elbo_nats" in res:  # the bound trained on is never below the estimate's NLL on average
        assert res["elbo_nats"] >= res["nll_nats"] - 0.5
    code, _, err = run_cli("sample", run, "-n", "4", "--out", tmp_path / "s.png")
    assert code == 0 and (tmp_path / "s.png").is_file(), err
    if issubclass(cls, Autoencoder):
        code, _, err = run_cli("reconstruct", run, "-n", "8", "--out", tmp_path / "r.png")
        assert code == 0 and (tmp_path / "r.png").stat().st_size > 500, err
    else:
        code, _, err = run_cli("reconstruct", run, "-n", "8", "--out", tmp_path / "r.png")
        assert code == 2 and "no encoder" in err


@pytest.mark.slow
@pytest.mark.parametrize("name", TEXT)
def test_two_epoch_cli_run_on_text(name, tmp_path, run_cli):
    """A text model trains two epochs on a user's .txt file, is evaluated (NLL and perplexity
    over real tokens) and prints sentences."""
    sets = [a for k, v in TINY[name].items() for a in ("--set", f"{k}={v}")]
    data, run = tiny_text_file(tmp_path / "tiny.txt"), tmp_path / name
    code, _, err = run_cli(
        "train", name, "--data", data, "--epochs", "2", "--out", run,
        "--set", "sample_every=0", *sets,
    )  # fmt: skip
    assert code == 0, err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1]
    if issubclass(registry.get(name).cls, LatentDiagnostics):  # the collapse diagnostics
        assert all({"val_kl", "val_mi", "val_active_units"} <= set(r) for r in records)
    code, out, err = run_cli("eval", run, "--json", "--num-samples", "8")
    assert code == 0, err
    res = json.loads(out)
    assert res["model"] == name and res["n"] == 6  # 60 lines: 48 / 6 / 6
    assert res["nll_nats"] > 0 and res["ppl"] > 1
    code, out, err = run_cli("sample", run, "-n", "3")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 3
