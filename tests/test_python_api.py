"""The Python API as users call it (issue 15): numpy arrays and lists where tensors are taken,
values checked against the model's levels with a DataError that names them, ``sample`` in eval
mode whatever mode the model is in, and ``dgm.create`` giving the model ``dgm.load`` would."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dgm
from dgm import registry
from tests.helpers import TINY

LIKELIHOOD_MODELS = sorted(n for n in TINY if registry.get(n).cls.has_likelihood)
# the models of arrays (digits here); text models score rows of token ids, audio models
# utterances of levels (tests below)
ARRAY_MODELS = [
    n for n in LIKELIHOOD_MODELS if not registry.get(n).cls.text and not registry.get(n).cls.audio
]
TEXT_MODELS = [n for n in LIKELIHOOD_MODELS if registry.get(n).cls.text]


def _model(name, spec, **extra):
    torch.manual_seed(0)
    return registry.get(name).cls.for_data(spec, **{**TINY[name], **extra}).eval()


def _scores(model, x):
    torch.manual_seed(1)  # latent models and dequantised flows draw while they score
    return model.log_prob(x)


@pytest.mark.parametrize("name", ARRAY_MODELS)
def test_numpy_arrays_and_lists_score_as_tensors_do(name, digits):
    model = _model(name, digits.spec)
    x = digits.test.x[:4]
    expected = _scores(model, x)
    assert torch.equal(_scores(model, x.numpy()), expected)
    assert torch.equal(_scores(model, x.numpy().astype(np.uint8)), expected)  # integer levels
    assert torch.equal(_scores(model, x.tolist()), expected)


@pytest.mark.parametrize("name", ARRAY_MODELS)
def test_values_outside_the_levels_are_refused_with_the_levels_named(name, digits):
    model = _model(name, digits.spec)
    x = digits.test.x[:4]
    with pytest.raises(
        dgm.DataError, match=r"not whole numbers.*17 levels \(whole numbers 0..16\)"
    ):
        model.log_prob(x / 16)  # the user's rescaled copy
    with pytest.raises(dgm.DataError, match=r"values span \[0, 17\]"):
        model.log_prob(x.clamp(max=15) + (x == 16) * 2)
    with pytest.raises(dgm.DataError, match=r"span \[-1, "):
        model.log_prob(x - 1)


@pytest.mark.parametrize("name", ["wavenet", "vqvae-audio"])
def test_audio_models_take_arrays_of_any_length_and_refuse_other_levels(name, tmp_path):
    from dgm.data import load_dataset
    from tests.helpers import tiny_wav_folder

    spec = load_dataset(str(tiny_wav_folder(tmp_path / "w")), crop=64).spec
    model = _model(name, spec)
    x = torch.randint(0, 256, (2, 37)).float()  # not the crop's length: any length is taken
    expected = _scores(model, x)
    assert expected.shape == (2,)
    assert torch.equal(_scores(model, x.numpy().astype(np.uint8)), expected)
    assert torch.equal(_scores(model, x.tolist()), expected)
    with pytest.raises(dgm.DataError, match=r"256 levels \(whole numbers 0..255\)"):
        model.log_prob(x / 255)
    with pytest.raises(dgm.DataError, match=r"audio as \[B, L\]"):
        model.log_prob(x[None])


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_text_models_take_id_arrays_and_refuse_ids_outside_the_vocabulary(name):
    torch.manual_seed(0)
    # the grammar VAE builds its grammar on the tokens (SMILES ones here)
    grammar = {"vocabulary": ("<pad>", "<unk>", "<s>", "</s>", "C", "O", "N", "1", "=")}
    model = dgm.create(name, shape=(6,), levels=9, **(grammar if name == "grammar-vae" else {}))
    x = torch.tensor([[4.0, 5, 3, 0, 0, 0], [8, 1, 7, 6, 4, 3]])  # words, </s> (3), <pad> (0)
    expected = _scores(model, x)
    assert torch.equal(_scores(model, x.numpy().astype(np.int64)), expected)
    assert torch.equal(_scores(model, x.tolist()), expected)
    with pytest.raises(dgm.DataError, match=r"values span \[0, 9\].*9 levels"):
        model.log_prob(x + (x == 8))  # id 9: outside the vocabulary of 9
    with pytest.raises(dgm.DataError, match="exactly one end token"):
        model.log_prob(torch.tensor([[4.0, 5, 6, 7, 8, 4]]))  # no </s>


def test_bad_examples_get_one_typed_line(digits):
    model = _model("arm", digits.spec)
    x = digits.test.x[:2]
    with pytest.raises(
        dgm.DataError, match=r"got one example of shape \(1, 8, 8\): pass x\[None\]"
    ):
        model.log_prob(x[0])
    with pytest.raises(dgm.DataError, match=r"tensor, numpy array or list of shape \[B, 1, 8, 8\]"):
        model.log_prob("digits.png")
    with pytest.raises(dgm.DataError, match="NaN or infinite"):
        model.log_prob(torch.full((2, 1, 8, 8), float("nan")))
    with pytest.raises(dgm.DataError, match="expects examples of shape"):
        model.log_prob(np.zeros((2, 1, 8, 7)))


def test_continuous_models_take_any_finite_values():
    spec = dgm.data.load_dataset("8-gaussians").spec
    model = dgm.create("realnvp", shape=spec.shape, levels=None, hidden=8, blocks=0)
    assert model.log_prob(np.array([[0.5, -3.25], [10.0, 0.1]])).shape == (2,)


@pytest.mark.parametrize("n, temperature", [(0, 1.0), (-3, 1.0), (2.5, 1.0), (True, 1.0), (4, -1)])
def test_bad_sample_arguments_are_refused(digits, n, temperature):
    model = _model("arm", digits.spec)
    with pytest.raises(dgm.ConfigError, match="must be"):
        model.sample(n, temperature=temperature)


def test_sample_runs_in_eval_mode_and_restores_the_mode(digits):
    """Dropout active while drawing would give other draws than the model's own."""
    model = _model("arm", digits.spec, dropout=0.5)
    torch.manual_seed(3)
    expected = model.sample(4)
    model.train()
    torch.manual_seed(3)
    assert torch.equal(model.sample(4), expected)
    assert model.training  # the caller's mode is back
    torch.manual_seed(3)
    assert torch.equal(model.sample(4, 1.0), expected)  # temperature given by position


def test_create_gives_the_numbers_of_an_eval_model(digits):
    """The README's example: log_prob of a new model is the model's (no dropout draw)."""
    model = dgm.create("arm", shape=(1, 8, 8), levels=17, hidden=16, layers=2, dropout=0.5)
    x = digits.test.x[:8]
    first = model.log_prob(x)
    assert torch.equal(model.log_prob(x), first)
    assert not model.training


def test_trainer_batches_skip_the_checks(digits):
    """Inside trusted_inputs (the trainer's steps) the values are not inspected again."""
    from dgm.models.base import trusted_inputs

    model = _model("arm", digits.spec)
    with trusted_inputs():
        model.log_prob(digits.test.x[:2] / 16)  # not refused: checked when the data loaded
    with pytest.raises(dgm.DataError):
        model.log_prob(digits.test.x[:2] / 16)


@pytest.mark.slow
def test_dgm_train_from_python(tmp_path):
    results = dgm.train("arm", "digits", tmp_path / "r", hidden=8, layers=2, epochs=1)
    assert results["model"] == "arm" and results["test_nll_nats"] > 0
    assert dgm.load(tmp_path / "r").config.hidden == 8
    with pytest.raises(dgm.ConfigError, match="unknown option 'hiden' for arm"):
        dgm.train("arm", "digits", tmp_path / "s", hiden=8)


def test_python_errors_name_keywords_and_the_command_names_flags(tmp_path, run_cli):
    """One message, two spellings: Python users read keywords, command users read flags."""
    from dgm.data import load_dataset

    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "x.txt").write_text("someone's file")
    with pytest.raises(dgm.ConfigError) as python:
        dgm.train("arm", "digits", tmp_path / "r", epochs=1)
    assert "overwrite=True" in str(python.value) and "--" not in str(python.value)
    code, _, err = run_cli("train", "arm", "--epochs", "1", "--out", tmp_path / "r")
    assert code == 2 and "--overwrite" in err

    with pytest.raises(dgm.DataError, match=r"levels=5 is too few") as python:
        load_dataset("digits", levels=5)
    assert "--" not in str(python.value)
    code, _, err = run_cli("train", "arm", "--data-levels", "5", "--out", tmp_path / "s")
    assert code == 2 and "--data-levels 5 is too few" in err
