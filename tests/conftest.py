"""Shared fixtures: tiny models and data so the suite stays fast on 2 cores."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

torch.set_num_threads(1)

# a small ARM: fast to train, big enough to learn something in two epochs
TINY_ARM = {"hidden": 16, "layers": 3, "kernel_size": 3}
TINY_TRAIN = [
    "--set",
    "hidden=16",
    "--set",
    "layers=3",
    "--set",
    "kernel_size=3",
    "--set",
    "sample_every=1",
    "--set",
    "num_samples=4",
]


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
