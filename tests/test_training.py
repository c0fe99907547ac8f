"""The training glue: tensor batching, dynamic binarization, EMA weights, divergence."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.data import DataLoader

import dgm
from dgm.data import Dataset, DataSpec, Split
from dgm.pipeline import train
from dgm.training import TrainConfig
from dgm.training.data import TensorData, TensorDataModule
from dgm.training.module import LitModel, TrainingError
from tests.helpers import TINY_ARM


def test_batches_are_one_gather_with_labels():
    x = torch.arange(20.0).view(10, 2)
    y = torch.arange(10)
    loader = DataLoader(TensorData(Split(x, y)), batch_size=4, shuffle=True, collate_fn=lambda b: b)
    seen = []
    for bx, by in loader:
        assert bx.shape[1:] == (2,) and bx.shape[0] == by.shape[0] <= 4
        assert torch.equal(bx[:, 0], by * 2.0)  # rows stay paired with their labels
        seen += by.tolist()
    assert sorted(seen) == list(range(10))


def test_dynamic_binarization_draws_afresh_every_time():
    torch.manual_seed(0)
    probs = torch.full((1000, 4), 0.5)
    data = TensorData(Split(probs), binarize=True)
    a, _ = data.__getitems__(list(range(1000)))
    b, _ = data.__getitems__(list(range(1000)))
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(a, b)
    assert abs(a.mean().item() - 0.5) < 0.05


def test_data_module_keeps_labels_and_uses_dataset_batch_sizes(digits):
    dm = TensorDataModule(digits, batch_size=100, eval_batch_size=350)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (100, 1, 8, 8) and y.shape == (100,)
    assert len(dm.val_dataloader()) == 1


@pytest.mark.slow
def test_ema_weights_are_what_the_run_keeps(tmp_path, digits):
    res = train(
        "arm",
        digits,
        tmp_path / "r",
        TINY_ARM,
        {"epochs": 2, "ema": 0.9, "sample_every": 0, "test": False},
        show=lambda s: None,
    )
    assert res["epochs"] == 2
    ckpt = torch.load(tmp_path / "r" / "last.ckpt", map_location="cpu", weights_only=True)
    state = ckpt["state_dict"]
    saved = dgm.load(tmp_path / "r").state_dict()
    # the best epoch is the last one here (2 epochs, NLL still falling): saved == EMA copy
    for name, value in saved.items():
        assert torch.allclose(value, state[f"ema.module.{name}"]), name
    assert any(not torch.allclose(value, state[f"model.{name}"]) for name, value in saved.items())


def test_ema_copy_takes_no_gradients(digits):
    model = dgm.create("arm", shape=(1, 8, 8), levels=17, **TINY_ARM)
    lit = LitModel(model, TrainConfig(ema=0.9))
    trainable = {n for n, p in lit.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.") for n in trainable)


@pytest.mark.slow
def test_divergence_stops_with_a_clear_message(tmp_path, run_cli):
    import numpy as np

    np.save(tmp_path / "d.npy", np.random.default_rng(0).integers(0, 3, (40, 6)))
    # an absurd learning rate makes the loss blow up within a few steps
    code, _, err = run_cli(
        "train",
        "arm",
        "--data",
        tmp_path / "d.npy",
        "--out",
        tmp_path / "r",
        "--set",
        "lr=1e12",
        "--set",
        "grad_clip=0",
        "--set",
        "ema=0",
        "--set",
        "batch_size=4",
        "--epochs",
        "3",
        "--set",
        "sample_every=0",
    )
    if code == 0:  # the model survived; make it fail for sure
        pytest.skip("the loss stayed finite at lr=1e12")
    assert code == 1 and "diverged" in err and "Traceback" not in err


def test_training_error_names_the_fix():
    model = dgm.create("arm", shape=(4,), levels=3, **TINY_ARM)
    lit = LitModel(model, TrainConfig())
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(math.nan)
    with pytest.raises(TrainingError, match="lr"):
        lit.training_step((torch.zeros(2, 4), None), 0)


@pytest.mark.slow
def test_max_time_bounds_training(tmp_path):
    spec = DataSpec(name="toy", shape=(6,), levels=3)
    split = Split(torch.randint(0, 3, (64, 6)).float())
    data = Dataset(spec, split, split, split)
    res = train(
        "arm",
        data,
        tmp_path / "r",
        TINY_ARM,
        {"epochs": 100000, "max_time": 2, "patience": 0, "sample_every": 0},
        show=lambda s: None,
    )
    assert res["train_time_s"] < 10 and 1 <= res["epochs"] < 100000


@pytest.mark.slow
def test_epoch_batches_shortens_epochs(tmp_path, digits):
    train(
        "arm",
        digits,
        tmp_path / "r",
        TINY_ARM,
        {"epochs": 2, "epoch_batches": 3, "sample_every": 0, "test": False},
        show=lambda s: None,
    )
    steps = [json.loads(line)["step"] for line in (tmp_path / "r" / "metrics.jsonl").open()]
    assert steps == [3, 6]  # 3 batches an epoch instead of 16


@pytest.mark.slow
def test_plain_progress_lines_inside_long_epochs(tmp_path, digits, monkeypatch):
    from dgm.training import callbacks

    monkeypatch.setattr(callbacks, "PROGRESS_EVERY", 0.0)  # a line after every batch
    lines: list[str] = []
    train(
        "arm",
        digits,
        tmp_path / "r",
        TINY_ARM,
        {"epochs": 1, "epoch_batches": 3, "sample_every": 0, "test": False},
        show=lines.append,
    )
    batch_lines = [line for line in lines if "batch" in line]
    assert [line.split()[3] for line in batch_lines] == ["1/3", "2/3", "3/3"]
    assert all("loss" in line for line in batch_lines)


def test_ema_copies_integer_buffers_and_averages_floats():
    from dgm.training.module import ema_update

    avg = [torch.zeros(3), torch.arange(4096)]
    cur = [torch.ones(3), torch.arange(4096).flip(0)]
    ema_update(0.9)(avg, cur, torch.tensor(1000))  # warmed up: the decay itself
    torch.testing.assert_close(avg[0], torch.full((3,), 0.1))
    assert torch.equal(avg[1], cur[1])  # a lerp would have truncated these


def test_ema_decay_warms_up_from_the_start():
    """Early updates forget the start faster, (1 + n) / (10 + n), so a short run's average
    is not mostly its random initialisation; the count continues from the average's own."""
    from dgm.training.module import ema_update

    update = ema_update(0.999)
    avg = [torch.zeros(1)]
    update(avg, [torch.ones(1)], torch.tensor(1))  # n = 1: decay 2/11
    torch.testing.assert_close(avg[0], torch.tensor([9 / 11]))
    update(avg, [torch.ones(1)], torch.tensor(1))  # n = 2 (counted here): decay 3/12
    torch.testing.assert_close(avg[0], torch.tensor([1 - (2 / 11) * (3 / 12)]))
    resumed = ema_update(0.999)
    one = [torch.zeros(1)]
    resumed(one, [torch.ones(1)], torch.tensor(10**6))  # a resumed long run: the full decay
    torch.testing.assert_close(one[0], torch.tensor([0.001]))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vae", "made"])
def test_a_resumed_run_continues_the_models_schedule(name, digits, tmp_path, monkeypatch):
    """The training step is the trainer's (Scheduled.set_step): a resumed VAE continues its
    KL warm-up, and MADE its cycle of masks, where the first session stopped."""
    from dgm import registry

    cls = registry.get(name).cls
    seen: list[tuple[int, float]] = []
    original = cls.set_step

    def spy(self, step: int) -> None:
        original(self, step)
        seen.append((step, self.kl_weight() if name == "vae" else self.mask_index))

    monkeypatch.setattr(cls, "set_step", spy)
    model_cfg = {"hidden": 8, "layers": 1}
    model_cfg |= {"latent": 2, "warmup_steps": 12} if name == "vae" else {"num_masks": 4}
    cfg = {"epoch_batches": 3, "batch_size": 50, "sample_every": 0, "test": False, "ema": 0.0}
    quiet = {"show": lambda m: None}
    train(name, digits, tmp_path, model_cfg, {**cfg, "epochs": 1}, **quiet)
    first = list(seen)
    seen.clear()
    train(name, digits, tmp_path, model_cfg, {**cfg, "epochs": 2}, resume=True, **quiet)
    assert [s for s, _ in first] == [0, 1, 2]
    assert [s for s, _ in seen] == [3, 4, 5]  # not 0, 1, 2 again
    if name == "vae":  # the KL weight goes on rising from 3/12
        assert [w for _, w in seen] == pytest.approx([3 / 12, 4 / 12, 5 / 12])
    else:  # the masks go on in turn
        assert [m for _, m in first + seen] == [0, 1, 2, 3, 0, 1]
