"""WaveNet on audio: conditioning keeps causality, cached and uncached draws agree, p(x | y)
and the marginal p(x) sum to 1, whole utterances are scored once each with padding changing
nothing, and crops stay inside their utterances."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import dgm
from dgm.data.base import Split
from dgm.evaluation.audio import batches, evaluate_audio
from dgm.models.capabilities import SpeakerConditional, Waveform
from dgm.training.data import CropData

TINY = {"hidden": 8, "skip_channels": 8, "head_channels": 8, "max_dilation": 4, "stacks": 1}
AUDIO = {"sample_rate": 8000, "num_classes": 3, "num_speakers": 2, "embedding": 4}


def _model(levels: int = 5, condition: str = "label+speaker", **kw) -> dgm.models.WaveNet:
    torch.manual_seed(0)
    return dgm.create(
        "wavenet", shape=(16,), levels=levels, condition=condition, **AUDIO, **TINY, **kw
    )


def test_declares_audio_capabilities():
    model = _model()
    assert isinstance(model, Waveform) and isinstance(model, SpeakerConditional)
    assert model.sample_rate == 8000 and model.num_speakers == 2 and model.conditional
    assert model.conditioned_on == ("label", "speaker")
    plain = dgm.create("wavenet", shape=(16,), levels=5, **TINY)
    assert plain.sample_rate is None and not plain.conditional and plain.num_speakers == 0


@pytest.mark.parametrize("condition", ["label", "speaker", "label+speaker"])
def test_conditioned_output_t_depends_only_on_inputs_before_t(condition):
    """The Jacobian of the logits w.r.t. the (one-hot) inputs, with the conditioning in every
    layer: output t sees inputs < t only, and the conditioning changes every output."""
    model = _model(condition=condition).double().eval()
    length = model.receptive_field + 6
    x = torch.randn(1, model.in_channels, length, dtype=torch.float64)
    g = model.embed(torch.tensor([[1, 1]]), 1)
    jac = torch.autograd.functional.jacobian(lambda v: model.net(v, g), x)  # [1,P,L,1,C,L]
    dep = jac[0].abs().sum(dim=(0, 2, 3))  # [L_out, L_in]
    assert dep[torch.triu(torch.ones(length, length, dtype=torch.bool))].max() == 0
    assert all(dep[t, t - 1] > 0 for t in range(1, length))
    other = model.embed(torch.tensor([[2, 0]]), 1)
    assert not torch.allclose(model.net(x, g), model.net(x, other))


def test_conditional_and_marginal_likelihoods_sum_to_one():
    """Every sequence of 3 values over 4 levels: sum_x p(x | y) = 1 for each y, and the
    marginal log_prob(x) = log mean_y p(x | y) sums to 1 too."""
    model = _model(levels=4).double().eval()
    xs = torch.tensor(list(itertools.product(range(4), repeat=3)), dtype=torch.float64)
    n = xs.shape[0]
    for label, speaker in itertools.product(range(3), range(2)):
        y = torch.tensor([label, speaker]).expand(n, 2)
        assert model.log_prob(xs, y).exp().sum().item() == pytest.approx(1.0, abs=1e-9)
    assert model.log_prob(xs).exp().sum().item() == pytest.approx(1.0, abs=1e-9)
    by_hand = torch.stack(
        [model.log_prob(xs, torch.tensor([a, b]).expand(n, 2)) for a in range(3) for b in range(2)]
    )
    expected = torch.logsumexp(by_hand, 0) - math.log(6)
    assert torch.allclose(model.log_prob(xs), expected)


@pytest.mark.parametrize("condition", ["none", "label+speaker"])
def test_cached_and_uncached_sampling_are_identical(condition):
    model = _model(condition=condition).eval()
    kw = {"labels": 2, "speakers": 1} if condition != "none" else {}
    torch.manual_seed(3)
    cached = model.sample(4, length=40, cache=True, **kw)
    torch.manual_seed(3)
    full = model.sample(4, length=40, cache=False, **kw)
    assert cached.shape == (4, 40)
    assert torch.equal(cached, full)


def test_audio_sample_length_defaults_to_sample_seconds():
    model = _model(sample_seconds=0.005)
    assert model.sample(2).shape == (2, 40)  # 5 ms at 8 kHz


def test_labels_steer_the_samples():
    """Given labels reach the network: two labels, same seed, different draws."""
    model = _model().eval()
    torch.manual_seed(0)
    a = model.sample(3, length=30, labels=0, speakers=0)
    torch.manual_seed(0)
    b = model.sample(3, length=30, labels=2, speakers=1)
    assert not torch.equal(a, b)


def test_unknown_labels_and_speakers_are_refused():
    model = _model()
    with pytest.raises(dgm.DataError, match=r"speakers must lie in 0\.\.1"):
        model.sample(1, length=4, speakers=5)
    with pytest.raises(dgm.DataError, match="labels must lie"):
        model.sample(1, length=4, labels=7)
    plain = dgm.create("wavenet", shape=(16,), levels=5, **TINY)
    with pytest.raises(dgm.ConfigError, match="not conditioned on speakers"):
        plain.sample(1, speakers=0)


def test_condition_needs_the_data_to_name_it():
    with pytest.raises(dgm.ConfigError, match="needs labelled data"):
        dgm.create("wavenet", shape=(16,), levels=5, condition="digit")
    with pytest.raises(dgm.ConfigError, match="names its speakers"):
        dgm.create("wavenet", shape=(16,), levels=5, condition="speaker", num_classes=3)
    with pytest.raises(dgm.ConfigError, match="too big a head"):
        dgm.create("wavenet", shape=(16,), levels=65536)


def test_utterance_log_prob_ignores_the_padding_and_matches_log_prob():
    """Padding after an utterance changes nothing (causality), and each utterance's score is
    its own log_prob over exactly its length."""
    model = _model().double().eval()
    torch.manual_seed(1)
    lengths = torch.tensor([20, 7, 13])
    x = torch.randint(0, 5, (3, 20)).double()
    y = torch.tensor([[0, 1], [2, 0], [1, 1]])
    scored = model.utterance_log_prob(x, lengths, y)
    noisy = x.clone()
    for i, n in enumerate(lengths):
        noisy[i, n:] = torch.randint(0, 5, (20 - int(n),)).double()
    assert torch.allclose(model.utterance_log_prob(noisy, lengths, y), scored)
    for i, n in enumerate(lengths):
        alone = model.log_prob(x[i : i + 1, :n], y[i : i + 1])
        assert torch.allclose(alone, scored[i : i + 1])


def test_evaluation_covers_every_sample_once():
    """evaluate_audio over batches of sorted lengths: the total equals the sum of each
    utterance scored alone, and bits per sample divide it by the number of samples."""
    model = _model().double().eval()
    torch.manual_seed(2)
    lengths = torch.tensor([5, 17, 9, 17, 3, 11])
    x = torch.full((6, 17), 2.0, dtype=torch.float64)
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randint(0, 5, (int(n),)).double()
    y = torch.tensor([[i % 3, i % 2] for i in range(6)])
    split = Split(x, y, lengths)
    out = evaluate_audio(model, split, budget=34)  # two of the longest a batch
    alone = sum(
        -model.log_prob(x[i : i + 1, :n], y[i : i + 1]).item() for i, n in enumerate(lengths)
    )
    assert out["samples"] == int(lengths.sum()) and out["n"] == 6
    assert out["nll_nats"] * 6 == pytest.approx(alone, rel=1e-9)
    assert out["bits_per_sample"] == pytest.approx(alone / (62 * math.log(2)), rel=1e-9)
    assert "given the label and speaker" in out["estimate"]
    groups = batches(lengths, 34)
    assert sorted(torch.cat(groups).tolist()) == list(range(6))
    assert all(len(g) * int(lengths[g].max()) <= 34 or len(g) == 1 for g in groups)


@pytest.mark.parametrize("random", [True, False])
def test_crops_stay_inside_their_utterances(random):
    """Each crop is a window of its own utterance: values never from another row, the start
    within [0, length - crop] (or 0 for a short one), validation crops fixed in the middle."""
    lengths = torch.tensor([50, 12, 30])
    n, width, crop = 3, 50, 16
    # each value encodes (row, position), so a crop says where it was cut from
    x = torch.arange(n * width, dtype=torch.float32).view(n, width)
    data = CropData(Split(x, None, lengths), crop, random=random, silence=-1.0)
    torch.manual_seed(0)
    for _ in range(20):
        batch, _ = data.__getitems__([0, 1, 2])
        assert batch.shape == (3, crop)
        for i in range(3):
            start = int(batch[i, 0]) - i * width
            assert torch.equal(batch[i], x[i, start : start + crop])
            assert 0 <= start <= max(int(lengths[i]) - crop, 0)
            if not random:
                assert start == max(int(lengths[i]) - crop, 0) // 2


def test_linear_16_bit_audio_takes_a_logistic_mixture(tmp_path):
    """Linear 16-bit levels (65536): wavenet's audio defaults switch to a discretized logistic
    mixture over a scalar input, which normalises over the levels of a whole utterance."""
    from dgm.data import load_dataset
    from dgm.registry import get
    from tests.helpers import TINY as CONTRACT_TINY
    from tests.helpers import tiny_wav_folder

    ds = load_dataset(str(tiny_wav_folder(tmp_path / "w")), encoding="linear", crop=64)
    assert ds.spec.levels == 65536 and ds.spec.encoding == "linear"
    torch.manual_seed(0)
    model = get("wavenet").cls.for_data(ds.spec, **CONTRACT_TINY["wavenet"]).eval()
    assert model.config.likelihood == "logistic-mixture" and model.config.input == "scalar"
    model = model.double()
    test = ds.test
    lp = model.utterance_log_prob(test.x[:2].double(), test.lengths[:2])
    assert torch.isfinite(lp).all() and (lp < 0).all()
    # one conditional over all 65536 levels sums to 1
    params = model.logits(test.x[:1, :5].double())[..., 3:4]  # [1, P, 1]
    levels = torch.arange(65536.0, dtype=torch.float64)[:, None]
    p = model.likelihood.log_prob_per_dim(params.expand(65536, -1, -1), levels).exp().sum()
    assert p.item() == pytest.approx(1.0, abs=1e-6)
    s = model.sample(2, length=20)
    assert s.shape == (2, 20) and s.min() >= 0 and s.max() <= 65535
