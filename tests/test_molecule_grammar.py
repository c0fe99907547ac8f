"""The SMILES grammar of the grammar VAE: strings <-> leftmost derivations on real molecules,
one derivation per string (LL(1), and by enumeration), the stack decoder, the masks, the saved
form."""

from __future__ import annotations

import gzip
import json
import math
import random
from functools import cache
from pathlib import Path

import pytest
import torch

from dgm.data.chem import smiles_tokens
from dgm.models.molecules.grammar import Grammar, StackState, decode, ll1_conflicts

DATA = Path("/work/shared/data")
# (file, column of the SMILES, header line) for the three molecule benchmarks
DATASETS = {
    "qm9": (DATA / "qm9" / "qm9_smiles_props.csv.gz", 1, True),
    "zinc250k": (DATA / "zinc250k" / "train.csv.gz", 0, False),
    "moses": (DATA / "moses" / "train.csv.gz", 0, True),
}
SAMPLE = 2000


def _sample(name: str) -> list[str]:
    if not DATASETS[name][0].exists():
        pytest.skip(f"{DATASETS[name][0]} is not here")
    return list(_read_sample(name))


@cache
def _read_sample(name: str) -> tuple[str, ...]:
    path, column, header = DATASETS[name]
    with gzip.open(path, "rt") as f:
        lines = f.read().splitlines()[1 if header else 0 :]
    rows = random.Random(0).sample(lines, SAMPLE)
    return tuple(row.split(",")[column].strip() for row in rows)


def _toy() -> Grammar:
    """Every structural rule, the dot included, over two atoms, one bond and one ring label."""
    return Grammar.smiles([], ["1"], dot=True, organic=["C", "c"], bonds=["="])


def _derivations(g: Grammar, max_len: int) -> list[tuple[int, ...]]:
    """Every complete leftmost derivation of at most ``max_len`` rules, by brute force."""
    out: list[tuple[int, ...]] = []

    def walk(stack: list[str], rules: list[int], cost: int) -> None:
        if not stack:
            out.append(tuple(rules))
            return
        top = stack[-1]
        for i, (lhs, rhs) in enumerate(g.rules):
            if lhs != top:
                continue
            pushed = [s for s in reversed(rhs) if s in g.nonterminal_index]
            after = cost - g.min_steps[top] + sum(g.min_steps[s] for s in pushed)
            if len(rules) + 1 + after <= max_len:
                walk(stack[:-1] + pushed, [*rules, i], after)

    walk([g.start], [], g.min_steps[g.start])
    return out


def _pad(g: Grammar, seqs: list[list[int]] | list[tuple[int, ...]], width: int) -> torch.Tensor:
    out = torch.full((len(seqs), width), g.pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s)
    return out


# ----------------------------------------------------------------------------- real molecules


@pytest.mark.parametrize("name", list(DATASETS))
def test_parse_then_generate_gives_every_molecule_back(name):
    smiles = _sample(name)
    data_grammar = Grammar.for_smiles(smiles)
    for g, label in ((data_grammar, "its own"), (Grammar.default(), "default")):
        parsed, longest = 0, 0
        for s in smiles:
            tokens = smiles_tokens(s)
            assert tokens is not None, s
            rules = g.parse(tokens)
            if rules is None:
                continue
            parsed += 1
            longest = max(longest, len(rules))
            assert g.generate(rules) == tokens, s
            assert g.generate_smiles(rules) == s
            # one rule per step and each terminal from exactly one rule: never fewer rules
            assert len(rules) >= len(tokens)
        print(
            f"{name} ({label} grammar, {g.num_rules} rules): parsed {parsed}/{len(smiles)}, "
            f"longest derivation {longest} rules"
        )
        assert parsed == len(smiles)
    # the grammar built from the data holds exactly the data's bracket atoms and ring labels
    brackets = {t for s in smiles for t in smiles_tokens(s) if t.startswith("[")}
    assert {t for t in data_grammar.terminals if t.startswith("[")} == brackets


def test_the_grammar_is_ll1_so_each_string_has_one_derivation():
    smiles = _sample("zinc250k")
    g = Grammar.for_smiles(smiles)
    assert ll1_conflicts(g.rules, g.start) == []
    assert ll1_conflicts(Grammar.default().rules, "smiles") == []
    # the derivation is one rule per nonterminal the parser meets: re-running it from the
    # rules' own left-hand sides retraces it, and it is the same every time
    for s in smiles[:200]:
        rules = g.parse_smiles(s)
        assert rules is not None
        assert g.parse_smiles(s) == rules
        nts = g.expanded_nonterminals(_pad(g, [rules], len(rules) + 3))[0]
        assert nts[: len(rules)].tolist() == [g.nonterminal_index[g.rules[r][0]] for r in rules]
        assert nts[len(rules) :].tolist() == [g.end] * 3


def test_left_recursive_grammar_of_the_paper_is_refused():
    # Kusner et al.'s chain rules: left recursion, and "bond" opening both a ring bond and the
    # next atom; neither is LL(1)
    paper = [
        ("smiles", ("chain",)),
        ("chain", ("branched_atom",)),
        ("chain", ("chain", "branched_atom")),
        ("chain", ("chain", "bond", "branched_atom")),
        ("branched_atom", ("atom",)),
        ("branched_atom", ("atom", "RB")),
        ("RB", ("ringbond",)),
        ("ringbond", ("1",)),
        ("ringbond", ("bond", "1")),
        ("atom", ("C",)),
        ("bond", ("=",)),
    ]
    assert ll1_conflicts(paper, "smiles")
    with pytest.raises(ValueError, match="not LL"):
        Grammar(paper)


def test_no_two_derivations_give_the_same_string():
    g = _toy()
    derivations = _derivations(g, 15)
    strings = {}
    for d in derivations:
        tokens = tuple(g.generate(d))
        assert tokens not in strings, (tokens, d, strings.get(tokens))
        strings[tokens] = d
        assert g.parse(list(tokens)) == list(d)
    assert len(derivations) > 5000
    assert "C.c" in {"".join(t) for t in strings}
    assert {"C=1CC1", "C(=C)c", "C(.C)C"} <= {"".join(t) for t in strings}


# ----------------------------------------------------------------------------- the language


def test_what_is_not_in_the_language_does_not_parse():
    g = Grammar.for_smiles(["CCO", "c1ccccc1C(=O)N"])
    assert g.parse_smiles("c1ccccc1CC(=O)O") is not None
    assert g.parse_smiles("C[NH3+]") is None  # a bracket atom the molecules never had
    assert Grammar.default().parse_smiles("C[NH3+]") is not None
    assert Grammar.default().parse_smiles("[Se]1cccc1") is None
    assert g.parse_smiles("C2CC2") is None  # ring label 2 unseen
    assert g.parse_smiles("C.C") is None  # no dot in the data
    assert Grammar.for_smiles(["C.C"]).parse_smiles("C.C") is not None
    for bad in ["", "=C", "C(", "C)", "C()", "C(C)1CC1", "C==C", "1CC", "C=", "C~C", "(C)C"]:
        assert g.parse_smiles(bad) is None, bad
    # what does parse is what OpenSMILES allows: ring bonds before branches, bond on the ring bond
    for ok in ["C1(C)CC1", "C=1CC1", "C(=C)(C)C", "C(C)=C"]:
        rules = g.parse_smiles(ok)
        assert rules is not None and g.generate_smiles(rules) == ok


def test_for_smiles_collects_brackets_ring_labels_and_the_dot():
    g = Grammar.for_smiles(["c1cc[nH]c1", "C%10CC%10", "[Na+].[Cl-]", "not smiles!"])
    assert {"[nH]", "[Na+]", "[Cl-]", "%10", "1", "."} <= set(g.terminals)
    assert "2" not in g.terminals
    assert g.parse_smiles("C%10CC%10") is not None
    assert g.generate_smiles(g.parse_smiles("[Na+].[Cl-]")) == "[Na+].[Cl-]"
    with pytest.raises(ValueError):
        Grammar.for_smiles(["!"])


def test_generate_refuses_what_is_not_a_complete_derivation():
    g = Grammar.default()
    rules = g.parse_smiles("CC(=O)O")
    with pytest.raises(ValueError, match="unfinished"):
        g.generate(rules[:-3])
    with pytest.raises(ValueError, match="expands"):
        g.generate([rules[1], rules[0], *rules[2:]])
    with pytest.raises(ValueError, match="after the derivation ended"):
        g.generate([*rules, rules[-1]])
    assert g.generate([*rules, g.pad_id, g.pad_id]) == smiles_tokens("CC(=O)O")


def test_to_dict_from_dict_round_trip():
    g = Grammar.for_smiles(["C[C@@H](O)c1cc[nH]c1", "C%12CC%12", "C.[Na+]"])
    back = Grammar.from_dict(json.loads(json.dumps(g.to_dict())))
    assert back == g
    assert back.rules == g.rules and back.start == g.start
    assert back.nonterminals == g.nonterminals and back.terminals == g.terminals
    assert torch.equal(back.lhs_mask, g.lhs_mask)
    assert back.parse_smiles("C[C@@H](O)c1cc[nH]c1") == g.parse_smiles("C[C@@H](O)c1cc[nH]c1")
    with pytest.raises(ValueError, match="format"):
        Grammar.from_dict({**g.to_dict(), "format": "other"})


# ----------------------------------------------------------------------------- masks


def test_lhs_mask_and_expanded_nonterminals():
    g = Grammar.default()
    mask = g.lhs_mask
    assert mask.shape == (g.num_nonterminals, g.num_rules)
    assert mask.sum(0).tolist() == [1] * g.num_rules  # each rule has one lhs
    assert mask[g.nonterminal_index["bond"]].sum() == 6
    a, b = g.parse_smiles("C"), g.parse_smiles("C=1CC1")
    names = [g.nonterminals[i] for i in g.expanded_nonterminals(_pad(g, [a], 4))[0].tolist()]
    assert names == ["smiles", "chain", "atom", "after_atom"]
    batch = _pad(g, [a, b], len(b) + 1)
    nts = g.expanded_nonterminals(batch)
    assert nts[0, len(a) :].eq(g.end).all() and nts[1, -1] == g.end
    assert nts[1, : len(b)].tolist() == [g.nonterminal_index[g.rules[r][0]] for r in b]
    # another pad id, and sequences that are not derivations
    assert torch.equal(g.expanded_nonterminals(batch.masked_fill(batch == g.pad_id, -1), -1), nts)
    with pytest.raises(ValueError, match="does not expand"):
        g.expanded_nonterminals(_pad(g, [b[:2] + b[3:]], len(b)))
    with pytest.raises(ValueError, match="not a complete derivation"):
        g.expanded_nonterminals(_pad(g, [b[:-1]], len(b) - 1))
    with pytest.raises(ValueError, match="is a rule id"):
        g.expanded_nonterminals(batch, pad_id=0)


def test_budget_masks_give_a_distribution_over_derivations():
    # with step-dependent logits, the masked softmaxes' probabilities of all derivations of at
    # most T rules sum to 1 with the budget, and miss the unfinished mass without it
    g = _toy()
    steps = 14
    derivations = _derivations(g, steps)
    batch = _pad(g, derivations, steps)
    logits = torch.randn(steps, g.num_rules, generator=torch.Generator().manual_seed(0)) * 2
    real = batch != g.pad_id
    for budget in (True, False):
        masks = g.step_masks(batch, budget=budget)
        chosen = masks.gather(2, batch.clamp(max=g.num_rules - 1)[..., None])[..., 0]
        assert chosen[real].all()  # every derivation's rules are allowed where taken
        assert not masks[~real].any()  # nothing is allowed once a row has finished
        logp = torch.log_softmax(
            logits.expand(len(batch), -1, -1).masked_fill(~masks, -math.inf), -1
        )
        step_logp = logp.gather(2, batch.clamp(max=g.num_rules - 1)[..., None])[..., 0]
        total = torch.where(real, step_logp, 0.0).sum(1).double().exp().sum().item()
        if budget:
            assert total == pytest.approx(1.0, abs=1e-5)
        else:
            assert 0 < total < 0.99
    # the budget removes exactly the rules that could no longer finish in time
    masks = g.step_masks(batch, budget=True)
    plain = g.step_masks(batch, budget=False)
    assert (masks <= plain).all() and (masks.sum(-1) < plain.sum(-1)).any()


# ----------------------------------------------------------------------------- decoding


def test_uniform_decodes_parse_back_to_their_rules():
    g = Grammar.default()
    n, steps = 1000, 300
    uniform = lambda t, previous, top: torch.zeros(n, g.num_rules)  # noqa: E731
    gen = torch.Generator().manual_seed(0)
    rules, finished = decode(g, uniform, n, steps, budget=False, generator=gen)
    share = finished.float().mean().item()
    print(f"uniform logits, no budget: {share:.1%} of {n} finish within {steps} steps")
    assert 0.5 < share < 1.0
    for i in range(n):
        row = rules[i]
        length = int((row != g.pad_id).sum())
        if finished[i]:
            tokens = g.generate(row)
            assert g.parse(tokens) == row[:length].tolist()
            assert row[length:].eq(g.pad_id).all()
        else:
            assert length == steps
            with pytest.raises(ValueError, match="unfinished"):
                g.generate(row)
    # the budget finishes every row, by only ever choosing rules the teacher-forced masks allow
    rules, finished = decode(g, uniform, n, steps, budget=True, generator=gen)
    assert finished.all()
    masks = g.step_masks(rules, budget=True)
    real = rules != g.pad_id
    assert masks.gather(2, rules.clamp(max=g.num_rules - 1)[..., None])[..., 0][real].all()
    for row in rules:
        length = int((row != g.pad_id).sum())
        assert g.parse(g.generate(row)) == row[:length].tolist()
    assert int(real.sum(1).max()) > 250  # long derivations were cut to fit, not avoided


def test_decode_follows_the_logits_and_the_stack():
    g = Grammar.default()
    atom_c = g.rule_index[("atom", ("C",))]
    empty = g.rule_index[("after_atom", ())]
    more = g.rule_index[("after_atom", ("atom", "after_atom"))]
    seen = []

    def greedy(t, previous, top):
        seen.append((previous.clone(), top.clone()))
        logits = torch.zeros(2, g.num_rules)
        logits[:, atom_c] = 5.0
        logits[:, more] = 1.0
        logits[:, empty] = 5.0 if t > 6 else -5.0  # a chain of C atoms, then stop
        return logits

    rules, finished = decode(g, greedy, 2, 40, temperature=0)
    assert finished.all()
    assert g.generate_smiles(rules[0]) == "CCC"
    assert seen[0][0].eq(g.pad_id).all() and seen[1][0].tolist() == rules[:, 0].tolist()
    assert [g.nonterminals[int(top[0])] for _, top in seen[:3]] == ["smiles", "chain", "atom"]
    with pytest.raises(ValueError, match="shortest derivation"):
        StackState(g, 1, 3)


def test_stack_state_steps_a_batch():
    g = Grammar.default()
    a, b = g.parse_smiles("CO"), g.parse_smiles("C(C)(C)C1CC1")
    state = StackState(g, 2, 40)
    for t in range(len(b)):
        assert state.finished.tolist() == [t >= len(a), False]
        step = torch.tensor([a[t] if t < len(a) else g.pad_id, b[t]])
        assert state.allowed()[torch.arange(2), step.clamp(max=g.num_rules - 1)][1]
        state.advance(step)
    assert state.finished.all() and state.top().eq(g.end).all()
    with pytest.raises(ValueError, match="does not expand"):
        StackState(g, 1, 40).advance(torch.tensor([1]))
