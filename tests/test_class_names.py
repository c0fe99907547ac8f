"""Class names: read with the data (folders, CSV names, .npz names, named datasets), kept in
the run's config.json, printed by `dgm detect` and taken by `dgm sample --label NAME`."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from PIL import Image

from dgm.data import DataSpec, load_dataset, summary_line
from dgm.data.datasets import FASHION_NAMES
from dgm.errors import DataError
from tests.helpers import TINY

CLASSES = ("cat", "dog")


def write_pictures(root, n: int = 12):
    """8x8 gray pictures in class subfolders: dark cats, bright dogs."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(n):
            a = rng.integers(0, 128, (8, 8)) + 127 * c
            Image.fromarray(a.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


# -- reading them -------------------------------------------------------------------------------
def test_image_folder_class_names(tmp_path):
    ds = load_dataset(write_pictures(tmp_path / "pics", n=5))
    assert ds.spec.class_names == CLASSES and ds.spec.num_classes == 2
    y = np.concatenate([ds.train.y.numpy(), ds.val.y.numpy(), ds.test.y.numpy()])
    x = np.concatenate([ds.train.x.numpy(), ds.val.x.numpy(), ds.test.x.numpy()])
    # the name goes with the right pictures: dogs are the bright ones
    assert (x[y == CLASSES.index("dog")].min(axis=(1, 2, 3)) >= 127).all()
    line = summary_line(ds)
    assert "2 classes (cat, dog)" in line and "folder of images, 2 class subfolders" in line
    assert "256 levels (8-bit images" in line and "split 8/1/1" in line


def test_csv_label_names(tmp_path):
    path = tmp_path / "t.csv"
    names = ["zebra", "ant", "moth"]
    rows = "".join(f"{i},{10 * i},{names[i % 3]}\n" for i in range(12))
    path.write_text("a,b,class\n" + rows)
    ds = load_dataset(path)
    assert ds.spec.class_names == ("ant", "moth", "zebra")  # the index order used
    for split in (ds.train, ds.val, ds.test):
        for x, y in zip(split.x, split.y):
            assert ds.spec.label_name(int(y)) == names[int(x[0]) % 3]


def test_npz_class_names(tmp_path):
    x, y = np.zeros((10, 4)), np.arange(10) % 3
    np.savez(tmp_path / "named.npz", x=x, y=y, class_names=np.array(["a", "b", "c", "d"]))
    ds = load_dataset(tmp_path / "named.npz")
    assert ds.spec.class_names == ("a", "b", "c", "d") and ds.spec.num_classes == 4
    np.savez(tmp_path / "plain.npz", x=x, y=y)
    assert load_dataset(tmp_path / "plain.npz").spec.class_names is None
    np.savez(tmp_path / "short.npz", x=x, y=y, class_names=np.array(["a", "b"]))
    with pytest.raises(DataError, match="labels go up to 2 but 2 class names"):
        load_dataset(tmp_path / "short.npz")


def write_idx(path, arr: np.ndarray) -> None:
    """An uncompressed IDX file of unsigned bytes (the MNIST format)."""
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def test_named_dataset_class_names(tmp_path):
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    for prefix, n in (("train", 12), ("t10k", 4)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", np.zeros((n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert ds.spec.class_names == FASHION_NAMES and ds.spec.label_name(1) == "Trouser"
    assert "10 classes (T-shirt/top, Trouser, Pullover, ...)" in summary_line(ds)
    assert load_dataset("digits").spec.class_names == tuple("0123456789")


def test_spec_round_trip_and_old_runs():
    spec = DataSpec("d", (1, 2, 2), 3, num_classes=2, class_names=("no", "yes"))
    back = DataSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and back.class_names == ("no", "yes")
    old = {k: v for k, v in spec.to_dict().items() if k != "class_names"}  # a run from before
    assert DataSpec.from_dict(old).class_names is None
    assert DataSpec.from_dict(old).label_name(1) == "1"
    with pytest.raises(DataError, match="3 class names for 2 classes"):
        DataSpec("d", (2,), 3, num_classes=2, class_names=("a", "b", "c"))


def test_class_index():
    spec = DataSpec("pets", (2,), 3, num_classes=2, class_names=CLASSES)
    assert spec.class_index("dog") == 1 and spec.class_index("0") == 0
    with pytest.raises(DataError, match="the classes of pets are cat, dog"):
        spec.class_index("bird")
    with pytest.raises(DataError, match="out of range"):
        spec.class_index("2")
    unnamed = DataSpec("u", (2,), 3, num_classes=2)
    with pytest.raises(DataError, match=r"names no classes: give an index 0\.\.1"):
        unnamed.class_index("dog")


# -- through the commands -----------------------------------------------------------------------
def _sets(config: dict) -> list[str]:
    return [a for k, v in config.items() for a in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    return write_pictures(tmp_path_factory.mktemp("names") / "pics")


@pytest.mark.slow
def test_class_names_from_train_to_detect(pictures, tmp_path, run_cli):
    run = tmp_path / "hybrid"
    # --precision 32: the names are the point here, not the CPU's bf16 units
    args = ["--data", pictures, "--epochs", "1", "--precision", "32", *_sets(TINY["hybrid-flow"])]
    code, _, err = run_cli("train", "hybrid-flow", *args, "--out", run)
    assert code == 0, err
    assert "2 classes (cat, dog)" in err  # the data line
    spec = json.loads((run / "config.json").read_text())["data"]["spec"]
    assert spec["class_names"] == list(CLASSES)
    code, out, err = run_cli("detect", run, pictures / "dog")
    assert code == 0, err
    rows = [line for line in out.splitlines() if ".png" in line]
    assert len(rows) == 12 and all(" label cat " in r or " label dog " in r for r in rows)
    code, out, err = run_cli("detect", run, pictures / "cat" / "0.png", "--json")
    row = json.loads(out.splitlines()[0])
    assert row["label_name"] == CLASSES[row["label"]]


@pytest.mark.slow
def test_sample_label_by_name(pictures, tmp_path, run_cli):
    run = tmp_path / "gated"
    model = {**TINY["gated-pixelcnn"], "conditional": "true"}
    args = ["--data", pictures, "--epochs", "1", *_sets(model)]
    code, _, err = run_cli("train", "gated-pixelcnn", *args, "--out", run)
    assert code == 0, err
    code, out, err = run_cli(
        "sample", run, "-n", "3", "--label", "dog", "--out", tmp_path / "d.npy"
    )
    assert code == 0, err
    assert "3 samples of class dog" in out
    code, out, err = run_cli("sample", run, "-n", "3", "--label", "1", "--out", tmp_path / "i.npy")
    assert code == 0 and "of class dog" in out
    code, _, err = run_cli("sample", run, "-n", "3", "--label", "bird")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "cat, dog" in lines[0] and "'bird'" in lines[0]
