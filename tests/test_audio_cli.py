"""Audio through the command line: a two-epoch WaveNet run on a folder of generated wav files
(train at another rate with --set sample_rate, eval in bits per sample, sample wav files and
a picture given a label and a speaker), and the bad inputs, each one line with exit 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from dgm.data.audio import read_wav

TINY = [
    "--set", "hidden=8", "--set", "skip_channels=8", "--set", "head_channels=8",
    "--set", "max_dilation=4", "--set", "stacks=1", "--set", "embedding=4",
    "--set", "crop=200", "--set", "sample_seconds=0.02", "--set", "batch_size=4",
]  # fmt: skip


def _tone(rate: int, seconds: float, freq: float, seed: int) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.05, t.shape)
    return (0.4 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def _speech_folder(root: Path, rate: int = 16000) -> Path:
    """FSDD-style files: 2 digits x 2 speakers x 12 takes (0-4 test, 5-9 val, 10-11 train, as
    FSDD splits), a tone per digit, at ``rate``."""
    root.mkdir(parents=True, exist_ok=True)
    for digit, freq in ((0, 300.0), (1, 700.0)):
        for speaker in ("ann", "bob"):
            for take in range(12):
                seconds = 0.05 + 0.01 * take
                x = _tone(rate, seconds, freq * (1.2 if speaker == "bob" else 1.0), take)
                wavfile.write(
                    root / f"{digit}_{speaker}_{take}.wav", rate, (x * 32767).astype(np.int16)
                )
    return root


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    return _speech_folder(tmp_path_factory.mktemp("speech") / "wavs")


@pytest.mark.slow
def test_wavenet_on_a_folder_of_wav_files_end_to_end(run_cli, speech, tmp_path):
    run = tmp_path / "run"
    # the files are at 16 kHz: without sample_rate they train at 16 kHz; with it, resampled
    code, out, err = run_cli(
        "train", "wavenet", "--data", speech, "--set", "condition=digit+speaker",
        "--set", "sample_rate=8000", "--epochs", "2", "--out", run, *TINY,
    )  # fmt: skip
    assert code == 0, err
    assert "resampled 48 files from 16000 Hz to 8000 Hz" in err
    assert "bits per sample" in err
    results = json.loads((run / "results.json").read_text())
    assert results["epochs"] == 2
    assert math.isfinite(results["test_bits_per_sample"]) and results["test_bits_per_sample"] > 0
    # samples written at the end: wav files at the run's rate, and their picture
    wavs = sorted((run / "samples").glob("*.wav"))
    assert len(wavs) == 8 and (run / "samples.png").stat().st_size > 0
    x, rate, _ = read_wav(wavs[0])
    assert rate == 8000 and len(x) == 160  # sample_seconds=0.02

    code, out, err = run_cli("eval", run, "--json")
    assert code == 0, err
    res = json.loads(out)
    # the whole test utterances (takes 0-4 of 4 speaker-digits, at 8 kHz), every sample once
    lengths = [round(8000 * (0.05 + 0.01 * t)) for t in range(5)] * 4
    assert res["samples"] == sum(lengths) and res["n"] == 20
    assert res["bits_per_sample"] == pytest.approx(results["test_bits_per_sample"], rel=1e-5)
    assert res["nll_nats"] * 20 == pytest.approx(
        res["bits_per_sample"] * res["samples"] * math.log(2), rel=1e-6
    )
    assert "given the label and speaker" in res["estimate"]
    # samples through dgm's audio feature network, trained into the run the first time
    code, out, err = run_cli(
        "eval", run, "--json", "--metrics", "fd,accuracy", "--num-generated", "4"
    )
    assert code == 0, err
    q = json.loads(out)
    assert q["generated"] == 4 and q["fd"] > 0 and 0 <= q["accuracy"] <= 1
    assert "AudioFeatureNet" in q["features"] and (run / "features" / "config.json").is_file()

    out_dir = tmp_path / "s"
    code, out, err = run_cli(
        "sample", run, "-n", "4", "--label", "1", "--speaker", "bob", "--seconds", "0.01",
        "--out", out_dir,
    )  # fmt: skip
    assert code == 0, err
    wavs = sorted(out_dir.glob("*.wav"))
    assert [w.name for w in wavs] == [f"sample-0{i}.wav" for i in range(4)]
    for w in wavs:
        x, rate, _ = read_wav(w)
        assert rate == 8000 and len(x) == 80 and np.abs(x).max() <= 1
    assert (out_dir / "samples.png").stat().st_size > 0
    assert "label 1, speaker bob" in out

    # --speaker the run does not know: one line, exit 2, nothing written
    code, out, err = run_cli("sample", run, "--speaker", "carol", "--out", tmp_path / "t")
    assert code == 2 and "unknown speaker 'carol'" in err and "ann, bob" in err
    assert "Traceback" not in err and not (tmp_path / "t").exists()
    # other audio at another rate than the model's: both rates named, nothing scored
    import shutil

    other = shutil.copytree(speech, tmp_path / "other")
    code, out, err = run_cli("eval", run, "--data", other)
    assert code == 2 and "16000 Hz" in err and "8000 Hz" in err and not out
    # commands that do not score audio say so in one line
    code, _, err = run_cli("ood", run, "--out", "noise")
    assert code == 2 and "models audio" in err and "Traceback" not in err
    # a wavenet has no encoder: nothing to reconstruct or convert
    code, _, err = run_cli("convert", run, speech / "0_ann_0.wav", "--speaker", "bob")
    assert code == 2 and "cannot convert voices" in err


@pytest.mark.slow
def test_bad_audio_inputs_are_one_line_with_exit_2(run_cli, tmp_path):
    def refused(data: Path, *more: str) -> str:
        out = tmp_path / f"run-{data.name}"
        code, _, err = run_cli("train", "wavenet", "--data", data, "--out", out, *more, *TINY)
        assert code == 2, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
        return err

    # a folder with no audio (read as audio: an audio option is given)
    empty = tmp_path / "notes"
    empty.mkdir()
    (empty / "a.txt").write_text("x")
    (empty / "b.txt").write_text("y")
    err = refused(empty, "--set", "sample_rate=8000")
    assert "no .wav files" in err and "skipped 2" in err
    # mixed rates without sample_rate: both rates and the option named
    mixed = _speech_folder(tmp_path / "mixed", rate=16000)
    wavfile.write(mixed / "0_ann_13.wav", 8000, np.zeros(400, dtype=np.int16))
    err = refused(mixed)
    assert "8000 Hz" in err and "16000 Hz" in err and "sample_rate" in err
    # a corrupt file, a truncated one, an empty one
    for name, content in (("corrupt", b"RIFF0000WAVEjunk"), ("empty", b"")):
        folder = _speech_folder(tmp_path / name)
        (folder / "1_ann_11.wav").write_bytes(content)
        err = refused(folder)
        assert "1_ann_11.wav" in err
    cut = _speech_folder(tmp_path / "cut")
    whole = (cut / "1_ann_5.wav").read_bytes()
    (cut / "1_ann_5.wav").write_bytes(whole[: len(whole) // 2])
    assert "truncated" in refused(cut)
    # text options on audio
    assert "text options" in refused(_speech_folder(tmp_path / "t2"), "--set", "max_len=9")


@pytest.mark.slow
def test_stereo_files_are_downmixed_with_a_note(run_cli, tmp_path):
    folder = _speech_folder(tmp_path / "st", rate=8000)
    left = _tone(8000, 0.08, 300.0, 0)
    wavfile.write(
        folder / "0_ann_12.wav", 8000, (np.stack([left, -left], 1) * 32767).astype(np.int16)
    )
    code, _, err = run_cli(
        "train", "wavenet", "--data", folder, "--epochs", "1", "--out", tmp_path / "r", *TINY
    )
    assert code == 0, err
    assert "downmixed 1 multi-channel file to mono" in err


def test_models_of_arrays_refuse_audio(speech):
    import dgm
    from dgm.data import load_dataset

    ds = load_dataset(str(speech), sample_rate=8000)
    with pytest.raises(dgm.DataError, match="is audio"):
        dgm.create("arm").for_data(ds.spec)
