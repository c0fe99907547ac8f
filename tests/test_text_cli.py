"""Text evaluation and the command line for text models (issue 16): perplexity counted over
real tokens, the collapse diagnostics in the reports, and `dgm sample / reconstruct /
interpolate / detect / ood / eval` on text runs, with the refusals of mixed-up inputs."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

import dgm
from dgm.data.text import EOS, PAD
from dgm.errors import DataError
from dgm.evaluation.likelihood import evaluate_likelihood, evaluate_nll
from dgm.evaluation.text import latent_diagnostics, perplexity, token_counts


def _rows(lengths: list[int], max_len: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """Sentences of the given lengths (words, then the end token, then padding)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((len(lengths), max_len), float(PAD))
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randint(4, vocab, (n,), generator=g).float()
        x[i, n] = EOS
    return x


# -- the numbers, in process -------------------------------------------------------------------
def test_perplexity_is_a_ratio_of_totals_over_real_tokens():
    # two sentences: 2 words + </s> with NLL 3 nats, 1 word + </s> with NLL 5 nats
    x = torch.tensor([[5.0, 6.0, EOS, PAD, PAD], [7.0, EOS, PAD, PAD, PAD]])
    assert token_counts(x).tolist() == [3, 2]  # the end token counts, padding never
    p = perplexity(torch.tensor([3.0, 5.0]), token_counts(x))
    assert p["tokens"] == 5
    assert p["nats_per_token"] == pytest.approx(8 / 5)  # not the mean of 3/3 and 5/2 (1.75)
    assert p["ppl"] == pytest.approx(math.exp(1.6))
    assert p["bpd"] == pytest.approx(1.6 / math.log(2))
    with pytest.raises(DataError, match="no tokens"):
        perplexity(torch.tensor([1.0]), torch.tensor([0]))


def test_a_uniform_language_model_has_the_perplexity_of_its_choices():
    """All weights zero: every position is uniform over the V - 2 tokens that can be there
    (never <pad> or <s>), except the last, where only </s> can be (probability 1). So short
    sentences have perplexity exactly V - 2, and one that fills max_len gets its last token
    free."""
    vocab, max_len = 10, 6
    model = dgm.create("lstm-lm", shape=(max_len,), levels=vocab, embed=4, hidden=4)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    short = _rows([1, 3, 4], max_len, vocab)
    res = evaluate_nll(model, short)
    assert res["tokens"] == 2 + 4 + 5
    assert res["ppl"] == pytest.approx(vocab - 2, rel=1e-5)
    assert res["bpd"] == pytest.approx(math.log2(vocab - 2), rel=1e-5)  # bits per token
    assert res["nll_nats"] == pytest.approx((2 + 4 + 5) / 3 * math.log(vocab - 2), rel=1e-5)
    full = _rows([max_len - 1], max_len, vocab)  # 5 words, </s> forced at the last position
    res = evaluate_nll(model, torch.cat([short, full]))
    paid = (2 + 4 + 5 + 5) * math.log(vocab - 2)  # the forced </s> costs nothing
    assert res["tokens"] == 2 + 4 + 5 + 6
    assert res["nats_per_token"] == pytest.approx(paid / 17, rel=1e-5)


def test_likelihood_report_of_a_text_vae_has_the_collapse_diagnostics():
    torch.manual_seed(0)
    vae = dgm.create(
        "text-vae", shape=(7,), levels=12, latent=3, embed=6, hidden=6, decoder_hidden=6
    )
    x = _rows([2, 5, 3, 1, 6, 4, 2, 3], 7, 12)
    out = evaluate_likelihood(vae, x, batch_size=3, num_samples=4)
    assert {"nll_nats", "ppl", "tokens", "nats_per_token", "bpd", "elbo_nats"} <= set(out)
    assert {"kl", "mi", "active_units"} <= set(out)
    assert out["tokens"] == int((x != PAD).sum())
    assert out["ppl"] == pytest.approx(math.exp(out["nll_nats"] * 8 / out["tokens"]))
    assert isinstance(out["active_units"], int) and 0 <= out["active_units"] <= 3
    # the KL is analytic (never negative); He et al.'s MI estimate draws one z per sentence,
    # so it may dip below 0 on eight sentences, but not beyond log N by much
    assert out["kl"] >= 0 and math.isfinite(out["mi"]) and out["mi"] < math.log(8) + 1
    lm = dgm.create("lstm-lm", shape=(7,), levels=12, embed=4, hidden=4)
    assert latent_diagnostics(lm, x) == {}  # no latent code, nothing to diagnose
    assert "kl" not in evaluate_likelihood(lm, x)


# -- the command line (subprocess-free, but each trains a tiny run: slow) ----------------------
WORDS = {
    "subject": ["the cat", "a dog", "the market", "the company", "my friend", "the bank"],
    "verb": ["sat on", "bought", "sold", "looked at", "likes", "saw"],
    "object": ["the mat", "a house", "the shares", "some bread", "the river", "a car"],
}
TINY_VAE = ["--set", "latent=4", "--set", "embed=8", "--set", "hidden=8"]
TINY_VAE += ["--set", "decoder_hidden=8", "--set", "num_samples=4"]


@pytest.fixture(scope="module")
def text_runs(tmp_path_factory):
    """A 40-line text file; a text-vae (word tokens) and an lstm-lm (characters) trained two
    epochs on it, and a one-epoch arm on digits: (folder, file, vae, lm, arm)."""
    from dgm.cli import main

    root = tmp_path_factory.mktemp("text")
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS[k]) for k in WORDS) + " ." for _ in range(40)]
    data = root / "tiny.txt"
    data.write_text("\n".join(lines) + "\n")
    vae, lm, arm = root / "vae", root / "lm", root / "arm"
    assert main(["train", "text-vae", "--data", str(data), "--epochs", "2", "--out", str(vae),
                 *TINY_VAE]) == 0  # fmt: skip
    assert main(["train", "lstm-lm", "--data", str(data), "--set", "tokenizer=char",
                 "--epochs", "2", "--out", str(lm), "--set", "embed=8", "--set", "hidden=8",
                 "--set", "num_samples=2"]) == 0  # fmt: skip
    tiny_arm = ["--set", "hidden=8", "--set", "layers=2", "--set", "num_samples=4"]
    assert main(["train", "arm", "--epochs", "1", "--out", str(arm), *tiny_arm]) == 0
    return root, data, vae, lm, arm


@pytest.mark.slow
def test_eval_and_the_report_of_a_text_vae_give_perplexity_and_diagnostics(text_runs, run_cli):
    _, _, vae, lm, _ = text_runs
    code, out, err = run_cli("eval", vae, "--num-samples", "5", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert {"nll_nats", "ppl", "kl", "mi", "active_units", "tokens", "nats_per_token"} <= set(res)
    assert res["ppl"] == pytest.approx(math.exp(res["nats_per_token"]))
    assert res["bpd"] == pytest.approx(res["nats_per_token"] / math.log(2))  # bits per token
    # the NLL per sentence, times the sentences, over the tokens: the same corpus ratio
    assert res["nll_nats"] * res["n"] / res["tokens"] == pytest.approx(res["nats_per_token"])
    code, out, _ = run_cli("eval", vae, "--num-samples", "5")
    assert code == 0 and "perplexity" in out and "bits per token" in out and "bits/dim" not in out
    assert "active units" in out
    # the end-of-training report has the same numbers (K = 1, the bound trained on)
    results = json.loads((vae / "results.json").read_text())
    assert {"test_ppl", "test_tokens", "test_kl", "test_mi", "test_active_units"} <= set(results)
    assert "perplexity" in (vae / "summary.md").read_text()
    # a language model has no latent code: perplexity, no diagnostics
    code, out, _ = run_cli("eval", lm, "--json")
    res = json.loads(out)
    assert code == 0 and "ppl" in res and "kl" not in res and res["exact"] is True


@pytest.mark.slow
def test_sample_interpolate_and_reconstruct_print_sentences(text_runs, run_cli):
    root, _, vae, lm, _ = text_runs
    vocab = {w for phrases in WORDS.values() for p in phrases for w in p.split()} | {".", "<unk>"}
    code, out, err = run_cli("sample", vae, "-n", "3")
    assert code == 0, err
    assert len(out.splitlines()) == 3
    assert all(set(line.split()) <= vocab for line in out.splitlines())  # words, not ids
    greedy = run_cli("sample", vae, "-n", "2", "--temperature", "0", "--seed", "1")[1]
    code, _, _ = run_cli("sample", vae, "-n", "4", "--top-p", "0.5", "--out", root / "s.txt")
    assert code == 0 and len((root / "s.txt").read_text().splitlines()) == 4
    code, out, _ = run_cli("sample", lm, "-n", "2", "--temperature", "0")
    assert code == 0 and len(out.splitlines()) == 2
    a, b = "the cat sat on a car .", "my friend saw a house ."
    code, out, err = run_cli("interpolate", vae, a, b, "--steps", "4")
    assert code == 0, err
    assert len(out.splitlines()) == 4
    code, out, _ = run_cli("reconstruct", vae, "the cat sat on a car .", "a dog likes the mat .")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4
    assert lines[0] == "> the cat sat on a car ." and lines[2] == "> a dog likes the mat ."
    assert lines[1].startswith("= ") and lines[3].startswith("= ")
    # greedy decoding of z ~ p(z) depends on the draws of z only: a seed gives the same lines
    assert greedy == run_cli("sample", vae, "-n", "2", "--temperature", "0", "--seed", "1")[1]


@pytest.mark.slow
def test_detect_scores_every_line_of_a_text_file(text_runs, run_cli):
    root, _, vae, lm, _ = text_runs
    lines = root / "lines.txt"
    lines.write_text("the cat sat on the mat .\n\nzzz qqq www\nmy friend bought some bread .\n")
    code, out, err = run_cli("detect", lm, lines, "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    rows, summary = rows[:-1], rows[-1]["summary"]
    assert [r["input"].rsplit(":", 1)[1] for r in rows] == ["1", "3", "4"]  # blank: no sentence
    assert [r["tokens"] for r in rows] == [len("the cat sat on the mat .") + 1, 12, 30]
    for r in rows:
        assert r["log_px_per_token"] == pytest.approx(r["log_px"] / r["tokens"])
        assert r["bpd"] == pytest.approx(-r["log_px_per_token"] / math.log(2))
    # characters the run never saw (z, q) are <unk>, the rest are known: a note
    assert "unknown" in rows[1]["note"] and summary["threshold_unit"] == "nats per token"
    code, out, _ = run_cli("detect", vae, lines)
    assert code == 0 and "every word is unknown" in out and "per token" in out
    assert len(out.splitlines()) == 3 + 1 + 1  # the lines, the note, the summary
    # other text, encoded with the run's tokenizer: OOD scores, one with the length taken out
    other = root / "other.txt"
    other.write_text("".join(f"the {w} of a {w} .\n" for w in "xyzuvwqrst" * 3))
    code, out, err = run_cli("ood", vae, "--out", other, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert {"likelihood", "typicality", "likelihood-per-token"} <= set(res["scores"])
    assert res["n_out"] == 3 and res["n_in"] == 4  # the test splits: 10% of 30 and of 40 lines


@pytest.mark.slow
def test_text_and_images_are_not_mixed_up(text_runs, run_cli):
    root, data, vae, lm, arm = text_runs
    from PIL import Image

    Image.new("L", (8, 8)).save(root / "digit.png")
    (root / "binary.txt").write_bytes(bytes(range(256)))
    cases = [
        (("detect", arm, data), "is text, but arm models images"),
        (("detect", vae, root / "digit.png"), "is not text"),
        (("detect", vae, root / "binary.txt"), "not valid UTF-8"),
        (("ood", arm, "--out", data), "is text"),
        (("interpolate", lm, "a b", "c d"), "needs a latent text model"),
        (("interpolate", arm, "a b", "c d"), "needs a latent text model"),
        (("reconstruct", arm, "a sentence"), "is text"),
        (("reconstruct", lm, "a sentence"), "needs a latent text model"),
        (("sample", vae, "--label", "1"), "unlabelled text"),
        (("sample", arm, "--top-p", "0.9"), "--top-p is for text models"),
    ]
    for args, words in cases:
        code, out, err = run_cli(*args)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, (args, err)
        assert "Traceback" not in err and out == ""


def test_a_collapsed_code_is_said_plainly():
    from dgm.pipeline import collapse_line

    used = {"test_kl": 4.0, "test_active_units": 3}
    assert collapse_line(used, "text-vae") is None
    assert collapse_line({}, "lstm-lm") is None  # no latent code
    for collapsed in (
        {"test_kl": 0.004, "test_active_units": 2},
        {"test_kl": 1.0, "test_active_units": 0},
    ):
        line = collapse_line(collapsed, "text-vae")
        assert line is not None and "collapsed" in line and "dgm list text-vae" in line
