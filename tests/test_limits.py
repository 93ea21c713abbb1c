"""Limits: sizes that overflow 64-bit arithmetic or exceed memory fail cleanly, before anything is
allocated or drawn (a half-built network, or gigabytes filled before the OOM killer strikes, are the
failures these tests would catch)."""
from __future__ import annotations

import math
import time
import tracemalloc

import numpy as np
import pytest

import initlab as il
from initlab import _core

PHYSICAL = il.init.physical_memory()
PARAMS = {"constant": {"value": 1.0}, "sparse": {"sparsity": 0.5}}
# Shapes that do not fit: element counts past 2**64 (overflow int64 products), past 2**63, or just
# past this machine's memory; each raises MemoryError (or ValueError: an entry numpy cannot hold).
HUGE_SHAPES = [(2**32, 2**32, 2**32), (2**62, 2**62), (2**63 - 1, 2), (2**40, 2**40),
               (PHYSICAL // 4 + 1,), (3, 3, 2**61, 4), (2**63,)]


@pytest.mark.parametrize("name", il.init.names())
@pytest.mark.parametrize("shape", HUGE_SHAPES, ids=str)
def test_init_huge_shapes_raise_before_allocating(name, shape):
    tracemalloc.start()
    try:
        with pytest.raises((MemoryError, ValueError)) as info:
            getattr(il.init, name)(shape, seed=0, **PARAMS.get(name, {}))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value)
    assert peak < 1 << 20, f"{peak} bytes allocated before the error"


def test_shape_entries_past_int64_are_value_errors():
    with pytest.raises(ValueError, match="2\\*\\*63"):
        il.init.zeros((2**64, 1))
    with pytest.raises(ValueError, match="2\\*\\*63"):
        il.init.fans((2**64, 3))


def test_fans_of_huge_shapes_are_exact_or_rounded_not_wrapped():
    fan_in, fan_out = il.init.fans((2**40, 2**40, 2**30, 3))
    assert fan_in == pytest.approx(2.0**110) and fan_out == pytest.approx(3 * 2.0**80)  # no wrap-around


def _layers_past_memory():
    """Widths whose layers each fit in memory, but whose weights and gradients together do not."""
    width = math.isqrt(PHYSICAL // 16)  # W: 1/4 of memory in float32, with dW 1/2
    return [width] * 5


@pytest.mark.parametrize("widths", [[2**62, 2**62, 2], [2**32, 2**32, 2], [2, 2**40, 2],
                                    _layers_past_memory()], ids=["overflow", "2^64", "wide", "deep"])
def test_network_too_large_fails_before_building(widths):
    calls = []

    def init(shape, seed, stream):
        calls.append(shape)
        return np.zeros(shape, np.float32)

    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        for spec in ("he_normal", init):
            with pytest.raises(MemoryError, match="Network: widths"):
                il.Network(widths, init=spec, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert calls == [], "the initializer was called for a network that cannot fit"
    assert peak < 1 << 20 and time.perf_counter() - t0 < 10


def test_raw_words_past_memory():
    with pytest.raises((MemoryError, ValueError)):
        il.random.words(2**62, seed=0)
    with pytest.raises((MemoryError, ValueError)):
        _core.random_words(0, 0, 0, 2**62)
    with pytest.raises(ValueError):
        _core.random_words(0, 0, 0, -1)


def _os_refuses_huge_allocations() -> bool:
    """Linux's default overcommit heuristic (mode 0) and mode 2 refuse one allocation larger than
    memory + swap, which numpy reports as MemoryError; mode 1 grants it and the process would be
    killed when it fills the pages. numpy's own size checks do not depend on it."""
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            return f.read().strip() != "1"
    except OSError:
        return True


needs_refusal = pytest.mark.skipif(not _os_refuses_huge_allocations(),
                                   reason="vm.overcommit_memory=1 grants a 16 TB allocation")


@pytest.mark.parametrize("call", [
    lambda: il.datasets.make_moons(2**62),
    lambda: il.datasets.make_moons(2**64),
    pytest.param(lambda: il.datasets.make_spirals(2**40), marks=needs_refusal),
    lambda: il.datasets.make_spirals(10, 2**40),
    lambda: il.datasets.make_blobs(10, 2**40),
    lambda: il.datasets.make_blobs(10, 2, features=2**62),
], ids=["moons-2^62", "moons-2^64", "spirals-2^40", "spirals-classes", "blobs-centers", "blobs-features"])
def test_dataset_generators_past_memory(call):
    t0 = time.perf_counter()
    with pytest.raises((MemoryError, ValueError)) as info:
        call()
    assert str(info.value) and time.perf_counter() - t0 < 10


def test_batch_size_larger_than_data_is_fine():
    X = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    y = np.arange(10) % 2
    net = il.Network([3, 4, 2], seed=0)
    report = net.fit(X, y, epochs=1, batch_size=2**62, progress=False)
    assert len(report.history) == 1 and np.isfinite(report.history[0]["loss"])
