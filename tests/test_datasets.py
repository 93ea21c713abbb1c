"""il.datasets: the shipped digits, the seeded generators and the validating loaders."""
import gzip
import os
import struct

import numpy as np
import pytest

import initlab as il
from initlab import datasets


def _check_pair(X, y, n, d):
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert X.shape == (n, d) and y.shape == (n,)
    assert X.flags.c_contiguous and y.flags.c_contiguous


# ---------------------------------------------------------------- digits

def test_digits_shape_and_classes():
    X, y = il.datasets.load_digits()
    _check_pair(X, y, 1797, 64)
    assert X.min() == 0 and X.max() == 16
    assert np.array_equal(X, np.round(X))              # pixel counts
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_digits_as_images_are_the_flat_pixels_channels_last():
    flat, y_flat = il.datasets.load_digits()
    X, y = il.datasets.load_digits(images=True)
    assert X.shape == (1797, 8, 8, 1) and X.dtype == np.float32 and X.flags.c_contiguous
    assert np.array_equal(X.reshape(-1, 64), flat) and np.array_equal(y, y_flat)
    # Row-major: pixel (r, c) of image i is feature 8r + c, so row 0 is the top of the digit.
    assert np.array_equal(X[5, 2, :, 0], flat[5, 16:24])
    with pytest.raises(TypeError, match="'images'"):
        il.datasets.load_digits(images="yes")


def test_digits_file_is_scikit_learns():
    # Located, not imported: importing scikit-learn pulls in scipy, which this suite may run without.
    import importlib.util
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-learn is not installed")
    theirs = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", "digits.csv.gz")
    if not os.path.exists(theirs):
        pytest.skip("this scikit-learn does not ship digits.csv.gz")
    ours = datasets._DATA_DIR / "digits.csv.gz"
    with open(theirs, "rb") as f:
        assert ours.read_bytes() == f.read()
    table = np.loadtxt(theirs, delimiter=",")
    X, y = il.datasets.load_digits()
    assert np.array_equal(X, table[:, :64]) and np.array_equal(y, table[:, 64])


def test_digits_file_and_licence_note_ship_with_the_package():
    data = datasets._DATA_DIR
    assert (data / "digits.csv.gz").stat().st_size < 100_000
    note = (data / "README.md").read_text()
    assert "CC BY 4.0" in note and "Alpaydin" in note and "UCI" in note


# ---------------------------------------------------------------- generators

@pytest.mark.parametrize("make, kwargs, d, k", [
    (datasets.make_spirals, dict(n=301, classes=4), 2, 4),
    (datasets.make_moons, dict(n=201, noise=0.1), 2, 2),
    (datasets.make_blobs, dict(n=302, centers=5), 2, 5),
])
def test_generators_are_seeded_and_balanced(make, kwargs, d, k):
    X, y = make(**kwargs, seed=7)
    _check_pair(X, y, kwargs["n"], d)
    counts = np.bincount(y, minlength=k)
    assert counts.max() - counts.min() <= 1 and counts.sum() == kwargs["n"]
    X2, y2 = make(**kwargs, seed=7)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    X3, _ = make(**kwargs, seed=8)
    assert not np.array_equal(X, X3)


def test_moons_without_noise_lie_on_the_two_circles():
    X, y = datasets.make_moons(100, 0.0, seed=0)
    outer, inner = X[y == 0].astype(np.float64), X[y == 1].astype(np.float64)
    np.testing.assert_allclose(np.hypot(outer[:, 0], outer[:, 1]), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.hypot(inner[:, 0] - 1.0, inner[:, 1] - 0.5), 1.0, atol=1e-6)
    assert (outer[:, 1] >= -1e-6).all() and (inner[:, 1] <= 0.5 + 1e-6).all()


def test_spirals_radius_grows_along_each_arm():
    X, y = datasets.make_spirals(300, 3, seed=0, noise=0.0)
    radius = np.hypot(X[:, 0], X[:, 1])
    for c in range(3):
        np.testing.assert_allclose(radius[y == c], np.linspace(0, 1, 100), atol=1e-6)


def test_blobs_with_given_centers_cluster_around_them():
    centers = np.array([[0.0, 0.0, 0.0], [50.0, 50.0, 50.0]])
    X, y = datasets.make_blobs(400, centers, seed=1, std=0.5)
    _check_pair(X, y, 400, 3)
    for c in range(2):
        np.testing.assert_allclose(X[y == c].mean(axis=0), centers[c], atol=0.15)
        assert abs(X[y == c].std() - 0.5) < 0.05


@pytest.mark.parametrize("call, error, match", [
    (lambda: datasets.make_spirals(0, 3), ValueError, "n must be an int >= 1"),
    (lambda: datasets.make_spirals(10, 0), ValueError, "classes must be"),
    (lambda: datasets.make_spirals(10.5, 3), TypeError, "n must be an int"),
    (lambda: datasets.make_moons(10, -0.1), ValueError, "noise must be a finite float >= 0"),
    (lambda: datasets.make_moons(10, float("nan")), ValueError, "noise"),
    (lambda: datasets.make_blobs(10, 0), ValueError, "centers must be"),
    (lambda: datasets.make_blobs(10, [1.0, 2.0]), ValueError, r"shape \(k, features\)"),
    (lambda: datasets.make_blobs(10, 3, seed=-1), ValueError, "seed must be"),
    (lambda: datasets.make_blobs(10, 3, seed="a"), TypeError, "seed must be"),
])
def test_generators_reject_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------- IDX

def _idx_bytes(array: np.ndarray, type_code: int, dtype: str) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def _write_mnist(folder, n=5, compress=True, prefix="train"):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    suffix = ".gz" if compress else ""
    opener = gzip.open if compress else open
    img_path = folder / f"{prefix}-images-idx3-ubyte{suffix}"
    with opener(img_path, "wb") as f:
        f.write(_idx_bytes(images, 0x08, ">u1"))
    with opener(folder / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as f:
        f.write(_idx_bytes(labels, 0x08, ">u1"))
    return img_path, images, labels


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    img_path, images, labels = _write_mnist(tmp_path, compress=compress)
    X, y = datasets.load_idx(img_path)
    _check_pair(X, y, 5, 12)
    assert np.array_equal(X, images.reshape(5, -1).astype(np.float32))
    assert np.array_equal(y, labels.astype(np.int64))
    # a folder with split, and an explicit labels path, give the same arrays
    X2, y2 = datasets.load_idx(tmp_path)
    X3, y3 = datasets.load_idx(img_path, labels=tmp_path / f"train-labels-idx1-ubyte{'.gz' if compress else ''}")
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert np.array_equal(X, X3) and np.array_equal(y, y3)


def test_idx_labels_found_with_other_compression_and_float_images(tmp_path):
    images = np.linspace(-1, 1, 2 * 3 * 2).reshape(2, 3, 2)
    (tmp_path / "x-images-idx3-f8").write_bytes(_idx_bytes(images, 0x0E, ">f8"))
    with gzip.open(tmp_path / "x-labels-idx1-f8.gz", "wb") as f:
        f.write(_idx_bytes(np.array([3, 1], dtype=np.int32), 0x0C, ">i4"))
    X, y = datasets.load_idx(tmp_path / "x-images-idx3-f8")
    np.testing.assert_array_equal(X, images.reshape(2, 6).astype(np.float32))
    assert y.tolist() == [3, 1]


def test_idx_rejects_malformed_files(tmp_path):
    img_path, images, labels = _write_mnist(tmp_path, compress=False)
    good = img_path.read_bytes()

    bad = tmp_path / "bad-images-idx3-ubyte"
    bad.write_bytes(b"\x08\x03\x00\x00" + good[4:])
    with pytest.raises(ValueError, match="bad-images-idx3-ubyte.*wrong magic number"):
        datasets.load_idx(bad, labels=tmp_path / "train-labels-idx1-ubyte")

    bad.write_bytes(good[:-7])
    with pytest.raises(ValueError, match="bad-images-idx3-ubyte.*truncated IDX data"):
        datasets.load_idx(bad, labels=tmp_path / "train-labels-idx1-ubyte")

    bad.write_bytes(good[:10])
    with pytest.raises(ValueError, match="truncated IDX header"):
        datasets.load_idx(bad, labels=tmp_path / "train-labels-idx1-ubyte")

    bad.write_bytes(good + b"\x00")
    with pytest.raises(ValueError, match="unexpected bytes after"):
        datasets.load_idx(bad, labels=tmp_path / "train-labels-idx1-ubyte")

    bad.write_bytes(gzip.compress(good)[:-20])
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        datasets.load_idx(bad, labels=tmp_path / "train-labels-idx1-ubyte")

    # labels for a different number of images
    short = tmp_path / "short-labels"
    short.write_bytes(_idx_bytes(labels[:3], 0x08, ">u1"))
    with pytest.raises(ValueError, match="3 labels for 5 images"):
        datasets.load_idx(img_path, labels=short)

    # the labels file passed as images, and an images file passed as labels
    with pytest.raises(ValueError, match="expected an images file"):
        datasets.load_idx(tmp_path / "train-labels-idx1-ubyte")
    with pytest.raises(ValueError, match="expected a 1-D IDX labels file"):
        datasets.load_idx(img_path, labels=img_path)

    # no labels next to the images
    alone = tmp_path / "sub"
    alone.mkdir()
    (alone / "a-images-idx3-ubyte").write_bytes(good)
    with pytest.raises(ValueError, match="labels file not found.*pass labels=PATH"):
        datasets.load_idx(alone / "a-images-idx3-ubyte")
    with pytest.raises(ValueError, match="no such file"):
        datasets.load_idx(tmp_path / "missing-images-idx3-ubyte")


# ---------------------------------------------------------------- npz

def test_npz_round_trip_and_one_hot(tmp_path):
    X = np.arange(12, dtype=np.float64).reshape(3, 2, 2)
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=np.array([2.0, 0.0, 1.0]), extra=np.zeros(1))
    Xl, yl = datasets.load_npz(path)
    _check_pair(Xl, yl, 3, 4)
    assert np.array_equal(Xl, X.reshape(3, 4)) and yl.tolist() == [2, 0, 1]
    np.savez(path, X=X.reshape(3, 4), y=np.eye(3)[[1, 2, 0]])
    assert datasets.load_npz(path)[1].tolist() == [1, 2, 0]


@pytest.mark.parametrize("arrays, match", [
    (dict(X=np.zeros((3, 2))), "missing key.*y"),
    (dict(X=np.zeros(3), y=np.zeros(3, int)), r"X must have shape \(n, features\)"),
    (dict(X=np.zeros((3, 2)), y=np.zeros(4, int)), r"y must have shape \(3,\)"),
    (dict(X=np.zeros((3, 2)), y=np.array([0.0, 1.5, 2.0])), "labels must be integers.*1.5"),
    (dict(X=np.zeros((3, 2)), y=np.array([0, -1, 2])), "labels must be >= 0"),
    (dict(X=np.array([[0.0, np.nan], [1, 1], [2, 2]]), y=np.zeros(3, int)), "features must be finite"),
    (dict(X=np.array([["a", "b"]] * 3), y=np.zeros(3, int)), "features must be numeric"),
    (dict(X=np.zeros((3, 2)), y=np.full((3, 2), 0.5)), "one-hot"),
])
def test_npz_rejects_wrong_contents(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="bad.npz: .*" + match):
        datasets.load_npz(path)


def test_npz_rejects_pickles_and_garbage(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, X=np.array([[1, 2]], dtype=object), y=np.array([0]))
    with pytest.raises(ValueError, match="obj.npz"):
        datasets.load_npz(path)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match="junk.npz: not a readable .npz"):
        datasets.load_npz(junk)


# ---------------------------------------------------------------- CSV

def test_csv_with_and_without_header(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("1,2,0\n3.5,-4,1\n\n5,6e1,2\n")
    X, y = datasets.load_csv(plain)
    _check_pair(X, y, 3, 2)
    np.testing.assert_array_equal(X, [[1, 2], [3.5, -4], [5, 60]])
    assert y.tolist() == [0, 1, 2]
    middle = tmp_path / "middle.csv"
    middle.write_text("0.5,4,7\n1.5,2,8\n")
    X1, y1 = datasets.load_csv(middle, label_column=-2)
    np.testing.assert_array_equal(X1, [[0.5, 7], [1.5, 8]])
    assert y1.tolist() == [4, 2]
    named = tmp_path / "named.csv.gz"
    named.write_bytes(gzip.compress(b"label,a,b\n1,0.5,0.25\n0,1,2\n"))
    X, y = datasets.load_csv(named, label_column="label")
    np.testing.assert_array_equal(X, [[0.5, 0.25], [1, 2]])
    assert y.tolist() == [1, 0]


def test_csv_rejects_malformed_files(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,label\n1,2,0\n3,x,1\n")
    with pytest.raises(ValueError, match=r"bad.csv: line 3, column 'b': 'x' is not a number"):
        datasets.load_csv(path)
    path.write_text("1,2,0\n3,4\n")
    with pytest.raises(ValueError, match="bad.csv: line 2 has 2 columns, expected 3"):
        datasets.load_csv(path)
    path.write_text("1,2,0.5\n")
    with pytest.raises(ValueError, match="labels must be integers"):
        datasets.load_csv(path)
    path.write_text("1.5,2,0\n3,4,1\n")
    with pytest.raises(ValueError, match="labels must be integers"):
        datasets.load_csv(path, label_column=0)
    path.write_text("\n\n")
    with pytest.raises(ValueError, match="no data rows"):
        datasets.load_csv(path)
    path.write_text("1,2,0\n")
    with pytest.raises(ValueError, match="label_column 3 out of range"):
        datasets.load_csv(path, label_column=3)
    with pytest.raises(ValueError, match="not a header name"):
        datasets.load_csv(path, label_column="label")
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not a UTF-8 text file"):
        datasets.load_csv(path)


def test_csv_keeps_non_numeric_labels_as_strings(tmp_path):
    path = tmp_path / "animals.csv"
    path.write_text("1,2,cat\n3.5,-4, dog \n5,6,cat\n")  # no header: the features are numbers
    X, y = datasets.load_csv(path)
    np.testing.assert_array_equal(X, [[1, 2], [3.5, -4], [5, 6]])
    assert X.dtype == np.float32
    assert y.dtype.kind == "U" and y.tolist() == ["cat", "dog", "cat"]
    path.write_text("species,a,b\nsetosa,0.5,1\nvirginica,2,3\n")  # a header, label by name
    X, y = datasets.load_csv(path, label_column="species")
    np.testing.assert_array_equal(X, [[0.5, 1], [2, 3]])
    assert y.tolist() == ["setosa", "virginica"]
    path.write_text("a,b,label\n1,2,x\n3,4,y\n")
    assert datasets.load_csv(path)[1].tolist() == ["x", "y"]
    path.write_text("1,2,0\n3,4,b\n")  # one label is not a number: all are strings, "0" included
    assert datasets.load_csv(path, header=False)[1].tolist() == ["0", "b"]
    path.write_text("1,2,label\n3,4,1\n5,6,0\n")  # only the label cell is a name: a header
    X, y = datasets.load_csv(path)
    assert y.dtype == np.int64 and y.tolist() == [1, 0]
    path.write_text("1,2,cat\n3,4,\n")
    with pytest.raises(ValueError, match=r"animals.csv: line 2: the label \(column 2\) is empty"):
        datasets.load_csv(path)
    path.write_text("a,b,label\n1,2,cat\n3,q,dog\n")
    with pytest.raises(ValueError, match=r"animals.csv: line 3, column 'b': 'q' is not a number"):
        datasets.load_csv(path)


def test_csv_string_labels_reach_fit(tmp_path):
    path = tmp_path / "blobs.csv"
    X, y = datasets.make_blobs(60, 3, seed=1)
    names = np.array(["red", "green", "blue"])[y]
    path.write_text("".join(f"{a},{b},{label}\n" for (a, b), label in zip(X[:, :2], names)))
    X2, y2 = datasets.load_csv(path)
    assert sorted(set(y2.tolist())) == ["blue", "green", "red"]
    import initlab as il
    net = il.Network([2, 8, 3], seed=0)
    if not hasattr(net, "classes_"):
        pytest.skip("Network does not take string labels yet")
    net.fit(X2, y2, epochs=2, progress=False)
    assert net.classes_.tolist() == ["blue", "green", "red"]
    assert set(net.predict(X2).tolist()) <= {"blue", "green", "red"}


# ---------------------------------------------------------------- by name or path

def test_load_by_name_and_by_path(tmp_path):
    X, y = datasets.load("digits")
    assert X.shape == (1797, 64)
    X, y = datasets.load("spirals", seed=3)
    assert X.shape == (900, 2) and np.array_equal(X, datasets.load("spirals", seed=3)[0])
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((2, 3)), y=[0, 1])
    assert datasets.load(str(path))[0].shape == (2, 3)
    csv_path = tmp_path / "d.tsv"
    csv_path.write_text("1\t2\t1\n")
    assert datasets.load(str(csv_path))[1].tolist() == [1]
    with pytest.raises(ValueError, match="neither a built-in data set"):
        datasets.load("no-such-set")
