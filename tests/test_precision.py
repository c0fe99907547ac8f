"""``--precision auto`` (issue 15): bf16 mixed precision only where the hardware has bf16 units and
the family is proven equal; the proof is here: the same seeded training under float32 and under
bf16 autocast reaches a validation NLL within 1%."""

from __future__ import annotations

import pytest
import torch

from dgm import registry
from dgm.training import precision as prec
from tests.helpers import TINY

PROVEN = sorted(e.name for e in registry.entries() if e.cls.bf16_proven)
STEPS = 60
# text models are proven on English characters (this repository's architecture page, a char
# tokenizer), wider than TINY and for longer, so that they learn well past the unigram
TEXT = {
    "lstm-lm": {"embed": 32, "hidden": 64},
    "transformer-lm": {"dim": 32, "layers": 2, "heads": 2},
    "text-vae": {"latent": 8, "embed": 32, "hidden": 32, "decoder_hidden": 64},
}
TEXT_STEPS = 80


@pytest.fixture(scope="module")
def english(tmp_path_factory):
    """Character-level text: docs/architecture.md, one line an example, 48 tokens at most."""
    from pathlib import Path

    from dgm.data import load_dataset

    page = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
    path = tmp_path_factory.mktemp("english") / "architecture.txt"
    path.write_text(page.read_text())
    return load_dataset(str(path), tokenizer="char", max_len=48)


def _train_val_nll(name: str, data, bf16: bool) -> float:
    """Val NLL after STEPS Adam steps, as Lightning's bf16-mixed runs them on the CPU: the
    forward and backward under torch.autocast(bfloat16), float32 weights and optimiser."""
    torch.manual_seed(0)
    text = registry.get(name).cls.text
    config = TEXT[name] if text else TINY[name]
    model = registry.get(name).cls.for_data(data.spec, **config).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    x, y = data.train.x, data.train.y
    for _ in range(TEXT_STEPS if text else STEPS):
        i = torch.randint(len(x), (64,), generator=gen)
        batch = x[i] if y is None else (x[i], y[i])  # the hybrids train on p(y, x)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    torch.manual_seed(1)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        nll = -model.log_prob(data.val.x)
    assert nll.dtype == torch.float32  # scored in float32 under autocast too
    return nll.mean().item()


def test_the_issue_families_are_proven():
    assert {"realnvp", "glow", "pixelcnn", "vae", *TEXT} <= set(PROVEN)


@pytest.mark.slow
@pytest.mark.parametrize("name", PROVEN)
def test_bf16_training_reaches_the_float32_nll(name, request):
    data = request.getfixturevalue("english" if name in TEXT else "digits")
    full = _train_val_nll(name, data, bf16=False)
    half = _train_val_nll(name, data, bf16=True)
    assert abs(half - full) <= 0.01 * abs(full), (name, full, half)


class _Model:
    def __init__(self, name: str, proven: bool) -> None:
        self.name, self.bf16_proven = name, proven


def test_auto_picks_bf16_only_with_units_and_proof(monkeypatch):
    monkeypatch.setattr(prec, "fast_bf16", lambda device: (True, "this CPU has AMX"))
    chosen, note = prec.resolve_precision("auto", _Model("vae", True), "cpu")
    assert chosen == "bf16-mixed" and "AMX" in note
    chosen, note = prec.resolve_precision("auto", _Model("gan", False), "cpu")
    assert chosen == "32-true" and "gan is not proven" in note


def test_auto_falls_back_to_float32_with_a_note_on_hardware_without_bf16(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    chosen, note = prec.resolve_precision("auto", _Model("vae", True), "cpu")
    assert chosen == "32-true"
    assert (
        note == "precision auto: float32 (this CPU has no bf16 matrix units (AMX or AVX512-BF16))"
    )


def test_an_explicit_precision_is_kept():
    assert prec.resolve_precision("bf16-mixed", _Model("gan", False), "cpu") == ("bf16-mixed", None)
    assert prec.resolve_precision("32", _Model("vae", True), "cpu") == ("32", None)


def test_the_run_records_what_auto_chose(tmp_path, run_cli, digits):
    import json

    code, _, err = run_cli(
        "train", "arm", "--epochs", "1", "--out", tmp_path / "r", "--set", "hidden=8",
        "--set", "layers=2", "--set", "kernel_size=3",
    )  # fmt: skip
    assert code == 0, err
    assert "precision auto: float32" in err  # arm is not declared proven
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["precision"] == "32-true"
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["train"]["precision"] == "auto"  # a resumed run decides again where it runs


@pytest.mark.slow
def test_auto_trains_a_proven_family_in_bf16_with_clipping(tmp_path, run_cli, monkeypatch):
    """The optimiser is built for the precision auto chose (a fused AdamW cannot clip under AMP)."""
    import json

    monkeypatch.setattr(prec, "fast_bf16", lambda device: (True, "this CPU has AMX"))
    code, _, err = run_cli(
        "train", "vae", "--epochs", "1", "--out", tmp_path / "r", "--set", "latent=4",
        "--set", "hidden=16", "--set", "grad_clip=1",
    )  # fmt: skip
    assert code == 0, err
    assert "precision auto: bf16 mixed precision (this CPU has AMX; vae is proven equal)" in err
    assert json.loads((tmp_path / "r" / "results.json").read_text())["precision"] == "bf16-mixed"
