"""Text as data (issue 16): the tokenizers (word, char, BPE) and their JSON, the layout of a text
example, user text files and folders with every bad input refused in one line, the named text
datasets, and the run folder's tokenizer.json read back by dgm.load, --resume and dgm eval."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

import dgm
from dgm.data import DataSpec, load_dataset, summary_line
from dgm.data.text import (
    BOS,
    EOS,
    PAD,
    SPECIALS,
    TOKENIZERS,
    UNK,
    TextTokenizer,
    pack,
    pop_text_options,
    text_options,
)
from dgm.errors import CheckpointError, ConfigError, DataError
from dgm.runs import RunFolder
from tests.helpers import TINY, shared_data, tiny_text_file

LINES = [
    "the cat sat on the mat",
    "a dog ran under the tree",
    "the dog saw a cat",
    "  spaces\tand tabs  stay ",
    "caf\u00e9 na\u00efve \u65e5\u672c",
]


def _rows_ok(x: torch.Tensor) -> None:
    """Every row: exactly one end token, padding after it and nowhere before it."""
    for row in x.long().tolist():
        assert row.count(EOS) == 1
        end = row.index(EOS)
        assert all(t == PAD for t in row[end + 1 :])
        assert PAD not in row[:end] and BOS not in row[:end]


# -- the tokenizers ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", TOKENIZERS)
def test_specials_are_ids_0_to_3(kind):
    tok = TextTokenizer.train(kind, LINES)
    assert (PAD, UNK, BOS, EOS) == (0, 1, 2, 3)
    assert [tok.token(i) for i in range(4)] == list(SPECIALS)
    assert tok.vocab_size > 4 and tok.kind == kind
    with pytest.raises(DataError, match="outside the vocabulary"):
        tok.token(tok.vocab_size)


def test_char_round_trips_text_exactly():
    text = "ab c\n\n\tcaf\u00e9 \u65e5!\r\n  "
    tok = TextTokenizer.train("char", [text])
    ids = tok.encode(text)
    assert len(ids) == len(text)  # every character a token, spaces and line breaks included
    assert tok.decode(ids) == text
    assert tok.decode(tok.encode("z")) == "<unk>"  # unseen: unknown, not dropped
    # the fast path gives the HF tokenizer's own ids
    assert tok._hf.encode(text, add_special_tokens=False).ids == ids


def test_word_round_trips_text_in_its_vocabulary():
    tok = TextTokenizer.train("word", LINES)
    line = "the dog sat under a cat"
    assert tok.decode(tok.encode(line)) == line
    assert tok.decode(tok.encode("  the\tcat \n sat ")) == "the cat sat"  # whitespace: one space
    ids = tok.encode("the zebra sat")
    assert ids[1] == UNK and tok.decode(ids) == "the <unk> sat"
    # the most frequent words first (ties broken by the word), so a small vocabulary keeps them
    small = TextTokenizer.train("word", LINES, vocab_size=6)
    assert small.vocab_size == 6
    assert [small.token(i) for i in (4, 5)] == ["the", "a"]  # 'the' 5 times; a/cat/dog twice
    rare = TextTokenizer.train("word", LINES, min_count=2)
    assert {rare.token(i) for i in range(4, rare.vocab_size)} == {"the", "a", "cat", "dog"}


def test_word_splits_as_the_hf_whitespace_split():
    # Python's str.split breaks at \x1c; HF's WhitespaceSplit does not, but does at \xa0
    text = "a\x1cb c\xa0d\u3000e"
    tok = TextTokenizer.train("word", [text])
    assert UNK not in tok.encode(text)  # counted and encoded the same way
    assert tok.decode(tok.encode(text)) == "a\x1cb c d e"


def test_bpe_round_trips_text_whose_characters_were_seen():
    corpus = [line * 3 for line in LINES] + ["the cat sat on the mat"] * 20
    tok = TextTokenizer.train("bpe", corpus, vocab_size=60)
    assert tok.vocab_size == 60
    text = "  the mat\tsat on a cat  "  # leading, inner and trailing whitespace kept
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < len(text)  # merges learnt
    assert tok._hf.decode(ids, skip_special_tokens=False) == text  # HF's decoder agrees
    assert UNK in tok.encode("the \u00df")  # an unseen character is unknown


def test_decode_stops_at_the_first_end_and_skips_padding_and_begin():
    tok = TextTokenizer.train("word", LINES)
    the, cat = tok.encode("the cat")
    assert tok.decode([BOS, the, PAD, cat, EOS, the, EOS]) == "the cat"
    x = torch.tensor([[the, cat, EOS, PAD], [cat, EOS, the, the]], dtype=torch.float32)
    assert tok.decode_batch(x) == ["the cat", "cat"]


def test_encode_lines_layout_and_cutting():
    tok = TextTokenizer.train("word", LINES)
    lines = ["the cat", "the cat sat on the mat", "", "the dog </s> <s> <pad>"]
    x, cut = tok.encode_lines(lines, max_len=5)
    assert x.dtype == torch.float32 and x.shape == (4, 5)
    assert cut == 2  # six words and five words > max_len - 1 = 4; two words, none fit
    _rows_ok(x)  # a literal </s> in the text does not end the example: it is unknown
    assert x[0].tolist() == [*tok.encode("the cat"), EOS, PAD, PAD]
    assert x[1].tolist() == [*tok.encode("the cat sat on"), EOS]
    assert x[2].tolist() == [EOS, PAD, PAD, PAD, PAD]
    assert x[3, 2:4].tolist() == [UNK, UNK]
    lengths = (x != PAD).sum(1)
    assert lengths.tolist() == [3, 5, 1, 5]
    assert pack([[5] * 9], 4)[1] == 1
    with pytest.raises(ConfigError, match="max_len"):
        tok.encode_lines(["a"], max_len=1)


def test_a_line_of_unknown_words_encodes_to_unknowns():
    tok = TextTokenizer.train("word", LINES)
    x, cut = tok.encode_lines(["zebra okapi quagga"], 8)
    assert cut == 0 and x[0, :4].tolist() == [UNK, UNK, UNK, EOS]


@pytest.mark.parametrize("kind", TOKENIZERS)
def test_json_save_and_load_give_the_same_ids(kind, tmp_path):
    tok = TextTokenizer.train(kind, LINES, vocab_size=40 if kind == "bpe" else None)
    tok.save(tmp_path / "tokenizer.json")
    saved = json.loads((tmp_path / "tokenizer.json").read_text())  # JSON, never a pickle
    assert saved["kind"] == kind and saved["format"] == 1
    back = TextTokenizer.load(tmp_path / "tokenizer.json")
    assert back == tok and back.kind == kind and back.vocab_size == tok.vocab_size
    probe = [*LINES, "the unseen words \u00df"]
    assert torch.equal(back.encode_lines(probe, 12)[0], tok.encode_lines(probe, 12)[0])
    assert back.decode_batch(tok.encode_lines(probe, 12)[0]) == tok.decode_batch(
        tok.encode_lines(probe, 12)[0]
    )


def test_damaged_tokenizer_json_is_refused(tmp_path):
    file = tmp_path / "tokenizer.json"
    file.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        TextTokenizer.load(file)
    good = json.loads(TextTokenizer.train("char", ["abc"]).to_json())
    vocab = good["tokenizer"]["model"]["vocab"]
    vocab["<s>"], vocab["a"] = vocab["a"], vocab["<s>"]  # specials out of place
    file.write_text(json.dumps(good))
    with pytest.raises(CheckpointError, match="first ids"):
        TextTokenizer.load(file)


@pytest.mark.slow  # a fresh interpreter / the whole of PTB: a few seconds
def test_training_is_deterministic_across_processes():
    """Same lines, same vocabulary: in this process and in a fresh one (other hash seeds)."""
    lines = [f"w{i % 7} w{i % 5} x{i % 3} {'ab' * (i % 4)}" for i in range(200)]
    here = [TextTokenizer.train(k, lines, vocab_size=30).to_json() for k in TOKENIZERS]
    assert here == [TextTokenizer.train(k, lines, vocab_size=30).to_json() for k in TOKENIZERS]
    code = (
        "import sys, json; from dgm.data.text import TextTokenizer, TOKENIZERS\n"
        f"lines = {lines!r}\n"
        "print(json.dumps([TextTokenizer.train(k, lines, vocab_size=30).to_json() "
        "for k in TOKENIZERS]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
        env={**__import__("os").environ, "PYTHONHASHSEED": "123"},
    )  # fmt: skip
    assert json.loads(done.stdout) == here


def test_text_options_are_checked_and_typed():
    assert text_options({"tokenizer": "char", "vocab_size": "50", "max_len": 32.0}) == {
        "tokenizer": "char",
        "vocab_size": 50,
        "max_len": 32,
    }
    values = {"tokenizer": "bpe", "min_count": "2", "hidden": "8"}
    assert pop_text_options(values) == {"tokenizer": "bpe", "min_count": 2}
    assert values == {"hidden": "8"}  # the model's options are left
    with pytest.raises(ConfigError, match="unknown tokenizer 'sentencepiece'; use one of"):
        text_options({"tokenizer": "sentencepiece"})
    with pytest.raises(ConfigError, match="at least 5"):
        text_options({"vocab_size": 4})
    with pytest.raises(ConfigError, match="at least 5"):
        TextTokenizer.train("word", LINES, vocab_size=3)
    with pytest.raises(ConfigError, match="min_count"):
        text_options({"min_count": 0})
    with pytest.raises(ConfigError, match="whole number"):
        text_options({"max_len": "long"})


# -- user text -------------------------------------------------------------------------------------
def test_a_txt_file_is_one_example_a_line(tmp_path):
    lines = [f"line {i} " + " ".join(["w"] * (i % 5)) for i in range(40)]
    text = "\n".join(lines[:20]) + "\n\n   \n" + "\r\n".join(lines[20:]) + "\n"  # blanks, CRLF
    path = tmp_path / "lines.txt"
    path.write_text(text)
    ds = load_dataset(path)
    assert ds.spec.is_text and ds.spec.tokenizer == "word"
    assert (len(ds.train), len(ds.val), len(ds.test)) == (32, 4, 4)  # 40 lines, blanks dropped
    tok = ds.tokenizer
    assert ds.spec.levels == tok.vocab_size
    longest = max(len(line.split()) for line in lines)
    assert ds.spec.shape == (longest + 1,)  # the longest line + the end token
    for split in (ds.train, ds.val, ds.test):
        _rows_ok(split.x)
    # the tokenizer learnt from the training lines only: their words are its vocabulary, and
    # every line comes back with the words only val or test hold unknown
    train = tok.decode_batch(ds.train.x)
    vocab = {tok.token(i) for i in range(4, tok.vocab_size)}
    assert vocab == {w for line in train for w in line.split()}
    assert len(vocab) < len({w for line in lines for w in line.split()})  # some held out
    decoded = sorted(tok.decode_batch(torch.cat([ds.train.x, ds.val.x, ds.test.x])))
    known = [" ".join(w if w in vocab else "<unk>" for w in line.split()) for line in lines]
    assert decoded == sorted(known)
    # the same file, the same split and vocabulary
    again = load_dataset(path)
    assert torch.equal(again.test.x, ds.test.x) and again.tokenizer == tok
    line = summary_line(ds)
    assert "40 examples" in line and f"vocabulary {tok.vocab_size} (word tokenizer)" in line
    assert f"max length {longest + 1} tokens" in line and "split 32/4/4" in line


def test_long_lines_are_cut_with_a_note(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("\n".join(["a b c d e f g h"] * 3 + ["a b"] * 7))
    ds = load_dataset(path, max_len=5)
    assert ds.spec.shape == (5,)
    assert any("3 of 10 examples were longer than max_len - 1 = 4" in n for n in ds.notes)
    capped = tmp_path / "capped.txt"
    capped.write_text("\n".join(["x " * 200, "y", "z"]))
    ds = load_dataset(capped, tokenizer="char")
    assert ds.spec.shape == (128,)  # the default: the longest line + 1, at most 128
    assert any("1 of 3 examples were longer" in n for n in ds.notes)


def test_char_tokenizer_and_options_reach_user_text(tmp_path):
    path = tiny_text_file(tmp_path / "t.txt", lines=30)
    ds = load_dataset(path, tokenizer="char", vocab_size=8)
    assert ds.spec.tokenizer == "char" and ds.spec.levels == 8
    assert ds.tokenizer.token(4) == " "  # the most frequent character


def test_a_folder_of_txt_files(tmp_path):
    folder = tmp_path / "texts"
    (folder / "more").mkdir(parents=True)
    (folder / "a.txt").write_text("one two\nthree\n")
    (folder / "more" / "b.txt").write_text("four five six\n\nseven\n")
    (folder / ".hidden.txt").write_text("never read\n")
    ds = load_dataset(folder)  # only .txt files: text without being told
    assert ds.spec.is_text and len(ds.train) + len(ds.val) + len(ds.test) == 4  # 4 lines
    assert "folder of 2 .txt files" in ds.kind
    (folder / "notes.md").write_text("# hello")
    with pytest.raises(DataError):  # not only .txt any more: read as images, and none is one
        load_dataset(folder)
    ds = load_dataset(folder, tokenizer="word")  # told: text, the other file skipped
    assert any("skipped 1 files that are not .txt" in n for n in ds.notes)


@pytest.mark.parametrize(
    "case, kwargs, error, needle",
    [
        ("empty", {}, DataError, "no text: the file is empty"),
        ("blank", {}, DataError, "only blank lines"),
        ("binary", {}, DataError, "not valid UTF-8 text (byte 0x89 at offset 2)"),
        ("nul", {}, DataError, "NUL byte at offset 4"),
        ("two", {}, DataError, "only 2 non-blank lines; need at least 3"),
        ("good", {"tokenizer": "wordpiece"}, ConfigError, "unknown tokenizer 'wordpiece'"),
        ("good", {"vocab_size": 4}, ConfigError, "vocab_size 4 is too small"),
        ("good", {"levels": 5}, DataError, "does not apply to text"),
        ("folder", {"tokenizer": "char"}, DataError, "folder holds no .txt files"),
        ("npy", {"tokenizer": "char"}, DataError, "text options, but"),
    ],
)
def test_bad_text_input_is_one_line(case, kwargs, error, needle, tmp_path):
    files = {
        "empty": b"",
        "blank": b"\n   \n\t\n",
        "binary": b"ab\x89PNG\r\n\x1a\n",
        "nul": b"text\x00more\nx\ny\n",
        "two": b"one line\n\nanother\n",
        "good": b"a b\nc d\ne f\n",
    }
    if case == "folder":
        path = tmp_path / "folder"
        path.mkdir()
        (path / "x.csv").write_text("1,2\n")
    elif case == "npy":
        import numpy as np

        path = tmp_path / "x.npy"
        np.save(path, np.zeros((5, 3)))
    else:
        path = tmp_path / f"{case}.txt"
        path.write_bytes(files[case])
    with pytest.raises(error) as info:
        load_dataset(path, **kwargs)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_text_options_on_data_that_is_not_text_are_refused():
    with pytest.raises(DataError, match="digits is not text"):
        load_dataset("digits", tokenizer="char")
    tok = TextTokenizer.train("char", LINES)  # a text run's own tokenizer: ignored by images
    assert not load_dataset("digits", tokenizer=tok, max_len=20).spec.is_text


def test_spec_round_trips_and_reads_old_runs():
    spec = DataSpec("t", (12,), 40, high=39.0, tokenizer="bpe")
    assert spec.is_text and DataSpec.from_dict(spec.to_dict()) == spec
    old = {k: v for k, v in DataSpec("d", (1, 8, 8), 17).to_dict().items() if k != "tokenizer"}
    assert not DataSpec.from_dict(old).is_text  # saved before text existed


# -- named text datasets ---------------------------------------------------------------------------
def _lines_of(path) -> list[str]:
    return [line.strip() for line in path.read_text().split("\n") if line.strip()]


@pytest.mark.slow  # a fresh interpreter / the whole of PTB: a few seconds
def test_ptb_is_mikolovs_files_at_word_level():
    folder = shared_data("ptb")
    ds = load_dataset("ptb", data_dir=folder.parent)
    files = {s: _lines_of(folder / f"ptb.{f}.txt") for s, f in
             (("train", "train"), ("val", "valid"), ("test", "test"))}  # fmt: skip
    assert [len(ds.split(s)) for s in files] == [len(v) for v in files.values()]
    words = {w for line in files["train"] for w in line.split()}
    assert ds.spec.levels == len(SPECIALS) + len(words - {"<unk>"})  # its own vocabulary
    longest = max(len(line.split()) for lines in files.values() for line in lines)
    assert ds.spec.shape == (longest + 1,) and ds.spec.tokenizer == "word"
    tok = ds.tokenizer
    assert tok.decode_batch(ds.test.x[:50]) == files["test"][:50]  # nothing unknown, nothing cut
    unk = next(i for i, line in enumerate(files["val"]) if "<unk>" in line.split())
    assert UNK in ds.val.x[unk].long().tolist()  # the files' <unk> is our UNK
    tokens = sum(len(line.split()) + 1 for lines in files.values() for line in lines)
    assert f"{tokens} tokens" in summary_line(ds)


def test_tinyshakespeare_is_chunks_of_a_contiguous_split():
    path = shared_data("tinyshakespeare", "input.txt")
    text = path.read_text()
    ds = load_dataset("tinyshakespeare", data_dir=path.parent.parent, max_len=129)
    assert ds.spec.tokenizer == "char" and ds.spec.shape == (129,)
    a, b = int(0.9 * len(text)), int(0.95 * len(text))
    parts = {"train": text[:a], "val": text[a:b], "test": text[b:]}
    for name, part in parts.items():
        x = ds.split(name).x
        assert len(x) == math.ceil(len(part) / 128)
        _rows_ok(x)
        assert (x[:-1] != PAD).all()  # full chunks: 128 characters + the end token
        assert "".join(ds.tokenizer.decode_batch(x)) == part  # contiguous, nothing lost
    assert ds.spec.levels == len(SPECIALS) + len(set(parts["train"]))


# -- the run folder ------------------------------------------------------------------------------
def test_dgm_load_gives_a_text_model_its_tokenizer(tmp_path):
    tok = TextTokenizer.train("word", LINES)
    model = dgm.create("lstm-lm", shape=(8,), levels=tok.vocab_size, **TINY["lstm-lm"])
    model.save(tmp_path / "plain")  # no tokenizer yet: none saved
    assert not (tmp_path / "plain" / "tokenizer.json").exists()
    assert dgm.load(tmp_path / "plain").tokenizer is None
    model.tokenizer = tok
    model.save(tmp_path / "m")
    back = dgm.load(tmp_path / "m")
    assert back.tokenizer == tok
    x = back.ids(["the cat sat", "a dog"])
    assert back.texts(x) == ["the cat sat", "a dog"]
    assert torch.allclose(back.log_prob(x), model.log_prob(x))
    run = RunFolder(tmp_path / "m")
    run.write_tokenizer(tok)
    assert run.has_tokenizer() and TextTokenizer.load(run.tokenizer_file) == tok


def test_samples_text_is_one_sample_a_line(tmp_path):
    run = RunFolder(tmp_path)
    run.write_samples_text(["the cat", "caf\u00e9 au lait"])
    assert run.samples_text.read_text(encoding="utf-8") == "the cat\ncaf\u00e9 au lait\n"
    run.write_samples_text(["to be\nor not", "x"])  # line breaks inside: separated by dashes
    assert run.samples_text.read_text().split("\n" + "-" * 40 + "\n") == ["to be\nor not", "x", ""]


# -- the command line ------------------------------------------------------------------------------
def test_bad_text_file_through_the_cli_exits_2_writing_nothing(tmp_path, run_cli):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe binary")
    out = tmp_path / "run"
    code, _, err = run_cli("train", "lstm-lm", "--data", bad, "--out", out)
    assert code == 2 and "not valid UTF-8 text (byte 0xff at offset 0)" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    good = tiny_text_file(tmp_path / "good.txt")
    code, _, err = run_cli("train", "lstm-lm", "--data", good, "--set", "tokenizer=nope",
                           "--out", out)  # fmt: skip
    assert code == 2 and "unknown tokenizer 'nope'" in err and not out.exists()
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_data_options_reach_the_data_and_the_run_rereads_it(tmp_path, run_cli):
    """A YAML tokenizer and a --set max_len reach the data and config.json; the run's
    tokenizer.json re-reads it (never re-trained: new words in the file stay unknown), for
    --resume and dgm eval alike."""
    data = tiny_text_file(tmp_path / "lines.txt", lines=40)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("tokenizer: char\nembed: 8\nhidden: 8\n")
    run = tmp_path / "run"
    code, _, err = run_cli("train", "lstm-lm", "--data", data, "--config", cfg, "--set",
                           "max_len=16", "--epochs", "1", "--out", run)  # fmt: skip
    assert code == 0, err
    meta = json.loads((run / "config.json").read_text())["data"]
    assert meta["tokenizer"] == "char" and meta["max_len"] == 16
    assert meta["spec"]["tokenizer"] == "char" and meta["spec"]["shape"] == [16]
    tok = TextTokenizer.load(run / "tokenizer.json")
    assert (run / "samples.txt").is_file() and not (run / "samples.png").exists()
    assert dgm.load(run).tokenizer == tok
    # the file changes: new characters; the run's data is encoded with its own tokenizer
    data.write_text(data.read_text() + "QQQ ZZZ\n" * 5)
    code, out, err = run_cli("eval", run, "--json")
    assert code == 0, err
    assert json.loads(out)["n"] >= 4
    code, _, err = run_cli("train", "--resume", run, "--epochs", "2")
    assert code == 0, err
    assert TextTokenizer.load(run / "tokenizer.json") == tok  # not re-trained
    code, _, err = run_cli("train", "--resume", run, "--epochs", "3", "--set", "tokenizer=word")
    assert code == 2 and "--resume keeps the run's data" in err
