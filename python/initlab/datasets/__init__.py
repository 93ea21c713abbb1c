"""Data sets for initlab: a shipped digits set, seeded 2-D generators and file loaders.

Every function returns ``(X, y)``: ``X`` a C-contiguous float32 array of shape ``(n, features)``
and ``y`` an int64 array of shape ``(n,)`` holding class labels ``0..k-1`` (or whatever
non-negative integers the file holds; ``load_csv`` keeps labels that are not numbers as strings).
Loaders return the values the file holds (no scaling);
``initlab compare`` standardizes features itself.

Shipped data
    ``load_digits()``: the UCI "Optical Recognition of Handwritten Digits" set, 8x8 version
    (1797 images, 64 pixel counts in 0..16, 10 classes). Source: UCI Machine Learning Repository,
    E. Alpaydin and C. Kaynak (1998), https://doi.org/10.24432/C50P49; licence CC BY 4.0. The file
    is the copy scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``); see
    ``initlab/data/README.md``.

Generators (seeded: the same ``seed`` gives the same arrays; ``seed=None`` draws fresh entropy)
    ``make_spirals(n, classes, seed)``, ``make_moons(n, noise, seed)``, ``make_blobs(n, centers, seed)``.

Loaders (each validates what it reads and raises ``ValueError`` naming the file and the problem)
    ``load_idx(path)`` (MNIST's IDX format, gzip too), ``load_npz(path)`` (keys ``X`` and ``y``),
    ``load_csv(path, label_column=-1)``.

>>> import initlab as il
>>> X, y = il.datasets.load_digits()
>>> X.shape, X.dtype.name, y.dtype.name, int(y.max())
((1797, 64), 'float32', 'int64', 9)
"""
from __future__ import annotations

import csv
import gzip
import io
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from ..init.random import check_seed, fresh_seed

PathLike = Union[str, "os.PathLike[str]"]
Dataset = Tuple[np.ndarray, np.ndarray]

_DATA_DIR = Path(__file__).resolve().parent / "data"
_GZIP_MAGIC = b"\x1f\x8b"

# The built-in data sets `initlab compare --data NAME` accepts, with the default arguments it uses.
BUILTIN = ("digits", "digits-images", "spirals", "moons", "blobs")


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def _rng(seed: Optional[int]) -> np.random.Generator:
    return np.random.default_rng(fresh_seed() if seed is None else check_seed(seed))


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    if value >= 2**63:  # numpy's sizes are int64: larger counts fail deep inside numpy (IndexError)
        raise ValueError(f"{name} must be an int < 2**63, got {value}")
    return int(value)


def _check_scale(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a finite float >= 0, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite float >= 0, got {value}")
    return float(value)


def _finite_float32(X: np.ndarray, what: str) -> np.ndarray:
    """X as float32, or ValueError when a coordinate is not finite there (parameters so large that
    the points overflow float32, or an angle so large that sin/cos are NaN)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = X.astype(np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"{what} give coordinates that are not finite in float32 "
                         f"(|x| must stay below {float(np.finfo(np.float32).max):.4g}); use smaller values")
    return out


def _split_counts(n: int, parts: int) -> list:
    """n items over `parts` groups as evenly as possible (the first groups get the remainder)."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def _read_bytes(path: PathLike) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, expected a file")
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    return raw


def _labels_to_int64(path: str, values: np.ndarray, what: str = "labels") -> np.ndarray:
    """Integer-valued, non-negative labels as int64, or ValueError naming the first bad one."""
    values = np.asarray(values)
    if values.dtype.kind == "b":
        values = values.astype(np.int64)
    if values.dtype.kind not in "iuf":
        raise ValueError(f"{path}: {what} must be numeric, got dtype {values.dtype}")
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{path}: {what} must be integers, got {values[i]!r} at index {i}")
    if values.size and values.min() < 0:
        i = int(np.argmin(values))
        raise ValueError(f"{path}: {what} must be >= 0, got {values[i]!r} at index {i}")
    # uint64 2**63 (or a float that large) would wrap to a negative int64
    too_big = values > np.iinfo(np.int64).max if values.dtype.kind == "u" else values >= 2.0 ** 63
    if values.size and np.any(too_big):
        i = int(np.flatnonzero(too_big)[0])
        raise ValueError(f"{path}: {what} must be < 2**63, got {values.flat[i]!r} at index {i}")
    return np.ascontiguousarray(values, dtype=np.int64)


def _features_to_float32(path: str, X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if X.dtype.kind not in "iufb":
        raise ValueError(f"{path}: features must be numeric, got dtype {X.dtype}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    finite = np.isfinite(X)
    if not finite.all():
        row, col = (int(v) for v in np.argwhere(~finite)[0])
        raise ValueError(f"{path}: features must be finite, got {X[row, col]} at row {row}, column {col}")
    return X


# ----------------------------------------------------------------------------------------------
# shipped data
# ----------------------------------------------------------------------------------------------

def load_digits(images: bool = False) -> Dataset:
    """The UCI optical-digits data set, 8x8 version, shipped with initlab.

    1797 images of handwritten digits 0-9 as 64 pixel counts in 0..16 (each count is the number of
    set pixels in a 4x4 block of a 32x32 bitmap). Returns ``X`` float32 (1797, 64), values 0..16
    as in the file, and ``y`` int64 (1797,). With ``images=True``, ``X`` is the same pixels as
    (1797, 8, 8, 1) images, channels last (row-major, so ``X.reshape(-1, 64)`` is the flat set),
    the input of a convolutional network.

    Source: UCI Machine Learning Repository, E. Alpaydin and C. Kaynak (1998), "Optical Recognition
    of Handwritten Digits", https://doi.org/10.24432/C50P49, licence CC BY 4.0; the file is the copy
    scikit-learn ships, so ``X`` and ``y`` equal ``sklearn.datasets.load_digits(return_X_y=True)``.

    >>> X, y = load_digits()
    >>> X.shape, float(X.max()), np.bincount(y).tolist()[:3]
    ((1797, 64), 16.0, [178, 182, 177])
    >>> load_digits(images=True)[0].shape
    (1797, 8, 8, 1)
    """
    if not isinstance(images, (bool, np.bool_)):
        raise TypeError(f"load_digits: 'images' must be a bool, got {type(images).__name__}")
    path = _DATA_DIR / "digits.csv.gz"
    if not path.exists():
        raise ValueError(f"{path}: the shipped digits file is missing; reinstall initlab")
    table = np.loadtxt(io.BytesIO(_read_bytes(path)), delimiter=",", dtype=np.float64)
    if table.shape != (1797, 65):
        raise ValueError(f"{path}: expected 1797 rows of 65 values, got shape {table.shape}")
    X = np.ascontiguousarray(table[:, :64], dtype=np.float32)
    y = _labels_to_int64(str(path), table[:, 64])
    if images:
        X = X.reshape(-1, 8, 8, 1)
    return X, y


# ----------------------------------------------------------------------------------------------
# generators
# ----------------------------------------------------------------------------------------------

def make_spirals(n: int = 300, classes: int = 3, seed: Optional[int] = None, *,
                 noise: float = 0.2, turns: float = 1.0) -> Dataset:
    """Interleaved 2-D spirals, one arm per class (the CS231n toy problem).

    Class c has points at radius r in [0, 1] and angle ``θ = 2π·turns·r + 2πc/classes + noise·ε``
    with ε ~ N(0, 1): ``x = (r sin θ, r cos θ)``. ``n`` is the total number of points, split as
    evenly as possible over the classes. Not linearly separable for ``classes >= 2``.

    >>> X, y = make_spirals(300, 3, seed=0)
    >>> X.shape, np.bincount(y).tolist()
    ((300, 2), [100, 100, 100])
    """
    n = _check_count("n", n, 1)
    classes = _check_count("classes", classes, 1)
    if classes > n:  # also bounds the loop over classes (classes=2**40 would run for days)
        raise ValueError(f"classes must be <= n (every class needs a point), got classes={classes}, n={n}")
    noise = _check_scale("noise", noise)
    turns = _check_scale("turns", turns)
    if not math.isfinite(2 * math.pi * turns + 2 * math.pi):
        raise ValueError(f"turns must keep the angle 2*pi*turns finite, got turns={turns}")
    rng = _rng(seed)
    X = np.empty((n, 2), dtype=np.float64)
    y = np.empty(n, dtype=np.int64)
    start = 0
    for c, count in enumerate(_split_counts(n, classes)):
        radius = np.linspace(0.0, 1.0, count)
        theta = (2 * np.pi * turns * radius + 2 * np.pi * c / classes
                 + noise * rng.standard_normal(count))
        X[start:start + count, 0] = radius * np.sin(theta)
        X[start:start + count, 1] = radius * np.cos(theta)
        y[start:start + count] = c
        start += count
    return _finite_float32(X, f"turns={turns}, noise={noise}"), y


def make_moons(n: int = 200, noise: float = 0.1, seed: Optional[int] = None) -> Dataset:
    """Two interleaving half circles in 2-D (as ``sklearn.datasets.make_moons``).

    Class 0: ``(cos t, sin t)``; class 1: ``(1 - cos t, 0.5 - sin t)``, t uniform on [0, π];
    Gaussian noise of standard deviation ``noise`` added to every coordinate. ``n`` is the total
    number of points (class 0 gets the odd one).

    >>> X, y = make_moons(100, 0.0, seed=0)
    >>> X.shape, np.bincount(y).tolist()
    ((100, 2), [50, 50])
    """
    n = _check_count("n", n, 1)
    noise = _check_scale("noise", noise)
    rng = _rng(seed)
    n_outer, n_inner = _split_counts(n, 2)
    t_outer = np.linspace(0.0, np.pi, n_outer)
    t_inner = np.linspace(0.0, np.pi, n_inner)
    X = np.concatenate([
        np.stack([np.cos(t_outer), np.sin(t_outer)], axis=1),
        np.stack([1.0 - np.cos(t_inner), 0.5 - np.sin(t_inner)], axis=1),
    ])
    X += noise * rng.standard_normal(X.shape)
    y = np.concatenate([np.zeros(n_outer, np.int64), np.ones(n_inner, np.int64)])
    return _finite_float32(X, f"noise={noise}"), y


def make_blobs(n: int = 300, centers: Union[int, Sequence[Sequence[float]], np.ndarray] = 3,
               seed: Optional[int] = None, *, features: int = 2, std: float = 1.0,
               box: Tuple[float, float] = (-10.0, 10.0)) -> Dataset:
    """Isotropic Gaussian blobs, one class per centre (as ``sklearn.datasets.make_blobs``).

    ``centers`` is a number of centres (drawn uniformly in ``box`` in each of ``features``
    dimensions) or an array of shape ``(k, features)``. Each point is its centre plus
    N(0, std²) noise per coordinate; ``n`` points split as evenly as possible over the centres.

    >>> X, y = make_blobs(90, 3, seed=0, features=4)
    >>> X.shape, np.bincount(y).tolist()
    ((90, 4), [30, 30, 30])
    """
    n = _check_count("n", n, 1)
    std = _check_scale("std", std)
    rng = _rng(seed)
    if isinstance(centers, (int, np.integer)) and not isinstance(centers, bool):
        k = _check_count("centers", centers, 1)
        if k > n:  # a centre per point at most (centers=2**40 would try to draw 2**40 centres)
            raise ValueError(f"centers must be <= n (every centre needs a point), got centers={k}, n={n}")
        features = _check_count("features", features, 1)
        low, high = box
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"box must be (low, high) with finite low < high, got {box!r}")
        centre_points = rng.uniform(low, high, size=(k, features))
    else:
        try:
            centre_points = np.asarray(centers, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError("centers must be an int >= 1 or an array of shape (k, features), "
                            f"got {type(centers).__name__}") from None
        if centre_points.ndim != 2 or centre_points.shape[0] < 1 or centre_points.shape[1] < 1:
            raise ValueError("centers must be an int >= 1 or an array of shape (k, features), "
                             f"got shape {centre_points.shape}")
        if not np.isfinite(centre_points).all():
            raise ValueError("centers must be finite")
        k = centre_points.shape[0]
    counts = _split_counts(n, k)
    y = np.repeat(np.arange(k, dtype=np.int64), counts)
    with np.errstate(over="ignore", invalid="ignore"):
        X = centre_points[y] + std * rng.standard_normal((n, centre_points.shape[1]))
    return _finite_float32(X, f"centers (largest |coordinate| {float(np.abs(centre_points).max()):.4g}) "
                              f"and std={std}"), y


# ----------------------------------------------------------------------------------------------
# loaders
# ----------------------------------------------------------------------------------------------

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path: str) -> np.ndarray:
    """One IDX file as an ndarray of its declared shape; ValueError for anything malformed."""
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated IDX file: {len(raw)} bytes, the header alone needs 4")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file: wrong magic number 0x{raw[:4].hex()} (expected "
                         "0x0000TTDD with type TT in 08,09,0B,0C,0D,0E and DD dimensions)")
    ndim = raw[3]
    if ndim < 1:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header: {len(raw)} bytes, {ndim} dimensions need {header}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + math.prod(dims) * dtype.itemsize
    if len(raw) < expected:
        raise ValueError(f"{path}: truncated IDX data: dimensions {dims} of {dtype.name} need "
                         f"{expected} bytes, the file has {len(raw)}")
    if len(raw) > expected:
        raise ValueError(f"{path}: {len(raw) - expected} unexpected bytes after the IDX data of "
                         f"dimensions {dims}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _idx_labels_path(images: str) -> str:
    """The labels file next to an images file, by MNIST's naming (see load_idx)."""
    folder, name = os.path.split(images)
    if "images" not in name:
        raise ValueError(f"{images}: cannot derive the labels file from a name without 'images'; "
                         "pass labels=PATH")
    base = name.replace("images", "labels").replace("idx3", "idx1")
    stem = base[:-3] if base.endswith(".gz") else base
    tried = [os.path.join(folder, candidate) for candidate in (base, stem, stem + ".gz")]
    for candidate in dict.fromkeys(tried):
        if os.path.isfile(candidate):
            return candidate
    raise ValueError(f"{images}: labels file not found (tried {', '.join(dict.fromkeys(tried))}); "
                     "pass labels=PATH")


def load_idx(path: PathLike, labels: Optional[PathLike] = None, *, split: str = "train") -> Dataset:
    """Images and labels in MNIST's IDX format (plain or gzip-compressed, detected by content).

    ``path`` is the images file (an IDX array of dimension >= 2, for example
    ``train-images-idx3-ubyte.gz``) or a folder holding MNIST's four files (then ``split`` picks
    ``"train"`` or ``"t10k"``). The labels file is ``labels`` when given; otherwise it sits next to
    the images file with ``images`` replaced by ``labels`` and ``idx3`` by ``idx1`` in the name,
    with or without ``.gz`` (``train-images-idx3-ubyte.gz`` -> ``train-labels-idx1-ubyte.gz`` or
    ``train-labels-idx1-ubyte``; ``t10k-images.idx3-ubyte`` -> ``t10k-labels.idx1-ubyte``).

    Returns ``X`` float32 of shape ``(n, d1*d2*...)``: each image flattened row-major, values as in
    the file (0..255 for MNIST), and ``y`` int64 of shape ``(n,)``.

    Raises ValueError naming the file for a wrong magic number, a truncated file, trailing bytes,
    a labels file that is not 1-D, counts that differ between images and labels, or labels that are
    not non-negative integers.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        if split not in ("train", "t10k"):
            raise ValueError(f"split must be 'train' or 't10k', got {split!r}")
        for name in (f"{split}-images-idx3-ubyte", f"{split}-images-idx3-ubyte.gz",
                     f"{split}-images.idx3-ubyte"):
            if os.path.isfile(os.path.join(path, name)):
                path = os.path.join(path, name)
                break
        else:
            raise ValueError(f"{path}: folder has no {split}-images-idx3-ubyte[.gz]; "
                             "pass the images file itself")
    images = _read_idx(path)
    if images.ndim < 2:
        raise ValueError(f"{path}: expected an images file (IDX of >= 2 dimensions), got a 1-D IDX "
                         f"array of {images.shape[0]} values (a labels file?); pass the images file")
    labels_path = os.fspath(labels) if labels is not None else _idx_labels_path(path)
    label_values = _read_idx(labels_path)
    if label_values.ndim != 1:
        raise ValueError(f"{labels_path}: expected a 1-D IDX labels file, got dimensions "
                         f"{label_values.shape}")
    if label_values.shape[0] != images.shape[0]:
        raise ValueError(f"{labels_path}: {label_values.shape[0]} labels for {images.shape[0]} images in {path}")
    X = _features_to_float32(path, images.reshape(images.shape[0], -1))
    y = _labels_to_int64(labels_path, label_values)
    return X, y


# What numpy and zipfile raise for a corrupt, truncated or foreign archive: zipfile adds BadZipFile,
# NotImplementedError (an unknown compression method or flag) and RuntimeError (encrypted members).
_ARCHIVE_ERRORS = (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile, NotImplementedError,
                   RuntimeError)


def load_npz(path: PathLike) -> Dataset:
    """``X`` and ``y`` from a NumPy ``.npz`` archive (read with ``allow_pickle=False``).

    ``X``: numeric, shape ``(n, features)`` (arrays of more dimensions are flattened per sample);
    ``y``: shape ``(n,)`` of non-negative integer labels (integer-valued floats accepted) or one-hot
    ``(n, k)``. Other keys are ignored. Returns ``X`` float32 and ``y`` int64.

    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "d.npz")
    >>> np.savez(f, X=np.eye(3), y=[0, 1, 2])
    >>> [a.dtype.name for a in load_npz(f)]
    ['float32', 'int64']
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    try:
        archive = np.load(path, allow_pickle=False)
    except _ARCHIVE_ERRORS as exc:
        raise ValueError(f"{path}: not a readable .npz archive ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected a .npz archive with keys X and y, got a single .npy array")
    with archive:
        missing = [key for key in ("X", "y") if key not in archive.files]
        if missing:
            raise ValueError(f"{path}: missing key(s) {', '.join(missing)}; the archive has "
                             f"{', '.join(archive.files) or 'no arrays'} (expected X and y)")
        try:
            X = archive["X"]
            y = archive["y"]
        except _ARCHIVE_ERRORS as exc:
            raise ValueError(f"{path}: corrupt array data ({exc})") from None
    if X.ndim < 2 or X.shape[0] < 1:
        raise ValueError(f"{path}: X must have shape (n, features) with n >= 1, got {X.shape}")
    if y.ndim == 2 and y.shape[0] == X.shape[0]:
        # One-hot targets: exactly one 1 per row, zeros elsewhere.
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise ValueError(f"{path}: a 2-D y must be one-hot (one 1 per row), got other values")
        y = np.argmax(y, axis=1)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"{path}: y must have shape ({X.shape[0]},) to match X {X.shape}, got {y.shape}")
    return _features_to_float32(path, X.reshape(X.shape[0], -1)), _labels_to_int64(path, y)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_csv(path: PathLike, label_column: Union[int, str] = -1, *, delimiter: str = ",",
             header: Optional[bool] = None) -> Dataset:
    """Features and labels from a delimited text file (gzip-compressed accepted).

    One sample per row; ``label_column`` (an index, negative counts from the end, or a header name)
    holds the class label, every other column a numeric feature. Labels that are all numbers must be
    non-negative integers and come back as int64; otherwise every label is kept as a string
    (surrounding spaces removed), so ``fit`` gets scikit-learn style string classes. ``header=None``
    detects a header row: the first row is a header when one of its feature cells is not a number,
    or when only its label cell is not a number while every other row's label is a number. Blank
    lines are skipped. Returns ``X`` float32 ``(n, columns - 1)`` and ``y`` ``(n,)``, int64 or str.

    Raises ValueError naming the file, line and column for a non-numeric feature cell, an empty label,
    rows of different lengths, non-integer or negative numeric labels, or a file without data rows.
    """
    path = os.fspath(path)
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows = []
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                rows.append((reader.line_num, row))
    except csv.Error as exc:  # e.g. a carriage return inside an unquoted field
        raise ValueError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from None
    if not rows:
        raise ValueError(f"{path}: no data rows")
    if not (isinstance(label_column, str) or
            (isinstance(label_column, (int, np.integer)) and not isinstance(label_column, bool))):
        raise TypeError(f"label_column must be an int or a header name, got {type(label_column).__name__}")
    first_line, first = rows[0]
    if header is None:
        header = _has_header(rows, label_column)
    names: Optional[list] = None
    if header:
        names = [cell.strip() for cell in first]
        rows = rows[1:]
        if not rows:
            raise ValueError(f"{path}: a header row but no data rows")
    width = len(names) if names is not None else len(rows[0][1])
    if width < 2:
        raise ValueError(f"{path}: need at least 2 columns (features and a label), got {width}")
    if isinstance(label_column, str):
        if names is None or label_column not in names:
            raise ValueError(f"{path}: label_column {label_column!r} is not a header name; "
                             f"header: {names if names is not None else 'none (pass an index)'}")
        label_index = names.index(label_column)
    else:
        if not -width <= label_column < width:
            raise ValueError(f"{path}: label_column {label_column} out of range for {width} columns")
        label_index = int(label_column) % width
    features = np.empty((len(rows), width - 1), dtype=np.float64)
    labels = []
    for i, (line, row) in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{path}: line {line} has {len(row)} columns, expected {width}")
        for j, cell in enumerate(row):
            if j == label_index:
                labels.append(cell.strip())
                if not labels[-1]:
                    raise ValueError(f"{path}: line {line}: the label (column {_column_name(names, j)}) is empty")
                continue
            try:
                features[i, j - (j > label_index)] = float(cell)
            except ValueError:
                raise ValueError(f"{path}: line {line}, column {_column_name(names, j)}: {cell.strip()!r} "
                                 f"is not a number") from None
    if all(_is_number(label) for label in labels):
        y = _labels_to_int64(path, np.array([float(label) for label in labels]))
    else:  # class names: kept as they are written
        y = np.array(labels, dtype=str)
    return _features_to_float32(path, features), y


def _column_name(names: Optional[list], j: int) -> str:
    return f"'{names[j]}'" if names is not None else str(j)


def _has_header(rows: list, label_column: Union[int, str]) -> bool:
    """Whether the first row names the columns (see load_csv)."""
    first = rows[0][1]
    if isinstance(label_column, str) or not -len(first) <= label_column < len(first):
        return not all(_is_number(cell) for cell in first)  # a row of names (load_csv reports the rest)
    label_index = int(label_column) % len(first)
    if not all(_is_number(cell) for j, cell in enumerate(first) if j != label_index):
        return True
    if _is_number(first[label_index]):
        return False
    return all(len(row) > label_index and _is_number(row[label_index]) for _, row in rows[1:])


# ----------------------------------------------------------------------------------------------
# by name or path (the command line's --data)
# ----------------------------------------------------------------------------------------------

def load(spec: str, *, seed: int = 0) -> Dataset:
    """A data set from a built-in name or a file path, as ``initlab --data`` takes it.

    Names: ``digits`` (the shipped UCI set), ``digits-images`` (the same as 8x8x1 images), ``spirals`` (3 classes, 900 points), ``moons``
    (600 points, noise 0.2), ``blobs`` (600 points, 4 centres in 8 dimensions, std 2.5): the
    generators draw with ``seed``. Paths: ``.npz`` -> load_npz, ``.csv``/``.txt``/``.tsv`` (optionally ``.gz``)
    -> load_csv (a tab delimiter for .tsv), anything else or a folder -> load_idx.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"data must be a built-in name or a path, got {type(spec).__name__}")
    spec = os.fspath(spec)
    if spec == "digits":
        return load_digits()
    if spec == "digits-images":
        return load_digits(images=True)
    if spec == "spirals":
        return make_spirals(900, 3, seed)
    if spec == "moons":
        return make_moons(600, 0.2, seed)
    if spec == "blobs":
        return make_blobs(600, 4, seed, features=8, std=2.5)
    if not os.path.exists(spec):
        raise ValueError(f"data {spec!r} is neither a built-in data set ({', '.join(BUILTIN)}) "
                         "nor an existing file")
    lower = spec.lower()
    stem = lower[:-3] if lower.endswith(".gz") else lower
    if stem.endswith(".npz"):
        return load_npz(spec)
    if stem.endswith((".csv", ".txt")):
        return load_csv(spec)
    if stem.endswith(".tsv"):
        return load_csv(spec, delimiter="\t")
    return load_idx(spec)


__all__ = ["load_digits", "make_spirals", "make_moons", "make_blobs", "load_idx", "load_npz",
           "load_csv", "load", "BUILTIN"]
