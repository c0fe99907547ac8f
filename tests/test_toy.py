"""The synthetic 2-D densities: fixed, labelled where they have modes, shaped as stated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgm.data import load_dataset
from dgm.data.toy import MODES, SAMPLERS


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_toy_sets_are_fixed_and_continuous(name):
    a, b = load_dataset(name), load_dataset(name)
    assert torch.equal(a.train.x, b.train.x) and not torch.equal(a.train.x[:100], a.val.x[:100])
    assert a.spec.shape == (2,) and a.spec.levels is None
    assert (len(a.train), len(a.val), len(a.test)) == (20_000, 5_000, 5_000)


@pytest.mark.parametrize("name", list(MODES))
def test_mixtures_put_every_point_near_its_labelled_mode(name):
    data = load_dataset(name).test
    centres, std = MODES[name]
    dist = np.linalg.norm(data.x.numpy() - centres[data.y.numpy()], axis=1)
    assert dist.max() < 6 * std  # 2-D Gaussian radius beyond 6 sigma: p ~ 1e-8
    assert len(np.unique(data.y.numpy())) == len(centres)  # every mode is populated


def test_checkerboard_fills_only_dark_squares():
    x = load_dataset("checkerboard").train.x.numpy()
    row, col = np.floor(x[:, 0] / 2) + 2, np.floor(x[:, 1] / 2) + 2
    assert ((row + col) % 2 == 0).all()
    assert np.abs(x).max() <= 4
