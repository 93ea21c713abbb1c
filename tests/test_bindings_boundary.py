"""The binding layer's dtype and alignment rules, as arrays that crossed a process boundary
(pickle, Dask, shared memory) present them."""
import pickle

import numpy as np
import pytest

import initlab as il
from initlab import _core


def unaligned(shape, dtype):
    """A C-contiguous view of `dtype` that starts one byte into a buffer: not aligned."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.zeros(n * dtype.itemsize + 1, np.uint8)
    view = raw[1:].view(dtype).reshape(shape)
    assert not view.flags.aligned and view.flags.c_contiguous
    return view


def test_unpickled_arrays_are_accepted_by_dtype_equivalence():
    X = pickle.loads(pickle.dumps(np.ones((4, 3), np.float32), protocol=5))
    W = pickle.loads(pickle.dumps(np.ones((3, 2), np.float32), protocol=5))
    C = np.empty((4, 2), np.float32)
    _core.gemm(X, W, C)
    np.testing.assert_array_equal(C, np.full((4, 2), 3.0, np.float32))
    y = pickle.loads(pickle.dumps(np.array([0, 1, 1, 0], np.int64)))
    P = np.empty((4, 2), np.float32)
    loss = _core.softmax_cross_entropy(C, y, P)
    assert loss == pytest.approx(np.log(2.0))


def test_byte_swapped_arrays_are_rejected():
    A = np.ones((2, 2), dtype=">f4")
    with pytest.raises(TypeError, match="dtype"):
        _core.gemm(A, A, np.empty((2, 2), np.float32))


@pytest.mark.parametrize("which", ["A", "B", "C"])
def test_unaligned_gemm_operands_are_refused(which):
    arrays = {"A": np.ones((5, 3), np.float32), "B": np.ones((3, 4), np.float32),
              "C": np.zeros((5, 4), np.float32)}
    arrays[which] = unaligned(arrays[which].shape, np.float32)
    with pytest.raises(ValueError, match="aligned"):
        _core.gemm(arrays["A"], arrays["B"], arrays["C"])


def test_unaligned_initializer_output_is_refused_and_untouched():
    out = unaligned((8, 8), np.float64)
    with pytest.raises(ValueError, match="aligned"):
        il.init.he_normal_(out, seed=0)
    assert not out.any()


def test_network_accepts_unaligned_inputs_by_copying_them():
    net = il.Network([3, 4, 2], seed=0, dtype="float32")
    X = np.arange(15, dtype=np.float32).reshape(5, 3) / 10
    Xu = unaligned(X.shape, np.float32)
    Xu[...] = X
    np.testing.assert_array_equal(net.forward(Xu), net.forward(X))
