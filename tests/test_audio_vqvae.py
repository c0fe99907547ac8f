"""VQ-VAE on audio: p(x | codes, s) and p(codes | s) each sum to 1, the reported bound sits
below the exact marginal over code sequences (which sums to 1 too), the WaveNet decoder is
causal given its conditioning and its cached steps are its full pass, the encoder gives one
code per 2^n samples, and conversion, reconstruction and `dgm convert` keep the length."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

import dgm
from dgm.data.audio import read_wav
from tests.helpers import TINY, tiny_wav_folder

SMALL = {**TINY["vqvae-audio"], "num_codes": 3, "downsample": 2, "sample_rate": 8000}


def _model(levels: int = 3, speakers: int = 2, **kw) -> dgm.models.AudioVQVAE:
    torch.manual_seed(0)
    cfg = {**SMALL, "num_speakers": speakers, **kw}
    return dgm.create("vqvae-audio", shape=(8,), levels=levels, **cfg).double().eval()


def _all(levels: int, length: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(levels), repeat=length)), dtype=torch.float64)


def test_decoder_and_prior_are_normalised():
    """For a fixed code and speaker, sum_x p(x | c, s) over every x of 3 samples is 1; sum_c
    p(c | s) over every sequence of 2 codes is 1."""
    model = _model()
    xs = _all(3, 3)
    for code, speaker in itertools.product(range(3), range(2)):
        codes = torch.full((len(xs), 1), code)
        spk = model._speaker(torch.full((len(xs),), speaker), len(xs))
        total = model._recon_steps(xs, codes, spk).sum(1).exp().sum()
        assert total.item() == pytest.approx(1.0, abs=1e-9)
    cs = _all(3, 2).long()
    for speaker in range(2):
        spk = model._speaker(torch.full((len(cs),), speaker), len(cs))
        assert model._prior_steps(cs, spk).sum(1).exp().sum().item() == pytest.approx(1, abs=1e-9)


def test_the_bound_is_below_the_exact_marginal_which_sums_to_one():
    """log p(x | s) = log sum_c p(c | s) p(x | c, s), by enumeration (x of 3 samples: one
    code), sums to 1 over x; log_prob, its term at the encoder's code, never exceeds it."""
    model = _model()
    xs = _all(3, 3)
    n = len(xs)
    for speaker in range(2):
        y = torch.tensor([0, speaker]).expand(n, 2)
        spk = model._speaker(y[:, 1], n)
        terms = torch.stack(
            [
                model._recon_steps(xs, torch.full((n, 1), c), spk).sum(1)
                + model._prior_steps(torch.full((n, 1), c), spk).sum(1)
                for c in range(3)
            ]
        )
        exact = torch.logsumexp(terms, 0)
        assert exact.exp().sum().item() == pytest.approx(1.0, abs=1e-9)
        bound = model.log_prob(xs, y)
        assert (bound <= exact + 1e-12).all()
        at_code = terms.gather(0, model.encode(xs)[:, :1].T)[0]  # the term of the encoder's code
        assert torch.allclose(bound, at_code)
        assert (bound < exact).any()  # the other codes' terms are not zero


def test_without_a_speaker_the_bound_averages_over_speakers():
    model = _model()
    xs = _all(3, 3)
    each = torch.stack(
        [model.log_prob(xs, torch.tensor([0, s]).expand(len(xs), 2)) for s in (0, 1)]
    )
    assert torch.allclose(model.log_prob(xs), torch.logsumexp(each, 0) - math.log(2))


def test_decoder_is_causal_given_its_conditioning_and_cached_steps_match():
    model = _model(levels=4)
    length = 12
    x = torch.randint(0, 4, (2, length)).double()
    codes = model.encode(x)
    spk = model._speaker(torch.tensor([0, 1]), 2)
    cond = model._local(model.quantizer.lookup(codes).double(), length, spk)
    onehot = model._onehot(x, 4)
    jac = torch.autograd.functional.jacobian(lambda v: model.decoder(v, cond), onehot)
    dep = jac[0].abs().sum(dim=(0, 2, 3))  # [L_out, L_in] for the first utterance
    assert dep[torch.triu(torch.ones(length, length, dtype=torch.bool))].max() == 0
    full = model.decoder(onehot, cond)  # [2, K, L]
    queues = model.decoder.start(2, torch.float64, torch.device("cpu"))
    prev = torch.zeros(2, 4, dtype=torch.float64)
    for t in range(length):
        step = model.decoder.step(prev, queues, cond[..., t])
        torch.testing.assert_close(step, full[..., t])
        prev = onehot[..., t]


def test_one_code_per_hop_and_lengths_kept():
    model = _model(levels=4)
    x = torch.randint(0, 4, (2, 13)).double()
    assert model.encode(x).shape == (2, 4)  # ceil(13 / 4)
    torch.manual_seed(0)
    a = model.convert(x, 0)
    torch.manual_seed(0)
    b = model.convert(x, 1)
    assert a.shape == b.shape == (2, 13) and not torch.equal(a, b)  # the speaker is heard
    assert model.reconstruct(x, torch.tensor([[0, 1], [0, 0]])).shape == (2, 13)
    assert model.sample(3, length=10, speakers=1).shape == (3, 10)
    with pytest.raises(dgm.ConfigError, match="without speakers"):
        _model(speakers=0, speaker=False).convert(x, 0)


def test_vqvae_on_audio_is_the_audio_model():
    from dgm.data import load_dataset
    from dgm.registry import get

    ds = load_dataset("digits")
    assert get("vqvae").cls.for_data(ds.spec).name == "vqvae"
    with pytest.raises(dgm.DataError, match="not audio"):
        get("vqvae-audio").cls.for_data(ds.spec)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    return tiny_wav_folder(tmp_path_factory.mktemp("vq") / "w")


@pytest.mark.slow
def test_vqvae_on_wav_files_end_to_end(run_cli, wavs, tmp_path):
    """`dgm train vqvae` on audio trains the audio model two epochs; eval, reconstruct and
    convert run, and write what they say."""
    sets = [a for k, v in TINY["vqvae-audio"].items() for a in ("--set", f"{k}={v}")]
    run = tmp_path / "run"
    code, _, err = run_cli(
        "train", "vqvae", "--data", wavs, "--epochs", "2", "--out", run, "--set", "crop=200",
        "--set", "batch_size=4", *sets,
    )  # fmt: skip
    assert code == 0, err
    results = json.loads((run / "results.json").read_text())
    assert results["model"] == "vqvae-audio" and results["epochs"] == 2
    assert results["test_bits_per_sample"] > 0
    code, out, err = run_cli("eval", run, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert "lower bound" in res["estimate"] and 1 <= res["codebook_perplexity"] <= 8
    code, out, err = run_cli("eval", run, "--json", "--metrics", "swap")
    assert code == 0, err
    swap = json.loads(out)
    assert swap["swap_n"] == 20 and 0 <= swap["swap_accuracy"] <= 1

    code, out, err = run_cli("reconstruct", run, "-n", "2", "--out", tmp_path / "rec")
    assert code == 0, err
    for i in range(2):
        a, ra, _ = read_wav(tmp_path / "rec" / f"input-0{i}.wav")
        b, rb, _ = read_wav(tmp_path / "rec" / f"reconstruction-0{i}.wav")
        assert ra == rb == 8000 and len(a) == len(b)
    assert (tmp_path / "rec" / "reconstructions.png").stat().st_size > 0

    source = wavs / "1_ann_3.wav"
    out_wav = tmp_path / "o.wav"
    code, out, err = run_cli("convert", run, source, "--speaker", "bob", "--out", out_wav)
    assert code == 0, err
    x, rate, _ = read_wav(out_wav)
    assert rate == 8000 and len(x) == len(read_wav(source)[0]) and np.abs(x).max() <= 1
    assert out_wav.with_suffix(".png").stat().st_size > 0 and "speaker bob" in out

    # bad input: one line, exit 2, nothing written
    for more, words in (
        (["--speaker", "carol"], "unknown speaker 'carol'"),
        (["--speaker", "bob", "--out", tmp_path / "x.mp3"], "give a .wav file name"),
    ):
        code, _, err = run_cli("convert", run, source, *more)
        assert code == 2 and words in err and "Traceback" not in err, err
    fast = tmp_path / "fast.wav"
    from scipy.io import wavfile

    wavfile.write(fast, 16000, (np.sin(np.arange(800) / 5) * 9000).astype(np.int16))
    code, _, err = run_cli("convert", run, fast, "--speaker", "bob", "--out", tmp_path / "f.wav")
    assert code == 2 and "16000 Hz" in err and "8000 Hz" in err and "--resample" in err
    assert not (tmp_path / "f.wav").exists()
    code, _, err = run_cli(
        "convert", run, fast, "--speaker", "bob", "--out", tmp_path / "f.wav", "--resample"
    )
    assert code == 0 and len(read_wav(tmp_path / "f.wav")[0]) == 400, err


def test_evaluation_reports_the_bounds_parts_and_the_codebook_use():
    """bits per sample = reconstruction + prior bits per sample (given each speaker); the
    codebook's perplexity lies in [1, codes used]."""
    from dgm.data.base import Split
    from dgm.evaluation.audio import evaluate_audio

    model = _model(levels=4)
    torch.manual_seed(0)
    lengths = torch.tensor([9, 4, 13])
    x = torch.randint(0, 4, (3, 13)).double()
    y = torch.tensor([[0, 1], [0, 0], [0, 1]])
    out = evaluate_audio(model, Split(x, y, lengths))
    parts = out["recon_bits_per_sample"] + out["prior_bits_per_sample"]
    assert parts == pytest.approx(out["bits_per_sample"], rel=1e-9)
    assert 1 <= out["codebook_perplexity"] <= out["codes_used"] <= 3
