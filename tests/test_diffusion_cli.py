"""The diffusion family from the command line: eval says what its number is, sample takes the
sampler and its steps from --set, a 2-D ODE model draws its density, and bad options are one
line with exit 2."""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers import TINY

pytestmark = pytest.mark.slow


def sets(name: str) -> list[str]:
    return [a for k, v in TINY[name].items() for a in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def ddpm_run(tmp_path_factory):
    from dgm.cli import main

    run = tmp_path_factory.mktemp("ddpm") / "run"
    args = ["train", "ddpm", "--data", "digits", "--epochs", "2", "--out", str(run)]
    assert main([*args, "--set", "sample_every=0", "--set", "num_samples=4", *sets("ddpm")]) == 0
    return run


def test_eval_reports_the_bound_and_says_so(ddpm_run, run_cli):
    code, out, err = run_cli("eval", ddpm_run, "--json", "--num-samples", "19")
    assert code == 0, err
    res = json.loads(out)
    assert res["nll_nats"] > 0 and res["bpd"] == pytest.approx(
        res["nll_nats"] / (64 * 0.6931471805599453)
    )
    assert "variational bound" in res["estimate"] and "K = 19" in res["estimate"]
    assert res["exact"] is False
    assert "K=19 draws averaged" in err  # not "importance samples": the draws are averaged
    summary = (ddpm_run / "summary.md").read_text()
    assert "variational bound" in summary


def test_sample_takes_the_sampler_and_steps_from_set(ddpm_run, run_cli, tmp_path):
    out = tmp_path / "s.npy"
    code, stdout, err = run_cli(
        "sample", ddpm_run, "-n", "5", "--out", out, "--set", "steps=5", "--set", "sampler=ddim",
        "--set", "eta=0.5",
    )  # fmt: skip
    assert code == 0, err
    assert "(ddim, 5 steps)" in stdout
    import numpy as np

    x = np.load(out)
    assert x.shape == (5, 1, 8, 8) and np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= 16


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("sampler=nope", "unknown sampler 'nope'"),
        ("steps=0", "steps must be >= 1"),
        ("eta=-1", "eta must be"),
        ("hidden=4", "takes no sampling option 'hidden'"),
        ("steps", "expected key=value"),
    ],
)
def test_bad_sampling_options_are_one_line(ddpm_run, run_cli, tmp_path, option, words):
    out = tmp_path / "s.png"
    code, _, err = run_cli("sample", ddpm_run, "-n", "2", "--out", out, "--set", option)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_bad_num_samples_is_one_line(ddpm_run, run_cli):
    code, _, err = run_cli("eval", ddpm_run, "--num-samples", "0")
    assert code == 2 and "--num-samples must be >= 1" in err


def test_models_drawn_in_one_pass_refuse_sampling_options(tmp_path, run_cli):
    run = tmp_path / "arm"
    code, _, err = run_cli(
        "train", "arm", "--data", "digits", "--epochs", "1", "--out", run,
        "--set", "sample_every=0", *sets("arm"),
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run_cli("sample", run, "-n", "2", "--set", "steps=5")
    assert code == 2 and "takes no sampling options" in err


def test_flow_matching_on_two_moons_draws_its_density(tmp_path, run_cli):
    run = tmp_path / "fm"
    code, _, err = run_cli(
        "train", "flow-matching", "--data", "two-moons", "--epochs", "2", "--out", run,
        "--set", "epoch_batches=20", "--set", "sample_every=0", "--set", "hidden=32",
        "--set", "rtol=1e-3", "--set", "atol=1e-3",
    )  # fmt: skip
    assert code == 0, err
    assert (run / "density.png").stat().st_size > 5000
    code, out, err = run_cli("sample", run, "-n", "200", "--out", tmp_path / "d.png")
    assert code == 0, err
    assert "density mass in the picture's window" in out
    code, out, err = run_cli("eval", run, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["exact"] is True and "ODE log-likelihood" in res["estimate"]


def test_a_discrete_model_refuses_continuous_values(ddpm_run):
    import dgm
    from dgm.errors import DataError

    model = dgm.load(ddpm_run)
    with pytest.raises(DataError, match="not whole numbers"):
        model.log_prob(torch.rand(2, 1, 8, 8) * 16)
