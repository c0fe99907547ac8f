"""Data loading: format readers, named datasets on tiny fake files, user data, and bad input."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from dgm.data import (
    DATASETS,
    Dataset,
    check_values,
    data_root,
    data_roots,
    formats,
    list_datasets,
    load_dataset,
)
from dgm.data.datasets import FOLDERS
from dgm.data.toy import SAMPLERS
from dgm.errors import DataError
from tests.helpers import shared_data

# --------------------------------------------------------------------------- writers


def write_idx(path: Path, arr: np.ndarray, code: int = 0x08) -> Path:
    dtype = {0x08: ">u1", 0x0D: ">f4", 0x0C: ">i4"}[code]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(dtype).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def write_fake_mnist(root: Path, folder: str = "mnist", n_train: int = 60, n_test: int = 10):
    rng = np.random.default_rng(0)
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(d / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)


def write_amat(path: Path, arr: np.ndarray) -> Path:
    path.write_text("\n".join(" ".join(str(int(v)) for v in row) for row in arr) + "\n")
    return path


class Boom:
    """Unpickling this would create a file: proves that loaders never unpickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def save_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("name", ["x-idx3-ubyte.gz", "x-idx3-ubyte"])
def test_read_idx_gzipped_and_plain(tmp_path, name):
    arr = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    got = formats.read_idx(write_idx(tmp_path / name, arr))
    assert got.dtype == np.uint8 and got.flags.writeable
    np.testing.assert_array_equal(got, arr)


def test_read_idx_float_and_int_codes(tmp_path):
    arr = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(formats.read_idx(write_idx(tmp_path / "f", arr, 0x0D)), arr)
    ints = np.array([-5, 70000], dtype=np.int32)
    np.testing.assert_array_equal(formats.read_idx(write_idx(tmp_path / "i", ints, 0x0C)), ints)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        formats.read_idx(tmp_path / "nope.gz")


def test_read_idx_truncated(tmp_path):
    path = write_idx(tmp_path / "t", np.zeros((5, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        formats.read_idx(path)


def test_read_idx_extra_bytes(tmp_path):
    path = write_idx(tmp_path / "t", np.zeros((5,), np.uint8))
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DataError, match="extra bytes"):
        formats.read_idx(path)


def test_read_idx_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "t.gz", np.arange(3000).reshape(3, 1000) % 256)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match="gzip"):
        formats.read_idx(path)


@pytest.mark.parametrize(
    "payload", [b"\x12\x34\x08\x01\0\0\0\1x", b"hello world, not idx", b"\0\0\x99\x01", b"\0"]
)
def test_read_idx_bad_magic_or_garbage(tmp_path, payload):
    path = tmp_path / "bad-idx"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=r"bad-idx.*(magic|too short)"):
        formats.read_idx(path)


# --------------------------------------------------------------------------- text


def test_read_amat(tmp_path):
    arr = np.random.default_rng(0).integers(0, 2, (7, 12))
    np.testing.assert_array_equal(formats.read_amat(write_amat(tmp_path / "a.amat", arr)), arr)


def test_read_amat_bad_cell_and_ragged(tmp_path):
    path = tmp_path / "a.amat"
    path.write_text("0 1 0\n1 x 1\n")
    with pytest.raises(DataError, match=r"line 2, column 2 holds 'x'"):
        formats.read_amat(path)
    path.write_text("0 1 0\n1 1\n")
    with pytest.raises(DataError, match="line 2 has 2 values"):
        formats.read_amat(path)


def test_read_csv_header_and_label_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,Label,b\n1.5,2,3\n4,0,6\n7,1,9\n")
    table = formats.read_csv(path)
    np.testing.assert_array_equal(table.x, [[1.5, 3], [4, 6], [7, 9]])
    np.testing.assert_array_equal(table.y, [2, 0, 1])
    assert table.y.dtype == np.int64


def test_read_csv_without_header(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,2\n3,4\n")
    table = formats.read_csv(path)
    np.testing.assert_array_equal(table.x, [[1, 2], [3, 4]])
    assert table.y is None


def test_read_csv_label_names_become_indices(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('x1,x2,class\n1,2,"dog"\n3,4,cat\n5,6,dog\n')
    table = formats.read_csv(path)
    np.testing.assert_array_equal(table.y, [1, 0, 1])
    assert "cat=0" in table.notes[0]


def test_read_csv_non_numeric_cell(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,c\n1,2,3\n4,oops,6\n")
    with pytest.raises(DataError, match=r"line 3, column 2 \('b'\) holds 'oops'"):
        formats.read_csv(path)


def test_read_csv_empty_cell_and_ragged_row(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,2\n3,\n")
    with pytest.raises(DataError, match="line 2, column 2 holds ''"):
        formats.read_csv(path)
    path.write_text("1,2\n3,4,5\n")
    with pytest.raises(DataError, match="line 2 has 3 values"):
        formats.read_csv(path)


def test_read_csv_nan(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,nan\n3,inf\n")
    with pytest.raises(DataError, match="2 NaN or infinite"):
        formats.read_csv(path)


# --------------------------------------------------------------------------- binary arrays


def test_read_mat(tmp_path):
    path = tmp_path / "m.mat"
    scipy.io.savemat(path, {"X": np.eye(3, dtype=np.uint8), "other": np.ones(2)})
    got = formats.read_mat(path, ["X"])
    np.testing.assert_array_equal(got["X"], np.eye(3))
    with pytest.raises(DataError, match=r"variable 'Y' not found .*X"):
        formats.read_mat(path, ["Y"])
    (tmp_path / "bad.mat").write_bytes(b"garbage" * 50)
    with pytest.raises(DataError, match="not a readable MATLAB"):
        formats.read_mat(tmp_path / "bad.mat", ["X"])


def test_read_npy_and_npz(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((3, 2), np.float32))
    assert formats.read_npy(tmp_path / "a.npy").shape == (3, 2)
    np.savez(tmp_path / "b.npz", x=np.zeros(4), y=np.arange(4))
    assert set(formats.read_npz(tmp_path / "b.npz")) == {"x", "y"}


def test_object_arrays_are_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    arr = np.array([Boom(marker), 1], dtype=object)
    np.save(tmp_path / "o.npy", arr, allow_pickle=True)
    np.savez(tmp_path / "o.npz", x=arr)
    (tmp_path / "p.npy").write_bytes(pickle.dumps(Boom(marker)))
    for reader, name in [
        (formats.read_npy, "o.npy"),
        (formats.read_npz, "o.npz"),
        (formats.read_npy, "p.npy"),
    ]:
        with pytest.raises(DataError, match=r"Python (objects|pickle)"):
            reader(tmp_path / name)
        with pytest.raises(DataError, match=r"Python (objects|pickle)"):
            load_dataset(str(tmp_path / name))
    assert not marker.exists()


def test_npy_npz_wrong_content(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    np.savez(tmp_path / "b.npz", x=np.zeros(3))
    (tmp_path / "a.npz").write_bytes((tmp_path / "a.npy").read_bytes())
    (tmp_path / "b.npy").write_bytes((tmp_path / "b.npz").read_bytes())
    with pytest.raises(DataError, match=r"rename it to \.npy"):
        formats.read_npz(tmp_path / "a.npz")
    with pytest.raises(DataError, match=r"rename it to \.npz"):
        formats.read_npy(tmp_path / "b.npy")
    (tmp_path / "t.npz").write_text("hello")
    with pytest.raises(DataError, match=r"t\.npz: not an \.npz archive"):
        formats.read_npz(tmp_path / "t.npz")
    damaged = (tmp_path / "b.npz").read_bytes()
    (tmp_path / "d.npz").write_bytes(damaged[: len(damaged) // 2])
    with pytest.raises(DataError, match=r"d\.npz"):
        formats.read_npz(tmp_path / "d.npz")


def test_read_npy_garbage_and_strings(tmp_path):
    (tmp_path / "g.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=r"g\.npy"):
        formats.read_npy(tmp_path / "g.npy")
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(DataError, match="not numbers"):
        formats.read_npy(tmp_path / "s.npy")


# --------------------------------------------------------------------------- image folders


def test_image_folder_flat_grayscale(tmp_path):
    for i in range(5):
        save_png(tmp_path / "imgs" / f"{i}.png", np.full((6, 4), i * 10))
    folder = formats.read_image_folder(tmp_path / "imgs")
    assert folder.x.shape == (5, 1, 6, 4) and folder.x.dtype == np.uint8
    assert folder.y is None and folder.x[3].max() == 30


def test_image_folder_classes_and_colour(tmp_path):
    save_png(tmp_path / "d" / "b_cls" / "1.png", np.full((4, 4), 7))
    save_png(tmp_path / "d" / "b_cls" / "2.png", np.full((4, 4), 9))
    save_png(tmp_path / "d" / "a_cls" / "1.png", np.tile([255, 0, 0], (4, 4, 1)))
    folder = formats.read_image_folder(tmp_path / "d")
    assert folder.classes == ["a_cls", "b_cls"]
    assert folder.x.shape == (3, 3, 4, 4)  # one colour image makes all RGB
    np.testing.assert_array_equal(folder.y, [0, 1, 1])
    np.testing.assert_array_equal(folder.x[0, :, 0, 0], [255, 0, 0])
    np.testing.assert_array_equal(folder.x[1, :, 0, 0], [7, 7, 7])


def test_image_folder_skips_non_images_with_warning(tmp_path):
    d = tmp_path / "imgs"
    for i in range(4):
        save_png(d / f"{i}.png", np.full((3, 3), i))
    (d / "readme.txt").write_text("not an image")
    with pytest.warns(UserWarning, match="readme.txt"):
        ds = load_dataset(str(d))
    assert any("readme.txt" in n for n in ds.notes)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 4
    assert ds.spec.shape == (1, 3, 3) and ds.spec.levels == 256


def test_image_folder_mixed_sizes(tmp_path):
    save_png(tmp_path / "d" / "a.png", np.zeros((4, 4)))
    save_png(tmp_path / "d" / "b.png", np.zeros((5, 4)))
    with pytest.raises(DataError, match=r"a\.png is 4x4 but .*b\.png is 4x5"):
        formats.read_image_folder(tmp_path / "d")


def test_image_folder_empty(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        load_dataset(str(tmp_path / "empty"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("x")
    with pytest.raises(DataError, match="none of its 1 files"):
        formats.read_image_folder(tmp_path / "junk")


# --------------------------------------------------------------------------- user arrays


def splits_total(ds: Dataset) -> int:
    return len(ds.train) + len(ds.val) + len(ds.test)


@pytest.mark.parametrize(
    ("shape", "event"),
    [
        ((20, 5), (5,)),
        ((20, 6, 7), (1, 6, 7)),
        ((20, 3, 6, 7), (3, 6, 7)),
        ((20, 6, 7, 3), (3, 6, 7)),
        ((20, 6, 7, 1), (1, 6, 7)),
    ],
)
def test_user_npy_rank_rules(tmp_path, shape, event):
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ds = load_dataset(str(tmp_path / "x.npy"))
    assert ds.spec.shape == event and splits_total(ds) == 20
    assert ds.spec.levels is None


def test_user_channel_last_is_transposed(tmp_path):
    x = np.zeros((10, 6, 7, 3), np.float32) + np.array([0.25, 0.5, 0.75], np.float32)
    np.save(tmp_path / "x.npy", x)
    ds = load_dataset(str(tmp_path / "x.npy"))
    assert ds.train.x[:, 1].unique().tolist() == [0.5]  # channel 1 moved, not reshaped


@pytest.mark.parametrize("shape", [(20,), (2, 3, 4, 5, 6), (20, 5, 6, 7)])
def test_user_npy_bad_rank(tmp_path, shape):
    np.save(tmp_path / "x.npy", np.zeros(shape))
    with pytest.raises(DataError, match="shape"):
        load_dataset(str(tmp_path / "x.npy"))


def test_user_nan_inf_counted(tmp_path):
    x = np.zeros((10, 3))
    x[1, 1], x[2, 2], x[3, 0] = np.nan, np.inf, -np.inf
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(DataError, match="3 NaN or infinite"):
        load_dataset(str(tmp_path / "x.npy"))


def test_user_negative_integers(tmp_path):
    np.save(tmp_path / "x.npy", np.array([[0, -1], [2, 3], [4, 5]]))
    with pytest.raises(DataError, match="negative"):
        load_dataset(str(tmp_path / "x.npy"))


@pytest.mark.parametrize(
    ("x", "levels", "low", "high"),
    [
        (np.arange(30).reshape(10, 3).astype(np.uint8), 256, 0, 255),
        (np.arange(30).reshape(10, 3).astype(np.int64), 30, 0, 29),
        (np.zeros((10, 3), np.int16), 2, 0, 1),
        (np.eye(10, 3, dtype=bool), 2, 0, 1),
        (np.arange(30).reshape(10, 3) * 1.0, 30, 0, 29),
        (np.linspace(-1, 2, 30).reshape(10, 3), None, -1, 2),
    ],
)
def test_user_levels(tmp_path, x, levels, low, high):
    np.save(tmp_path / "x.npy", x)
    ds = load_dataset(str(tmp_path / "x.npy"))
    assert (ds.spec.levels, ds.spec.low, ds.spec.high) == (levels, low, high)
    assert ds.train.x.dtype == torch.float32


def test_user_split_sizes_and_determinism(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(100).reshape(50, 2).astype(np.float32))
    a, b = load_dataset(str(tmp_path / "x.npy")), load_dataset(str(tmp_path / "x.npy"))
    assert (len(a.train), len(a.val), len(a.test)) == (40, 5, 5)
    assert torch.equal(a.val.x, b.val.x)
    all_x = torch.cat([a.train.x, a.val.x, a.test.x])
    assert sorted(all_x[:, 0].tolist()) == list(range(0, 100, 2))  # a partition of the file
    np.save(tmp_path / "three.npy", np.zeros((3, 2)))
    t = load_dataset(str(tmp_path / "three.npy"))
    assert (len(t.train), len(t.val), len(t.test)) == (1, 1, 1)
    np.save(tmp_path / "two.npy", np.zeros((2, 2)))
    with pytest.raises(DataError, match="at least 3"):
        load_dataset(str(tmp_path / "two.npy"))


def test_user_npz_with_labels(tmp_path):
    np.savez(tmp_path / "d.npz", data=np.zeros((10, 4)), labels=np.arange(10) % 3)
    ds = load_dataset(str(tmp_path / "d.npz"))
    assert ds.spec.num_classes == 3 and ds.train.y.dtype == torch.int64
    assert splits_total(ds) == 10


def test_user_npz_explicit_splits(tmp_path):
    np.savez(
        tmp_path / "s.npz",
        x_train=np.ones((7, 2, 2)),
        y_train=np.zeros(7),
        x_valid=np.zeros((2, 2, 2)),
        y_valid=np.ones(2),
        x_test=np.ones((3, 2, 2)) * 2,
        y_test=np.full(3, 4),
    )
    ds = load_dataset(str(tmp_path / "s.npz"))
    assert (len(ds.train), len(ds.val), len(ds.test)) == (7, 2, 3)
    assert ds.spec.shape == (1, 2, 2) and ds.spec.levels == 3 and ds.spec.num_classes == 5
    assert ds.test.x.max() == 2 and ds.val.y.tolist() == [1, 1]


def test_user_npz_ambiguous_and_bad_labels(tmp_path):
    np.savez(tmp_path / "a.npz", a=np.zeros((5, 2)), b=np.zeros((5, 2)))
    with pytest.raises(DataError, match="cannot tell which array"):
        load_dataset(str(tmp_path / "a.npz"))
    np.savez(tmp_path / "b.npz", x=np.zeros((5, 2)), y=np.arange(4))
    with pytest.raises(DataError, match="labels"):
        load_dataset(str(tmp_path / "b.npz"))


def test_user_csv(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("f1,f2,target\n" + "".join(f"{i * 0.5},{i},{i % 2}\n" for i in range(10)))
    ds = load_dataset(str(path))
    assert ds.spec.shape == (2,) and ds.spec.levels is None and ds.spec.num_classes == 2
    assert ds.source == str(path)


@pytest.mark.parametrize("name", ["no_such_dataset", "mnistt", "x.dat"])
def test_unknown_name_lists_options(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    if name.endswith(".dat"):  # a file of a type no loader reads (.txt is text)
        (tmp_path / name).write_text("1 2 3")
    with pytest.raises(DataError, match=r"digits, mnist.*\.npy or \.npz.*\.csv") as e:
        load_dataset(name)
    assert "\n" not in str(e.value)
    if name == "mnistt":
        assert "did you mean 'mnist'" in str(e.value)


def test_unknown_name_suggests_case_insensitively():
    with pytest.raises(DataError, match="did you mean 'fashion-mnist'"):
        load_dataset("Fashion_MNIST")


# --------------------------------------------------------------------------- named datasets


def test_digits_split_exact():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits", data_dir="/nonexistent")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1000, 350, 447)
    assert ds.spec.shape == (1, 8, 8) and ds.spec.levels == 17 and ds.spec.high == 16
    all_x = torch.cat([ds.train.x, ds.val.x, ds.test.x]).reshape(-1, 64)
    np.testing.assert_array_equal(all_x.numpy(), load_digits().data)
    assert torch.cat([ds.train.y, ds.val.y, ds.test.y]).tolist() == load_digits().target.tolist()


@pytest.mark.parametrize("name", [n for n in DATASETS if n != "digits" and n not in SAMPLERS])
def test_named_dataset_missing_files(tmp_path, name):
    (tmp_path / FOLDERS[name]).mkdir()  # the dataset's folder is there, its files are not
    with pytest.raises(DataError, match="data_dir=DIR") as e:  # Python's words, not the flag
        load_dataset(name, data_dir=tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "$DGM_DATA" in msg and "\n" not in msg


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("DGM_DATA", str(tmp_path / "env"))
    (tmp_path / "env").mkdir()
    assert data_root(tmp_path / "given") == tmp_path / "env"  # the first that exists
    (tmp_path / "given").mkdir()
    assert data_root(tmp_path / "given") == tmp_path / "given"
    roots = data_roots(tmp_path / "given")
    assert [why for why, _ in roots[:2]] == ["data_dir", "$DGM_DATA"]  # in Python's words
    assert roots[-1][0] == "user data folder"
    monkeypatch.delenv("DGM_DATA")
    assert data_root() != tmp_path / "env"


def test_list_datasets():
    names = [n for n, _ in list_datasets()]
    assert names[:2] == ["digits", "mnist"] and set(names) == set(DATASETS)
    assert {"fashion-mnist", "binarized-mnist", "static-mnist", "omniglot"} <= set(names)


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "mnist"), ("fashion-mnist", "fashion_mnist")]
)
def test_fake_mnist(tmp_path, name, folder):
    write_fake_mnist(tmp_path, folder)
    ds = load_dataset(name, data_dir=tmp_path)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (50, 10, 10)  # small: last sixth is val
    assert ds.spec.shape == (1, 28, 28) and ds.spec.levels == 256 and ds.spec.num_classes == 10
    assert ds.val.y.tolist() == [i % 10 for i in range(50, 60)]


def test_fake_mnist_uncompressed_and_label_mismatch(tmp_path):
    write_fake_mnist(tmp_path)
    d = tmp_path / "mnist"
    for gz in d.glob("*.gz"):  # a user's copy may have been decompressed
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    assert len(load_dataset("mnist", data_dir=tmp_path).test) == 10
    write_idx(d / "t10k-labels-idx1-ubyte", np.arange(9))
    with pytest.raises(DataError, match="10 images but 9 labels"):
        load_dataset("mnist", data_dir=tmp_path)


def test_fake_binarized_mnist(tmp_path):
    write_fake_mnist(tmp_path)
    ds = load_dataset("binarized-mnist", data_dir=tmp_path)
    again = load_dataset("binarized-mnist", data_dir=tmp_path)
    assert ds.spec.binarize and ds.spec.levels == 2 and ds.spec.high == 1
    assert ds.train.x.max() <= 1 and (ds.train.x != ds.train.x.round()).any()  # probabilities
    for split in (ds.val, ds.test):
        assert set(split.x.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(ds.test.x, again.test.x)  # one fixed binarization
    check_values(ds.val.x, ds.spec, "val")


def test_fake_static_mnist(tmp_path):
    d = tmp_path / "binarized_mnist"
    d.mkdir()
    rng = np.random.default_rng(0)
    for part, n in (("train", 5), ("valid", 3), ("test", 2)):
        write_amat(d / f"binarized_mnist_{part}.amat", rng.integers(0, 2, (n, 784)))
    ds = load_dataset("static-mnist", data_dir=tmp_path)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (5, 3, 2)
    assert ds.spec.shape == (1, 28, 28) and ds.spec.levels == 2 and ds.train.y is None
    write_amat(d / "binarized_mnist_test.amat", np.full((2, 784), 2))
    with pytest.raises(DataError, match="2 levels"):
        load_dataset("static-mnist", data_dir=tmp_path)


def test_fake_caltech(tmp_path):
    d = tmp_path / "caltech101_silhouettes"
    d.mkdir()
    x = np.ones((40, 784), np.uint8)
    x[0, 1] = 0  # MATLAB column-major: element 1 is row 1, column 0 of the image
    y = (np.arange(40) % 101 + 1).astype(np.uint8)[None]
    scipy.io.savemat(d / "caltech101_silhouettes_28.mat", {"X": x, "Y": y})
    ds = load_dataset("caltech-silhouettes", data_dir=tmp_path)
    assert ds.spec.shape == (1, 28, 28) and ds.spec.num_classes == 101
    assert splits_total(ds) == 40 and min(len(ds.val), len(ds.test)) >= 1
    assert any("split1" in n for n in ds.notes)
    all_x = torch.cat([ds.train.x, ds.val.x, ds.test.x])
    all_y = torch.cat([ds.train.y, ds.val.y, ds.test.y])
    first = all_x[all_y == 0][0, 0]  # example 0 has class id 1 -> label 0
    assert first.sum() == 1 and first[1, 0] == 1  # silhouette = 1 - X, upright


def test_fake_frey(tmp_path):
    d = tmp_path / "frey_faces"
    d.mkdir()
    ff = np.tile(np.arange(560, dtype=np.int64) % 256, (30, 1)).T.astype(np.uint8)
    scipy.io.savemat(d / "frey_rawface.mat", {"ff": ff})
    ds = load_dataset("frey-faces", data_dir=tmp_path)
    assert ds.spec.shape == (1, 28, 20) and ds.spec.levels == 256 and splits_total(ds) == 30
    assert ds.train.x[0, 0, 1, 0] == 20  # row-major 28x20: row 1 starts at element 20


def test_fake_omniglot(tmp_path):
    d = tmp_path / "omniglot"
    d.mkdir()
    for part, chars in (("background", 10), ("evaluation", 3)):
        images = np.ones((chars, 20, 105, 105), bool)
        images[:, :, 0, 0] = False  # one stroke pixel
        np.savez(d / f"images_{part}.npz", images=images, labels=np.zeros((chars, 20)))
    ds = load_dataset("omniglot", data_dir=tmp_path)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (180, 20, 60)
    assert ds.spec.shape == (1, 105, 105) and ds.spec.levels == 2
    assert ds.train.x.sum() == 180 and ds.train.x[0, 0, 0, 0] == 1  # strokes are 1
    assert ds.val.y.unique().tolist() == [9] and ds.test.y.max() == 2


def test_real_mnist_test_labels():
    mnist = shared_data("mnist")  # skips, saying why, on a machine without the shared data
    y = formats.read_idx(mnist / "t10k-labels-idx1-ubyte.gz")
    assert y.shape == (10000,) and set(np.unique(y)) == set(range(10))


# --------------------------------------------------------------------------- where data is found


def test_dgm_data_is_honoured(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "env")
    monkeypatch.setenv("DGM_DATA", str(tmp_path / "env"))
    assert load_dataset("mnist").source == str(tmp_path / "env" / "mnist")
    write_fake_mnist(tmp_path / "given")
    given = load_dataset("mnist", data_dir=tmp_path / "given")
    assert given.source == str(tmp_path / "given" / "mnist")  # --data-dir comes first
    # a --data-dir without the dataset: the search goes on to $DGM_DATA
    (tmp_path / "other").mkdir()
    assert load_dataset("mnist", tmp_path / "other").source == str(tmp_path / "env" / "mnist")


def test_not_found_names_every_place_looked(tmp_path, monkeypatch):
    import dgm.data.datasets as datasets

    monkeypatch.setenv("DGM_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(datasets, "_checkout_data", lambda: [tmp_path / "shared" / "data"])
    monkeypatch.setattr(datasets, "_user_data", lambda: tmp_path / "user")
    with pytest.raises(DataError, match="omniglot/ not found") as e:
        load_dataset("omniglot", data_dir=tmp_path / "given")
    msg = str(e.value)
    for where in ("given", "env", "shared/data", "user"):
        assert str(tmp_path / where / "omniglot") in msg, where
    assert "data_dir=DIR" in msg and "$DGM_DATA" in msg and "\n" not in msg


def test_checkout_data_is_never_looked_for_inside_site_packages(tmp_path, monkeypatch):
    import dgm.data.datasets as datasets

    project = tmp_path / "project"
    (project / "src" / "dgm").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\n")
    # a non-editable install into the project's own venv
    installed = project / ".venv/lib/python3.11/site-packages/dgm/data/datasets.py"
    monkeypatch.setattr(datasets, "__file__", str(installed))
    monkeypatch.chdir(tmp_path)  # outside any checkout: nothing, not the venv's neighbours
    assert datasets._checkout_data() == []
    monkeypatch.chdir(project / "src")  # inside the checkout: found from the working directory
    assert datasets._checkout_data() == [tmp_path / "shared" / "data"]
