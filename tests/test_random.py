"""The RNG in three layers, each against the one below: Philox words (Random123's known answers and
a numpy Philox), then uniforms / normals / truncated normals (a plain-numpy re-derivation that must
match bit for bit, plus distribution tests), then determinism across threads and runs."""
import numpy as np
import pytest

import initlab as il
from initlab import _core

import reference as R

# Random123's kat_vectors: (rounds, counter, key, expected output), words in hex.
KAT = [
    (7, "00000000 00000000 00000000 00000000", "00000000 00000000", "5f6fb709 0d893f64 4f121f81 4f730a48"),
    (7, "ffffffff ffffffff ffffffff ffffffff", "ffffffff ffffffff", "5207ddc2 45165e59 4d8ee751 8c52f662"),
    (7, "243f6a88 85a308d3 13198a2e 03707344", "a4093822 299f31d0", "4dfccaba 190a87f0 c47362ba b6b5242a"),
    (10, "00000000 00000000 00000000 00000000", "00000000 00000000", "6627e8d5 e169c58d bc57ac4c 9b00dbd8"),
    (10, "ffffffff ffffffff ffffffff ffffffff", "ffffffff ffffffff", "408f276d 41c83b0e a20bc7c6 6d5451fd"),
    (10, "243f6a88 85a308d3 13198a2e 03707344", "a4093822 299f31d0", "d16cfe09 94fdcceb 5001e420 24126ea1"),
]


def _hex_words(text):
    return tuple(int(w, 16) for w in text.split())


@pytest.mark.parametrize("rounds,counter,key,expected", KAT)
def test_philox_known_answers(rounds, counter, key, expected):
    assert il.random.philox4x32(_hex_words(counter), _hex_words(key), rounds=rounds) == _hex_words(expected)


@pytest.mark.parametrize("rounds,counter,key,expected", KAT)
def test_numpy_philox_known_answers(rounds, counter, key, expected):
    lanes = R.philox4x32_numpy([[w] for w in _hex_words(counter)], _hex_words(key), rounds)
    assert tuple(int(lane[0]) for lane in lanes) == _hex_words(expected)


def test_words_follow_the_documented_counter_and_key():
    seed, stream = 0x0123456789ABCDEF, 0xFEDCBA9876543210
    words = il.random.words(4 * 3, seed=seed, stream=stream)
    key = (seed & 0xFFFFFFFF, seed >> 32)
    for block in range(3):
        counter = (block, 0, stream & 0xFFFFFFFF, stream >> 32)
        assert tuple(int(w) for w in words[4 * block:4 * block + 4]) == il.random.philox4x32(counter, key)
    np.testing.assert_array_equal(words, R.philox_words(seed, stream, 12))
    # The block index's high word is the counter's second word.
    far = il.random.words(4, seed=seed, stream=stream, start=4 * (2**32 + 5))
    assert tuple(int(w) for w in far) == il.random.philox4x32((5, 1, stream & 0xFFFFFFFF, stream >> 32), key)


# ---- bit-exact re-derivation --------------------------------------------------------------------
SIZES = [1, 2, 7, 255, 256, 257, 16384 * 2 + 3]


def _core_fill(kind, n, dtype, seed, stream, params, naive=False):
    out = np.empty(n, dtype=dtype)
    _core.random_fill(out, kind, seed, stream, list(params), naive)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_uniform_matches_numpy_bit_for_bit(dtype, n):
    got = _core_fill("uniform", n, dtype, 2024, 5, (-0.3, 0.7))
    want = R.uniform_values(n, 2024, 5, -0.3, 0.7, dtype)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_normal_matches_numpy_bit_for_bit(dtype, n):
    got = _core_fill("normal", n, dtype, 2024, 5, (0.25, 1.5))
    want = R.normal_values(n, 2024, 5, 0.25, 1.5, dtype)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bounds", [(-2.0, 2.0), (-4.5, 1.0), (0.5, 6.0), (-1e-3, 1e-3)])
def test_truncated_normal_matches_numpy_bit_for_bit(dtype, bounds):
    n = 16384 + 17
    got = _core_fill("truncated_normal", n, dtype, 77, 1, (0.1, 0.3) + bounds)
    want = R.truncated_normal_values(n, 77, 1, 0.1, 0.3, *bounds, dtype, il.random.normal_cdf)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("kind,params", [("uniform", (-1.0, 2.0)), ("normal", (0.0, 1.0)),
                                         ("truncated_normal", (0.0, 1.0, -3.2, 3.2))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_fill_equals_naive_twin(kind, params, dtype):
    n = 3 * 16384 + 101
    fast = _core_fill(kind, n, dtype, 31337, 9, params)
    naive = _core_fill(kind, n, dtype, 31337, 9, params, naive=True)
    np.testing.assert_array_equal(fast.view(np.uint8), naive.view(np.uint8))


def test_uniform_interval_is_open_and_exact():
    # The extreme words map to the documented extremes: (2k+1) 2^-24 with k = 0 and 2^23 - 1.
    k = np.array([0, 2**23 - 1], dtype=np.uint64)
    u = R.uniform_from_k(k, 23, np.float32)
    assert u[0] == np.float32(2.0**-24) and u[1] == np.float32(1 - 2.0**-24)
    x = _core_fill("uniform", 200_000, np.float32, 1, 0, (0.0, 1.0))
    assert x.min() > 0 and x.max() < 1
    # every value is on the grid (2k+1) 2^-24
    k_back = (x.astype(np.float64) * 2**24 - 1) / 2
    np.testing.assert_array_equal(k_back, np.round(k_back))


def test_approximations_are_accurate():
    # The exact arithmetic is pinned by the bit-exact tests; this pins its accuracy (ulps).
    x32 = np.linspace(2.0**-24, 1.0, 100_001, dtype=np.float32)
    np.testing.assert_allclose(R.log_approx_numpy(x32), np.log(x32.astype(np.float64)), rtol=4e-7, atol=1e-7)
    x64 = np.linspace(2.0**-53, 1.0, 100_001)
    np.testing.assert_allclose(R.log_approx_numpy(x64), np.log(x64), rtol=3e-16, atol=3e-16)
    for dtype, tol in ((np.float32, 2e-7), (np.float64, 3e-16)):
        phi = np.linspace(-np.pi / 4, np.pi / 4, 10_001).astype(dtype)
        s, c = R.sin_cos_approx_numpy(phi)
        np.testing.assert_allclose(s, np.sin(phi.astype(np.float64)), atol=tol)
        np.testing.assert_allclose(c, np.cos(phi.astype(np.float64)), atol=tol)


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-6), (np.float64, 1e-13)])
def test_truncated_normal_quantiles_are_accurate(dtype, rtol):
    from scipy.special import ndtri, ndtr

    x = _core_fill("truncated_normal", 50_000, dtype, 3, 3, (0.0, 1.0, -6.0, 6.0))
    # map back through Phi: the values must be the normal quantiles of their (exact) uniforms
    k, bits = R.element_k(R.philox_words(3, 3, 50_000 * (np.dtype(dtype).itemsize // 4)), dtype)
    u = R.uniform_from_k(k, bits, dtype).astype(np.float64)
    pa, pb = ndtr(-6.0), ndtr(6.0)
    want = ndtri(pa + u * (pb - pa))
    np.testing.assert_allclose(x.astype(np.float64), want, rtol=rtol, atol=rtol)


# ---- distributions -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_raw_distributions_ks(dtype):
    stats = pytest.importorskip("scipy.stats")
    n = 200_000
    u = _core_fill("uniform", n, dtype, 11, 0, (-1.0, 3.0))
    assert stats.kstest(u, stats.uniform(-1.0, 4.0).cdf).pvalue > 1e-4
    z = _core_fill("normal", n, dtype, 11, 1, (0.0, 1.0))
    assert stats.kstest(z, "norm").pvalue > 1e-4
    # pairs are independent: the even and odd halves of Box-Muller are uncorrelated
    assert abs(np.corrcoef(z[0::2], z[1::2])[0, 1]) < 5 / np.sqrt(n / 2)
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / np.sqrt(n)
    t = _core_fill("truncated_normal", n, dtype, 11, 2, (0.0, 1.0, -1.0, 2.5))
    assert stats.kstest(t, stats.truncnorm(-1.0, 2.5).cdf).pvalue > 1e-4
    assert t.min() >= -1.0 and t.max() <= 2.5


def test_streams_and_seeds_are_independent():
    a = _core_fill("normal", 100_000, np.float32, 5, 0, (0.0, 1.0))
    b = _core_fill("normal", 100_000, np.float32, 5, 1, (0.0, 1.0))
    c = _core_fill("normal", 100_000, np.float32, 6, 0, (0.0, 1.0))
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.02 and abs(np.corrcoef(a, c)[0, 1]) < 0.02
    assert not np.array_equal(a, b) and not np.array_equal(a, c)


# ---- determinism -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,params", [("uniform", (-1.0, 2.0)), ("normal", (0.0, 1.0)),
                                         ("truncated_normal", (0.0, 1.0, -2.0, 2.0))])
def test_bitwise_identical_across_thread_counts(kind, params):
    n = 5 * 16384 + 77
    old = il.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3, 4, 7):
            il.set_num_threads(threads)
            for dtype in (np.float32, np.float64):
                results.append((threads, dtype, _core_fill(kind, n, dtype, 42, 3, params)))
    finally:
        il.set_num_threads(old)
    for threads, dtype, values in results:
        reference = next(v for t, d, v in results if t == 1 and d == dtype)
        np.testing.assert_array_equal(values.view(np.uint8), reference.view(np.uint8),
                                      err_msg=f"{threads} threads, {dtype.__name__}")


def test_prefix_property():
    # element i depends only on (seed, stream, i): a shorter fill is a prefix of a longer one
    long = _core_fill("normal", 40_000, np.float32, 8, 8, (0.0, 1.0))
    for n in (1, 3, 16385, 39_999):
        # an odd count ends with the cosine half of its pair: still long[n - 1]
        short = _core_fill("normal", n, np.float32, 8, 8, (0.0, 1.0))
        np.testing.assert_array_equal(short, long[:n])


# ---- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("counter,key,rounds,error", [
    ((0, 0, 0), (0, 0), 10, ValueError),
    ((0, 0, 0, 0), (0,), 10, ValueError),
    ((0, 0, 0, 2**32), (0, 0), 10, ValueError),
    ((0, 0, 0, -1), (0, 0), 10, ValueError),
    ((0, 0, 0, 0.5), (0, 0), 10, TypeError),
    ((0, 0, 0, 0), (0, 0), 0, ValueError),
    ((0, 0, 0, 0), (0, 0), 17, ValueError),
    ((0, 0, 0, 0), (0, 0), 7.0, TypeError),
])
def test_philox_rejects_bad_input(counter, key, rounds, error):
    with pytest.raises(error):
        il.random.philox4x32(counter, key, rounds=rounds)


@pytest.mark.parametrize("seed,error", [(-1, ValueError), (2**64, ValueError), (1.0, TypeError),
                                        (True, TypeError), ("1", TypeError)])
def test_words_reject_bad_seeds(seed, error):
    with pytest.raises(error, match="seed"):
        il.random.words(4, seed=seed)


def test_seed_none_draws_fresh_seeds():
    a = il.random.words(8, seed=None)
    b = il.random.words(8, seed=None)
    assert not np.array_equal(a, b)
