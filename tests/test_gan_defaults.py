"""A GAN that learns with its defaults: the multi-scale MMD it is validated on, the weights it
keeps (never worse than the raw ones on that measure), the defaults per kind of data, the
line that says when training collapsed, and mode coverage on the 8 Gaussians."""

from __future__ import annotations

import json

import pytest
import torch

import dgm
from dgm.data import load_dataset
from dgm.data.toy import MODES
from dgm.evaluation.quality import coverage_line, mode_coverage
from dgm.models.gan.measures import mmd
from dgm.pipeline import train
from dgm.training import build


def _ring(n: int, std: float, modes: int = 8, seed: int = 0) -> torch.Tensor:
    """``n`` points of the 8-Gaussian ring in the unit box, from ``modes`` of its modes."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.as_tensor(MODES["8-gaussians"][0], dtype=torch.float64) / 2.1
    pick = torch.randint(0, modes, (n,), generator=g)
    return centres[pick] + std * torch.randn(n, 2, generator=g, dtype=torch.float64)


def test_mmd_is_zero_for_one_distribution_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(600, 2, generator=g) * 0.3, torch.randn(600, 2, generator=g) * 0.3
    same = float(mmd(a, b))
    assert abs(same) < 0.01
    shifts = [float(mmd(a, b + s)) for s in (0.1, 0.3, 1.0)]
    assert shifts[0] > 10 * abs(same) and shifts == sorted(shifts) and shifts[-1] > 1.0


def test_mmd_sees_blur_and_missing_modes_alike():
    """The narrow kernels see modes blurred to 6x their width (almost no sample within 3 std),
    which the energy distance scores about as well as exact samples; the wide ones see a
    missing mode."""
    data, exact = _ring(500, 0.01), _ring(500, 0.01, seed=1)
    blurred, seven = _ring(500, 0.06, seed=2), _ring(500, 0.01, modes=7, seed=3)
    assert float(mmd(exact, data)) < 0.01
    assert float(mmd(blurred, data)) > 0.05 and float(mmd(seven, data)) > 0.03


def test_defaults_differ_by_data_kind_and_the_user_wins():
    toy, digits = load_dataset("8-gaussians").spec, load_dataset("digits").spec
    model, cfg = build("gan", toy)
    assert (cfg.lr, cfg.batch_size) == (2e-3, 256)
    assert (model.config.hidden, model.config.layers, model.config.pack) == (128, 2, 2)
    assert model.sample_monitor == "mmd"
    model, cfg = build("gan", toy, {"pack": 1, "hidden": 64}, {"lr": 1e-4})
    assert (cfg.lr, model.config.pack, model.config.hidden) == (1e-4, 1, 64)
    model, cfg = build("gan", digits)
    assert (cfg.lr, cfg.batch_size, model.config.pack) == (2e-4, 64, 1)
    assert model.sample_monitor is None  # images: judged after training, in a feature space


def test_coverage_line_says_collapsed_when_modes_are_missing():
    g = torch.Generator().manual_seed(0)
    centres, std = MODES["8-gaussians"]
    one_mode = torch.as_tensor(centres[:1]) + std * torch.randn(400, 2, generator=g)
    cover = mode_coverage(one_mode, centres, std)
    line = coverage_line(cover)
    assert line.startswith("collapsed: 1 of 8 modes covered; "), line
    assert f"{100 * cover['high_quality']:.1f}% of samples within 3 std" in line
    every = torch.as_tensor(centres).repeat(50, 1)
    assert coverage_line(mode_coverage(every, centres, std)).startswith("8 of 8 modes covered")


@pytest.mark.slow
def test_kept_generator_is_never_worse_than_the_raw_one(tmp_path):
    """A short seeded run: every epoch's val_mmd is the better of the moving average's and the
    raw weights', the kept epoch is the best, and on fresh samples the kept generator is no
    worse than the raw one that training ended with (last.ckpt)."""
    ds = load_dataset("8-gaussians")
    cfg = {"epochs": 4, "epoch_batches": 25, "sample_every": 0, "test": False, "ema": 0.999}
    train("gan", ds, tmp_path, {}, cfg, show=lambda m: None)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    for r in records:
        assert r["val_mmd"] == min(r["val_mmd_ema"], r["val_mmd_raw"])
    best = min(records, key=lambda r: r["val_mmd"])
    assert json.loads((tmp_path / "results.json").read_text())["best_epoch"] == best["epoch"]
    kept, raw = dgm.load(tmp_path), dgm.load(tmp_path)
    state = torch.load(tmp_path / "last.ckpt", weights_only=True, map_location="cpu")
    raw.load_state_dict({k[6:]: v for k, v in state["state_dict"].items() if k[:6] == "model."})
    val = ds.val.x[:2000]
    scale = 2 / (raw.config.high - raw.config.low)
    scores = []
    for model in (kept, raw):
        torch.manual_seed(1)
        scores.append(float(mmd(model.sample(2000) * scale, val * scale)))
    assert scores[0] <= scores[1] + 0.01, scores


@pytest.mark.slow
def test_default_gan_covers_every_mode_of_the_8_gaussians(tmp_path):
    """The defaults for 2-D data (lr, batch, players, packing), seeded, 30 of their 60
    epochs on one thread: every mode covered, most samples near one."""
    ds = load_dataset("8-gaussians")
    res = train("gan", ds, tmp_path, {}, {"epochs": 30, "sample_every": 0}, show=lambda m: None)
    assert res["test_modes_covered"] == 8, res
    assert res["test_high_quality"] > 0.4, res
