"""Progress of long work (dgm.progress): plain lines on stderr from the command line when it
is no terminal, a bar that is cleared before a Ctrl-C's line, nothing from library calls; K
importance samples in parts are the same estimate."""

from __future__ import annotations

import re

import pytest
import torch

from dgm import progress, registry
from dgm.evaluation import likelihood
from dgm.evaluation.likelihood import evaluate_likelihood, per_example_nll, sample_parts
from tests.helpers import TINY


@pytest.fixture
def every_update(monkeypatch):
    """A progress line after every chunk (instead of every 10 s)."""
    monkeypatch.setenv("DGM_PROGRESS_EVERY", "0")


def _tiny(name: str, spec):
    return registry.get(name).cls.for_data(spec, **TINY[name])


@pytest.fixture
def vae_run(tmp_path, digits):
    """An untrained tiny VAE saved as a run folder: dgm eval reads it as a trained one."""
    torch.manual_seed(0)
    model = _tiny("vae", digits.spec)
    run = tmp_path / "vae"
    model.save(run, {"data": {"name": "digits", "spec": digits.spec.to_dict()}})
    return run


def test_library_calls_print_nothing(every_update, capsys, digits):
    torch.manual_seed(0)
    vae = _tiny("vae", digits.spec)
    out = evaluate_likelihood(vae, digits.test.x[:6], batch_size=3, num_samples=300)
    arm = _tiny("arm", digits.spec)
    arm.sample(2)
    assert out["n"] == 6
    assert capsys.readouterr() == ("", "")
    with progress.shown("lines"):  # the same calls where the command line turns progress on
        arm.sample(2)
        evaluate_likelihood(vae, digits.test.x[:6], batch_size=3, num_samples=300)
    err = capsys.readouterr().err
    assert "sampling: " in err and "nll: " in err and "-elbo: " in err


def test_plain_lines_say_the_share_done_the_time_left_and_the_end(every_update, capsys):
    with progress.shown("lines"):
        for _ in progress.track(range(4), "work", unit="steps"):
            pass
    lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"work: about .+ in all \(the first 25% took .+\)", lines[0])
    shares = [m.group(1) for line in lines if (m := re.match(r"work: (\d+)% \(", line))]
    assert shares == ["25", "50", "75"]
    assert all("left" in line for line in lines[1:4])
    assert lines[-1].startswith("work: done in")
    assert not progress.enabled()  # off again after the command


def test_cli_eval_says_what_it_computes_then_its_progress(every_update, vae_run, run_cli):
    code, out, err = run_cli("eval", vae_run, "--limit", "20", "--num-samples", "300", "--json")
    assert code == 0, err
    assert out.count("\n") == 1  # stdout stays the one JSON object
    lines = err.splitlines()
    assert lines[0].startswith("nll of vae on 20 test examples of digits (K=300 importance")
    assert re.fullmatch(r"nll: about .+ in all \(the first 33% took .+\)", lines[1])
    assert any(re.match(r"nll: 67% \(13/20 examples\), .+ left", line) for line in lines)
    assert "nll: done in" in err


def test_ctrl_c_clears_the_bar_before_its_one_line(vae_run, run_cli, monkeypatch):
    monkeypatch.setattr(progress, "_on_terminal", lambda: True)  # a bar, as on a terminal
    monkeypatch.setattr(progress, "DELAY", 0.0)  # drawn at once

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    # the first batch's parts are made, the bar is drawn and open: then Ctrl-C
    monkeypatch.setattr(likelihood, "join_estimates", ctrl_c)
    code, out, err = run_cli("eval", vae_run, "--limit", "20", "--num-samples", "300")
    assert code == 130 and out == ""
    assert "nll: " in err and "examples" in err  # the bar was drawn
    # the bar's line was cleared (a carriage return after its text), then the message
    assert err.rsplit("\r", 1)[-1] == "dgm eval: interrupted\n"
    assert progress._active == [] and not progress.enabled()


def test_importance_samples_in_parts_are_the_same_estimate(digits):
    assert sample_parts(5000) == [250] * 20
    assert sample_parts(150) == [150]
    assert sum(sample_parts(1234)) == 1234
    torch.manual_seed(0)
    vae = _tiny("vae", digits.spec).eval()
    x = digits.test.x[:5]
    torch.manual_seed(1)
    with torch.no_grad():
        whole = vae.log_prob(x, num_samples=350)  # one call
    torch.manual_seed(1)
    parts = -per_example_nll(vae, x, num_samples=350)  # calls of 100, 100, 100 and 50 draws
    torch.testing.assert_close(parts, whole.double(), rtol=1e-5, atol=1e-4)
    torch.manual_seed(2)
    other = -per_example_nll(vae, x, num_samples=350)
    assert not torch.allclose(other, parts)  # the draws matter: the match above is no accident


def test_duration_reads_like_a_person_would_say_it():
    assert progress.duration(4.2) == "4.2 s"
    assert progress.duration(40) == "40 s"
    assert progress.duration(240) == "4 min"
    assert progress.duration(9000) == "2.5 h"


@pytest.mark.parametrize("value, seconds", [("2.5", 2.5), ("", 10.0), ("soon", 10.0), ("-1", 10.0)])
def test_the_line_interval_comes_from_the_environment(monkeypatch, value, seconds):
    monkeypatch.setenv("DGM_PROGRESS_EVERY", value)
    assert progress.every() == seconds


def test_the_estimate_waits_for_a_hundredth_of_the_work(every_update, capsys):
    # the first of 1000 items carries the start-up: estimating from it alone announced hours
    with progress.shown("lines"):
        for _ in progress.track(range(1000), "parse", unit="molecules"):
            pass
    lines = capsys.readouterr().err.splitlines()
    estimates = [line for line in lines if "in all" in line]
    assert len(estimates) == 1
    assert re.fullmatch(r"parse: about .+ in all \(the first 1% took .+\)", estimates[0])
