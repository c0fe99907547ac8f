"""Molecules: the SMILES and SELFIES tokenizers, the molecule data (named and user files), the
likelihoods of mol-vae and char-rnn over a tiny support, and the commands on a user's .smi."""

from __future__ import annotations

import gzip
import itertools
import json

import numpy as np
import pytest
import torch

from dgm.data import chem, load_dataset
from dgm.data.molecules import rdkit_property, smiles_of
from dgm.data.text import EOS, PAD, TextTokenizer
from dgm.errors import ConfigError, DataError
from dgm.models.molecules import CharRNN, GrammarVAE, MolVAE
from tests.helpers import shared_data, tiny_smiles_file


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DGM_CACHE", str(tmp_path / "cache"))  # never the user's cache


def _sample(name: str, n: int = 500) -> list[str]:
    """The first ``n`` SMILES of a shared dataset (skip when absent)."""
    files = {
        "qm9": ("qm9", "qm9_smiles_props.csv.gz"),
        "zinc250k": ("zinc250k", "train.csv.gz"),
        "moses": ("moses", "train.csv.gz"),
    }
    path = shared_data(*files[name])
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/data)")
    with gzip.open(path, "rt") as f:
        lines = [next(f) for _ in range(n + 1)]
    if name == "qm9":
        return [line.split(",")[1] for line in lines[1:]]
    if name == "moses":
        return [line.strip() for line in lines[1:]]
    return [line.strip() for line in lines[:n]]


# ----------------------------------------------------------------------------- tokenizers


def test_smiles_tokens_keep_atoms_whole():
    tokens = chem.smiles_tokens("C[C@@H](Cl)c1cc[nH]c1%10Br")
    assert tokens == ["C", "[C@@H]", "(", "Cl", ")", "c", "1", "c", "c", "[nH]", "c", "1",
                      "%10", "Br"]  # fmt: skip
    assert chem.smiles_tokens("C&C") is None  # '&' is no SMILES token


@pytest.mark.parametrize("name", ["qm9", "zinc250k", "moses"])
def test_smiles_tokenizer_round_trips_every_molecule(name):
    smiles = _sample(name)
    tok = TextTokenizer.train("smiles", smiles)
    ids = tok.encode_batch(smiles)
    assert all(1 not in seq for seq in ids)  # no unknown token: the vocabulary is the data's
    assert [tok.decode(seq) for seq in ids] == smiles
    for s in smiles[:50]:  # a token is a SMILES token: multi-character atoms stay whole
        assert [tok.token(i) for i in tok.encode(s)] == chem.smiles_tokens(s)


@pytest.mark.parametrize("name", ["qm9", "zinc250k"])
def test_selfies_round_trip_gives_the_same_molecule(name):
    smiles = _sample(name, 200)
    encoded = [chem.to_selfies(s) for s in smiles]
    kept = [(s, e) for s, e in zip(smiles, encoded) if e]
    assert len(kept) >= 0.95 * len(smiles)
    tok = TextTokenizer.train("selfies", [e for _, e in kept])
    for s, e in kept:
        back = tok.decode(tok.encode(e))
        assert back == e
        assert chem.canonical(chem.from_selfies(back)) == chem.canonical(s)


def test_random_selfies_strings_are_all_valid_molecules():
    """SELFIES's promise (Krenn et al. 2020): any string of its symbols is a molecule."""
    tok = TextTokenizer.train("selfies", [chem.to_selfies(s) for s in _sample("qm9", 300)])
    symbols = [tok.token(i) for i in range(4, tok.vocab_size)]
    g = np.random.default_rng(0)
    strings = ["".join(g.choice(symbols, size=int(g.integers(1, 20)))) for _ in range(300)]
    # a string of only branch and ring symbols holds no atom: it decodes to the empty molecule
    # (invalid, as in MOSES); every string with an atom is a valid molecule
    structural = ("Branch", "Ring")
    atoms = [
        s for s in strings if any(not any(k in t for k in structural) for t in s[1:-1].split("]["))
    ]
    assert len(atoms) > 250
    assert all(chem.mol(m) is not None for m in smiles_of(atoms, "selfies"))


# ----------------------------------------------------------------------------- data


def test_user_smi_skips_invalid_lines_and_names_them(tmp_path):
    path = tiny_smiles_file(tmp_path / "m.smi", extra="C1CC\nnot a molecule\nCCO name\n")
    ds = load_dataset(path, molecules=True)
    assert ds.spec.is_molecules and ds.spec.tokenizer == "smiles"
    assert sum(len(s) for s in (ds.train, ds.val, ds.test)) == 61  # 60 + CCO; 2 skipped
    note = next(n for n in ds.notes if "skipped 2 SMILES" in n)
    assert "lines 61, 62" in note
    everything = ds.molecules.train + ds.molecules.val + ds.molecules.test
    assert "CCO" in everything  # the name after the SMILES is not part of it
    # token rows decode to the molecules as read
    assert ds.tokenizer.decode_batch(ds.train.x) == ds.molecules.train


def test_csv_numeric_columns_become_properties(tmp_path):
    smiles = tiny_smiles_file(tmp_path / "m.smi").read_text().split()
    rows = ["name,SMILES,activity"] + [f"m{i},{s},{len(s) * 0.5}" for i, s in enumerate(smiles)]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(tmp_path / "m.csv", properties="activity,qed")
    assert ds.spec.properties == ("activity", "qed")
    assert ds.train.y.shape == (len(ds.train), 2)
    want = np.array([chem.qed(chem.mol(s)) for s in ds.molecules.train])
    np.testing.assert_allclose(ds.train.y[:, 1].numpy(), want, rtol=1e-5)
    assert ds.spec.property_mean[1] == pytest.approx(float(want.mean()), rel=1e-5)
    np.testing.assert_allclose(
        ds.train.y[:, 0].numpy(), [len(s) * 0.5 for s in ds.molecules.train], rtol=1e-6
    )


def test_rdkit_properties_are_cached(tmp_path, monkeypatch):
    smiles = ["CCO", "c1ccccc1", "CC(=O)O"]
    first = rdkit_property(smiles, "logp")
    assert list((tmp_path / "cache" / "properties").glob("logp-*.npy"))
    monkeypatch.setattr(chem, "property_values", lambda *a: pytest.fail("not read from cache"))
    np.testing.assert_array_equal(rdkit_property(smiles, "logp"), first)


def test_penalized_logp_matches_its_definition():
    m = chem.mol("CC1CCCCCCC1")  # a ring of 8: a ring penalty of 2
    assert chem.cycle_penalty(m) == 2
    want = (
        (chem.logp(m) - 2.4570953396190123) / 1.434324401111988
        + (-chem.sa(m) + 3.0525811293166134) / 0.8335207024513095
        + (-2 + 0.0485696876403053) / 0.2860212110245455
    )
    assert chem.penalized_logp(m) == pytest.approx(want)


def test_bad_molecule_files_are_one_line(tmp_path):
    (tmp_path / "bad.smi").write_text("xyz\n&&\n")
    with pytest.raises(DataError, match="none of its 2 lines is a SMILES"):
        load_dataset(tmp_path / "bad.smi")
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(DataError, match=r"no SMILES column \(columns found: a, b\)"):
        load_dataset(tmp_path / "t.csv", molecules=True)
    path = tiny_smiles_file(tmp_path / "m.smi")
    with pytest.raises(ConfigError, match="unknown property 'foo'"):
        load_dataset(path, properties="foo")
    with pytest.raises(DataError, match="representation=smiles"):
        load_dataset(path, tokenizer="char")
    with pytest.raises(DataError, match="not molecules"):
        load_dataset("digits", molecules=True)


def test_long_molecules_are_skipped_with_a_note(tmp_path):
    path = tiny_smiles_file(tmp_path / "m.smi", extra="CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC\n")
    ds = load_dataset(path, max_len=20)
    assert any("molecules longer than max_len - 1 = 19 tokens" in n for n in ds.notes)
    assert ds.spec.shape == (20,)
    kept = ds.molecules.train + ds.molecules.val + ds.molecules.test
    assert kept and "C" * 36 not in kept and all(len(chem.smiles_tokens(s)) <= 19 for s in kept)


def test_models_of_arrays_refuse_molecules(tmp_path):
    import dgm

    ds = load_dataset(tiny_smiles_file(tmp_path / "m.smi"))
    with pytest.raises(DataError, match="is molecules"):
        dgm.registry.get("arm").cls.for_data(ds.spec)
    with pytest.raises(DataError, match="mol-vae models molecules"):
        MolVAE.for_data(load_dataset("digits").spec)


# ----------------------------------------------------------------------------- likelihoods


def _support(max_len: int, tokens: list[int]) -> torch.Tensor:
    """Every row of up to ``max_len - 1`` tokens then the end token, padded."""
    rows = []
    for n in range(max_len):
        for seq in itertools.product(tokens, repeat=n):
            rows.append([*seq, EOS] + [PAD] * (max_len - n - 1))
    return torch.tensor(rows, dtype=torch.float32)


def test_mol_vae_decoder_sums_to_one_over_all_strings():
    torch.manual_seed(0)
    m = MolVAE.from_config(dict(
        shape=(4,), levels=7, latent=3, embed=4, hidden=4, decoder_hidden=5, decoder_layers=2,
        conv_channels=(3,), conv_kernels=(2,),
    )).double().eval()  # fmt: skip
    x = _support(4, [1, 4, 5, 6])  # <unk> and three tokens: 1 + 4 + 16 + 64 strings
    z = torch.randn(1, 3, dtype=torch.float64).expand(len(x), 3)
    with torch.no_grad():
        total = m.recon(x.double(), z).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-6)  # the head's softmax is float32


def test_char_rnn_sums_to_one_over_all_strings():
    torch.manual_seed(0)
    m = CharRNN.from_config(dict(shape=(4,), levels=7, embed=4, hidden=5, layers=2))
    m = m.double().eval()
    x = _support(4, [1, 4, 5, 6])
    with torch.no_grad():
        assert m.log_prob(x.double()).exp().sum().item() == pytest.approx(1.0, abs=1e-6)


def test_property_head_predicts_in_the_data_units(tmp_path):
    ds = load_dataset(tiny_smiles_file(tmp_path / "m.smi"), properties="logp,qed")
    m = MolVAE.for_data(ds.spec, latent=4, hidden=8, decoder_hidden=8, property_hidden=8)
    z = torch.zeros(3, 4)
    with torch.no_grad():
        standard = m.standardized_properties(z)
        real = m.predict_properties(z)
    mean, std = torch.tensor(ds.spec.property_mean), torch.tensor(ds.spec.property_std)
    torch.testing.assert_close(real, standard * std + mean)
    # the joint loss is the VAE's plus the head's squared error, which reaches the head
    m.train()
    loss = m.loss((ds.train.x[:8], ds.train.y[:8]))
    loss.backward()
    assert all(p.grad is not None for p in m.property_head.parameters())


# ----------------------------------------------------------------------------- the commands


@pytest.mark.slow
def test_mol_vae_two_epochs_eval_sample_optimize_detect(tmp_path, run_cli):
    data, run = tiny_smiles_file(tmp_path / "m.smi", lines=80), tmp_path / "run"
    code, _, err = run_cli(
        "train", "mol-vae", "--data", data, "--epochs", "2", "--out", run,
        "--set", "hidden=16", "--set", "decoder_hidden=16", "--set", "latent=8",
        "--set", "representation=selfies",
    )  # fmt: skip
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["spec"]["properties"] == ["logp", "qed", "sa"]  # mol-vae's default
    results = json.loads((run / "results.json").read_text())  # the MOSES metrics at the end
    assert 0 <= results["test_validity"] <= 1 and results["test_molecules_generated"] == 1000
    assert (run / "properties.png").stat().st_size > 1000  # samples' logP, QED, ... vs test
    code, out, err = run_cli("eval", run, "--json", "--num-samples", "4", "--num-generated", "50")
    assert code == 0, err
    res = json.loads(out)
    assert res["nll_nats"] > 0 and res["generated"] == 50
    assert 0 <= res["validity"] <= 1 and 0 <= res["novelty"] <= 1 and "unique@1000" in res
    assert 0 <= res["reconstruction"] <= 1 and res["reconstruction_n"] == 8
    assert 0 <= res["reconstruction_sampled"] <= 1 and res["reconstruction_sampled_n"] == 8
    code, out, err = run_cli("sample", run, "-n", "16", "--out", tmp_path / "s.smi")
    assert code == 0, err
    lines = (tmp_path / "s.smi").read_text().splitlines()
    assert len(lines) == 16
    assert sum(chem.mol(s) is not None for s in lines) >= 14  # SELFIES: empty strings only
    code, out, err = run_cli("sample", run, "-n", "16", "--out", tmp_path / "s.png")
    assert code == 0 and (tmp_path / "s.png").stat().st_size > 1000, err
    code, out, err = run_cli("optimize", run, "--property", "qed", "--steps", "10", "--json")
    assert code == 0, err
    found = json.loads(out)["molecules"]
    assert found and all(
        r["score"] == pytest.approx(chem.qed(chem.mol(r["smiles"]))) for r in found
    )
    code, _, err = run_cli("optimize", run, "--property", "nope", "--steps", "2")
    assert code == 2 and "predicts logp, qed, sa" in err and "\n" not in err.strip()
    # dgm detect: log p per molecule; unparseable lines invalid, too long ones probability 0
    mols = tmp_path / "query.smi"
    mols.write_text("CCO\nc1ccccc1O\nC1CC(\n" + "C" * 300 + "\nCCBr\n")
    code, out, err = run_cli("detect", run, mols, "--json", "--num-samples", "2")
    assert code == 0, err
    *rows, summary = [json.loads(line) for line in out.splitlines()]
    assert [r["input"].rsplit(":", 1)[1] for r in rows] == ["1", "2", "3", "4", "5"]
    assert rows[0]["log_px"] < 0 and rows[0]["decision"] in ("confident", "uncertain-object")
    assert "RDKit" in rows[2]["error"] and "decision" not in rows[2]
    assert rows[3]["log_px"] is None and rows[3]["decision"] == "uncertain-object"
    assert "probability 0" in rows[3]["note"] and "longer than" in rows[3]["note"]
    assert rows[4]["log_px"] is None and "1 token outside" in rows[4]["note"]  # Br: unknown
    assert summary["summary"]["inputs"] == 5 and summary["summary"]["invalid"] == 1
    bad = tmp_path / "bad.smi"
    bad.write_text("C1CC(\nxyz\n")
    code, _, err = run_cli("detect", run, bad)
    assert code == 2 and "none of its 2 lines" in err
    csv_file = tmp_path / "q.csv"
    csv_file.write_text("name,value\na,1\n")
    code, _, err = run_cli("detect", run, csv_file)
    assert code == 2 and "columns found: name, value" in err


@pytest.mark.slow
def test_char_rnn_two_epochs_and_refusals(tmp_path, run_cli):
    data, run = tiny_smiles_file(tmp_path / "m.smi"), tmp_path / "run"
    code, out, err = run_cli(
        "train", "char-rnn", "--data", data, "--epochs", "2", "--out", run,
        "--set", "hidden=16", "--set", "layers=1",
    )  # fmt: skip
    assert code == 0, err
    assert "nats per molecule" in out and "test molecules" in err
    code, out, err = run_cli("eval", run, "--json", "--num-generated", "40")
    assert code == 0, err
    res = json.loads(out)
    assert res["exact"] and "validity" in res and "reconstruction" not in res
    assert res["unit"] == "molecule"
    code, _, err = run_cli("optimize", run, "--property", "qed")
    assert code == 2 and "char-rnn has none" in err
    code, _, err = run_cli("train", "arm", "--data", data, "--epochs", "1", "--out", tmp_path / "a")
    assert code == 2 and "is molecules" in err
    code, _, err = run_cli(
        "train", "mol-vae", "--data", "digits", "--epochs", "1", "--out", tmp_path / "b"
    )
    assert code == 2 and "digits is not molecules" in err
    assert not (tmp_path / "b").exists()


# ----------------------------------------------------------------------------- the grammar VAE

# a SMILES vocabulary of two atoms, a ring label and a bond (no branches): the grammar's terminals
TINY_VOCAB = ("<pad>", "<unk>", "<s>", "</s>", "C", "O", "1", "=")


def _grammar_vae(max_rules: int = 0, **kw) -> GrammarVAE:
    torch.manual_seed(0)
    return GrammarVAE.from_config(dict(
        shape=(4,), levels=len(TINY_VOCAB), vocabulary=TINY_VOCAB, latent=3, embed=4, hidden=4,
        decoder_hidden=5, decoder_layers=2, conv_channels=(3,), conv_kernels=(2,),
        max_rules=max_rules, **kw,
    ))  # fmt: skip


@pytest.mark.parametrize("max_rules", [0, 6, 20])
def test_grammar_vae_decoder_sums_to_one_over_all_strings(max_rules):
    # every row of up to 3 tokens over the vocabulary (most are no SMILES: -inf); the masks carry
    # the rule budget (6 cuts derivations such as COC's 8 rules) and the token budget (max_len
    # - 1 = 3: the binding one at 20), so the rows hold all of p(x|z)'s mass either way
    m = _grammar_vae(max_rules).double().eval()
    x = _support(4, [1, 4, 5, 6, 7])
    z = torch.randn(1, 3, dtype=torch.float64).expand(len(x), 3)
    with torch.no_grad():
        logp = m.recon(x.double(), z)
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-6)
    strings = [[TINY_VOCAB[int(i)] for i in row if i not in (EOS, PAD)] for row in x]
    # positive exactly on the strings the grammar derives within the budgets
    derivable = [
        r is not None and len(r) <= m.max_rules for r in (m.grammar.parse(s) for s in strings)
    ]
    assert torch.equal(torch.isfinite(logp), torch.tensor(derivable))
    # the grammar does not pair ring labels (RDKit says C1C is no molecule); a bond must be
    # followed by an atom or a ring label; the derivations of C1C and COC take 8 rules
    assert not derivable[strings.index(["C", "="])]
    assert derivable[strings.index(["C", "1", "C"])] == (m.max_rules >= 8)
    assert derivable[strings.index(["C", "O", "C"])] == (m.max_rules >= 8)
    assert derivable[strings.index(["C", "O"])]


def test_grammar_vae_samples_are_complete_parses(tmp_path):
    ds = load_dataset(tiny_smiles_file(tmp_path / "m.smi"), properties="logp")
    m = GrammarVAE.for_data(ds.spec, latent=4, hidden=8, decoder_hidden=8, property_hidden=8)
    torch.manual_seed(1)
    x = m.sample(300)  # an untrained decoder: any rule the masks allow
    m.check_input(x)  # every row is a row of the layout: one end token, padding after it
    _, ok = m.derivations(x)
    assert bool(ok.all())  # ... and the string of a complete derivation within the budgets
    texts = ds.tokenizer.decode_batch(x)
    assert all(m.grammar.parse_smiles(s) is not None for s in texts)
    # the training molecules all have derivations, and their log p is finite
    _, ok = m.derivations(ds.train.x)
    assert bool(ok.all())
    with torch.no_grad():
        assert torch.isfinite(m.log_prob(ds.train.x[:8], num_samples=3)).all()
    with pytest.raises(ConfigError, match="temperature only"):
        m.sample(2, top_p=0.9)


def test_grammar_vae_refuses_selfies_and_scores_underivable_rows_minus_inf(tmp_path):
    path = tiny_smiles_file(tmp_path / "m.smi")
    ds = load_dataset(path, representation="selfies", properties="logp")
    with pytest.raises(DataError, match="representation=smiles"):
        GrammarVAE.for_data(ds.spec)
    m = _grammar_vae().eval()
    x = torch.tensor([[4.0, 7.0, EOS, PAD], [4.0, 5.0, 4.0, EOS]])  # "C=" ends on a bond; "COC"
    with torch.no_grad():
        logp = m.log_prob(x, num_samples=2)
    assert logp[0].item() == float("-inf") and torch.isfinite(logp[1])


@pytest.mark.slow
def test_grammar_vae_two_epochs_eval_sample_optimize(tmp_path, run_cli):
    data, run = tiny_smiles_file(tmp_path / "m.smi", lines=80), tmp_path / "run"
    code, _, err = run_cli(
        "train", "grammar-vae", "--data", data, "--epochs", "2", "--out", run,
        "--set", "hidden=16", "--set", "decoder_hidden=16", "--set", "latent=8",
    )  # fmt: skip
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["spec"]["vocabulary"][4:]  # the tokens the grammar is built on
    code, out, err = run_cli("eval", run, "--json", "--num-samples", "4", "--num-generated", "50")
    assert code == 0, err
    res = json.loads(out)
    assert res["nll_nats"] > 0 and res["generated"] == 50 and 0 <= res["validity"] <= 1
    code, out, err = run_cli("sample", run, "-n", "32", "--out", tmp_path / "s.smi")
    assert code == 0, err
    model = GrammarVAE.for_data(load_dataset(data, properties="logp,qed,sa").spec)
    lines = (tmp_path / "s.smi").read_text().splitlines()
    assert len(lines) == 32 and all(model.grammar.parse_smiles(s) is not None for s in lines)
    code, out, err = run_cli("optimize", run, "--property", "logp", "--steps", "5", "--json")
    assert code == 0, err
    code, _, err = run_cli(
        "train", "grammar-vae", "--data", data, "--epochs", "1", "--out", tmp_path / "b",
        "--set", "representation=selfies",
    )  # fmt: skip
    assert code == 2 and "representation=smiles" in err and not (tmp_path / "b").exists()


def test_molecule_models_never_draw_unk_or_an_empty_string(tmp_path):
    torch.manual_seed(0)
    m = CharRNN.from_config(dict(shape=(6,), levels=8, embed=4, hidden=5, layers=1)).eval()
    x = m.sample(300)  # untrained: every token the head allows
    assert not (x == 1).any() and not (x[:, 0] == EOS).any()  # <unk> is id 1
    # those strings have probability 0: the rest of the support still sums to 1
    support = _support(4, [1, 4, 5])
    m4 = CharRNN.from_config(dict(shape=(4,), levels=6, embed=4, hidden=5, layers=1)).double()
    with torch.no_grad():
        logp = m4.eval().log_prob(support.double())
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-6)
    assert logp[0].item() == float("-inf")  # the empty string
    assert torch.isinf(logp[(support == 1).any(1)]).all()


def test_molecules_with_tokens_outside_the_vocabulary_are_skipped_with_a_note(tmp_path):
    path = tmp_path / "m.smi"
    path.write_text("CCO\nCCN\nCCCO\nCCBr\n" * 5)
    tok = TextTokenizer.train("smiles", ["CCO", "CCN"])  # a run's tokenizer: no Br
    ds = load_dataset(path, tokenizer=tok, properties="none")
    assert "skipped 5 molecules with tokens the tokenizer's vocabulary lacks" in " ".join(ds.notes)
    total = len(ds.train) + len(ds.val) + len(ds.test)
    assert total == 15


def test_canonical_smiles_of_a_large_list_are_cached_without_keeping_molecules(monkeypatch):
    from dgm.data import molecules

    monkeypatch.setattr(molecules, "PARALLEL_FROM", 3)  # "large" from 3 strings
    monkeypatch.setattr(molecules.os, "cpu_count", lambda: 1)  # no worker processes in tests
    smiles = ["OCC", "C1CC1", "not a molecule", "c1ccccc1"]
    first = molecules.canonical_smiles(smiles)
    assert first == ["CCO", "C1CC1", "", "c1ccccc1"]
    files = list((molecules.cache_dir() / "canonical").glob("*.txt.gz"))
    assert len(files) == 1
    monkeypatch.setattr(chem, "canonical", lambda s: pytest.fail("computed again"))
    assert molecules.canonical_smiles(smiles) == first  # read back from the cache
