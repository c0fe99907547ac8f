"""``dgm compare`` and ``dgm report`` end to end on digits with tiny models: the report's
numbers are what ``dgm eval --json`` and ``dgm ood --json`` give for each run, the page holds
every model's row and pictures, and an interrupted comparison resumes without retraining."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import DGM, DGM_ENV, ReportPage

pytestmark = pytest.mark.slow

# tiny models that train for two epochs, so the comparison takes seconds
MODELS = (
    "arm:hidden=16:layers=3:kernel_size=3:epochs=2,"
    "vae:latent=4:hidden=16:layers=1:channels=4:epochs=2,"
    "gan:hidden=16:layers=1:channels=8:latent=4:epochs=2"
)
LABELS = [
    "arm-hidden=16-layers=3-kernel_size=3-epochs=2",
    "vae-latent=4-hidden=16-layers=1-channels=4-epochs=2",
    "gan-hidden=16-layers=1-channels=8-latent=4-epochs=2",
]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One tiny comparison, made once: (folder, report.json, stdout)."""
    out = tmp_path_factory.mktemp("compare") / "cmp"
    cmd = [*DGM, "compare", "--models", MODELS, "--budget", "120",
           "--num-samples", "20", "--num-generated", "60", "--out", str(out)]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, env=DGM_ENV, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return out, json.loads((out / "report.json").read_text()), p.stdout


def test_compare_writes_the_report_and_prints_the_table(compared):
    out, report, stdout = compared
    assert [m["label"] for m in report["models"]] == LABELS
    assert (out / "report.html").is_file() and f"report: {out / 'report.html'}" in stdout
    for label in LABELS:
        assert label in stdout  # the table in the terminal
    kinds = {m["model"]: m["kind"] for m in report["models"]}
    assert kinds == {"arm": "exact", "vae": "estimate", "gan": "none"}
    assert report["settings"]["budget_s"] == 120
    assert report["environment"]["torch"] and report["environment"]["dgm"]
    assert report["reading"] and any("Best on likelihood" in s for s in report["reading"])


def _run_cli(argv: list[str]) -> dict:
    import contextlib
    import io

    from dgm.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        assert main(argv) == 0
    return json.loads(buf.getvalue())


def test_report_numbers_equal_dgm_eval_json(compared):
    """Each number of the report is what the command it names prints, run on its own: every
    likelihood, and the samples and OOD scores of one model each (the same code path)."""
    out, report, _ = compared
    rows = {r["label"]: r for r in report["models"]}
    checked = set()
    for e in report["runs"]:
        row = rows[e["label"]]
        for what, command in e["commands"].items():
            if what != "nll" and what in checked:
                continue
            checked.add(what)
            got = _run_cli(shlex.split(command)[1:])
            if what == "nll":
                assert row["metrics"]["nll_nats"]["mean"] == got["nll_nats"]
                assert row["metrics"]["bpd"]["mean"] == got["bpd"]
                assert e["kind"] == got["kind"]
            elif what == "samples":
                for key in ("fd", "precision", "recall"):
                    assert row["metrics"][key]["mean"] == got[key], key
                assert (
                    row["metrics"]["classes_covered"]["mean"] == (got["classes"]["classes_covered"])
                )
            else:
                key = "auroc_" + what[4:]
                assert row["metrics"][key]["mean"] == got["scores"]["likelihood"]["auroc"]
    assert checked == {"nll", "samples", "ood-noise", "ood-inverted"}
    # the commands are the ones a person would type: K for the estimate only
    by_model = {e["model"]: e["commands"] for e in report["runs"]}
    assert by_model["vae"]["nll"].endswith("--json --num-samples 20")
    assert "--num-samples" not in by_model["arm"]["nll"]
    assert "nll" not in by_model["gan"] and "ood-noise" not in by_model["gan"]
    assert f"--features {out / 'features'}" in by_model["gan"]["samples"]
    # and the run's own numbers
    for e in report["runs"]:
        results = json.loads((Path(e["run"]) / "results.json").read_text())
        assert e["parameters"] == results["parameters"]
        assert e["epochs"] == results["epochs"] == 2


def test_page_holds_every_row_and_picture(compared):
    out, _, _ = compared
    page = ReportPage()
    page.feed((out / "report.html").read_text())
    assert page.rows == LABELS
    for label in LABELS:
        mine = [p for p in page.pictures if p.get("alt", "").startswith(label + " ")]
        assert {p["data-picture"] for p in mine} >= {"samples", "curves"}, label
    assert any(p.get("alt") == "validation curves" for p in page.pictures)


def test_report_of_existing_runs(compared, run_cli, tmp_path, digits):
    """dgm report on the comparison's run folders gives the same rows and numbers."""
    out, report, _ = compared
    runs = [out / "runs" / f"{label}-seed0" for label in (LABELS[0], LABELS[2])]  # arm, gan
    html = tmp_path / "r.html"
    # a named OOD set: the test digits with their rows flipped, as a file
    flipped = tmp_path / "flipped.npy"
    np.save(flipped, digits.test.x.flip(-2).numpy().astype("int64"))
    code, stdout, err = run_cli(
        "report", *runs, "--out", html, "--num-samples", "20", "--num-generated", "60",
        "--features", out / "features", "--ood", flipped,
    )  # fmt: skip
    assert code == 0, err
    again = json.loads(html.with_suffix(".json").read_text())
    arm = again["models"][0]
    got = _run_cli(["ood", str(runs[0]), "--out", str(flipped), "--json"])
    assert arm["metrics"]["auroc_flipped"]["mean"] == got["scores"]["likelihood"]["auroc"]
    assert "AUROC flipped" in stdout  # the terminal's table has the named set
    assert [m["label"] for m in again["models"]] == [LABELS[0], LABELS[2]]
    before = {m["label"]: m["metrics"] for m in report["models"]}
    for m in again["models"]:
        for key, stat in m["metrics"].items():
            if key in ("fd", "precision", "recall", "nll_nats", "bpd", "auroc_noise"):
                assert stat["mean"] == before[m["label"]][key]["mean"], (m["label"], key)
    assert "report:" in stdout


def test_interrupted_compare_resumes_without_retraining(tmp_path, digits):
    # the digits without their labels: no feature network to train, the test stays short
    data = tmp_path / "digits.npy"
    np.save(data, torch.cat([digits.train.x, digits.val.x, digits.test.x]).numpy().astype("int64"))
    out = tmp_path / "cmp"
    models = "arm:hidden=16:layers=3:kernel_size=3:epochs=2,made:hidden=16:layers=1:epochs=1000"
    cmd = [*DGM, "compare", "--data", str(data), "--models", models, "--jobs", "1",
           "--budget", "6", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=DGM_ENV)  # fmt: skip
    arm = out / "runs" / "arm-hidden=16-layers=3-kernel_size=3-epochs=2-seed0"
    made = out / "runs" / "made-hidden=16-layers=1-epochs=1000-seed0"
    deadline = time.time() + 300
    while not (made / "last.ckpt").is_file():  # arm has finished, made has an epoch saved
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, "made never saved an epoch"
        time.sleep(0.2)
    # SIGTERM, handled as Ctrl-C: a test run in the background of a shell ignores SIGINT
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "the same command goes on" in err
    assert (arm / "results.json").is_file() and not (made / "results.json").is_file()
    assert not (out / "report.html").exists()
    kept = (arm / "results.json").stat().st_mtime_ns, (arm / "model.safetensors").read_bytes()

    p = subprocess.run(cmd, capture_output=True, text=True, env=DGM_ENV, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"reusing {arm} (finished)" in p.stderr
    assert "resuming made" in p.stderr
    assert (
        (arm / "results.json").stat().st_mtime_ns,
        (arm / "model.safetensors").read_bytes(),
    ) == kept
    log = (made.parent / f"{made.name}.log").read_text()
    assert f"$ dgm train --resume {made}" in log
    report = json.loads((out / "report.json").read_text())
    assert [m["model"] for m in report["models"]] == ["arm", "made"]
