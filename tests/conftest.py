"""Shared fixtures: tiny models and data so the suite stays fast on 2 cores."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    from dgm.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def run_cli(capsys):
    """Run ``dgm ARGS`` in-process; return (exit code, stdout, stderr)."""
    from dgm.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run
