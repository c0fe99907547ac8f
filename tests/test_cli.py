"""The command line end to end, and every bad input of the foundation issue."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import dgm
from tests.helpers import TINY_TRAIN

RUN_FILES = [
    "config.json",
    "model.safetensors",
    "last.ckpt",
    "metrics.jsonl",
    "samples.png",
    "loss.png",
    "summary.md",
    "results.json",
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One two-epoch run on digits, shared by the read-only tests below."""
    from dgm.cli import main

    run = tmp_path_factory.mktemp("runs") / "r"
    assert (
        main(["train", "arm", "--data", "digits", "--epochs", "2", "--out", str(run), *TINY_TRAIN])
        == 0
    )
    return run


@pytest.mark.slow
def test_train_writes_a_complete_run_folder(trained_run):
    for name in RUN_FILES:
        assert (trained_run / name).is_file(), name
    records = [
        json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in records] == [0, 1]
    assert all(np.isfinite(r["val_nll"]) and np.isfinite(r["train_loss"]) for r in records)
    cfg = json.loads((trained_run / "config.json").read_text())
    assert cfg["model"] == "arm" and cfg["data"]["name"] == "digits"
    assert cfg["config"]["hidden"] == 16 and cfg["train"]["epochs"] == 2
    with Image.open(trained_run / "samples.png") as img:
        assert img.width > 8 and img.height > 8


@pytest.mark.slow
def test_eval_json_has_the_contract_keys(trained_run, run_cli):
    code, out, _ = run_cli("eval", trained_run, "--json")
    assert code == 0
    res = json.loads(out)
    assert {"model", "data", "split", "n", "nll_nats", "bpd"} <= set(res)
    assert res["model"] == "arm" and res["data"] == "digits" and res["split"] == "test"
    assert res["n"] == 447
    assert res["bpd"] == pytest.approx(res["nll_nats"] / (64 * np.log(2)))
    # the same number the Python API gives
    model = dgm.load(trained_run)
    x = dgm.data.load_dataset("digits").test.x
    assert res["nll_nats"] == pytest.approx(-model.log_prob(x).double().mean().item(), rel=1e-5)


@pytest.mark.slow
def test_eval_on_val_split_and_plain_output(trained_run, run_cli):
    code, out, _ = run_cli("eval", trained_run, "--split", "val")
    assert code == 0 and "n=350" in out and "bits/dim" in out


@pytest.mark.slow
def test_sample_png_and_npy(trained_run, run_cli, tmp_path):
    code, _, _ = run_cli("sample", trained_run, "-n", "16", "--out", tmp_path / "s.png")
    assert code == 0 and (tmp_path / "s.png").is_file()
    code, _, _ = run_cli(
        "sample", trained_run, "-n", "5", "--out", tmp_path / "s.npy", "--seed", "3"
    )
    arr = np.load(tmp_path / "s.npy", allow_pickle=False)
    assert code == 0 and arr.shape == (5, 1, 8, 8) and arr.min() >= 0 and arr.max() <= 16
    run_cli("sample", trained_run, "-n", "5", "--out", tmp_path / "t.npy", "--seed", "3")
    assert np.array_equal(arr, np.load(tmp_path / "t.npy"))  # --seed makes it repeatable


def test_list_names_models_and_datasets(run_cli):
    code, out, _ = run_cli("list", "--json")
    listing = json.loads(out)
    assert code == 0
    assert "arm" in {m["name"] for m in listing["models"]}
    assert {"digits", "mnist", "fashion-mnist", "binarized-mnist", "static-mnist"} <= {
        d["name"] for d in listing["datasets"]
    }
    code, out, _ = run_cli("list")
    assert code == 0 and "arm" in out and "digits" in out


@pytest.mark.slow
def test_a_closed_pipe_is_not_an_error():
    """`dgm list | head -1`: the reader closing early ends the command quietly, exit 0."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "dgm", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # as head does once it has its lines (here before any: always a close
    # before the writes, which start after a second of imports)
    err = proc.stderr.read().decode()
    assert proc.wait() == 0, err
    assert "error" not in err


def test_same_seed_same_run(tmp_path, run_cli):
    for name in ("a", "b"):
        assert (
            run_cli(
                "train",
                "arm",
                "--epochs",
                "1",
                "--out",
                tmp_path / name,
                "--seed",
                "7",
                *TINY_TRAIN,
            )[0]
            == 0
        )
    a = json.loads((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[0])
    b = json.loads((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()[0])
    assert a["train_loss"] == b["train_loss"] and a["val_nll"] == b["val_nll"]


@pytest.mark.slow
def test_yaml_config_file(tmp_path, run_cli):
    (tmp_path / "c.yaml").write_text(
        "hidden: 8\nlayers: 2\nkernel_size: 3\nepochs: 1\nsample_every: 0\ndata: digits\n"
    )
    code, _, err = run_cli("train", "arm", "--config", tmp_path / "c.yaml", "--out", tmp_path / "r")
    assert code == 0, err
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["config"]["hidden"] == 8 and cfg["train"]["epochs"] == 1


@pytest.mark.slow
def test_user_npy_data_end_to_end(tmp_path, run_cli):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "d.npy", rng.integers(0, 4, size=(60, 10)).astype(np.int64))
    code, _, err = run_cli(
        "train",
        "arm",
        "--data",
        tmp_path / "d.npy",
        "--epochs",
        "1",
        "--out",
        tmp_path / "r",
        *TINY_TRAIN,
    )
    assert code == 0, err
    model = dgm.load(tmp_path / "r")
    assert model.config.levels == 4 and model.event_shape == (10,)
    code, out, _ = run_cli("eval", tmp_path / "r", "--json")
    assert code == 0 and json.loads(out)["n"] == 6


# -- bad input: one line on stderr, exit code 2, nothing half-written ---------------------------
def _one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and "Traceback" not in err
    assert lines[-1].startswith("dgm"), err
    return lines[-1]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "nosuchmodel"], "unknown model"),
        (["train", "arm", "--data", "nosuchdata"], "nosuchdata"),
        (["train", "arm", "--set", "bogus=1"], "unknown option 'bogus'"),
        (["train", "arm", "--set", "hidden=many"], "expected an integer"),
        (["train", "arm", "--set", "dropout=lots"], "expected a number"),
        (["train", "arm", "--set", "residual=maybe"], "true or false"),
        (["train", "arm", "--set", "input=pixels"], "expected one of"),
        (["train", "arm", "--set", "levels=3"], "comes from the data"),
        (["train", "arm", "--set", "novalue"], "key=value"),
        (["train", "arm", "--epochs", "two"], "invalid int"),
        (["train", "arm", "--config", "/nonexistent/c.yaml"], "no such file"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_usage(args, needle, run_cli, tmp_path):
    with pytest.raises(SystemExit) if needle in ("invalid int", "invalid choice") else _noop():
        code, _, err = (
            run_cli(*args, "--out", tmp_path / "r") if args[0] == "train" else run_cli(*args)
        )
        assert needle in _one_line_error(code, err)
        assert not (tmp_path / "r").exists()  # nothing half-written


class _noop:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.slow
def test_argparse_errors_exit_2_with_one_line(capsys):
    from dgm.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "arm", "--epochs", "two"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid int" in err[0]


def _bad_files(tmp: Path) -> dict:  # noqa: F821
    rng = np.random.default_rng(0)
    files = {}
    files["missing"] = tmp / "missing.npy"
    (tmp / "garbage.npy").write_bytes(b"this is not numpy")
    files["unparseable"] = tmp / "garbage.npy"
    a = rng.random((20, 4))
    a[3, 2] = np.nan
    np.save(tmp / "nan.npy", a)
    files["nan"] = tmp / "nan.npy"
    b = rng.random((20, 4))
    b[0, 0] = np.inf
    np.save(tmp / "inf.npy", b)
    files["inf"] = tmp / "inf.npy"
    np.save(tmp / "rank1.npy", rng.random(20))
    files["rank"] = tmp / "rank1.npy"
    np.save(tmp / "obj.npy", np.array([{"a": 1}] * 20, dtype=object), allow_pickle=True)
    files["pickle"] = tmp / "obj.npy"
    (tmp / "t.csv").write_text("a,b\n1,2\n3,x\n")
    files["csv"] = tmp / "t.csv"
    return files


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing", "unparseable", "nan", "inf", "rank", "pickle", "csv"])
def test_bad_data_files(case, tmp_path, run_cli):
    path = _bad_files(tmp_path)[case]
    code, _, err = run_cli("train", "arm", "--data", path, "--out", tmp_path / "r", "--epochs", "1")
    line = _one_line_error(code, err)
    assert path.name in line or case in ("nan", "inf")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_continuous_data_is_refused_by_the_arm(tmp_path, run_cli):
    np.save(tmp_path / "c.npy", np.random.default_rng(0).normal(size=(30, 4)))
    code, _, err = run_cli("train", "arm", "--data", tmp_path / "c.npy", "--out", tmp_path / "r")
    assert "continuous" in _one_line_error(code, err)


@pytest.mark.slow
def test_values_outside_the_models_levels(trained_run, tmp_path, run_cli):
    x = np.full((10, 1, 8, 8), 20, dtype=np.int64)  # digits has 17 levels: 0..16
    np.save(tmp_path / "big.npy", x)
    code, _, err = run_cli("eval", trained_run, "--data", tmp_path / "big.npy", "--split", "train")
    assert "levels" in _one_line_error(code, err)
    np.save(tmp_path / "shape.npy", np.zeros((10, 5, 5), dtype=np.int64))
    code, _, err = run_cli("eval", trained_run, "--data", tmp_path / "shape.npy")
    assert "shape" in _one_line_error(code, err)


@pytest.mark.slow
def test_image_folder_skips_non_images_and_rejects_mixed_sizes(tmp_path, run_cli):
    good = tmp_path / "imgs"
    good.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).save(good / f"{i}.png")
    (good / "notes.txt").write_text("not an image")
    code, _, err = run_cli(
        "train", "arm", "--data", good, "--epochs", "1", "--out", tmp_path / "r", *TINY_TRAIN
    )
    assert code == 0, err
    assert "notes.txt" in err  # the skipped file is named in a warning
    Image.fromarray(np.zeros((7, 9), dtype=np.uint8)).save(good / "odd.png")
    code, _, err = run_cli("train", "arm", "--data", good, "--out", tmp_path / "r2")
    assert "size" in _one_line_error(code, err)
    assert not (tmp_path / "r2").exists()


def test_eval_and_sample_refuse_folders_that_are_not_runs(tmp_path, run_cli):
    (tmp_path / "empty").mkdir()
    for cmd in ("eval", "sample"):
        code, _, err = run_cli(cmd, tmp_path / "empty")
        assert "not a dgm run" in _one_line_error(code, err)
        code, _, err = run_cli(cmd, tmp_path / "nowhere")
        _one_line_error(code, err)


@pytest.mark.slow
@pytest.mark.parametrize("content", [b"garbage bytes, not safetensors", "pickle"])
def test_corrupt_weights_are_refused_never_unpickled(trained_run, tmp_path, run_cli, content):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    if content == "pickle":
        # a pickle that would run code if anyone unpickled it
        import pickle

        class Boom:
            def __reduce__(self):
                return (exec, ("open('/tmp/dgm_pwned', 'w').write('x')",))

        (run / "model.safetensors").write_bytes(pickle.dumps(Boom()))
    else:
        (run / "model.safetensors").write_bytes(content)
    code, _, err = run_cli("eval", run)
    assert "safetensors" in _one_line_error(code, err)
    code, _, err = run_cli("sample", run)
    assert "safetensors" in _one_line_error(code, err)
    from pathlib import Path

    assert not Path("/tmp/dgm_pwned").exists()
    with pytest.raises(dgm.CheckpointError):
        dgm.load(run)


@pytest.mark.slow
def test_truncated_weights_are_refused(trained_run, tmp_path, run_cli):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    code, _, err = run_cli("eval", run)
    _one_line_error(code, err)


@pytest.mark.slow
def test_resume_from_a_run_of_another_model(trained_run, tmp_path, run_cli):
    import shutil

    run = tmp_path / "other"
    shutil.copytree(trained_run, run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["model"] = "pixelcnn"
    (run / "config.json").write_text(json.dumps(cfg))
    code, _, err = run_cli("train", "arm", "--resume", run)
    assert "not 'arm'" in _one_line_error(code, err)


@pytest.mark.slow
def test_resume_refuses_other_data(trained_run, run_cli):
    before = (trained_run / "metrics.jsonl").read_text()
    code, _, err = run_cli("train", "--resume", trained_run, "--data", "two-moons")
    assert "drop --data two-moons" in _one_line_error(code, err)
    assert (trained_run / "metrics.jsonl").read_text() == before


@pytest.mark.slow
def test_resume_after_the_data_changed_says_so(trained_run, tmp_path, run_cli):
    import shutil

    run = tmp_path / "changed"
    shutil.copytree(trained_run, run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["config"]["shape"] = [1, 9, 9]  # as if the user's files had another size then
    (run / "config.json").write_text(json.dumps(cfg))
    code, _, err = run_cli("train", "--resume", run, "--epochs", "3")
    assert "the data changed" in _one_line_error(code, err)


@pytest.mark.slow
def test_out_folder_with_files_is_not_clobbered(trained_run, run_cli):
    before = (trained_run / "metrics.jsonl").read_text()
    code, _, err = run_cli("train", "arm", "--out", trained_run, "--epochs", "1")
    assert "--resume" in _one_line_error(code, err)
    assert (trained_run / "metrics.jsonl").read_text() == before


@pytest.mark.slow
def test_internal_errors_exit_1_without_traceback(monkeypatch, run_cli, trained_run):
    import dgm.evaluation.likelihood as lik

    def boom(*a, **k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr("dgm.evaluation.evaluate_nll", boom)
    monkeypatch.setattr(lik, "evaluate_nll", boom)
    code, _, err = run_cli("eval", trained_run)
    assert code == 1 and "internal error" in err and "Traceback" not in err


def test_python_api_matches_contract(digits):
    model = dgm.create("arm", shape=(1, 8, 8), levels=17, hidden=8, layers=2)
    assert model.log_prob(digits.test.x[:3]).shape == (3,)
    assert model.sample(2).shape == (2, 1, 8, 8)
    assert torch.isfinite(model.loss(digits.train.x[:4]))


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_asking_for_a_missing_gpu_is_a_usage_error(tmp_path, run_cli):
    code, _, err = run_cli("train", "arm", "--accelerator", "gpu", "--out", tmp_path / "r")
    assert "gpu" in _one_line_error(code, err).lower()
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_sample_with_a_label_for_conditional_models(tmp_path, run_cli, trained_run):
    run = tmp_path / "cond"
    code, _, err = run_cli(
        "train",
        "gated-pixelcnn",
        "--epochs",
        "1",
        "--out",
        run,
        "--set",
        "conditional=true",
        "--set",
        "hidden=4",
        "--set",
        "layers=1",
        "--set",
        "first_kernel=3",
        "--set",
        "head=4",
        "--set",
        "sample_every=0",
        "--set",
        "num_samples=2",
        "--set",
        "test=false",
    )
    assert code == 0, err
    code, _, err = run_cli("sample", run, "-n", "3", "--label", "7", "--out", tmp_path / "s.npy")
    assert code == 0, err
    assert np.load(tmp_path / "s.npy").shape == (3, 1, 8, 8)
    code, _, err = run_cli("sample", run, "-n", "3", "--label", "99", "--out", tmp_path / "t.npy")
    assert "labels" in _one_line_error(code, err)
    code, _, err = run_cli("sample", trained_run, "--label", "1", "--out", tmp_path / "u.npy")
    assert "--label" in _one_line_error(code, err)


@pytest.mark.slow
def test_reconstruct_needs_an_encoder(trained_run, run_cli, tmp_path):
    code, _, err = run_cli("reconstruct", trained_run, "--out", tmp_path / "r.png")
    assert code == 2 and "no encoder" in _one_line_error(code, err)
    assert not (tmp_path / "r.png").exists()
    code, _, err = run_cli("reconstruct", trained_run, "--out", tmp_path / "r.jpg")
    assert code == 2 and ".png" in err
