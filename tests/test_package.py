import pytest

import initlab as il


def test_version_and_info():
    info = il.info()
    assert info["version"] == il.__version__
    for key in ("compiler", "simd", "openmp", "threads"):
        assert key in info
    assert info["threads"] == il.get_num_threads()


def test_set_num_threads_roundtrip():
    old = il.get_num_threads()
    try:
        il.set_num_threads(3)
        assert il.get_num_threads() == 3
    finally:
        il.set_num_threads(old)


@pytest.mark.parametrize("bad", [0, -1])
def test_set_num_threads_rejects_nonpositive(bad):
    with pytest.raises(ValueError, match="n must be >= 1"):
        il.set_num_threads(bad)


@pytest.mark.parametrize("bad", [1.5, "2", None, True])
def test_set_num_threads_rejects_non_int(bad):
    with pytest.raises(TypeError, match="n must be an int"):
        il.set_num_threads(bad)
