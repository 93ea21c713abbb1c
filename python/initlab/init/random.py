"""Raw randomness: the Philox4x32 block function and the exact mapping from words to values.

Every random initializer in :mod:`initlab.init` is a pure function of ``(seed, stream, i, params)``
for element ``i`` of the (C-order, flattened) output. This docstring is the complete recipe, so that
any value can be re-derived in plain numpy (``tests/reference.py`` does exactly that, bit for bit).

1. Generator (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): Philox4x32-10,
   ``philox4x32(counter, key)`` with 32-bit words, as in Random123.

   - key     = ``(seed & 0xFFFFFFFF, seed >> 32)``
   - counter = ``(block & 0xFFFFFFFF, block >> 32, stream & 0xFFFFFFFF, stream >> 32)``
   - word ``j`` of ``(seed, stream)`` = ``philox4x32(counter(block=j // 4), key)[j % 4]``
     (:func:`words` returns them).

2. Words of element ``i``: float32 uses word ``i``; float64 uses the 64-bit integer
   ``W = word[2i] | word[2i+1] << 32``.

3. Uniform on the open interval, exact (every step is exact in the output dtype):

   - float32: ``k = word >> 9`` (23 bits), ``u = (2k + 1) * 2**-24``, so u in [2**-24, 1 - 2**-24]
   - float64: ``k = W >> 12`` (52 bits), ``u = (2k + 1) * 2**-53``, so u in [2**-53, 1 - 2**-53]

   u is never 0 or 1, and the grid is symmetric about 1/2. ``U(low, high)``:
   ``x = min(T(low) + T(high - low) * u, T(high))`` in the output dtype T (``high - low`` is
   taken in float64 and rounded once); hence x in [low, high].

4. Normal, Box-Muller with a fixed two draws per pair of elements (2m, 2m+1), all in dtype T:

   - ``r = sqrt(-2 * log_approx(u[2m]))``
   - from the k bits of element 2m+1 (23 or 52 of them): ``q`` = the top 2 bits, ``rest`` = the
     others, ``y = (2 * rest + 1) * 2**-(bits-1) - 1/2`` (exact, in (-1/2, 1/2)),
     ``phi = y * T(pi/2)``, ``c, s = cos_approx(phi), sin_approx(phi)``, then rotated by q quarter
     turns: ``(cos, sin) = (c, s), (-s, c), (-c, -s), (s, -c)`` for q = 0, 1, 2, 3; this is the angle
     ``2 pi v - pi/4`` with v the uniform of element 2m+1.
   - ``z[2m] = r * cos``, ``z[2m+1] = r * sin``; ``x = T(mean) + T(std) * z``. With an odd count, the
     last element is ``r * cos`` of its pair.

5. Truncated normal on [mean + a std, mean + b std] by the inverse CDF, no rejection: in float64,
   ``pa = normal_cdf(a)``, ``qa = normal_cdf(-a)``, ``d = normal_cdf(b) - pa`` (or
   ``qa - normal_cdf(-b)`` when a >= 0); then in T with ``u`` from step 3:
   ``p = T(pa) + T(d) * u``, ``q = T(qa) - T(d) * u``, ``t = p - q``,
   ``w = -log_approx((4 * p) * q)``, ``z = (erfinv_poly(w) * t) * T(sqrt 2)`` clipped to
   ``[T(a), T(b)]``, and ``x = T(mean) + T(std) * z``. ``erfinv_poly`` is Giles' approximation
   ("Approximating the erfinv function", GPU Computing Gems 2, 2010; 2 branches in float32, 3 in
   float64).

6. ``log_approx``: ``x = m * 2**e`` with m in [sqrt(1/2), sqrt(2)) found on the bits (float32:
   ``off = bits - 0x3F3504F3``, ``e = int32(off) >> 23``, ``m = bits - (off & 0xFF800000)``; float64
   the same on the high word with 0x3FE6A09E, >> 20 and 0xFFF00000), then Cephes' logf polynomial
   (float32) or fdlibm's log (float64) in ``f = m - 1``. ``sin_approx``, ``cos_approx``: Cephes'
   sinf/cosf (float32) and sin/cos (float64) on [-pi/4, pi/4]. All in the exact operation order of
   ``cpp/src/random.cpp`` with no fused multiply-add; ``tests/reference.py`` spells them out in numpy.

Every scheme then fixes the parameters: e.g. ``he_normal`` is step 4 with mean 0 and
``std = gain / sqrt(fan)`` (see :mod:`initlab.init`).

>>> import initlab as il
>>> il.random.philox4x32((0, 0, 0, 0), (0, 0))   # Random123's known answer
(1713891541, 3781805453, 3159862348, 2600524760)
>>> w = il.random.words(8, seed=1, stream=0)
>>> bool(w[4] == il.random.philox4x32((1, 0, 0, 0), (1, 0))[0])
True
"""
from __future__ import annotations

import operator
import secrets
from typing import Optional, Sequence, Tuple

import numpy as np

from .. import _core

__all__ = ["philox4x32", "words", "normal_cdf", "fresh_seed"]

_MAX_U64 = 2**64


def _word(value: object, what: str) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"philox4x32: {what} must hold ints, got {type(value).__name__}") from None
    if isinstance(value, bool) or not 0 <= number < 2**32:
        raise ValueError(f"philox4x32: {what} words must be ints in [0, 2**32), got {value!r}")
    return number


def philox4x32(counter: Sequence[int], key: Sequence[int], rounds: int = 10) -> Tuple[int, int, int, int]:
    """The Philox4x32 block function on a 4-word counter and a 2-word key (32-bit words).

    As Random123 defines it (Salmon et al. 2011); ``rounds=10`` is the standard Philox4x32-10 that
    initlab uses, ``rounds=7`` the short variant of the known-answer tests (any of 1..16 works).

    >>> philox4x32((0, 0, 0, 0), (0, 0), rounds=10)
    (1713891541, 3781805453, 3159862348, 2600524760)
    """
    try:
        counter = tuple(counter)
        key = tuple(key)
    except TypeError:
        raise TypeError(f"philox4x32: counter must be 4 ints and key 2 ints in [0, 2**32), got "
                        f"counter={counter!r}, key={key!r}") from None
    if len(counter) != 4:
        raise ValueError(f"philox4x32: counter must have 4 words, got {len(counter)}")
    if len(key) != 2:
        raise ValueError(f"philox4x32: key must have 2 words, got {len(key)}")
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)):
        raise TypeError(f"philox4x32: rounds must be an int, got {type(rounds).__name__}")
    if not 1 <= rounds <= 16:
        raise ValueError(f"philox4x32: rounds must be in [1, 16], got {rounds}")
    c = [_word(x, "counter") for x in counter]
    k = [_word(x, "key") for x in key]
    return tuple(_core.philox4x32(c, k, int(rounds)))


def check_seed(value: object, name: str = "seed") -> int:
    """``value`` as an int in [0, 2**64) or a clear TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int in [0, 2**64), got {type(value).__name__} {value!r}")
    value = int(value)
    if not 0 <= value < _MAX_U64:
        raise ValueError(f"{name} must be an int in [0, 2**64), got {value}")
    return value


def fresh_seed() -> int:
    """A new 64-bit seed from the operating system's entropy (what ``seed=None`` uses)."""
    return secrets.randbits(64)


def words(n: int, *, seed: Optional[int], stream: int = 0, start: int = 0) -> np.ndarray:
    """Words ``start .. start + n - 1`` of ``(seed, stream)`` as a uint32 array (step 1 above)."""
    seed = fresh_seed() if seed is None else check_seed(seed)
    stream = check_seed(stream, "stream")
    start = check_seed(start, "start")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"words: n must be an int >= 0, got {n!r}")
    return _core.random_words(seed, stream, start, int(n))


def normal_cdf(x: float) -> float:
    """Phi(x), the standard normal CDF in float64, exactly as the truncated-normal fill uses it."""
    return _core.normal_cdf(float(x))
