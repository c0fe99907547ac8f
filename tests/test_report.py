"""The comparison report (dgm.report) from numbers alone: rows over seeds, the reading in
words, the JSON, the HTML page and the terminal table; and the bad inputs of ``dgm compare``
and ``dgm report`` that are refused before any work."""

from __future__ import annotations

import base64
import io
import json
import statistics
from argparse import Namespace
from pathlib import Path

import pytest
from PIL import Image

from dgm.report import read_report, table_text, write_report
from dgm.report.build import FORMAT, kind_text
from tests.helpers import ReportPage, report_entry, synthetic_report, tiny_png


def test_rows_aggregate_seeds_as_mean_and_spread():
    entries = [report_entry("arm", s, v) for s, v in enumerate([80.0, 81.0, 83.0])]
    entries.append(report_entry("vae", 0, 86.0, kind="estimate", num_samples=1000))
    report = synthetic_report(entries)
    arm, vae = report["models"]
    assert arm["seeds"] == [0, 1, 2] and len(arm["runs"]) == 3
    s = arm["metrics"]["nll_nats"]
    assert s["mean"] == pytest.approx(statistics.fmean([80, 81, 83]))
    assert s["std"] == pytest.approx(statistics.stdev([80, 81, 83]))
    assert vae["metrics"]["nll_nats"]["std"] is None  # one seed: no spread
    assert kind_text(vae) == "estimate, K=1000"
    text = table_text(report)
    assert "81.33 ± 1.53" in text and "estimate, K=1000" in text
    assert "1k" in text  # parameters, in thousands
    # columns no model has are left out; those some model has stay
    keys = [c["key"] for c in report["columns"]]
    assert "nll_nats" in keys and "fd" not in keys and "accuracy" not in keys


def test_reading_says_what_compares_and_what_does_not():
    entries = [
        report_entry("arm", 0, 84.0, fd=14.0),
        report_entry("vdm", 0, 82.0, kind="bound", fd=6.0, family="diffusion", sample_ms=80.0),
        report_entry("realnvp", 0, 95.0, kind="bound", fd=30.0, sample_ms=0.5),
        report_entry(
            "gan",
            0,
            None,
            kind="none",
            fd=120.0,
            sample_ms=0.01,
            classes_covered=1,
            precision=0.9,
            recall=0.01,
        ),
    ]
    entries[0]["sample_ms"] = 13.0
    entries[1]["train_time_s"] = 30.0  # the whole budget
    report = synthetic_report(entries)
    words = " ".join(report["reading"])
    assert "Best on likelihood: vdm, 82.00 nats" in words
    assert "upper bound" in words
    # a bound below an exact number is conclusive; one above is not claimed
    assert "vdm (82.00) beats arm (84.00)" in words
    assert "realnvp (95.00) beats" not in words
    assert "gan has no likelihood" in words
    assert "Best on samples: vdm, Frechet distance 6.00" in words
    assert "Samples that miss classes (of 10, as the feature network sees them): gan 1:" in words
    assert "Fastest sampler: gan" in words and "slowest: vdm" in words
    assert "a diffusion model runs its network once per denoising step" in words
    assert "used the whole 30 s budget" in words
    assert "gan: precision 0.900 with recall 0.010" in words and "mode collapse" in words
    assert "One seed each" in words


def test_reading_of_seeds_names_the_spread():
    entries = [report_entry("arm", s, v) for s, v in enumerate([80.0, 82.0])]
    entries += [report_entry("made", s, v) for s, v in enumerate([84.0, 84.5])]
    words = " ".join(synthetic_report(entries)["reading"])
    assert "Over 2 seeds the NLL moves by up to 1.41 nats (the spread of arm)" in words


def test_page_is_self_contained_and_escapes(tmp_path):
    entries = [
        report_entry("arm", 0, 84.0, fd=14.0, tmp=tmp_path),
        report_entry("arm", 1, 85.0, fd=15.0, tmp=tmp_path),
        report_entry("<b>x</b>", 0, 90.0, fd=20.0, tmp=tmp_path),
    ]
    report = synthetic_report(entries)
    html, js = tmp_path / "r.html", tmp_path / "r.json"
    curves = tiny_png(tmp_path / "curves.png", 9)
    write_report(report, html, js, {"validation curves": curves})
    page = ReportPage()
    text = html.read_text()
    page.feed(text)
    assert page.rows == ["arm", "<b>x</b>"]  # the label is text, escaped in the page
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert page.scripts == 1  # the sorting script, inline; nothing loaded from elsewhere
    assert 'src="http' not in text and 'href="http' not in text
    samples = [p for p in page.pictures if p.get("data-picture") == "samples"]
    assert len(samples) == 2  # one per row: the first seed's
    for p in page.pictures:
        assert p["src"].startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(p["src"].split(",", 1)[1]))).verify()
    saved = read_report(js)
    assert saved is not None and saved["format"] == FORMAT
    assert saved["models"][0]["metrics"]["nll_nats"]["values"] == [84.0, 85.0]
    assert read_report(tmp_path / "curves.png") is None


# -- bad input: one line, exit 2, nothing written ------------------------------------------------
def _fake_run(folder: Path, data: str) -> Path:
    """A run folder of a tiny untrained ARM that says it was trained on ``data``."""
    import dgm

    model = dgm.create("arm", shape=(1, 8, 8), levels=17, hidden=8, layers=2, kernel_size=3)
    model.save(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["data"] = {"name": data}
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_report_refuses_runs_on_different_data(run_cli, tmp_path):
    a = _fake_run(tmp_path / "a", "digits")
    b = _fake_run(tmp_path / "b", "mnist")
    code, _, err = run_cli("report", a, b, "--out", tmp_path / "r.html")
    assert code == 2
    assert f"{a} (digits), {b} (mnist)" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--out", "r.txt"], "ending in .html"),
        (["--out", "nowhere/r.html"], "does not exist"),
        (["--out", "r.html", "--num-samples", "0"], "--num-samples must be >= 1"),
    ],
)
def test_report_bad_flags(run_cli, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    a = _fake_run(tmp_path / "a", "digits")
    code, _, err = run_cli("report", a, *args)
    assert code == 2 and words in err
    assert not list(tmp_path.glob("r.*"))


def test_report_refuses_a_folder_that_is_not_a_run(run_cli, tmp_path):
    (tmp_path / "x").mkdir()
    code, _, err = run_cli("report", tmp_path / "x", "--out", tmp_path / "r.html")
    assert code == 2 and "not a dgm run" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--budget", "0"], "--budget must be a number > 0"),
        (["--budget", "-5"], "--budget must be a number > 0"),
        (["--models", "arm,nosuch"], "unknown model 'nosuch'"),
        (["--data", "two-moons", "--models", "arm"], "--models arm cannot model two-moons"),
        (["--models", "arm:hidden"], "settings are KEY=VALUE"),
        (["--models", "arm:nosuch=1"], "unknown option 'nosuch' for arm"),
        (["--models", "arm,arm"], "the same model and settings twice"),
        (["--seeds", "0"], "--seeds must be >= 1"),
    ],
)
def test_compare_bad_input_writes_nothing(run_cli, tmp_path, args, words):
    out = tmp_path / "cmp"
    code, _, err = run_cli("compare", *args, "--out", out)
    assert code == 2, err
    assert words in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_compare_refuses_an_out_folder_of_other_things(run_cli, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    code, _, err = run_cli("compare", "--models", "arm", "--out", out)
    assert code == 2 and "holds other files, not a comparison" in err
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    file = tmp_path / "file"
    file.write_text("x")
    code, _, err = run_cli("compare", "--models", "arm", "--out", file)
    assert code == 2 and "is a file" in err


def test_compare_refuses_another_comparisons_folder(run_cli, tmp_path):
    from dgm.cli.compare import FORMAT as CMP

    out = tmp_path / "cmp"
    out.mkdir()
    (out / "compare.json").write_text(json.dumps({"format": CMP, "data": "digits",
                                                  "budget_s": 30.0}))  # fmt: skip
    code, _, err = run_cli("compare", "--data", "two-moons", "--models", "maf", "--out", out)
    assert code == 2 and "compares models on digits, not two-moons" in err
    code, _, err = run_cli("compare", "--models", "arm", "--budget", "60", "--out", out)
    assert code == 2 and "--budget 30" in err


def test_default_set_skips_what_cannot_model_the_data_with_why():
    from dgm.cli.compare import choose
    from dgm.data import load_dataset

    spec = load_dataset("two-moons").spec
    chosen, skipped = choose(Namespace(models=None), spec, "vectors")
    names = [c[1] for c in chosen]
    assert "arm" not in names and {"realnvp", "vae", "gan", "vdm"} <= set(names)
    (arm,) = [s for s in skipped if s["model"] == "arm"]
    assert "discrete data" in arm["why"] and "two-moons is continuous" in arm["why"]
    digits = load_dataset("digits").spec
    chosen, skipped = choose(Namespace(models=None), digits, "images")
    from dgm import registry

    assert [registry.get(c[1]).family for c in chosen] == [
        "autoregressive", "flow", "latent", "gan", "diffusion", "hybrid"
    ]  # fmt: skip
    assert skipped == []


def test_runs_of_one_model_share_a_row_by_their_seed_suffix():
    from dgm.cli.report import labels_of

    got = labels_of(["runs/cmp/runs/arm-seed0", "runs/cmp/runs/arm-seed12", "runs/vae-mnist"])
    assert got == [("arm", 0), ("arm", 12), ("vae-mnist", 0)]


def test_what_stopped_training():
    from dgm.cli.report import _stopped

    assert (
        _stopped({"epochs": 200, "train_time_s": 50}, {"epochs": 200, "max_time": 60}) == "epochs"
    )
    assert _stopped({"epochs": 40, "train_time_s": 59}, {"epochs": 200, "max_time": 60}) == "budget"
    assert _stopped({"epochs": 40, "train_time_s": 20}, {"epochs": 200, "max_time": 60}) == "early"
    assert _stopped({"epochs": 40, "train_time_s": 20}, {"epochs": 200, "max_time": 0}) == "early"
