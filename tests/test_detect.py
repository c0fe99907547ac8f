"""Decisions from p(x): thresholds, `dgm detect` on mixed inputs, `dgm ood`, background models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from dgm.data.base import DataSpec
from dgm.data.inputs import derived_inputs, read_inputs
from dgm.errors import ConfigError, DataError
from dgm.evaluation.decision import calibrate, decide, summarize
from tests.helpers import TINY_TRAIN, shared_data

SPEC = DataSpec("digits", (1, 8, 8), 17, 0.0, 16.0, num_classes=10)


# -- the decision rule -----------------------------------------------------------------------------
def test_calibrate_keeps_the_asked_share_of_validation_inputs():
    val = torch.arange(100, dtype=torch.float64) - 200.0  # -200 .. -101
    for keep in (0.5, 0.9, 0.95, 0.99, 1.0):
        thr = calibrate(val, keep)
        kept = float((val >= thr.log_px).double().mean())
        assert kept >= keep - 1e-12 and kept < keep + 0.011, (keep, kept)
    assert calibrate(val, 1.0).log_px == -200.0
    with pytest.raises(ConfigError, match="keep"):
        calibrate(val, 0.0)
    with pytest.raises(DataError, match="NaN"):
        calibrate(torch.tensor([1.0, float("nan")]), 0.9)


def test_decisions_change_as_the_thresholds_say():
    log_px = torch.tensor([-50.0, -50.0, -150.0, -150.0])
    log_py = torch.tensor([[0.95, 0.05], [0.4, 0.6], [0.99, 0.01], [0.3, 0.7]]).log()
    thr = calibrate(torch.tensor([-100.0, -80.0, -60.0]), keep=1.0, min_p_label=0.7)
    recs = decide(log_px, log_py, thr, dim=64)
    assert [r["decision"] for r in recs] == [
        "confident",  # plausible object, sure label
        "uncertain-label",  # plausible object, p(label) 0.6 < 0.7
        "uncertain-object",  # improbable object: its sure label does not count
        "uncertain-object",
    ]
    assert [r["label"] for r in recs] == [0, 1, 0, 1]
    assert recs[1]["p_label"] == pytest.approx(0.6)
    assert recs[0]["bpd"] == pytest.approx(50 / (64 * math.log(2)))
    # moving a threshold moves the decisions with it
    looser = calibrate(torch.tensor([-200.0]), keep=1.0, min_p_label=0.5)
    assert [r["decision"] for r in decide(log_px, log_py, looser, 64)] == ["confident"] * 4
    assert summarize(recs) == {"confident": 1, "uncertain-label": 1, "uncertain-object": 2}
    # no classifier: the object alone decides, and there is no label
    plain = decide(log_px, None, thr, 64)
    assert [r["decision"] for r in plain] == ["confident"] * 2 + ["uncertain-object"] * 2
    assert plain[0]["label"] is None and plain[0]["p_label"] is None
    # a NaN or -inf log p(x) is never confident
    bad = decide(torch.tensor([float("-inf"), float("nan")]), None, thr, 64)
    assert [r["decision"] for r in bad] == ["uncertain-object"] * 2


# -- reading inputs -------------------------------------------------------------------------------
@pytest.fixture
def mixed_inputs(tmp_path, digits):
    """A folder of valid and invalid inputs, as a user's would be."""
    x = digits.test.x[:4].numpy()
    for i in range(2):  # 8-bit pictures of test digits
        img = (x[i, 0] * 255 / 16).round().astype(np.uint8)
        Image.fromarray(img).save(tmp_path / f"digit{i}.png")
    noise = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "too-big.png")
    np.save(tmp_path / "batch.npy", x[2:4])  # two examples in the data's own units
    np.save(tmp_path / "out-of-range.npy", np.full((8, 8), 20.0))
    np.save(tmp_path / "wrong-shape.npy", np.zeros((3, 5)))
    (tmp_path / "notes.txt").write_text("not an input")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / ".hidden.npy").write_bytes(b"skipped")
    return tmp_path


def test_read_inputs_reports_each_file(mixed_inputs, digits):
    items = {it.name.split("/")[-1]: it for it in read_inputs(mixed_inputs, SPEC)}
    assert set(items) == {
        "digit0.png", "digit1.png", "noise.png", "too-big.png", "batch.npy[0]", "batch.npy[1]",
        "out-of-range.npy", "wrong-shape.npy", "notes.txt", "broken.png",
    }  # fmt: skip
    valid = {k for k, it in items.items() if it.x is not None}
    assert valid == {"digit0.png", "digit1.png", "noise.png", "batch.npy[0]", "batch.npy[1]"}
    # 8-bit pictures come back as the model's 17 levels, exactly the digits they were made of
    assert torch.equal(items["digit0.png"].x, digits.test.x[0])
    assert torch.equal(items["batch.npy[1]"].x, digits.test.x[3])
    assert "28x28" in items["too-big.png"].error and "8x8" in items["too-big.png"].error
    assert "17 levels" in items["out-of-range.npy"].error
    assert "(3, 5)" in items["wrong-shape.npy"].error
    assert "unsupported file type" in items["notes.txt"].error
    assert "not an image" in items["broken.png"].error
    with pytest.raises(DataError, match="no such file"):
        read_inputs(mixed_inputs / "missing", SPEC)


def test_derived_inputs():
    x = torch.tensor([[[[0.0, 16.0], [3.0, 8.0]]]])
    assert torch.equal(derived_inputs("inverted", x, SPEC), 16 - x)
    noise = derived_inputs("noise", x.expand(500, 1, 2, 2), SPEC)
    assert noise.min() == 0 and noise.max() == 16 and torch.equal(noise, noise.round())
    with pytest.raises(DataError, match="noise, inverted"):
        derived_inputs("blur", x, SPEC)


# -- the commands ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A two-epoch ARM on digits and a background ARM trained on mutated inputs."""
    from dgm.cli import main

    root = tmp_path_factory.mktemp("detect")
    fg, bg = root / "fg", root / "bg"
    common = ["train", "arm", "--data", "digits", "--epochs", "2", *TINY_TRAIN]
    assert main([*common, "--out", str(fg)]) == 0
    assert main([*common, "--out", str(bg), "--set", "perturb=0.3"]) == 0
    return fg, bg


@pytest.mark.slow
def test_detect_on_a_folder_of_mixed_inputs(runs, mixed_inputs, run_cli):
    fg, _ = runs
    code, out, err = run_cli("detect", fg, mixed_inputs, "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    rows, summary = lines[:-1], lines[-1]["summary"]
    by_name = {r["input"].split("/")[-1]: r for r in rows}
    assert len(rows) == 10 and summary["inputs"] == 10 and summary["invalid"] == 5
    assert sum(summary[d] for d in ("confident", "uncertain-label", "uncertain-object")) == 5
    assert "error" in by_name["too-big.png"] and "error" not in by_name["digit0.png"]
    for r in (by_name["digit0.png"], by_name["noise.png"]):
        assert {"label", "p_label", "log_px", "bpd", "decision"} <= set(r)
        assert r["bpd"] == pytest.approx(-r["log_px"] / (64 * math.log(2)))
    # uniform noise is less probable than a digit (even to a two-epoch model), and falls below
    # the threshold
    assert by_name["noise.png"]["log_px"] < by_name["digit0.png"]["log_px"] - 5
    assert by_name["noise.png"]["decision"] == "uncertain-object"
    assert summary["thresholds"]["keep"] == 0.95 and summary["thresholds"]["num_val"] == 350
    # a threshold given by hand decides instead of the calibrated one
    code, out, _ = run_cli("detect", fg, mixed_inputs, "--json", "--log-px-threshold=-1e9")
    assert json.loads(out.splitlines()[-1])["summary"]["uncertain-object"] == 0
    # the plain-text form: one line per input and a summary line; a report file
    code, out, _ = run_cli("detect", fg, mixed_inputs, "--out", mixed_inputs / "r.csv")
    assert code == 0 and len(out.splitlines()) == 11 and "invalid" in out
    assert "5 invalid" in out.splitlines()[-1]
    assert len((mixed_inputs / "r.csv").read_text().splitlines()) == 11


@pytest.mark.slow
def test_detect_refuses_what_it_cannot_score(runs, tmp_path, run_cli):
    fg, _ = runs
    np.save(tmp_path / "bad.npy", np.zeros((2, 7)))
    code, out, err = run_cli("detect", fg, tmp_path / "bad.npy")
    assert code == 2 and "none of the 1 inputs" in err and "(2, 7)" in out
    code, _, err = run_cli("detect", fg, tmp_path / "nothing-here")
    assert code == 2 and "no such file or folder" in err and "Traceback" not in err


@pytest.mark.slow
def test_ood_reports_every_score_with_a_background(runs, run_cli):
    fg, bg = runs
    code, out, err = run_cli("ood", fg, "--out", "noise", "--background", bg, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert set(res["scores"]) == {"likelihood", "typicality", "likelihood-ratio", "complexity"}
    for m in res["scores"].values():
        assert 0 <= m["auroc"] <= 1 and 0 <= m["aupr"] <= 1 and 0 <= m["fpr95"] <= 1
    # two epochs are enough to tell uniform noise from digits by likelihood
    assert res["scores"]["likelihood"]["auroc"] > 0.99
    assert res["n_in"] == res["n_out"] == 447 and res["in"] == "digits"
    with Image.open(res["plot"]) as img:
        assert img.width > 100
    assert any("hybrid" in n for n in res["notes"])
    code, out, _ = run_cli("ood", fg, "--out", "inverted", "--limit", "50")
    assert code == 0 and "AUROC" in out and "likelihood-ratio" in out  # named in a note


@pytest.mark.slow
def test_ood_refuses_data_of_another_shape(runs, run_cli):
    data = shared_data("mnist")  # skips, saying why, on a machine without the shared data
    fg, _ = runs
    code, _, err = run_cli("ood", fg, "--out", "mnist", "--data-dir", data.parent, "--limit", "5")
    assert code == 2 and "shape" in err and "Traceback" not in err


@pytest.mark.slow
def test_perturb_needs_discrete_likelihood_models(run_cli):
    code, _, err = run_cli("train", "gan", "--set", "perturb=0.1", "--epochs", "1")
    assert code == 2 and "perturb" in err
    code, _, err = run_cli("train", "arm", "--set", "perturb=1.5", "--epochs", "1")
    assert code == 2 and "perturb" in err
