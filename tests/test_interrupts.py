"""Ctrl-C and SIGTERM during `dgm train`: exit 130 with one line saying the epoch saved and how
to resume, a run folder that resumes (with --resume RUN alone, no MODEL) and no results.json
until the run has finished."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import DGM, DGM_ENV, TINY_ARM, TINY_TRAIN, run_epochs


def _saved_epoch(run: Path) -> int:
    return torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)["epoch"]


def test_train_needs_a_model_or_a_run_to_resume(run_cli):
    code, _, err = run_cli("train", "--epochs", "1")
    assert code == 2
    assert err.strip() == (
        "dgm train: error: name the MODEL to train (see 'dgm list'), or continue a run with "
        "--resume RUN"
    )


@pytest.mark.slow
def test_ctrl_c_in_training_saves_a_run_that_resumes_without_model(tmp_path, run_cli, monkeypatch):
    """In-process: a KeyboardInterrupt in epoch 1 (after epoch 0's last.ckpt) ends in one line
    and exit 130, not in Lightning's bare exit 1; the signal handlers are as before."""
    from dgm.training import callbacks

    def ctrl_c_in_epoch_1(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.SampleGrid, "on_train_epoch_end", ctrl_c_in_epoch_1)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    run = tmp_path / "run"
    code, _, err = run_cli("train", "arm", "--epochs", "5", "--out", run, *TINY_TRAIN)
    assert code == 130, err
    assert err.splitlines()[-1] == (
        f"dgm train: interrupted after epoch 0; resume with: dgm train --resume {run}"
    )
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    assert _saved_epoch(run) == 0 and not (run / "results.json").exists()
    monkeypatch.undo()
    code, _, err = run_cli("train", "--resume", run, "--epochs", "2")
    assert code == 0, err
    assert run_epochs(run) == [0, 1] and (run / "results.json").is_file()


@pytest.mark.slow
def test_ctrl_c_in_the_first_epoch_says_there_is_nothing_to_resume(tmp_path, run_cli, monkeypatch):
    from dgm.errors import Interrupted
    from dgm.training import callbacks

    def ctrl_c(self, trainer, pl_module):
        raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.SampleGrid, "on_train_epoch_end", ctrl_c)
    run = tmp_path / "run"
    code, _, err = run_cli("train", "arm", "--epochs", "5", "--out", run, *TINY_TRAIN)
    assert code == 130, err
    assert err.splitlines()[-1] == (
        f"dgm train: interrupted before the first epoch finished: nothing to resume in {run}; "
        "train again (--overwrite reuses the folder)"
    )
    assert not (run / "last.ckpt").exists() and not (run / "results.json").exists()
    # from Python it is a KeyboardInterrupt (code that stops on Ctrl-C still stops), typed
    from dgm.data import load_dataset
    from dgm.pipeline import train

    with pytest.raises(Interrupted) as stopped:
        train("arm", load_dataset("digits"), run, TINY_ARM, {"epochs": 5}, overwrite=True)
    assert isinstance(stopped.value, KeyboardInterrupt)
    assert (stopped.value.run, stopped.value.epoch) == (str(run), None)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_training_then_resume(tmp_path, sig):
    run = tmp_path / "run"
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [*DGM, "train", "arm", "--epochs", "200", "--set", "patience=0", "--out", str(run),
             *TINY_TRAIN],
            env=DGM_ENV, stdout=subprocess.DEVNULL, stderr=stderr,
            # a job started in the background (`cmd &`) inherits SIGINT ignored, and Python then
            # never turns it into KeyboardInterrupt: give the child the default, as a terminal does
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        deadline = time.time() + 120
        while not (run / "last.ckpt").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, log.read_text()
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
    err = log.read_text()
    assert code == 130, err
    saved = _saved_epoch(run)
    assert err.splitlines()[-1] == (
        f"dgm train: interrupted after epoch {saved}; resume with: dgm train --resume {run}"
    )
    assert "Traceback" not in err
    assert not (run / "results.json").exists()  # not a finished run

    target = saved + 2
    done = subprocess.run(
        [*DGM, "train", "--resume", str(run), "--epochs", str(target)],
        env=DGM_ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "[resumed]" in done.stderr
    assert run_epochs(run) == list(range(target))  # every epoch once, none lost
    assert json.loads((run / "results.json").read_text())["epochs"] == target
