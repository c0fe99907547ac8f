"""Readable pictures, loggers and CLI polish (issue 15): the scale and panels of loss.png, 2-D
samples on the data's axes, decoder means, labelled reconstructions, Lightning loggers in the
run folder, `dgm list MODEL`, help texts, and bad numbers or output paths refused up front."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import dgm
from dgm.data.base import DataSpec
from dgm.plotting import (
    curve_panels,
    data_view,
    reconstructions_figure,
    samples_figure,
    save_curves,
    y_view,
)

VAE_SETS = [
    "--set", "latent=4", "--set", "hidden=16", "--set", "layers=1", "--set", "channels=4",
    "--set", "epoch_batches=3", "--set", "num_samples=4", "--set", "test=false",
    "--precision", "32",
]  # fmt: skip


def _one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- loss.png: the scale and the panels ---------------------------------------------------------
def test_y_view_is_log_when_positive_values_span_more_than_a_decade():
    # a curve that falls over decades, epoch after epoch: log
    assert y_view([1000.0, 300.0, 100.0, 40.0, 20.0, 12.0, 9.0, 8.0]) == ("log", None)
    # a short run shows every point: log, even for one big first value
    assert y_view([900.0, 40.0, 35.0, 33.0, 32.5]) == ("log", None)
    # under a decade: linear, and nothing far above the bulk, so matplotlib's own limits
    assert y_view([60.0, 40.0, 35.0, 33.0, 32.5]) == ("linear", None)
    assert y_view([]) == ("linear", None)


def test_y_view_clips_an_early_spike_but_keeps_the_minimum():
    # continuous data: negative NLLs, where a log scale is impossible
    values = [80.0] + [-1.0 - 0.05 * i for i in range(20)]
    scale, limits = y_view(values)
    assert scale == "linear" and limits is not None
    lo, hi = limits
    assert hi < 80.0  # the spike is out of the view
    assert lo <= min(values) and all(lo <= v <= hi for v in values[1:])
    # one spike among positive values is clipped too, though they span two decades: a log
    # scale would still squash the curve under it
    scale, limits = y_view([200.0] + [2.0 - 0.02 * i for i in range(19)])
    assert scale == "linear" and limits is not None and limits[1] < 3.0


def _records(extra: dict, n: int = 4) -> list[dict]:
    return [{"epoch": e, "train_loss": 10.0 - e, **extra} for e in range(n)]


def test_curve_panels_one_per_scale(tmp_path):
    plain = curve_panels(_records({"val_nll": 9.0}))
    assert [p.title for p in plain] == ["loss"]
    assert [k for k, _ in plain[0].keys] == ["train_loss", "val_nll"]
    assert plain[0].best == "val_nll"
    # a hybrid: the objective trained on and the D-times-larger NLL apart, and the accuracy
    hybrid = _records({"val_nll": 700.0, "val_objective": 2.0, "val_ce": 0.3, "val_error": 0.1})
    panels = curve_panels(hybrid)
    assert [p.title for p in panels] == ["training objective", "validation NLL", "classification"]
    assert [k for k, _ in panels[0].keys] == ["train_loss", "val_objective"]
    assert panels[0].best == "val_objective"
    assert [k for k, _ in panels[1].keys] == ["val_nll"]
    assert [k for k, _ in panels[2].keys] == ["val_accuracy"]
    # only what the records hold: no validation yet, one panel of the training loss
    assert [p.title for p in curve_panels([{"epoch": 0, "train_loss": 1.0}])] == ["loss"]
    save_curves(hybrid, tmp_path / "loss.png", title="hybrid")
    assert (tmp_path / "loss.png").stat().st_size > 0


# -- samples, reconstructions, heatmaps ---------------------------------------------------------
def test_2d_samples_are_drawn_on_the_datas_axes():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(500, 2, generator=g) * torch.tensor([3.0, 1.0]) + torch.tensor([5.0, -2])
    collapsed = 0.01 * torch.randn(64, 2, generator=g)  # a generator stuck near the origin
    spec = DataSpec(name="toy", shape=(2,), levels=None)
    fig = samples_figure(collapsed, spec, "gan: samples", data=data)
    ax = fig.axes[0]
    x0, x1, y0, y1 = data_view(data)
    assert ax.get_xlim() == pytest.approx((x0, x1)) and ax.get_ylim() == pytest.approx((y0, y1))
    # the view is the data's range (5% margins), whatever the samples do
    lo, hi = data.min(0).values, data.max(0).values
    span = hi - lo
    assert x0 == pytest.approx(float(lo[0] - 0.05 * span[0]), rel=1e-5)
    assert y1 == pytest.approx(float(hi[1] + 0.05 * span[1]), rel=1e-5)
    # samples off the view are counted in the title rather than widening the axes
    far = torch.full((10, 2), 100.0)
    title = samples_figure(far, spec, "t", data=data).axes[0].get_title()
    assert "10 of 10 samples outside" in title


def test_heatmaps_have_a_colour_bar():
    spec = DataSpec(name="vec", shape=(5,), levels=None)
    fig = samples_figure(torch.randn(8, 5), spec, "samples")
    assert len(fig.axes) == 2  # the heatmap and its colour bar


def test_reconstruction_rows_are_labelled():
    spec = DataSpec(name="digits", shape=(1, 8, 8), levels=17)
    x = torch.randint(0, 17, (12, 1, 8, 8)).float()
    fig = reconstructions_figure(x, x.flip(0), spec, title="vae: inputs and reconstructions")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    # 12 inputs in rows of 8: input, reconstruction, input, reconstruction
    assert labels == ["input", "reconstruction", "input", "reconstruction"]
    assert ax.get_title() == "vae: inputs and reconstructions"


# -- decoder means --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bernoulli", "categorical", "logistic-mixture"])
def test_likelihood_mean_is_the_expected_value(name):
    from dgm.distributions.base import make_likelihood
    from dgm.models.latent.base import likelihood_mean

    levels = 2 if name == "bernoulli" else 5
    lik = make_likelihood(name, levels, 2)
    torch.manual_seed(0)
    params = torch.randn(3, lik.params_per_dim, 4) * 2
    mean = likelihood_mean(lik, params)
    draws = torch.stack([lik.sample(params) for _ in range(4000)]).mean(0)
    assert mean.shape == (3, 4)
    assert torch.allclose(mean, draws, atol=0.12)  # Monte Carlo error ~ 2/sqrt(4000) levels


def test_sample_mode_is_mean_for_pictures_of_models_with_a_decoder():
    from dgm.cli.sample import choose_mode
    from dgm.errors import ConfigError

    vae = dgm.create("vae", shape=(64,), levels=17, latent=2, hidden=8, layers=1)
    arm = dgm.create("arm", shape=(64,), levels=17, hidden=8, layers=2, kernel_size=3)
    assert choose_mode(vae, None, ".png", None) == "mean"
    assert choose_mode(vae, None, ".npy", None) == "sample"  # arrays: draws, as sample() gives
    assert choose_mode(vae, None, ".png", 0.5) == "sample"  # a temperature acts on draws
    assert choose_mode(vae, "sample", ".png", None) == "sample"
    assert choose_mode(arm, None, ".png", None) == "sample"
    with pytest.raises(ConfigError, match="no decoder mean"):
        choose_mode(arm, "mean", ".png", None)
    with pytest.raises(ConfigError, match="--temperature"):
        choose_mode(vae, "mean", ".png", 0.5)


# -- the command line: list, help, bad numbers, bad outputs -------------------------------------
def test_list_one_model(run_cli):
    code, out, _ = run_cli("list", "vae")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith("vae [latent]")
    assert any(line.strip().startswith("latent=") for line in lines)
    assert len(lines) < 40 and "datasets" not in out
    assert not any(line.startswith(("arm", "realnvp", "gan")) for line in lines)
    code, out, _ = run_cli("list", "vae", "--json")
    assert code == 0 and json.loads(out)["name"] == "vae"
    code, _, err = run_cli("list", "vea")
    line = _one_line_error(code, err)
    assert "unknown model 'vea'" in line and "vae" in line


def test_every_train_option_has_help_with_its_default():
    from dgm.cli import build_parser
    from dgm.config import describe
    from dgm.training.config import TrainConfig

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    train = sub.choices["train"]
    options = [a for a in train._actions if a.option_strings and a.dest != "help"]
    assert len(options) >= 15
    for action in options:
        assert action.help and "(default:" in action.help, action.option_strings
    # the defaults the help states are TrainConfig's
    defaults = {n: d for n, d, _ in describe(TrainConfig)}
    by_dest = {a.dest: a.help for a in options}
    for dest in ("epochs", "batch_size", "seed", "logger"):
        assert f"(default: {defaults[dest]}" in by_dest[dest], dest
    assert "examples:" in train.epilog and "dgm train" in train.epilog


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "vae", "--max-time", "-5"], "--max-time must be a number > 0"),
        (["train", "vae", "--max-time", "0"], "--max-time must be a number > 0"),
        (["train", "vae", "--set", "max_time=-5"], "max_time must be >= 0"),
        (["train", "vae", "--logger", "wandb"], "expected one of none, csv, tensorboard"),
        (["train", "vae", "--set", "logger=wandb"], "expected one of none, csv, tensorboard"),
        (["sample", "RUN", "--temperature", "-1"], "--temperature must be a number >= 0"),
        (["sample", "RUN", "-n", "0"], "-n must be >= 1"),
        (["sample", "RUN", "-n", "-3"], "-n must be >= 1"),
    ],
)
def test_bad_numbers_are_refused(args, needle, run_cli, tmp_path):
    args = [str(tmp_path / "nosuchrun") if a == "RUN" else a for a in args]
    out = ["--out", str(tmp_path / "r")] if args[0] == "train" else []
    code, _, err = run_cli(*args, *out)
    assert needle in _one_line_error(code, err)
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    "args",
    [
        ["sample", "RUN", "--out", "/nonexistent/dir/x.png"],
        ["sample", "RUN", "--out", "/nonexistent/dir/x.csv"],
        ["reconstruct", "RUN", "--out", "/nonexistent/dir/x.png"],
        ["detect", "RUN", "inputs", "--out", "/nonexistent/dir/x.json"],
        ["ood", "RUN", "--out", "noise", "--plot", "/nonexistent/dir/x.png"],
        ["sample", "RUN", "--out", "FILE/x.png"],
        ["train", "vae", "--out", "FILE/run"],
    ],
)
def test_unwritable_outputs_are_refused_before_any_work(args, run_cli, tmp_path):
    (tmp_path / "FILE").write_text("a file, not a folder")
    run = tmp_path / "run"  # not a run: the output check must come first to pass this test
    args = [str(run) if a == "RUN" else a.replace("FILE", str(tmp_path / "FILE")) for a in args]
    code, _, err = run_cli(*args)
    line = _one_line_error(code, err)
    assert "--out" in line or "--plot" in line
    assert "not a run" not in line and "config.json" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"]
    assert not Path("/nonexistent").exists()


# -- trained: loggers, decoder means end to end ---------------------------------------------------
@pytest.mark.slow
def test_csv_logger_and_vae_pictures_of_decoder_means(run_cli, tmp_path, monkeypatch):
    import dgm.pipeline

    titles: list[str] = []
    save = dgm.pipeline.save_samples

    def spy(x, spec, path, title="", data=None):
        titles.append(title)
        return save(x, spec, path, title, data)

    monkeypatch.setattr(dgm.pipeline, "save_samples", spy)
    run = tmp_path / "vae"
    code, _, err = run_cli("train", "vae", "--epochs", "1", "--out", run, "--logger", "csv",
                           *VAE_SETS)  # fmt: skip
    assert code == 0, err
    csv = (run / "logs" / "version_0" / "metrics.csv").read_text().splitlines()
    assert "train_loss" in csv[0].split(",") and "val_nll" in csv[0].split(",") and len(csv) > 1
    assert (run / "metrics.jsonl").exists()
    assert titles == ["vae: decoder means E[x|z]"]  # the end-of-training samples.png

    # dgm sample: pictures are means by default; --mode picks; arrays are draws by default
    code, out, _ = run_cli("sample", run, "-n", "4", "--out", tmp_path / "m.png")
    assert code == 0 and "decoder means" in out
    model = dgm.load(run)
    torch.manual_seed(3)
    expected = model.sample_mean(5)
    for name in ("a.npy", "b.npy"):
        assert run_cli("sample", run, "-n", "5", "--seed", "3", "--mode", "mean",
                       "--out", tmp_path / name)[0] == 0  # fmt: skip
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert np.array_equal(a, b)  # deterministic given z (the seed)
    assert np.allclose(a, expected.numpy(), atol=1e-5)
    assert not np.all(a == np.round(a))  # expected levels, not whole ones
    assert (
        run_cli("sample", run, "-n", "5", "--mode", "sample", "--out", tmp_path / "c.npy")[0] == 0
    )
    c = np.load(tmp_path / "c.npy")
    assert np.all(c == np.round(c)) and c.min() >= 0 and c.max() <= 16  # draws: whole levels
    # CSV: one row per sample, flattened, under a header
    assert run_cli("sample", run, "-n", "3", "--out", tmp_path / "s.csv")[0] == 0
    rows = (tmp_path / "s.csv").read_text().strip().splitlines()
    assert rows[0] == ",".join(f"x{i}" for i in range(64)) and len(rows) == 4
    assert np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1).shape == (3, 64)
    assert run_cli("sample", run, "-n", "3", "--out", tmp_path / "s.npz")[0] == 0
    assert np.load(tmp_path / "s.npz")["samples"].shape == (3, 1, 8, 8)  # the data's shape


@pytest.mark.slow
def test_tensorboard_logger_writes_an_events_file(run_cli, tmp_path):
    if importlib.util.find_spec("tensorboard") is None:
        pytest.skip("tensorboard is not installed (pip install 'dgm[tensorboard]')")
    run = tmp_path / "vae"
    code, _, err = run_cli("train", "vae", "--epochs", "1", "--out", run,
                           "--set", "logger=tensorboard", *VAE_SETS)  # fmt: skip
    assert code == 0, err
    events = list((run / "logs").glob("version_0/events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0


def test_missing_tensorboard_is_one_line(monkeypatch, tmp_path):
    from dgm.errors import ConfigError
    from dgm.runs import RunFolder
    from dgm.training.loggers import make_logger

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("tensorboard", "tensorboardX") else real(name, *a),
    )
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        make_logger("tensorboard", RunFolder(tmp_path / "r"))
    assert not (tmp_path / "r").exists()
