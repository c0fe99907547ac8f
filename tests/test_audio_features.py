"""dgm's audio feature network: it learns labels and speakers from spectrograms, reads each
utterance only over its own length, is cached in the run folder, and scores samples (Frechet
distance, accuracy of conditional samples) and voice conversions (speaker-swap accuracy)."""

from __future__ import annotations

import pytest
import torch

import dgm
from dgm.data import load_dataset
from dgm.evaluation.audio_features import (
    AudioFeatureNet,
    audio_feature_net_for,
    audio_sample_quality,
    speaker_swap_accuracy,
    train_audio_feature_net,
)
from dgm.evaluation.features import load_feature_net
from tests.helpers import TINY, tiny_wav_folder


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    folder = tiny_wav_folder(tmp_path_factory.mktemp("af") / "w", takes=20)  # 10 takes train
    return load_dataset(str(folder), crop=200)


@pytest.fixture(scope="module")
def net(audio):
    return train_audio_feature_net(audio, epochs=60, batch_size=8)


def test_it_hears_the_label_and_the_speaker(net):
    """Tones of 300 / 700 Hz (the label) at pitch 1.0 / 1.3 (the speaker): the held-out
    utterances are told apart."""
    assert net.metrics["test_label_accuracy"] >= 0.9
    assert net.metrics["test_speaker_accuracy"] >= 0.9
    assert "label acc" in net.describe() and "speaker acc" in net.describe()


def test_padding_after_an_utterance_changes_nothing(net, audio):
    test = audio.test
    n = int(test.lengths[0])
    alone = net.score(test.x[:1, :n])["features"]
    padded = torch.cat([test.x[:1, :n], torch.full((1, 300), 7.0)], 1)  # noise-free junk after
    masked = net.score(padded, torch.tensor([n]))["features"]
    # the last frames straddle the end (a window half over the padding): close, not equal
    assert torch.allclose(alone, masked, atol=0.15 * alone.abs().max().item())
    whole = net.score(padded)["features"]  # read as one utterance of L samples: different
    assert not torch.allclose(alone, whole, atol=1e-3)


def test_cached_in_the_run_folder(net, audio, tmp_path):
    from dgm.evaluation.features import save_feature_net

    save_feature_net(net, tmp_path / "features")
    again = load_feature_net(tmp_path / "features")
    assert isinstance(again, AudioFeatureNet)
    x = audio.test.x[:4]
    assert torch.equal(net.score(x)["features"], again.score(x)["features"])
    assert again.metrics == net.metrics
    assert audio_feature_net_for(audio, tmp_path / "features").metrics == net.metrics  # reused


def test_sample_quality_and_speaker_swap(net, audio):
    torch.manual_seed(0)
    cfg = {**TINY["wavenet"], "condition": "label", "embedding": 4, "sample_seconds": 0.01}
    wavenet = dgm.registry.get("wavenet").cls.for_data(audio.spec, **cfg).eval()
    out = audio_sample_quality(wavenet, audio, net, num_samples=6, batch=3)
    assert out["fd"] > 0 and 0 <= out["accuracy"] <= 1 and out["generated"] == 6
    assert out["real_accuracy"] == net.metrics["test_label_accuracy"]
    vq = dgm.registry.get("vqvae-audio").cls.for_data(audio.spec, **TINY["vqvae-audio"]).eval()
    swap = speaker_swap_accuracy(vq, audio, net, num=4)
    assert swap["swap_n"] == 4 and 0 <= swap["swap_accuracy"] <= 1
    assert 0 <= swap["swap_label_accuracy"] <= 1
    with pytest.raises(dgm.DataError, match="cannot convert"):
        speaker_swap_accuracy(wavenet, audio, net)
