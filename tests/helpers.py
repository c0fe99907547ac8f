"""What several test files share: tiny configs for every registry entry and the variants the
contract suite checks besides, data shaped like the digits, and where ../shared/data is.

Test files import from here (and from ``device_guard`` and ``transform_checks``), never from
each other.
"""

from __future__ import annotations

import json
import os
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgm.models.latent.posteriors import POSTERIORS
from dgm.models.latent.priors import PRIORS

# small enough to train two epochs on digits in a second or two; a new registry entry without
# one fails tests/test_contract.py::test_every_model_has_a_tiny_config
TINY: dict[str, dict] = {
    "arm": {"hidden": 16, "layers": 3, "kernel_size": 3},
    "made": {"hidden": 16, "layers": 1},
    "pixelcnn": {"hidden": 8, "layers": 1, "first_kernel": 3, "head": 8},
    "gated-pixelcnn": {"hidden": 8, "layers": 2, "first_kernel": 3, "head": 8},
    "gan": {"hidden": 16, "layers": 1, "channels": 8, "latent": 4},
    "svae": {"latent": 4, "hidden": 16, "layers": 1, "channels": 4},
    "transformer-arm": {"dim": 16, "layers": 1, "heads": 2},
    "realnvp": {"hidden": 8, "blocks": 0, "dequant_hidden": 8, "dequant_layers": 1},
    "glow": {"steps": 1, "hidden": 8, "dequant_hidden": 8, "dequant_layers": 1},
    "maf": {"transforms": 2, "hidden": 16, "dequant_hidden": 8, "dequant_layers": 1},
    "nsf": {"transforms": 1, "hidden": 16, "bins": 4, "dequant_hidden": 8, "dequant_layers": 1},
    "flow": {
        "transforms": "affine-coupling*2, actnorm, spline",
        "hidden": 16,
        "dequant_hidden": 8,
        "dequant_layers": 1,
    },
    "hvae": {
        "latent": 4,
        "latent2": 4,
        "hidden": 16,
        "layers": 1,
        "channels": 4,
        "prior": "vampprior",
    },
    "hybrid-flow": {"hidden": 8, "blocks": 0, "head": "mlp", "head_hidden": 8},
    "hybrid-vae": {"latent": 4, "hidden": 16, "layers": 1, "channels": 4, "head_dropout": 0.1},
    "vae": {"latent": 4, "hidden": 16, "layers": 1, "channels": 4, "prior": "vampprior"},
    "vqvae": {
        "num_codes": 8,
        "code_dim": 4,
        "hidden": 8,
        "blocks": 1,
        "prior_hidden": 8,
        "prior_layers": 1,
        "prior_kernel": 3,
    },
    "wavenet": {
        "hidden": 8,
        "skip_channels": 8,
        "head_channels": 8,
        "max_dilation": 4,
        "stacks": 1,
    },
    # audio only: the contract suite gives it tiny_wav_folder's utterances (crops of 200
    # samples at 8 kHz, so sample_seconds draws a crop's length)
    "vqvae-audio": {
        "num_codes": 8,
        "code_dim": 4,
        "hidden": 8,
        "downsample": 2,
        "embedding": 4,
        "decoder_hidden": 8,
        "decoder_skip": 8,
        "decoder_max_dilation": 4,
        "decoder_stacks": 1,
        "prior_hidden": 8,
        "prior_max_dilation": 2,
        "prior_stacks": 1,
        "sample_seconds": 0.025,
    },
    # diffusion: few steps, loose ODE tolerances (the maths is tested in tests/test_diffusion_*)
    "ddpm": {"hidden": 8, "blocks": 1, "timesteps": 20, "steps": 20},
    "vdm": {"hidden": 8, "blocks": 1, "schedule_hidden": 16, "steps": 20},
    "score-sde": {
        "hidden": 8,
        "blocks": 1,
        "attention": False,
        "dropout": 0.0,
        "steps": 5,
        "divergence": "hutchinson",
        "rtol": 1e-2,
        "atol": 1e-2,
    },
    "flow-matching": {
        "hidden": 8,
        "blocks": 1,
        "attention": False,
        "dropout": 0.0,
        "steps": 5,
        "divergence": "hutchinson",
        "rtol": 1e-2,
        "atol": 1e-2,
    },
    # molecule models: the contract suite gives them tiny_smiles_file's molecules
    "mol-vae": {
        "latent": 4,
        "embed": 8,
        "hidden": 8,
        "decoder_hidden": 8,
        "decoder_layers": 1,
        "conv_channels": (4, 4),
        "conv_kernels": (3, 3),
        "property_hidden": 8,
    },
    "char-rnn": {"embed": 8, "hidden": 8, "layers": 1},
    # text models: the contract suite gives them tiny_text_file's sentences instead of digits
    "lstm-lm": {"embed": 8, "hidden": 8},
    "transformer-lm": {"dim": 8, "layers": 1, "heads": 2},
    "text-vae": {"latent": 4, "embed": 8, "hidden": 8, "decoder_hidden": 8},
}

TINY["grammar-vae"] = dict(TINY["mol-vae"])  # the chemical VAE's networks, on rules

# a small ARM: fast to train, big enough to learn something in two epochs
TINY_ARM = {"hidden": 16, "layers": 3, "kernel_size": 3}
TINY_TRAIN = [
    "--set",
    "hidden=16",
    "--set",
    "layers=3",
    "--set",
    "kernel_size=3",
    "--set",
    "sample_every=1",
    "--set",
    "num_samples=4",
]

# the latent families' own tiny configs (every prior, posterior and backbone must fit them)
VAE_TINY = {
    "latent": 3,
    "hidden": 12,
    "layers": 1,
    "channels": 4,
    "components": 3,
    "flow_length": 2,
    "prior_flow": 2,
}
# latent != latent2, so a mix-up of the two layers cannot pass
HVAE_TINY = {
    "latent": 3,
    "latent2": 2,
    "hidden": 12,
    "layers": 1,
    "channels": 4,
    "components": 3,
    "prior_flow": 2,
}
SVAE_TINY = {"latent": 4, "hidden": 12, "layers": 1, "channels": 4}
SPHERICAL = ["vmf", "power-spherical"]


def _variants() -> list[tuple[str, str, dict]]:
    """``(id, model, config)`` the contract suite checks besides TINY: every VAE prior x
    posterior (the two backbones alternating, so each meets every prior and posterior), every
    HVAE prior on both backbones, both SVAE posteriors on both backbones, a conditional gated
    PixelCNN and GAN, and the autoregressive models' other likelihoods and encodings."""
    out = []
    for i, (p, q) in enumerate((p, q) for p in PRIORS for q in POSTERIORS):
        cfg = {**VAE_TINY, "prior": p, "posterior": q, "backbone": "conv" if i % 2 else "mlp"}
        out.append((f"vae-{p}-{q}", "vae", cfg))
    for p in PRIORS:
        for b in ("mlp", "conv"):
            out.append((f"hvae-{p}-{b}", "hvae", {**HVAE_TINY, "prior": p, "backbone": b}))
    for d in SPHERICAL:
        for b in ("mlp", "conv"):
            out.append((f"svae-{d}-{b}", "svae", {**SVAE_TINY, "distribution": d, "backbone": b}))
    gated = TINY["gated-pixelcnn"]
    out += [
        ("gated-pixelcnn-conditional", "gated-pixelcnn", {**gated, "conditional": True}),
        ("gated-pixelcnn-noskip", "gated-pixelcnn", {**gated, "skip": False, "input": "onehot"}),
        ("gan-conditional", "gan", {**TINY["gan"], "conditional": True}),
        ("gan-wgan-gp-mlp", "gan", {**TINY["gan"], "objective": "wgan-gp", "backbone": "mlp"}),
        ("arm-scalar", "arm", {**TINY["arm"], "input": "scalar"}),
        ("vqvae-no-ema", "vqvae", {**TINY["vqvae"], "ema": False}),
        ("hybrid-flow-linear", "hybrid-flow", {**TINY["hybrid-flow"], "head": "linear"}),
    ]
    # wavenet on audio (tiny_wav_folder's utterances), told the label and the speaker
    audio = {**TINY["wavenet"], "condition": "label+speaker", "embedding": 4}
    out.append(("wavenet-audio", "wavenet", {**audio, "sample_seconds": 0.025}))
    out.append(("vqvae-audio-no-speaker", "vqvae-audio", {**TINY["vqvae-audio"], "speaker": False}))
    for name in ("arm", "wavenet", "made", "pixelcnn"):
        out.append((f"{name}-logistic", name, {**TINY[name], "likelihood": "logistic-mixture"}))
    masks = {"input": "onehot", "order": "random", "num_masks": 3, "ensemble": 2}
    out.append(("made-masks", "made", {**TINY["made"], **masks, "direct": True, "mask_bias": True}))
    vae = TINY["text-vae"]
    cnn = {"decoder": "dilated-cnn", "cnn": "small", "channels": 8}
    out += [
        ("lstm-lm-tied", "lstm-lm", {**TINY["lstm-lm"], "tied": True, "layers": 2}),
        ("text-vae-cnn-bi-mog", "text-vae", {**vae, **cnn, "bidirectional": True, "prior": "mog"}),
        ("text-vae-flow", "text-vae", {**vae, "prior": "flow", "prior_flow": 1, "prior_hidden": 8}),
    ]
    return out


VARIANTS = _variants()


TEXT_WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "tree", "and", "saw"]


def tiny_wav_folder(path: Path, rate: int = 8000, takes: int = 12) -> Path:
    """FSDD-style wav files (2 labels x 2 speakers x ``takes`` takes: takes 0-4 test, 5-9 val,
    10 and on train), tones with noise of 0.02-0.1 s (whole multiples of 8 samples), 16-bit at
    ``rate``: audio data for the contract suite and the audio tests."""
    import numpy as np
    from scipy.io import wavfile

    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for label, freq in ((0, 300.0), (1, 700.0)):
        for speaker, pitch in (("ann", 1.0), ("bob", 1.3)):
            for take in range(takes):
                n = 8 * (20 + 10 * (take % 9))
                t = np.arange(n) / rate
                x = 0.4 * np.sin(2 * np.pi * freq * pitch * t) + rng.normal(0, 0.05, n)
                pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16)
                wavfile.write(path / f"{label}_{speaker}_{take}.wav", rate, pcm)
    return path


def tiny_text_file(path: Path, lines: int = 60, seed: int = 0) -> Path:
    """A .txt file of ``lines`` short sentences (1 to 7 words of :data:`TEXT_WORDS`, one a
    line): text data for the contract suite and the text models' tests."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(lines):
        n = int(torch.randint(1, 8, (1,), generator=g))
        words = torch.randint(len(TEXT_WORDS), (n,), generator=g).tolist()
        out.append(" ".join(TEXT_WORDS[w] for w in words))
    path.write_text("\n".join(out) + "\n")
    return path


SMILES_PARTS = ["C", "CC", "CCC", "c1ccccc1", "C1CC1", "N", "O", "C(=O)O", "C(Cl)", "C(C#N)", "OC"]


def tiny_smiles_file(path: Path, lines: int = 60, seed: int = 0, extra: str = "") -> Path:
    """A .smi file of ``lines`` small valid molecules (two or three parts of
    :data:`SMILES_PARTS` joined: chains, rings, acids, nitriles), then ``extra`` lines as
    written: molecule data for the contract suite and the molecule tests."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(lines):
        k = int(torch.randint(2, 4, (1,), generator=g))
        parts = torch.randint(len(SMILES_PARTS), (k,), generator=g).tolist()
        out.append("C" + "".join(SMILES_PARTS[p] for p in parts))
    path.write_text("\n".join(out) + "\n" + extra)
    return path


def digits_like(n: int, seed: int = 0) -> torch.Tensor:
    """``[n, 1, 8, 8]`` levels 0..16 (as float), like the digits dataset."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 17, (n, 1, 8, 8), generator=g).float()


def shared_data(*parts: str) -> Path:
    """A path under the shared data folder (``$DGM_DATA``, else ../shared/data next to the
    project); the calling test is skipped, with the reason, when it is absent."""
    root = Path(os.environ.get("DGM_DATA") or Path(__file__).resolve().parents[2] / "shared/data")
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the shared data folder, absent here)")
    return path


# `dgm` as a subprocess, one thread: for tests of signals and process-level behaviour
DGM = [sys.executable, "-m", "dgm"]
DGM_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def run_epochs(run: Path) -> list[int]:
    """The epochs a run folder's metrics.jsonl holds, in order."""
    file = run / "metrics.jsonl"
    if not file.is_file():
        return []
    return [json.loads(line)["epoch"] for line in file.read_text().splitlines() if line.strip()]


# -- the comparison report (tests/test_report*.py, tests/test_compare_cli.py) -----------------
def tiny_png(path: Path, seed: int) -> Path:
    """A 24x24 grey PNG of noise."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (24, 24), dtype=np.uint8)).save(path)
    return path


def report_entry(label, seed, nll, kind="exact", fd=None, tmp=None, **more):
    """One run's entry as dgm report collects it, with made-up numbers."""
    e = {
        "label": label, "model": label.split("-")[0], "family": more.pop("family", "x"),
        "seed": seed, "run": f"runs/{label}-seed{seed}", "kind": kind, "nll_nats": nll,
        "bpd": None if nll is None else nll / (64 * np.log(2)), "parameters": 1000,
        "train_time_s": 30.0, "epochs": 10, "stopped": "early", "curve": [[1.0, 2.5], [2.0, 2.1]],
        "notes": [], "pictures": {},
    }  # fmt: skip
    if fd is not None:
        e["fd"] = fd
    if tmp is not None:
        e["pictures"] = {"samples": str(tiny_png(tmp / f"{len(label)}-{seed}.png", seed))}
    e.update(more)
    return e


def synthetic_report(entries, **settings):
    """A digits report of ``entries``."""
    from dgm.report import build_report

    data = {"name": "digits", "kind": "images", "bpd_unit": "bits/dim", "num_classes": 10,
            "description": "digits"}  # fmt: skip
    return build_report(
        entries, data=data, settings={"budget_s": 30.0, "num_generated": 447, **settings},
        environment={"dgm": "0", "torch": "2"},
    )  # fmt: skip


class ReportPage(HTMLParser):
    """What a report page holds: its rows' labels, its pictures, its scripts and sort keys."""

    def __init__(self):
        super().__init__()
        self.rows, self.pictures, self.scripts, self.cells = [], [], 0, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and a.get("id", "").startswith("row-"):
            self.rows.append(a["id"][4:])
        if tag == "img":
            self.pictures.append(a)
        if tag == "script":
            self.scripts += 1
        if tag == "td" and "data-sort" in a:
            self.cells.append(a["data-sort"])
