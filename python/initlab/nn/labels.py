"""Labels and per-row weights for ``Network.fit``, with scikit-learn's conventions.

Class labels (softmax outputs). Numbers keep initlab's meaning: integer labels in ``[0, K)`` for K
outputs, ``classes_ = arange(K)`` whether or not every class occurs in y (a fit on numbers sets it
so). Any other labels (strings, or objects that sort) are mapped to output columns in sorted order,
as scikit-learn's ``classes_``: the first fit on them fixes ``classes_`` (it must have exactly K
distinct labels), and later calls (fit, evaluate, score) map their labels through it; a label that
is not in ``classes_`` is a ValueError (numbers included, outside fit).

Weights. ``class_weight`` (softmax only): ``{label: weight}`` (classes not named weigh 1) or
``"balanced"``, ``n / (K * count_c)`` over the rows given; ``sample_weight``: one finite weight >= 0 per
row. Row i weighs ``class_weight[y_i] * sample_weight[i]`` and the loss kernels reduce a batch to
``sum w_i l_i / sum w_i`` (``torch.nn.CrossEntropyLoss(weight=...)``). With one-hot or probability
targets a row's class weight is ``sum_c class_weight[c] * Y_ic``, the same thing for one-hot rows.

>>> classes, codes = encode_fit_labels(np.array(["b", "a", "c", "a"]), 3, default_classes(3))
>>> classes.tolist(), codes.tolist()
(['a', 'b', 'c'], [1, 0, 2, 0])
>>> class_weights("balanced", codes, classes).tolist()  # n / (K * count): 4/(3*2), 4/(3*1), 4/(3*1)
[0.6666666666666666, 1.3333333333333333, 1.3333333333333333]
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Mapping, Optional, Tuple, Union

import numpy as np

__all__ = ["ClassWeight", "as_labels", "class_weights", "classes_for_file", "classes_from_file", "default_classes", "decode_labels", "encode_fit_labels",
           "encode_labels", "is_default_classes", "is_numeric_labels", "row_weights", "check_sample_weight"]

ClassWeight = Union[None, str, Mapping[Any, float]]


def default_classes(k: int) -> np.ndarray:
    """``arange(K)`` (int64): the classes of a softmax output before it has seen other labels."""
    return np.arange(k, dtype=np.int64)


def is_default_classes(classes: np.ndarray) -> bool:
    return classes.dtype == np.int64 and np.array_equal(classes, np.arange(classes.size))


def is_numeric_labels(y: np.ndarray) -> bool:
    """Numbers (integers, bools, floats) keep the index meaning; anything else is a label."""
    return y.dtype.kind in "fiub"


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for messages: 'd', not np.str_('d'))."""
    return value.item() if isinstance(value, np.generic) else value


def _first_unseen(y: np.ndarray, classes: np.ndarray, argname: str) -> np.ndarray:
    """Codes of y in the sorted `classes`; a label outside them is a ValueError."""
    try:
        codes = np.searchsorted(classes, y)
    except TypeError:
        raise TypeError(f"{argname}: labels of type {type(y[0]).__name__} cannot be compared with "
                        f"the classes {classes.tolist()!r}") from None
    codes = np.minimum(codes, classes.size - 1)
    seen = classes[codes] == y
    if not np.all(seen):
        bad = _plain(y[~np.asarray(seen, bool)][0])
        raise ValueError(f"{argname}: label {bad!r} was not seen in fit; known classes_: "
                         f"{classes.tolist()!r}")
    return codes.astype(np.int64)


def _sorted_unique(y: np.ndarray, argname: str) -> np.ndarray:
    try:
        return np.unique(y)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in y.tolist()})
        raise TypeError(f"{argname}: labels must be numbers or values of one sortable type (strings, "
                        f"for example), got a mix of {', '.join(kinds)}") from None


def as_labels(y: Any, argname: str = "y") -> np.ndarray:
    """y as an array; numbers held as objects become numbers; a missing label is a ValueError."""
    arr = np.asarray(y)
    if arr.dtype.kind == "O":
        values = arr.ravel().tolist()
        for v in values:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                raise ValueError(f"{argname} contains a missing label ({v!r})")
        if values and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
            arr = np.asarray(values).reshape(arr.shape)  # numbers held as objects (pandas) are numbers
    return arr


def encode_fit_labels(y: Any, k: int, classes: np.ndarray,
                      argname: str = "y") -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """``(classes, codes)`` for labels given to ``fit`` of a softmax output with K units.

    Numeric or 2-D y is returned as ``(arange(K), None)``: numbers are column indices, as they
    always were (a fit on them after string labels goes back to integer classes), and the caller
    checks them as integer labels or one-hot targets. Non-numeric 1-D labels: with the default
    classes, the sorted distinct labels become ``classes_`` (exactly K of them); after a fit on such
    labels, they map through the given classes (a later fit may see only some of them).
    """
    arr = as_labels(y, argname)
    if arr.ndim != 1 or is_numeric_labels(arr):
        return default_classes(k), None
    if not is_default_classes(classes):
        return classes, encode_labels(arr, classes, argname)
    found = _sorted_unique(arr, argname)
    if found.size != k:
        raise ValueError(f"{argname} has {found.size} distinct labels {found.tolist()[:10]!r} but the "
                         f"softmax output has {k} units; each unit is one class, so they must be equal")
    return found, _first_unseen(arr, found, argname)


def encode_labels(y: Any, classes: np.ndarray, argname: str = "y") -> Optional[np.ndarray]:
    """Codes (int64 (n,)) of 1-D labels through known classes; None for numeric labels with the
    default classes (the caller checks them as indices, as always)."""
    arr = as_labels(y, argname)
    if arr.ndim != 1 or arr.size == 0:  # no label to encode: the caller checks the shape (n rows)
        return None
    if is_default_classes(classes):
        if is_numeric_labels(arr):
            return None
        raise ValueError(f"{argname}: label {_plain(arr[0])!r} was not seen in fit; this network's classes_ "
                         f"are the integers 0..{classes.size - 1} (fit it on these labels first)")
    if is_numeric_labels(arr) and classes.dtype.kind not in "fiub":
        raise ValueError(f"{argname}: label {_plain(arr[0])!r} was not seen in fit; known classes_: "
                         f"{classes.tolist()!r}")
    return _first_unseen(arr, classes, argname)


def decode_labels(codes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The original labels of output columns (argmax indices)."""
    if is_default_classes(classes):
        return codes.astype(np.int64)
    return classes[codes]


# ---- in model files ------------------------------------------------------------------------------
def classes_for_file(classes: np.ndarray) -> np.ndarray:
    """classes_ as a model file stores it (no pickles): int64 0..K-1, or the labels as a str or
    bytes array (other label types cannot be saved: ValueError)."""
    if is_default_classes(classes) or classes.dtype.kind in "US":
        return classes
    values = classes.tolist()
    if all(isinstance(v, str) for v in values):
        return np.array(values, dtype=str)
    raise ValueError(f"classes_ of type {sorted({type(v).__name__ for v in values})} cannot be saved; "
                     f"only string labels (or the integers 0..K-1) are written to model files")


def classes_from_file(stored: np.ndarray, k: int, where: str) -> np.ndarray:
    """classes_ read back from a model file, checked: the integers 0..K-1, or K distinct sorted
    strings (one per output unit)."""
    if stored.ndim == 1 and stored.dtype.kind in "iu" and np.array_equal(stored, np.arange(k)):
        return default_classes(k)
    if stored.dtype.kind not in "US" or stored.shape != (k,):
        raise ValueError(f"{where}: classes_ must be the integers 0..{k - 1} or {k} strings (one per "
                         f"output unit), got dtype {stored.dtype} and shape {stored.shape}")
    if k > 1 and not np.all(stored[1:] > stored[:-1]):
        raise ValueError(f"{where}: classes_ must be distinct and sorted, got {stored.tolist()[:10]!r}")
    return stored


# ---- weights -------------------------------------------------------------------------------------
def _check_weight(value: Any, what: str, argname: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argname}: {what} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{argname}: {what} must be finite and >= 0, got {value!r}")
    return value


def class_weights(class_weight: ClassWeight, y: np.ndarray, classes: np.ndarray,
                  argname: str = "class_weight") -> np.ndarray:
    """One weight per class (float64 (K,)), in the order of `classes`.

    `y`: int64 codes (n,) or targets (n, K) of the rows the weights are for ("balanced" counts them;
    a probability row counts as its probabilities).
    """
    k = classes.size
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"{argname} must be None, 'balanced' or a dict {{label: weight}}, got "
                             f"{class_weight!r}")
        if y.ndim == 1:
            counts = np.bincount(y, minlength=k).astype(np.float64)
        else:
            counts = np.asarray(y, np.float64).sum(axis=0)
        n = float(counts.sum())
        absent = np.flatnonzero(counts == 0)
        if absent.size:
            raise ValueError(f"{argname}='balanced': class {classes[absent[0]].item()!r} does not occur "
                             f"in y, so n / (K * count) is undefined; pass a dict instead")
        return n / (k * counts)
    if not isinstance(class_weight, Mapping):
        raise TypeError(f"{argname} must be None, 'balanced' or a dict {{label: weight}}, got "
                        f"{type(class_weight).__name__} {class_weight!r}")
    weights = np.ones(k)
    for label, value in class_weight.items():
        index = _class_index(label, classes)
        if index is None:
            raise ValueError(f"{argname}: key {label!r} is not a label of this problem; the labels are "
                             f"{classes.tolist()!r}")
        weights[index] = _check_weight(value, f"the weight of class {label!r}", argname)
    return weights


def _class_index(label: Any, classes: np.ndarray) -> Optional[int]:
    """The column of a class_weight key, or None."""
    if isinstance(label, (bool, np.bool_)):
        return None
    if is_default_classes(classes):
        if isinstance(label, numbers.Integral) and 0 <= int(label) < classes.size:
            return int(label)
        return None
    if isinstance(label, numbers.Number) != (classes.dtype.kind in "fiub"):
        return None
    try:
        position = int(np.searchsorted(classes, label))
    except TypeError:
        return None
    if position < classes.size and classes[position] == label:
        return position
    return None


def check_sample_weight(sample_weight: Any, n: int, argname: str = "sample_weight") -> np.ndarray:
    """float64 (n,): finite weights >= 0, one per row of X."""
    arr = np.asarray(sample_weight)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{argname} must hold numbers, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"{argname} must have shape ({n},) (one weight per sample of X), got {arr.shape}")
    arr = arr.astype(np.float64)
    bad = ~(np.isfinite(arr) & (arr >= 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{argname} must be finite and >= 0, got {float(arr[i])!r} at index {i}")
    return arr


def _exactly_rescaled(w: np.ndarray) -> np.ndarray:
    """`w` times a power of two that puts its largest value in [0.5, 1), when that value is beyond
    2**64 or below 2**-64 (else `w` itself). The weighted losses are sums of w*l over sums of w, on
    which a power-of-two factor changes no bit; it keeps huge weights finite in float32 and their
    sums finite in double (1e308 summed to inf: a NaN loss), and keeps 1 / sum(w) finite for tiny
    ones (5e-324 gave an inf row scale)."""
    top = float(w.max(initial=0.0))
    if top == 0.0 or 2.0 ** -64 <= top <= 2.0 ** 64:
        return w
    return np.ldexp(w, -math.frexp(top)[1])


def row_weights(y: np.ndarray, class_weight: Optional[np.ndarray],
                sample_weight: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """float64 (n,): class_weight[y_i] * sample_weight[i]; None when neither is given.

    `y`: int64 codes (n,) or targets (n, K); `class_weight` from class_weights(), `sample_weight` from
    check_sample_weight().
    """
    if class_weight is None and sample_weight is None:
        return None
    # each factor, then the product, rescaled exactly (so 1e200 * 1e200 does not overflow either)
    class_weight = None if class_weight is None else _exactly_rescaled(class_weight)
    sample_weight = None if sample_weight is None else _exactly_rescaled(sample_weight)
    if class_weight is None:
        w, given = sample_weight, "sample_weight"
    else:
        w = class_weight[y] if y.ndim == 1 else np.asarray(y, np.float64) @ class_weight
        w, given = (w, "class_weight") if sample_weight is None else (w * sample_weight,
                                                                      "class_weight * sample_weight")
    w = _exactly_rescaled(w)
    # A weight below the smallest normal double (2**-1022, at most 2**-958 of the largest) counts as 0:
    # a batch of only such rows would have 1 / sum(w) = inf; it makes no step instead.
    w = np.where(w < np.finfo(np.float64).tiny, 0.0, w)
    if not w.sum() > 0:  # nothing would ever be learned; a single batch summing to 0 is skipped instead
        raise ValueError(f"{given}: the weights of all {w.size} rows sum to 0, so no step could change "
                         f"the network; give some rows a weight > 0")
    return w
