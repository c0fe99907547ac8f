"""Waveform data (dgm.data.audio): the level encodings, reading and writing .wav files,
resampling, folders of recordings, the dataset layout, FSDD and the audio options."""

from __future__ import annotations

import re
import wave
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from dgm import errors
from dgm.data import audio
from dgm.errors import ConfigError, DataError
from tests.helpers import shared_data


def _sine(n: int, rate: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def _write16(path: Path, x: np.ndarray, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, rate, np.round(np.asarray(x) * 32767).astype(np.int16))
    return path


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------- levels


@pytest.mark.parametrize("encoding", audio.ENCODINGS)
def test_encode_decode_round_trip_within_one_level(encoding):
    levels = audio.LEVELS[encoding]
    x = torch.cat([torch.linspace(-1, 1, 20001), torch.rand(5000) * 2 - 1, torch.zeros(1)])
    q = audio.encode(x, encoding)
    assert q.dtype == torch.float32
    assert torch.equal(q, q.round()) and q.min() == 0 and q.max() == levels - 1
    back = audio.decode(q, encoding)
    assert back.dtype == torch.float32
    assert torch.equal(audio.encode(back, encoding), q)  # each level's amplitude is its own
    # no farther from x than the width of x's level (the amplitudes that round to it)
    q64 = q.double()
    width = audio.decode(q64 + 0.5, encoding).double() - audio.decode(q64 - 0.5, encoding).double()
    assert ((x.double() - back.double()).abs() <= width + 1e-7).all()


@pytest.mark.parametrize("encoding", audio.ENCODINGS)
def test_encode_is_monotone_and_clamps(encoding):
    x = torch.linspace(-1.5, 1.5, 30001)
    q = audio.encode(x, encoding)
    assert (q[1:] >= q[:-1]).all()
    assert q[0] == 0 and q[-1] == audio.LEVELS[encoding] - 1  # beyond [-1, 1] is clamped
    assert audio.decode(torch.tensor([0.0]), encoding).item() == pytest.approx(-1.0)


def test_silence_is_the_level_of_zero():
    assert audio.silence_level("mulaw") == 128 == audio.mu_law_encode(torch.zeros(1)).item()
    assert audio.silence_level("linear") == 32768 == audio.linear_encode(torch.zeros(1)).item()
    assert abs(audio.mu_law_decode(torch.tensor(128.0)).item()) < 0.001  # 1/255 of companding


def test_mu_law_spends_its_levels_near_silence():
    quiet = audio.mu_law_encode(torch.tensor([-0.01, 0.01]))
    loud = audio.mu_law_encode(torch.tensor([0.98, 1.0]))
    assert quiet[1] - quiet[0] > 20 * (loud[1] - loud[0])
    # WaveNet's formula at one point: f(0.5) = ln(1 + 127.5) / ln(256)
    f = np.log1p(255 * 0.5) / np.log1p(255)
    assert audio.mu_law_encode(np.array([0.5])).item() == np.floor((f + 1) / 2 * 255 + 0.5)


def test_encodings_accept_numpy_and_refuse_unknown_names():
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    assert torch.equal(audio.mu_law_encode(x), audio.encode(torch.from_numpy(x), "mulaw"))
    assert torch.equal(audio.linear_encode(x), audio.encode(x, "linear"))
    with pytest.raises(ConfigError, match=r"ulaw.*mulaw, linear"):
        audio.encode(x, "ulaw")


# ----------------------------------------------------------------------------- files


def test_resampling_keeps_a_sines_frequency():
    x = _sine(16000, 16000)  # 1 s: FFT bins are 1 Hz wide
    y = audio.resample(x, 16000, 8000)
    assert y.dtype == np.float32 and len(y) == 8000
    peak = np.fft.rfftfreq(len(y), 1 / 8000)[np.abs(np.fft.rfft(y)).argmax()]
    assert abs(peak - 440) <= 1
    assert np.abs(y).max() == pytest.approx(0.5, abs=0.02)  # the filter keeps the amplitude
    assert audio.resample(x, 16000, 16000) is x  # identity, no copy
    assert len(audio.resample(x[:441], 44100, 8000)) == 80  # reduced by the gcd (100)


def test_read_wav_8_16_32_bit_and_float(tmp_path):
    x = _sine(400, 8000, amp=0.9)
    cases = {
        "u8.wav": (np.round(x * 128 + 128).astype(np.uint8), 0.5 / 128),
        "i16.wav": (np.round(x * 32768).astype(np.int16), 0.5 / 32768),
        "i32.wav": (np.round(x.astype(np.float64) * 2**31).astype(np.int32), 1e-7),
        "f32.wav": (x, 0.0),
    }
    for name, (data, tol) in cases.items():
        wavfile.write(tmp_path / name, 8000, data)
        y, rate, notes = audio.read_wav(tmp_path / name)
        assert rate == 8000 and y.dtype == np.float32 and y.shape == x.shape, name
        assert np.abs(y - x).max() <= tol + 1e-7, name
        assert notes == [], name


def test_read_wav_24_bit(tmp_path):
    x = _sine(300, 16000, amp=0.99)
    v = np.round(x.astype(np.float64) * 2**23).astype("<i4")
    frames = v.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()  # the low 3 bytes, little-endian
    with wave.open(str(tmp_path / "i24.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(3)
        w.setframerate(16000)
        w.writeframes(frames)
    y, rate, _ = audio.read_wav(tmp_path / "i24.wav")
    assert rate == 16000 and len(y) == 300
    assert np.abs(y - x).max() <= 2**-22


def test_stereo_is_downmixed_with_a_note(tmp_path):
    left, right = _sine(200, 8000, amp=0.5), _sine(200, 8000, freq=1000, amp=0.25)
    data = np.round(np.stack([left, right], axis=1) * 32767).astype(np.int16)
    wavfile.write(tmp_path / "st.wav", 8000, data)
    y, _, notes = audio.read_wav(tmp_path / "st.wav")
    assert y.shape == (200,)
    assert np.abs(y - (left + right) / 2).max() < 1e-4
    assert notes == [f"{tmp_path / 'st.wav'}: 2 channels, downmixed to mono"]


def test_unknown_chunks_are_read_without_warnings(tmp_path, recwarn):
    good = _write16(tmp_path / "a.wav", _sine(100, 8000)).read_bytes()
    # a "junk" chunk scipy does not know, between fmt and data (44-byte header: data at 36)
    extra = b"abcd" + (6).to_bytes(4, "little") + b"123456"
    body = good[12:36] + extra + good[36:]
    (tmp_path / "b.wav").write_bytes(
        b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WAVE" + body
    )
    y, _, _ = audio.read_wav(tmp_path / "b.wav")
    assert len(y) == 100
    assert not [w for w in recwarn if issubclass(w.category, wavfile.WavFileWarning)]


def test_bad_files_raise_one_line_data_errors(tmp_path):
    good = _write16(tmp_path / "good.wav", _sine(1000, 8000)).read_bytes()
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(DataError) as e:
        audio.read_wav(tmp_path / "empty.wav")
    assert _one_line(e) == f"{tmp_path / 'empty.wav'} holds no samples; remove it"

    wavfile.write(tmp_path / "nosamples.wav", 8000, np.zeros(0, np.int16))
    with pytest.raises(DataError, match="holds no samples; remove it"):
        audio.read_wav(tmp_path / "nosamples.wav")

    (tmp_path / "corrupt.wav").write_bytes(b"this is not audio at all, just some text")
    with pytest.raises(DataError) as e:
        audio.read_wav(tmp_path / "corrupt.wav")
    assert "corrupt.wav is not a readable wav file (" in _one_line(e)
    assert "re-export it as PCM or float wav" in str(e.value)

    (tmp_path / "cut.wav").write_bytes(good[: len(good) // 2])  # cut in the middle of the data
    with pytest.raises(DataError) as e:
        audio.read_wav(tmp_path / "cut.wav")
    assert "cut.wav is truncated" in _one_line(e) and "re-export" in str(e.value)

    (tmp_path / "head.wav").write_bytes(good[:30])  # cut inside the header
    with pytest.raises(DataError, match=r"head\.wav is not a readable wav file"):
        audio.read_wav(tmp_path / "head.wav")


def test_write_then_read_round_trip(tmp_path):
    x = torch.cat([torch.rand(999) * 2 - 1, torch.tensor([1.0, -1.0, 0.0, 1.5])])
    audio.write_wav(tmp_path / "out.wav", x, 22050)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]  # no temporary file left
    rate, raw = wavfile.read(tmp_path / "out.wav")
    assert rate == 22050 and raw.dtype == np.int16 and raw.ndim == 1
    y, rate, _ = audio.read_wav(tmp_path / "out.wav")
    assert rate == 22050 and len(y) == 1003
    assert np.abs(y - x.clamp(-1, 1).numpy()).max() <= 1 / 32768
    audio.write_wav(tmp_path / "out.wav", np.zeros(10), 8000)  # replaces the file whole
    assert len(audio.read_wav(tmp_path / "out.wav")[0]) == 10


def test_parse_name():
    assert audio.parse_name("7_jackson_32") == ("7", "jackson")
    assert audio.parse_name("cat_bob_0") == ("cat", "bob")
    for stem in ("7_jackson", "7_jackson_x", "7__3", "a_b_c_1", "_b_1", "7_jackson_3.5", "x"):
        assert audio.parse_name(stem) == (None, None), stem


def test_check_rate_names_both_rates_and_the_fix():
    audio.check_rate(8000, 8000, "x.wav")  # the same rate: nothing to say
    with pytest.raises(DataError) as e:
        audio.check_rate(16000, 8000, "x.wav")
    assert _one_line(e) == (
        "x.wav is at 16000 Hz but the model runs at 8000 Hz: add sample_rate=8000 to resample it"
    )
    with errors.command_line(), pytest.raises(DataError, match="add --set sample_rate=8000 to"):
        audio.check_rate(16000, 8000, "x.wav")


# ----------------------------------------------------------------------------- folders


def test_read_folder_labels_from_class_folders(tmp_path):
    for rel in ("dog/b.wav", "cat/a.WAV", "dog/c.wav", "dog/deeper/d.wav", "top.wav"):
        _write16(tmp_path / rel, _sine(80, 8000))
    (tmp_path / "readme.txt").write_text("hi")
    (tmp_path / "cat" / "notes.md").write_text("hi")
    (tmp_path / ".DS_Store").write_text("hidden: never data, never counted")
    rec = audio.read_folder(tmp_path)
    rels = [p.relative_to(tmp_path).as_posix() for p in rec.paths]
    assert rels == ["cat/a.WAV", "dog/b.wav", "dog/c.wav", "dog/deeper/d.wav", "top.wav"]
    assert rec.labels == ["cat", "dog", "dog", None, None]
    assert rec.speakers == [None] * 5 and rec.takes == [None] * 5
    assert rec.rate == 8000 and all(w.dtype == np.float32 and len(w) == 80 for w in rec.waves)
    assert any(n.startswith("skipped 2 files that are not .wav") for n in rec.notes)


def test_read_folder_labels_and_speakers_from_fsdd_names(tmp_path):
    for stem in ("3_alice_0", "3_alice_12", "9_bob_1", "hello"):
        _write16(tmp_path / f"{stem}.wav", _sine(50, 8000))
    _write16(tmp_path / "five" / "5_carol_7.wav", _sine(50, 8000))
    rec = audio.read_folder(tmp_path)
    got = {p.stem: (lab, spk, take) for p, lab, spk, take in
           zip(rec.paths, rec.labels, rec.speakers, rec.takes)}  # fmt: skip
    assert got == {
        "3_alice_0": ("3", "alice", 0),
        "3_alice_12": ("3", "alice", 12),
        "9_bob_1": ("9", "bob", 1),
        "hello": (None, None, None),
        "5_carol_7": ("five", "carol", 7),  # the class folder names the label
    }
    assert rec.notes == []


def test_read_folder_without_wav_files(tmp_path):
    for name in ("a.txt", "b.mp3", "sub/c.flac"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    with pytest.raises(DataError) as e:
        audio.read_folder(tmp_path)
    assert _one_line(e) == (
        f"no .wav files in {tmp_path} (skipped 3 other files): give a folder of .wav files"
    )
    with pytest.raises(DataError, match="does not exist"):
        audio.read_folder(tmp_path / "missing")


def test_read_folder_mixed_rates(tmp_path):
    _write16(tmp_path / "a.wav", _sine(800, 8000), 8000)
    _write16(tmp_path / "b.wav", _sine(1600, 16000), 16000)
    _write16(tmp_path / "c.wav", _sine(1600, 16000), 16000)
    with pytest.raises(DataError) as e:
        audio.read_folder(tmp_path)
    msg = _one_line(e)
    assert "8000 Hz (1 file) and 16000 Hz (2 files)" in msg and "sample_rate=R" in msg

    rec = audio.read_folder(tmp_path, sample_rate=8000)
    assert rec.rate == 8000 and [len(w) for w in rec.waves] == [800, 800, 800]
    assert "resampled 2 files from 16000 Hz to 8000 Hz (polyphase filter)" in rec.notes
    with pytest.raises(ConfigError, match="sample_rate"):
        audio.read_folder(tmp_path, sample_rate=10)


# ----------------------------------------------------------------------------- datasets


def _recordings(tmp_path: Path, n: int = 20, named: bool = True) -> Path:
    """n files of different lengths: FSDD names (2 digits, 2 speakers, takes 0..) or plain."""
    rng = np.random.default_rng(0)
    for i in range(n):
        stem = f"{i % 2}_{'ann' if i % 3 else 'ben'}_{i}" if named else f"clip{i:02d}"
        _write16(tmp_path / f"{stem}.wav", rng.uniform(-0.9, 0.9, 100 + 17 * i), 8000)
    return tmp_path


def _check_layout(ds, rec: audio.Recordings, encoding: str) -> None:
    """Every file in exactly one split, each row its file's levels then silence."""
    by_length = {len(w): w for w in rec.waves}  # the lengths are distinct
    silence = audio.silence_level(encoding)
    seen = []
    for split in (ds.train, ds.val, ds.test):
        n, longest = split.x.shape
        assert split.x.dtype == torch.float32 and split.lengths.dtype == torch.int64
        assert split.lengths.shape == (n,) and longest == int(split.lengths.max())
        for row, length in zip(split.x, split.lengths.tolist()):
            assert torch.equal(row[:length], audio.encode(by_length[length], encoding))
            assert (row[length:] == silence).all()
            seen.append(length)
    assert sorted(seen) == sorted(by_length)


@pytest.mark.parametrize("encoding", audio.ENCODINGS)
def test_folder_dataset_layout(tmp_path, encoding):
    folder = _recordings(tmp_path, named=False)
    ds = audio.load_audio_folder(folder, encoding=encoding, crop=64)
    spec = ds.spec
    levels = audio.LEVELS[encoding]
    assert (spec.shape, spec.levels, spec.low, spec.high) == ((64,), levels, 0, levels - 1)
    assert (spec.sample_rate, spec.encoding, spec.is_audio) == (8000, encoding, True)
    assert spec.num_classes is None and spec.class_names is None and spec.speakers is None
    assert ds.train.y is None and ds.val.y is None and ds.test.y is None
    assert (len(ds.train), len(ds.val), len(ds.test)) == (16, 2, 2)  # 80/10/10
    assert ds.levels_note == {"mulaw": "8-bit mu-law", "linear": "linear 16-bit"}[encoding]
    assert ds.source == str(folder.resolve()) and "20 .wav files at 8000 Hz" in ds.kind
    assert any("fixed permutation (seed 0)" in n for n in ds.notes)
    _check_layout(ds, audio.read_folder(folder), encoding)
    # the same folder, the same split; another seed, another split
    again = audio.load_audio_folder(folder, encoding=encoding)
    assert torch.equal(again.test.lengths, ds.test.lengths)
    assert again.spec.shape == (4000,)  # half a second by default
    other = audio.load_audio_folder(folder, encoding=encoding, seed=1)
    assert not torch.equal(other.test.lengths, ds.test.lengths)


def test_fsdd_named_folder_splits_by_take_with_labels_and_speakers(tmp_path):
    folder = _recordings(tmp_path, n=14)
    ds = audio.load_audio_folder(folder)
    rec = audio.read_folder(folder)
    _check_layout(ds, rec, "mulaw")
    assert ds.spec.class_names == ("0", "1") and ds.spec.num_classes == 2
    assert ds.spec.speakers == ("ann", "ben")
    take = {len(w): t for w, t in zip(rec.waves, rec.takes)}
    label = {len(w): int(lab) for w, lab in zip(rec.waves, rec.labels)}
    speaker = {len(w): ("ann", "ben").index(s) for w, s in zip(rec.waves, rec.speakers)}
    for split, takes in ((ds.train, range(10, 14)), (ds.val, range(5, 10)), (ds.test, range(5))):
        lengths = split.lengths.tolist()
        assert sorted(take[n] for n in lengths) == list(takes)
        assert split.y.shape == (len(split), 2) and split.y.dtype == torch.int64
        assert split.y[:, 0].tolist() == [label[n] for n in lengths]
        assert split.y[:, 1].tolist() == [speaker[n] for n in lengths]


def test_build_dataset_marks_missing_labels_and_refuses_bad_input(tmp_path):
    for rel, n in (("a/1.wav", 41), ("a/2.wav", 42), ("b/3.wav", 43), ("loose.wav", 49)):
        _write16(tmp_path / rel, _sine(n, 8000))
    rec = audio.read_folder(tmp_path)
    assert rec.labels == ["a", "a", "b", None]
    ds = audio.build_dataset("mine", {"train": [0, 3], "test": [2], "val": []}, rec, crop=2)
    assert ds.train.y.tolist() == [[0, -1], [-1, -1]] and ds.test.y.tolist() == [[1, -1]]
    assert ds.spec.class_names == ("a", "b") and ds.spec.speakers is None
    assert len(ds.val) == 0 and ds.val.y.shape == (0, 2) and ds.val.lengths.shape == (0,)
    assert ds.notes == rec.notes and ds.notes is not rec.notes
    with pytest.raises(ConfigError, match="crop must be a whole number of samples >= 2"):
        audio.build_dataset("mine", {"train": [0], "test": [1]}, rec, crop=1)
    with pytest.raises(ConfigError, match="unknown audio encoding"):
        audio.build_dataset("mine", {"train": [0], "test": [1]}, rec, encoding="alaw")
    with pytest.raises(DataError, match="the test split has no recordings"):
        audio.build_dataset("mine", {"train": [0, 1], "test": []}, rec)


def test_numeric_labels_sort_as_numbers(tmp_path):
    for i, label in enumerate(("10", "9", "2")):
        _write16(tmp_path / label / f"x{i}.wav", _sine(30 + i, 8000))
    ds = audio.load_audio_folder(tmp_path)
    assert ds.spec.class_names == ("2", "9", "10")


def test_a_folder_of_fewer_than_three_files(tmp_path):
    _recordings(tmp_path, n=2, named=False)
    with pytest.raises(DataError) as e:
        audio.load_audio_folder(tmp_path)
    assert _one_line(e) == f"{tmp_path} has 2 wav files; need at least 3 (train, val and test)"


def test_load_fsdd_needs_its_folder(tmp_path):
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "recordings"))):
        audio.load_fsdd(tmp_path)


@pytest.fixture(scope="module")
def fsdd():
    """FSDD as loaded, and its files as read (a second or two each, once per module)."""
    root = shared_data("fsdd")
    return audio.load_fsdd(root), audio.read_folder(root / "recordings")


def test_fsdd(fsdd):
    ds, _ = fsdd
    spec = ds.spec
    assert (len(ds.train), len(ds.val), len(ds.test)) == (2400, 300, 300)
    assert spec.sample_rate == 8000 and spec.encoding == "mulaw" and spec.levels == 256
    assert spec.class_names == tuple(str(d) for d in range(10)) and spec.num_classes == 10
    assert len(spec.speakers) == 6 and "jackson" in spec.speakers
    assert spec.shape == (4000,) and ds.source.endswith("fsdd") and ds.levels_note
    for split in (ds.train, ds.val, ds.test):
        assert (split.y >= 0).all()  # every file has a digit and a speaker
        assert (split.x[:, : int(split.lengths.min())] != 128).any()  # sound, not padding
    # every digit by every speaker: 5 takes each in test and val, 40 in train
    for split, takes in ((ds.train, 40), (ds.val, 5), (ds.test, 5)):
        pairs = split.y[:, 0] * 6 + split.y[:, 1]
        assert torch.bincount(pairs, minlength=60).tolist() == [takes] * 60


def test_fsdd_test_set_is_takes_0_to_4(fsdd):
    ds, rec = fsdd
    assert len(rec) == 3000 and rec.rate == 8000
    speakers = ds.spec.speakers

    def files(takes: range) -> Counter:  # (digit, speaker, length) of the files of these takes
        return Counter(
            (int(lab), speakers.index(spk), len(w))
            for w, lab, spk, t in zip(rec.waves, rec.labels, rec.speakers, rec.takes)
            if t in takes
        )

    def rows(split) -> Counter:
        return Counter(zip(*split.y.T.tolist(), split.lengths.tolist()))

    assert rows(ds.test) == files(range(5))
    assert rows(ds.val) == files(range(5, 10))
    assert rows(ds.train) == files(range(10, 50))


# ----------------------------------------------------------------------------- options


def test_audio_options_are_typed():
    given = {"sample_rate": "16000", "encoding": " linear", "crop": "8000", "lr": "0.1"}
    assert audio.audio_options(given) == {"sample_rate": 16000, "encoding": "linear", "crop": 8000}
    assert audio.audio_options({"sample_rate": 8000.0, "crop": None}) == {"sample_rate": 8000}
    assert audio.audio_options({}) == {}
    values = {"crop": 100, "lr": 0.1, "encoding": "mulaw"}
    assert audio.pop_audio_options(values) == {"crop": 100, "encoding": "mulaw"}
    assert values == {"lr": 0.1}


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"sample_rate": "fast"}, "sample_rate must be a whole number"),
        ({"sample_rate": 500}, "sample_rate must be a whole number of samples per second in 1000"),
        ({"sample_rate": 400_000}, "1000..192000, got 400000"),
        ({"sample_rate": True}, "sample_rate must be a whole number"),
        ({"encoding": "ulaw"}, "unknown audio encoding 'ulaw'; use one of mulaw, linear"),
        ({"crop": "1"}, "crop must be a whole number of samples >= 2, got 1"),
        ({"crop": 2.5}, "crop must be a whole number, got 2.5"),
    ],
)
def test_audio_options_refuse_bad_values(values, words):
    with pytest.raises(ConfigError) as e:
        audio.audio_options(values)
    assert words in _one_line(e)
