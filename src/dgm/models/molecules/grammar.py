"""The context-free grammar of SMILES that the grammar VAE (Kusner, Paige & Hernandez-Lobato 2017,
"Grammar variational autoencoder") decodes with: a molecule is the sequence of production rules
of its leftmost derivation, and the decoder picks one rule per step, only among the rules whose
left-hand side is the nonterminal on top of a stack.

The grammar follows the OpenSMILES structure of Kusner et al.'s, on the tokens of
:func:`dgm.data.chem.smiles_tokens` (a bracket atom such as ``[nH]`` is one terminal)::

    smiles       -> chain
    chain        -> atom after_atom
    after_atom   -> ring_label after_atom | bond after_bond | branch after_branch
                  | atom after_atom | '.' chain | (empty)
    after_bond   -> ring_label after_atom | atom after_atom
    after_branch -> branch after_branch | bond atom after_atom | atom after_atom
                  | '.' chain | (empty)
    branch       -> '(' branch_body ')'
    branch_body  -> chain | bond chain | '.' chain
    atom         -> 'C' | 'c' | 'Cl' | ... | '[nH]' | '[C@@H]' | ...
    bond         -> '-' | '=' | '#' | ':' | '/' | '\\'
    ring_label   -> '1' | '2' | ... | '%10' | ...

Kusner et al. write ``chain -> branched_atom | chain branched_atom | chain bond branched_atom``
and ``branched_atom -> atom | atom RB | atom BB | atom RB BB``: left-recursive, and after an atom
a bond may open a ring bond (``C=1``) or the chain's next atom (``C=C``), which one token of
look-ahead cannot tell apart. Here the chain is right-recursive and the bond is factored out:
``after_atom`` is the paper's RB slot (ring bonds, then the first branch, or the next atom),
``after_branch`` its BB slot (more branches, or the next atom), and ``after_bond`` decides between
a ring bond and a chain bond on the token after the bond. The language is the same (ring bonds
before branches, a branch may open with a bond or a dot), and the grammar is LL(1):
:class:`Grammar` refuses any rule set whose LL(1) table has a conflict, so every token sequence
has at most one leftmost derivation, :meth:`Grammar.parse` finds it deterministically, and a
model's probability of a rule sequence is its probability of the string.

Every atom is one rule (``atom -> 'Cl'``) rather than the paper's ``atom -> aliphatic_organic
-> 'Cl'``: one step per atom fewer, and the decoder's softmax over atoms is the same choice.
Bracket atoms and ring labels come from the training molecules (:meth:`Grammar.for_smiles`), and
the dot only when some molecule has one; the rules themselves are what a model saves
(:meth:`Grammar.to_dict`), so a trained model reloads exactly its own rule indices.

The grammar does not pair ring labels nor check valences (both are context-sensitive): a
derivation is always a string of the grammar's language, and RDKit says whether it is a molecule.

Decoding (:class:`StackState`, :func:`decode`) keeps one stack of nonterminals per row. With
``budget=True`` (the default) a rule is allowed only when the derivation can still finish within
the remaining steps (each nonterminal's shortest derivation is known), so every sampled sequence
is complete by ``max_steps`` and the masked softmaxes give a proper distribution over derivations
of at most ``max_steps`` rules: near the end only terminating rules remain. With
``budget=False`` the masks are the paper's (the left-hand side only) and a row whose stack is
not empty at ``max_steps`` comes back unfinished (Kusner et al. turn it into an invalid string);
:meth:`Grammar.generate` refuses such a sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from dgm.data.chem import smiles_tokens

Rule = tuple[str, tuple[str, ...]]

FORMAT = "dgm.grammar"
VERSION = 1

START = "smiles"
# OpenSMILES's organic subset, aliphatic then aromatic: atoms written without brackets
ORGANIC = ("B", "C", "N", "O", "P", "S", "F", "Cl", "Br", "I", "b", "c", "n", "o", "p", "s")
BONDS = ("-", "=", "#", ":", "/", "\\")
DOT = "."
# every bracket atom of QM9, ZINC-250k's training split and MOSES's training split
DEFAULT_BRACKETS = (
    "[C-]",
    "[C@@H]",
    "[C@@]",
    "[C@H]",
    "[C@]",
    "[CH-]",
    "[CH2-]",
    "[H]",
    "[N+]",
    "[N-]",
    "[NH+]",
    "[NH-]",
    "[NH2+]",
    "[NH3+]",
    "[O+]",
    "[O-]",
    "[OH+]",
    "[P+]",
    "[P@@H]",
    "[P@@]",
    "[P@]",
    "[PH+]",
    "[PH2]",
    "[PH]",
    "[S+]",
    "[S-]",
    "[S@@+]",
    "[S@@]",
    "[S@]",
    "[SH+]",
    "[n+]",
    "[n-]",
    "[nH+]",
    "[nH]",
    "[o+]",
    "[s+]",
)
DEFAULT_RINGS = tuple(str(i) for i in range(1, 10))

# the look-ahead past the last token: no SMILES token is empty
_END = ""


def _ring_key(label: str) -> int:
    return int(label.lstrip("%"))


def smiles_rules(
    brackets: Iterable[str] = DEFAULT_BRACKETS,
    rings: Iterable[str] = DEFAULT_RINGS,
    *,
    dot: bool = False,
    organic: Iterable[str] = ORGANIC,
    bonds: Iterable[str] = BONDS,
    branches: bool = True,
) -> list[Rule]:
    """The SMILES rules (module docstring) over these terminals; alternatives that need an empty
    class (no ring labels, no bonds, no dot, no branches) are left out, so every nonterminal
    stays productive and reachable."""
    atoms = list(dict.fromkeys([*organic, *brackets]))
    rings = list(dict.fromkeys(rings))
    bonds = list(dict.fromkeys(bonds))
    for token in [*atoms, *rings, *bonds]:
        # a terminal the tokenizer would split (or merge) could never match a token
        if smiles_tokens(token) != [token]:
            raise ValueError(f"{token!r} is not one SMILES token")
    for label in rings:
        if not (label.isdigit() and len(label) == 1) and not (
            label.startswith("%") and label[1:].isdigit()
        ):
            raise ValueError(f"{label!r} is not a ring label (a digit or %nn)")
    for token in atoms:
        if token[0] in "0123456789%()=#-:/\\.":
            raise ValueError(f"{token!r} is not an atom")
    if not atoms:
        raise ValueError("a SMILES grammar needs at least one atom")

    rules: list[Rule] = [(START, ("chain",)), ("chain", ("atom", "after_atom"))]
    if rings:
        rules.append(("after_atom", ("ring_label", "after_atom")))
    if bonds:
        rules.append(("after_atom", ("bond", "after_bond")))
    if branches:
        rules.append(("after_atom", ("branch", "after_branch")))
    rules.append(("after_atom", ("atom", "after_atom")))
    if dot:
        rules.append(("after_atom", (DOT, "chain")))
    rules.append(("after_atom", ()))
    if bonds:
        if rings:
            rules.append(("after_bond", ("ring_label", "after_atom")))
        rules.append(("after_bond", ("atom", "after_atom")))
    if branches:
        rules.append(("after_branch", ("branch", "after_branch")))
        if bonds:
            rules.append(("after_branch", ("bond", "atom", "after_atom")))
        rules.append(("after_branch", ("atom", "after_atom")))
        if dot:
            rules.append(("after_branch", (DOT, "chain")))
        rules += [("after_branch", ()), ("branch", ("(", "branch_body", ")"))]
        rules.append(("branch_body", ("chain",)))
        if bonds:
            rules.append(("branch_body", ("bond", "chain")))
        if dot:
            rules.append(("branch_body", (DOT, "chain")))
    rules += [("atom", (a,)) for a in atoms]
    rules += [("bond", (b,)) for b in bonds]
    rules += [("ring_label", (r,)) for r in rings]
    return rules


def _ll1(rules: Sequence[Rule], start: str) -> tuple[dict[tuple[str, str], int], list[str]]:
    """The LL(1) table, (nonterminal, next token or end) -> rule, and its conflicts."""
    nonterminals = {lhs for lhs, _ in rules}
    nullable: set[str] = set()
    first: dict[str, set[str]] = {a: set() for a in nonterminals}

    def first_of(symbols: Sequence[str]) -> tuple[set[str], bool]:
        out: set[str] = set()
        for s in symbols:
            if s not in nonterminals:
                return out | {s}, False
            out |= first[s]
            if s not in nullable:
                return out, False
        return out, True

    changed = True
    while changed:  # FIRST and nullable: least fixed point
        changed = False
        for lhs, rhs in rules:
            f, null = first_of(rhs)
            if not f <= first[lhs]:
                first[lhs] |= f
                changed = True
            if null and lhs not in nullable:
                nullable.add(lhs)
                changed = True
    follow: dict[str, set[str]] = {a: set() for a in nonterminals}
    follow[start].add(_END)
    changed = True
    while changed:  # FOLLOW: least fixed point
        changed = False
        for lhs, rhs in rules:
            for i, s in enumerate(rhs):
                if s not in nonterminals:
                    continue
                f, null = first_of(rhs[i + 1 :])
                if null:
                    f = f | follow[lhs]
                if not f <= follow[s]:
                    follow[s] |= f
                    changed = True
    table: dict[tuple[str, str], int] = {}
    conflicts = []
    for i, (lhs, rhs) in enumerate(rules):
        f, null = first_of(rhs)
        for a in sorted(f | (follow[lhs] if null else set())):
            j = table.setdefault((lhs, a), i)
            if j != i:
                conflicts.append(f"{lhs} on {a or 'end'!r}: rules {j}, {i}")
    return table, conflicts


def ll1_conflicts(rules: Sequence[tuple[str, Sequence[str]]], start: str) -> list[str]:
    """The LL(1) table's conflicts, one line each (``A on 'x': rules i, j``): empty exactly when
    one token of look-ahead always picks the rule, so no string has two leftmost derivations."""
    return _ll1([(lhs, tuple(rhs)) for lhs, rhs in rules], start)[1]


class Grammar:
    """A context-free grammar whose LL(1) table has no conflict (checked here), with its parser,
    its generator and the tensors a rule-sequence model masks its softmax with.

    ``rules[i] = (lhs, rhs)``; the nonterminals are the left-hand sides (in order of first
    appearance), every other symbol is a terminal. Rule ids run over ``0 .. num_rules - 1`` and
    ``pad_id = num_rules`` fills a row after its derivation ends; the nonterminal index
    ``end = num_nonterminals`` stands for "stack empty".
    """

    def __init__(self, rules: Sequence[tuple[str, Sequence[str]]], start: str | None = None):
        self.rules: list[Rule] = [(str(lhs), tuple(str(s) for s in rhs)) for lhs, rhs in rules]
        if not self.rules:
            raise ValueError("a grammar needs rules")
        self.start: str = self.rules[0][0] if start is None else start
        self.nonterminals: list[str] = list(dict.fromkeys(lhs for lhs, _ in self.rules))
        self.nonterminal_index: dict[str, int] = {a: i for i, a in enumerate(self.nonterminals)}
        if self.start not in self.nonterminal_index:
            raise ValueError(f"the start symbol {self.start!r} has no rule")
        self.terminals: list[str] = list(
            dict.fromkeys(
                s for _, rhs in self.rules for s in rhs if s not in self.nonterminal_index
            )
        )
        if _END in self.terminals:
            raise ValueError("the empty string cannot be a terminal")
        self.rule_index: dict[Rule, int] = {}
        for i, rule in enumerate(self.rules):
            if self.rule_index.setdefault(rule, i) != i:
                raise ValueError(f"rule {rule} appears twice")
        self.min_steps: dict[str, int] = self._min_cost(lambda rhs: 1)
        # the fewest terminals each nonterminal can yield (what a token budget counts)
        self.min_tokens: dict[str, int] = self._min_cost(
            lambda rhs: sum(s not in self.nonterminal_index for s in rhs)
        )
        self._check_reachable()
        self._table, conflicts = _ll1(self.rules, self.start)
        if conflicts:
            raise ValueError(
                "the grammar is not LL(1), so a string could have several derivations: "
                + "; ".join(conflicts[:5])
            )

    # ------------------------------------------------------------------ construction

    @classmethod
    def smiles(
        cls,
        brackets: Iterable[str] = DEFAULT_BRACKETS,
        rings: Iterable[str] = DEFAULT_RINGS,
        *,
        dot: bool = False,
        organic: Iterable[str] = ORGANIC,
        bonds: Iterable[str] = BONDS,
        branches: bool = True,
    ) -> Grammar:
        """The SMILES grammar over these bracket atoms, ring labels and (optionally) the dot."""
        rules = smiles_rules(
            brackets, rings, dot=dot, organic=organic, bonds=bonds, branches=branches
        )
        return cls(rules, START)

    @classmethod
    def for_vocabulary(cls, vocabulary: Iterable[str]) -> Grammar:
        """The SMILES grammar whose terminals are exactly the tokens of a SMILES tokenizer's
        vocabulary that the grammar knows (atoms, bracket atoms, ring labels, bonds, the dot,
        the parentheses): every derivation is then a row of that tokenizer's ids. Other tokens
        (special tokens, ``*``) have no rule, so a string holding one does not parse."""
        v = set(vocabulary)
        organic = [a for a in ORGANIC if a in v]
        brackets = sorted(t for t in v if len(t) > 2 and t[0] == "[" and t[-1] == "]")
        rings = sorted(
            (t for t in v if (t.isdigit() and len(t) == 1) or (t[:1] == "%" and t[1:].isdigit())),
            key=_ring_key,
        )
        if not organic and not brackets:
            raise ValueError("the vocabulary has no atom, so no SMILES grammar")
        return cls.smiles(
            brackets,
            rings,
            dot=DOT in v,
            organic=organic,
            bonds=[b for b in BONDS if b in v],
            branches="(" in v and ")" in v,
        )

    @classmethod
    def default(cls) -> Grammar:
        """The SMILES grammar of QM9, ZINC-250k and MOSES: their bracket atoms, ring labels 1-9,
        no dot."""
        return cls.smiles()

    @classmethod
    def for_smiles(
        cls,
        smiles: Iterable[str],
        *,
        organic: Iterable[str] = ORGANIC,
        bonds: Iterable[str] = BONDS,
    ) -> Grammar:
        """The SMILES grammar of these molecules: the bracket atoms and ring labels they use, the
        dot when one has it (strings the tokenizer cannot split are passed over; :meth:`parse`
        then says None for them)."""
        brackets: set[str] = set()
        rings: set[str] = set()
        dot = False
        seen = 0
        for s in smiles:
            tokens = smiles_tokens(s)
            if tokens is None:
                continue
            seen += 1
            for t in tokens:
                if t.startswith("["):
                    brackets.add(t)
                elif t[0].isdigit() or t[0] == "%":
                    rings.add(t)
                elif t == DOT:
                    dot = True
        if not seen:
            raise ValueError("no SMILES string to build a grammar from")
        return cls.smiles(
            sorted(brackets), sorted(rings, key=_ring_key), dot=dot, organic=organic, bonds=bonds
        )

    def to_dict(self) -> dict[str, Any]:
        """The grammar as JSON-able data: the rules in order, so rule ids survive a reload."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "start": self.start,
            "rules": [[lhs, list(rhs)] for lhs, rhs in self.rules],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Grammar:
        """The grammar :meth:`to_dict` wrote (checked again: LL(1), productive, reachable)."""
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(
                f"not a {FORMAT} version {VERSION} grammar: format={data.get('format')!r}, "
                f"version={data.get('version')!r}"
            )
        return cls([(lhs, tuple(rhs)) for lhs, rhs in data["rules"]], data["start"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Grammar):
            return NotImplemented
        return self.start == other.start and self.rules == other.rules

    def __hash__(self) -> int:
        return hash((self.start, tuple(self.rules)))

    def __repr__(self) -> str:
        return (
            f"Grammar({self.num_rules} rules, {self.num_nonterminals} nonterminals, "
            f"{len(self.terminals)} terminals, start={self.start!r})"
        )

    # ------------------------------------------------------------------ sizes

    @property
    def num_rules(self) -> int:
        return len(self.rules)

    @property
    def num_nonterminals(self) -> int:
        return len(self.nonterminals)

    @property
    def pad_id(self) -> int:
        """The rule id that fills a row after its derivation ends."""
        return len(self.rules)

    @property
    def end(self) -> int:
        """The nonterminal index of a finished row (its stack is empty)."""
        return len(self.nonterminals)

    # ------------------------------------------------------------------ strings <-> rules

    def parse(self, tokens: Sequence[str]) -> list[int] | None:
        """The leftmost derivation of ``tokens`` as rule ids, or None when they are not a string
        of the language (an unknown token, a misplaced one, a branch left open)."""
        stack = [self.start]
        out: list[int] = []
        i, n = 0, len(tokens)
        while stack:
            top = stack.pop()
            look = tokens[i] if i < n else _END
            if top in self.nonterminal_index:
                rule = self._table.get((top, look))
                if rule is None:
                    return None
                out.append(rule)
                stack.extend(reversed(self.rules[rule][1]))
            elif top == look:
                i += 1
            else:
                return None
        return out if i == n else None

    def parse_smiles(self, smiles: str) -> list[int] | None:
        """:meth:`parse` of the tokens of ``smiles``; None when it does not tokenize either."""
        tokens = smiles_tokens(smiles)
        return None if tokens is None else self.parse(tokens)

    def generate(self, rule_ids: Iterable[int] | Tensor, pad_id: int | None = None) -> list[str]:
        """The tokens a complete leftmost derivation yields (:meth:`parse`'s inverse); ids from
        the first ``pad_id`` on are padding. A ``ValueError`` when a rule does not expand the
        leftmost nonterminal, comes after the end, or the derivation is left unfinished."""
        pad = self._pad(pad_id)
        ids = rule_ids.tolist() if isinstance(rule_ids, Tensor) else list(rule_ids)
        out: list[str] = []
        stack = [self.start]
        for k, rule in enumerate(ids):
            if rule == pad:
                if any(r != pad for r in ids[k:]):
                    raise ValueError(f"rule ids after the padding at step {k}")
                break
            while stack and stack[-1] not in self.nonterminal_index:
                out.append(stack.pop())
            if not stack:
                raise ValueError(f"step {k}: rule {rule} after the derivation ended")
            if not 0 <= rule < self.num_rules:
                raise ValueError(f"step {k}: {rule} is not a rule id (0..{self.num_rules - 1})")
            lhs, rhs = self.rules[rule]
            top = stack.pop()
            if lhs != top:
                raise ValueError(f"step {k}: rule {rule} expands {lhs!r}, the leftmost is {top!r}")
            stack.extend(reversed(rhs))
        left = [s for s in stack if s in self.nonterminal_index]
        if left:
            raise ValueError(
                f"unfinished derivation: {len(left)} nonterminal(s) left, {left[-1]!r}"
            )
        out.extend(reversed(stack))
        return out

    def generate_smiles(self, rule_ids: Iterable[int] | Tensor, pad_id: int | None = None) -> str:
        """The SMILES string of a complete derivation."""
        return "".join(self.generate(rule_ids, pad_id))

    # ------------------------------------------------------------------ masks

    @cached_property
    def lhs_mask(self) -> Tensor:
        """Bool ``[num_nonterminals, num_rules]``: True where the rule's left-hand side is that
        nonterminal (the paper's mask)."""
        mask = torch.zeros(self.num_nonterminals, self.num_rules, dtype=torch.bool)
        for i, (lhs, _) in enumerate(self.rules):
            mask[self.nonterminal_index[lhs], i] = True
        return mask

    def expanded_nonterminals(self, rule_ids: Tensor, pad_id: int | None = None) -> Tensor:
        """For rule sequences ``[B, T]`` (complete derivations, padded with ``pad_id``), the index
        of the nonterminal each step expands, long ``[B, T]``; :attr:`end` at padded steps. Run
        with a stack per row; a ``ValueError`` when a row is not a complete derivation."""
        return self._teacher_force(rule_ids, pad_id, masks=False, budget=False)[0]

    def step_masks(
        self,
        rule_ids: Tensor,
        *,
        budget: bool = True,
        max_steps: int | None = None,
        max_tokens: int | None = None,
        pad_id: int | None = None,
    ) -> Tensor:
        """The rules a decoder may pick at each step of these sequences, bool ``[B, T, R]``
        (all False at padded steps): the same masks :func:`decode` samples with, so a model's
        teacher-forced log-likelihood is that of its sampler. ``max_steps`` (default ``T``)
        is the decoder's step limit, which ``budget`` keeps every derivation within, and
        ``max_tokens`` (budget only) its limit on the string's tokens."""
        return self._teacher_force(
            rule_ids, pad_id, masks=True, budget=budget, max_steps=max_steps,
            max_tokens=max_tokens,
        )[1]  # fmt: skip

    def _teacher_force(
        self,
        rule_ids: Tensor,
        pad_id: int | None,
        *,
        masks: bool,
        budget: bool,
        max_steps: int | None = None,
        max_tokens: int | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        if rule_ids.dim() != 2:
            raise ValueError(f"rule ids must be [B, T], got shape {tuple(rule_ids.shape)}")
        pad = self._pad(pad_id)
        b, t_len = rule_ids.shape
        ids = rule_ids.long()
        # the stack works with the grammar's own pad id
        if pad != self.pad_id:
            ids = torch.where(ids == pad, torch.full_like(ids, self.pad_id), ids)
        steps = t_len if max_steps is None else max_steps
        if steps < t_len:
            raise ValueError(f"max_steps={steps} is shorter than the sequences ({t_len})")
        state = StackState(self, b, steps, max_tokens=max_tokens, device=ids.device)
        tops = torch.empty(b, t_len, dtype=torch.long, device=ids.device)
        allowed = (
            torch.empty(b, t_len, self.num_rules, dtype=torch.bool, device=ids.device)
            if masks
            else None
        )
        for t in range(t_len):
            tops[:, t] = state.top()
            if allowed is not None:
                allowed[:, t] = state.allowed(budget=budget)
            state.advance(ids[:, t])
        if not bool(state.finished.all()):
            row = int((~state.finished).nonzero()[0, 0])
            raise ValueError(f"row {row} is not a complete derivation within {t_len} steps")
        return tops, allowed

    # ------------------------------------------------------------------ internals

    def _pad(self, pad_id: int | None) -> int:
        # a pad id that is also a rule id would turn that rule into padding
        if pad_id is not None and 0 <= pad_id < self.num_rules:
            raise ValueError(f"pad id {pad_id} is a rule id (0..{self.num_rules - 1})")
        return self.pad_id if pad_id is None else pad_id

    @cached_property
    def budgets_agree(self) -> bool:
        """Whether every nonterminal has a rule that is at once on a shortest derivation and on
        one with the fewest terminals: then a derivation within both a step and a token budget
        can always be finished (true of the SMILES grammar: the empty ``after_atom`` and the
        single atom are both)."""
        nt = self.nonterminal_index
        for a in self.nonterminals:
            if not any(
                lhs == a
                and 1 + sum(self.min_steps[s] for s in rhs if s in nt) == self.min_steps[a]
                and sum(self.min_tokens[s] if s in nt else 1 for s in rhs) == self.min_tokens[a]
                for lhs, rhs in self.rules
            ):
                return False
        return True

    def _min_cost(self, own: Callable[[tuple[str, ...]], int]) -> dict[str, int]:
        """Each nonterminal's cheapest derivation, a rule costing ``own(rhs)`` plus its
        nonterminals' costs: rules with ``own = 1`` (what the step budget counts), terminals
        with ``own`` = their number (the token budget)."""
        inf = float("inf")
        best: dict[str, float] = dict.fromkeys(self.nonterminals, inf)
        changed = True
        while changed:
            changed = False
            for lhs, rhs in self.rules:
                cost = own(rhs) + sum(best[s] for s in rhs if s in self.nonterminal_index)
                if cost < best[lhs]:
                    best[lhs] = cost
                    changed = True
        dead = [a for a, c in best.items() if c == inf]
        if dead:
            raise ValueError(f"nonterminals that derive no string: {dead}")
        return {a: int(c) for a, c in best.items()}

    def _check_reachable(self) -> None:
        # an unreachable nonterminal would be a mask row that no decoder ever reads
        seen = {self.start}
        todo = [self.start]
        while todo:
            a = todo.pop()
            for lhs, rhs in self.rules:
                if lhs == a:
                    for s in rhs:
                        if s in self.nonterminal_index and s not in seen:
                            seen.add(s)
                            todo.append(s)
        lost = [a for a in self.nonterminals if a not in seen]
        if lost:
            raise ValueError(f"nonterminals the start symbol never reaches: {lost}")

    @cached_property
    def _tensors(self) -> dict[str, Tensor]:
        """What the stacks step with, on the CPU (moved once per device by StackState)."""
        nt = self.nonterminal_index
        pushes = [[nt[s] for s in reversed(rhs) if s in nt] for _, rhs in self.rules]
        width = max(1, max(len(p) for p in pushes))
        push = torch.zeros(self.num_rules, width, dtype=torch.long)
        for i, p in enumerate(pushes):
            push[i, : len(p)] = torch.tensor(p, dtype=torch.long)
        min_steps = torch.tensor([self.min_steps[a] for a in self.nonterminals])
        # the fewest tokens the row can end with grows by delta_tokens under the rule: the
        # terminals it writes, plus its nonterminals' fewest, less its lhs's fewest
        delta_tokens = torch.tensor(
            [
                sum(self.min_tokens[s] if s in nt else 1 for s in rhs) - self.min_tokens[a]
                for a, rhs in self.rules
            ]
        )
        lhs = torch.tensor([nt[lhs] for lhs, _ in self.rules])
        # the shortest derivation left grows by delta when the rule replaces its lhs
        delta = torch.tensor(
            [
                sum(self.min_steps[s] for s in rhs if s in nt) - self.min_steps[a]
                for a, rhs in self.rules
            ]
        )
        # the "end" row allows nothing: a finished row only pads
        lhs_mask = torch.cat([self.lhs_mask, torch.zeros(1, self.num_rules, dtype=torch.bool)])
        return {
            "push": push,
            "push_n": torch.tensor([len(p) for p in pushes]),
            "lhs": lhs,
            "delta": delta,
            "delta_tokens": delta_tokens,
            "min_steps": min_steps,
            "lhs_mask": lhs_mask,
        }


class StackState:
    """A batch of leftmost derivations stepped together: one stack of nonterminals per row, all
    in tensors (so decoding stays on the model's device).

    Each step expands the nonterminal on top of each row's stack with the row's rule: the top
    is popped and the rule's right-hand-side nonterminals are pushed in reverse, so the leftmost
    is on top. A row whose stack is empty is finished and takes ``pad_id`` from then on.
    ``cost`` is the length of the shortest derivation that would finish the row now, which the
    budget mask keeps within the steps left; with ``max_tokens``, ``tokens`` is the fewest
    tokens the row's string can have now (written plus still to come), which the mask keeps
    within ``max_tokens`` (a model of strings of at most so many tokens).
    """

    def __init__(
        self,
        grammar: Grammar,
        batch_size: int,
        max_steps: int,
        *,
        max_tokens: int | None = None,
        device: torch.device | str | None = None,
    ):
        start_steps = grammar.min_steps[grammar.start]
        if max_steps < start_steps:
            raise ValueError(f"max_steps={max_steps}: the shortest derivation has {start_steps}")
        start_tokens = grammar.min_tokens[grammar.start]
        if max_tokens is not None:
            if max_tokens < start_tokens:
                raise ValueError(f"max_tokens={max_tokens}: the shortest string has {start_tokens}")
            if not grammar.budgets_agree:
                raise ValueError("this grammar's step and token budgets can dead-end a row")
        self.grammar = grammar
        self.max_steps = max_steps
        self.max_tokens = max_tokens
        self.step = 0
        self._t = {k: v.to(device) for k, v in grammar._tensors.items()}
        k = self._t["push"].shape[1]
        # a step grows a stack by at most k - 1; one spare column takes the masked-out writes
        self._width = 2 + max_steps * max(k - 1, 0)
        self.stack = torch.zeros(batch_size, self._width, dtype=torch.long, device=device)
        self.stack[:, 0] = grammar.nonterminal_index[grammar.start]
        self.depth = torch.ones(batch_size, dtype=torch.long, device=device)
        self.cost = torch.full((batch_size,), start_steps, dtype=torch.long, device=device)
        self.tokens = torch.full((batch_size,), start_tokens, dtype=torch.long, device=device)

    @property
    def finished(self) -> Tensor:
        """Bool ``[B]``: the row's derivation is complete."""
        return self.depth == 0

    def top(self) -> Tensor:
        """Long ``[B]``: the nonterminal each row expands next; ``grammar.end`` when finished."""
        below = (self.depth - 1).clamp(min=0)
        top = self.stack.gather(1, below[:, None])[:, 0]
        return torch.where(self.depth > 0, top, torch.full_like(top, self.grammar.end))

    def allowed(self, budget: bool = True) -> Tensor:
        """Bool ``[B, R]``: the rules each row may take now (none once finished). ``budget``
        keeps only the rules after which the derivation can still end by ``max_steps``; as long
        as the row has not run out of steps, at least one rule stays."""
        mask = self._t["lhs_mask"][self.top()]
        if budget:
            left = self.max_steps - self.step
            mask = mask & (self.cost[:, None] + self._t["delta"][None, :] + 1 <= left)
            if self.max_tokens is not None:
                mask = mask & (
                    self.tokens[:, None] + self._t["delta_tokens"][None, :] <= self.max_tokens
                )
        return mask

    def advance(self, rule_ids: Tensor, check: bool = True) -> None:
        """Apply each row's rule (``pad_id`` for finished rows). ``check`` raises a
        ``ValueError`` when a rule does not expand its row's top (costs a device sync)."""
        if self.step >= self.max_steps:
            raise ValueError(f"all {self.max_steps} steps are taken")
        g, t = self.grammar, self._t
        rules = rule_ids.to(self.stack.device).long()
        active = self.depth > 0
        in_range = (rules >= 0) & (rules < g.num_rules)
        safe = torch.where(active & in_range, rules, torch.zeros_like(rules))
        if check:
            ok = torch.where(active, in_range & (t["lhs"][safe] == self.top()), rules == g.pad_id)
            if not bool(ok.all()):
                row = int((~ok).nonzero()[0, 0])
                raise ValueError(
                    f"step {self.step}, row {row}: rule {int(rules[row])} does not expand "
                    f"{self._name(int(self.top()[row]))}"
                )
        n = torch.where(active, t["push_n"][safe], torch.zeros_like(safe))
        depth = self.depth - active.long()
        span = torch.arange(t["push"].shape[1], device=self.stack.device)
        pos = (depth[:, None] + span).clamp(max=self._width - 1)
        keep = span[None, :] >= n[:, None]
        values = torch.where(keep, self.stack.gather(1, pos), t["push"][safe])
        self.stack.scatter_(1, pos, values)
        self.depth = depth + n
        self.cost = self.cost + torch.where(active, t["delta"][safe], torch.zeros_like(safe))
        self.tokens = self.tokens + torch.where(
            active, t["delta_tokens"][safe], torch.zeros_like(safe)
        )
        self.step += 1

    def _name(self, index: int) -> str:
        return (
            "nothing (finished)" if index == self.grammar.end else self.grammar.nonterminals[index]
        )


def decode(
    grammar: Grammar,
    logits_fn: Callable[[int, Tensor, Tensor], Tensor],
    batch_size: int,
    max_steps: int,
    *,
    temperature: float = 1.0,
    budget: bool = True,
    max_tokens: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Sample rule sequences: at step ``t`` ``logits_fn(t, previous_rule, top)`` gives float
    ``[B, num_rules]`` (``previous_rule`` is ``pad_id`` at t = 0, ``top`` the nonterminal to
    expand, ``grammar.end`` for finished rows), the rules the stacks forbid are masked out, and
    one is drawn at ``temperature`` (0: the most likely).

    Returns the rule ids, long ``[B, max_steps]`` padded with ``pad_id``, and ``finished``,
    bool ``[B]``. With ``budget`` every row finishes by ``max_steps``; without it, a row still
    open at ``max_steps`` is unfinished and its ids are a derivation's prefix (no string).
    ``max_tokens`` (with ``budget``) also keeps every string within so many tokens."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    state = StackState(grammar, batch_size, max_steps, max_tokens=max_tokens, device=device)
    dev = state.stack.device
    out = torch.full((batch_size, max_steps), grammar.pad_id, dtype=torch.long, device=dev)
    previous = torch.full((batch_size,), grammar.pad_id, dtype=torch.long, device=dev)
    for t in range(max_steps):
        if bool(state.finished.all()):
            break
        top = state.top()
        logits = logits_fn(t, previous, top)
        if logits.shape != (batch_size, grammar.num_rules):
            raise ValueError(
                f"logits_fn gave shape {tuple(logits.shape)}, expected "
                f"{(batch_size, grammar.num_rules)}"
            )
        mask = state.allowed(budget=budget)
        if bool((~mask.any(1) & ~state.finished).any()):  # cannot happen under budgets_agree
            raise ValueError(f"step {t}: a row has no rule left to take")
        logits = logits.to(dev).float().masked_fill(~mask, float("-inf"))
        # finished rows have no allowed rule: give them finite logits, then pad them
        logits = torch.where(mask.any(1, keepdim=True), logits, torch.zeros_like(logits))
        if temperature == 0:
            choice = logits.argmax(1)
        else:
            probs = torch.softmax(logits / temperature, dim=1)
            choice = torch.multinomial(probs, 1, generator=generator)[:, 0]
        choice = torch.where(state.finished, torch.full_like(choice, grammar.pad_id), choice)
        state.advance(choice, check=False)
        out[:, t] = choice
        previous = choice
    return out, state.finished


__all__ = [
    "BONDS",
    "DEFAULT_BRACKETS",
    "DEFAULT_RINGS",
    "DOT",
    "ORGANIC",
    "START",
    "Grammar",
    "StackState",
    "decode",
    "ll1_conflicts",
    "smiles_rules",
]
