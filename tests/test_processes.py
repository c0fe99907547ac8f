"""Tests that need real processes: SIGKILL + --resume, and a 2-process DDP run (gloo)."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import torch

import dgm
from tests.helpers import DGM, DGM_ENV, TINY_TRAIN, run_epochs


@pytest.mark.slow
def test_sigkill_then_resume_continues_from_the_last_epoch(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [
            *DGM,
            "train",
            "arm",
            "--epochs",
            "200",
            "--set",
            "patience=0",
            "--out",
            str(run),
            *TINY_TRAIN,
        ],
        env=DGM_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while len(run_epochs(run)) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = run_epochs(run)
    assert len(done) >= 3, "the run did not get going"
    assert not (run / "results.json").exists()  # it really was cut off
    ckpt = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)
    resumed_at = ckpt["epoch"] + 1  # last.ckpt is written at the end of an epoch

    target = resumed_at + 2
    out = subprocess.run(
        [*DGM, "train", "arm", "--resume", str(run), "--epochs", str(target)],
        env=DGM_ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "[resumed]" in out.stderr
    # every epoch exactly once, ending at the new limit: nothing repeated, nothing lost
    assert run_epochs(run) == list(range(target))
    for name in ("model.safetensors", "samples.png", "loss.png", "summary.md", "results.json"):
        assert (run / name).is_file()
    model = dgm.load(run)
    x = dgm.data.load_dataset("digits").test.x[:4]
    assert torch.isfinite(model.log_prob(x)).all()


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path):
    run = tmp_path / "ddp"
    out = subprocess.run(
        [
            *DGM,
            "train",
            "arm",
            "--epochs",
            "2",
            "--accelerator",
            "cpu",
            "--devices",
            "2",
            "--strategy",
            "ddp",
            "--out",
            str(run),
            *TINY_TRAIN,
        ],
        env=DGM_ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1]  # one line per epoch, not one per process
    # each of the 2 processes takes half of the 1000 training images: 8 steps of 64 per epoch
    assert records[-1]["step"] == 2 * 8
    assert (run / "model.safetensors").is_file() and (run / "samples.png").is_file()
    res = json.loads(
        subprocess.run(
            [*DGM, "eval", str(run), "--json"],
            env=DGM_ENV,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    )
    assert res["n"] == 447 and res["nll_nats"] > 0
