"""Levels of user data: inferred from the values, overridden with --data-levels or
--data-continuous (and their YAML keys), kept in the run for --resume and the other commands."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dgm.data import load_dataset, set_levels, summary_line
from dgm.errors import DataError
from tests.helpers import TINY_TRAIN


def _npz(tmp_path, x, name="d.npz", **more):
    path = tmp_path / name
    np.savez(path, x=x, **more)
    return path


def _one_line_error(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, err)
    return lines[0]


# -- inference ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("x", "levels", "note"),
    [
        # binary pixels saved as uint8 are 2 levels, not 256 (7.5 bits/dim wasted otherwise)
        ((np.arange(60) % 2).reshape(20, 3).astype(np.uint8), 2, "only 0 and 1"),
        ((np.arange(60) % 17).reshape(20, 3).astype(np.int64), 17, "0..16"),
        ((np.arange(60) % 17).reshape(20, 3).astype(np.float32), 17, "0..16"),
        # 8-bit data keeps the whole 8-bit range, and says what part of it was seen
        ((np.arange(60) * 3).reshape(20, 3).astype(np.uint8), 256, "values 0..177 found"),
        (np.linspace(-1, 1, 60).reshape(20, 3), None, "not whole numbers"),
    ],
)
def test_levels_are_inferred_from_the_values(tmp_path, x, levels, note):
    ds = load_dataset(_npz(tmp_path, x))
    assert ds.spec.levels == levels
    assert note in ds.levels_note
    if levels is not None:
        assert (ds.spec.low, ds.spec.high) == (0.0, levels - 1)
    assert note in summary_line(ds)


def test_levels_override(tmp_path):
    path = _npz(tmp_path, (np.arange(60) % 17).reshape(20, 3).astype(np.int64))
    more = load_dataset(path, levels=32)
    assert (more.spec.levels, more.spec.low, more.spec.high) == (32, 0.0, 31.0)
    assert "32 levels (set by levels=K, values 0..16 found)" in summary_line(more)
    cont = load_dataset(path, continuous=True)
    assert cont.spec.levels is None and cont.spec.high == 16.0
    assert "continuous in [0, 16] (set by continuous=True)" in summary_line(cont)
    # the values themselves are never changed, only what they are taken for
    assert (more.train.x == load_dataset(path).train.x).all()
    with pytest.raises(DataError, match=r"too few.*0\.\.16.*at least 17") as e:
        load_dataset(path, levels=16)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="exclude each other"):
        load_dataset(path, levels=20, continuous=True)
    with pytest.raises(DataError, match=">= 2"):
        load_dataset(path, levels=1)
    floats = load_dataset(_npz(tmp_path, np.linspace(0, 2, 60).reshape(20, 3), "f.npz"))
    with pytest.raises(DataError, match="not whole numbers"):
        set_levels(floats, levels=3)


def test_named_dataset_keeps_its_levels_unless_overridden():
    assert load_dataset("digits").spec.levels == 17
    wider = load_dataset("digits", levels=64)
    assert (
        wider.spec.levels == 64
        and wider.spec.class_names == load_dataset("digits").spec.class_names
    )


# -- the command line ---------------------------------------------------------------------------
def test_too_small_data_levels_fails_in_one_line(tmp_path, run_cli):
    path = _npz(tmp_path, (np.arange(60) % 17).reshape(20, 3).astype(np.int64))
    code, _, err = run_cli(
        "train", "arm", "--data", path, "--data-levels", "10", "--out", tmp_path / "r"
    )
    line = _one_line_error(code, err)
    assert "--data-levels 10" in line and "0..16" in line
    assert not (tmp_path / "r" / "config.json").exists()
    code, _, err = run_cli("train", "arm", "--data-levels", "20", "--data-continuous")
    assert "exclude each other" in _one_line_error(code, err)


def test_yaml_data_levels_and_continuous(tmp_path, run_cli):
    path = _npz(tmp_path, (np.arange(60) % 17).reshape(20, 3).astype(np.int64))
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(f"data: {path}\ndata_levels: 10\n")
    code, _, err = run_cli("train", "arm", "--config", yaml_file, "--out", tmp_path / "r")
    assert "--data-levels 10" in _one_line_error(code, err)
    # continuous data reaches the model: an autoregressive model refuses it
    yaml_file.write_text(f"data: {path}\ndata_continuous: true\n")
    code, _, err = run_cli("train", "arm", "--config", yaml_file, "--out", tmp_path / "r")
    assert code == 2 and "is continuous" in err.strip().splitlines()[-1]
    assert "continuous in [0, 16] (set by --data-continuous)" in err  # the data line, before
    yaml_file.write_text("data_levels: many\n")
    code, _, err = run_cli("train", "arm", "--config", yaml_file, "--out", tmp_path / "r")
    assert "data_levels" in _one_line_error(code, err)


@pytest.mark.slow
def test_data_levels_are_kept_for_resume_and_eval(tmp_path, run_cli):
    from dgm.cli.common import load_run

    x = np.random.default_rng(0).integers(0, 2, (40, 1, 4, 4)).astype(np.uint8)  # binary
    path = _npz(tmp_path, x)
    run = tmp_path / "run"
    args = ["--data", path, "--data-levels", "4", "--epochs", "1", *TINY_TRAIN]
    code, _, err = run_cli("train", "arm", *args, "--out", run)
    assert code == 0, err
    assert "4 levels (set by --data-levels, values 0..1 found)" in err
    meta = json.loads((run / "config.json").read_text())["data"]
    assert meta["levels"] == 4 and meta["spec"]["levels"] == 4
    assert load_run(run, "cpu").dataset().spec.levels == 4
    # without the stored override the data would come back as 2 levels and the 4-level
    # checkpoint would not fit the model built for it
    code, _, err = run_cli("train", "arm", "--resume", run, "--epochs", "2")
    assert code == 0, err
    code, out, err = run_cli("eval", run, "--json")
    assert code == 0, err
    assert json.loads(out)["n"] == 4
    code, _, err = run_cli("train", "arm", "--resume", run, "--data-levels", "8")
    assert "--resume keeps the run's data" in _one_line_error(code, err)
