"""Configs, the registry and the io layer: the plumbing every family shares."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import pytest
import torch

import dgm
from dgm import config as cfg_
from dgm.errors import CheckpointError, ConfigError
from dgm.io import atomic_write, load_weights
from dgm.training import TrainConfig


@dataclass
class Demo:
    n: int = 1
    x: float = 0.5
    flag: bool = False
    name: str = "a"
    kind: Literal["p", "q"] = "p"
    dims: tuple[int, ...] = (1, 2)
    maybe: int | None = None


def test_coerce_from_command_line_strings():
    d = cfg_.build(
        Demo,
        {"n": "3", "x": "1e-3", "flag": "yes", "kind": "q", "dims": "4,5", "maybe": "none"},
        "demo",
    )
    assert d == Demo(n=3, x=1e-3, flag=True, kind="q", dims=(4, 5), maybe=None)
    assert cfg_.build(Demo, {"dims": "[7, 8]", "maybe": "2"}, "demo").dims == (7, 8)
    assert cfg_.build(Demo, {"dims": [1], "n": 2.0}, "demo") == Demo(n=2, dims=(1,))


@pytest.mark.parametrize(
    "values, needle",
    [
        ({"n": "1.5"}, "integer"),
        ({"x": "abc"}, "number"),
        ({"flag": "2"}, "true or false"),
        ({"kind": "r"}, "one of p, q"),
        ({"zzz": 1}, "unknown demo option 'zzz'"),
        ({"n": True}, "integer"),
    ],
)
def test_bad_values_name_the_option(values, needle):
    with pytest.raises(ConfigError, match=needle):
        cfg_.build(Demo, values, "demo")


def test_config_round_trips_through_json():
    d = Demo(dims=(3, 4))
    again = cfg_.build(Demo, json.loads(json.dumps(cfg_.to_dict(d))), "demo")
    assert again == d


def test_parse_set():
    assert cfg_.parse_set(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError):
        cfg_.parse_set(["novalue"])


def test_train_config_validates():
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="8")
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=0)
    with pytest.raises(ConfigError, match="ema"):
        TrainConfig(ema=1.0)


def test_registry_create_and_errors():
    m = dgm.create("arm", shape=[1, 4, 4], levels=3, hidden="8", layers=2)
    assert m.config.shape == (1, 4, 4) and m.config.hidden == 8
    with pytest.raises(ConfigError, match="unknown model"):
        dgm.create("nope")
    with pytest.raises(ConfigError, match="dropout"):
        dgm.create("arm", dropout=1.5)


def test_every_config_field_has_a_description():
    from dgm import registry

    for entry in registry.entries():
        for name, _, help_ in cfg_.describe(entry.cls.Config):
            assert help_, f"{entry.name}.{name} has no description"
    for name, _, help_ in cfg_.describe(TrainConfig):
        assert help_, f"training option {name} has no description"


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temp file left behind


def test_load_refuses_mismatched_weights(tmp_path):
    a = dgm.create("arm", shape=(4,), levels=3, hidden=8, layers=2)
    a.save(tmp_path / "a")
    b = dgm.create("arm", shape=(4,), levels=3, hidden=8, layers=3)
    b.save(tmp_path / "b")
    (tmp_path / "b" / "model.safetensors").write_bytes(
        (tmp_path / "a" / "model.safetensors").read_bytes()
    )
    with pytest.raises(CheckpointError, match="does not match"):
        dgm.load(tmp_path / "b")


def test_torch_pickles_are_refused_as_weights(tmp_path):
    file = tmp_path / "model.safetensors"
    torch.save({"w": torch.zeros(2)}, file)  # a pickle-based checkpoint
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_weights(file)


def test_config_json_errors(tmp_path):
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        dgm.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        dgm.load(tmp_path)
    (tmp_path / "config.json").write_text('{"a": 1}')
    with pytest.raises(CheckpointError, match="not a dgm config"):
        dgm.load(tmp_path)


@pytest.mark.slow
def test_bf16_mixed_precision_trains(tmp_path, digits):
    from dgm.pipeline import train

    res = train(
        "arm",
        digits,
        tmp_path / "r",
        {"hidden": 8, "layers": 2},
        {
            "epochs": 1,
            "precision": "bf16-mixed",
            "accelerator": "cpu",
            "sample_every": 0,
            "num_samples": 2,
        },
        show=lambda s: None,
    )
    assert res["epochs"] == 1 and res["test_nll_nats"] > 0
