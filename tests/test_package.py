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


def test_core_stub_names_every_member_and_the_package_is_typed():
    import ast
    import pathlib
    from initlab import _core
    folder = pathlib.Path(il.__file__).parent
    assert (folder / "py.typed").exists()
    tree = ast.parse((folder / "_core.pyi").read_text())
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    names |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}
    public = {n for n in dir(_core) if not n.startswith("_")} | {"__version__"}
    assert names == public, ("regenerate the stub: PYTHONPATH=python python tools/make_core_stub.py; "
                             f"missing {sorted(public - names)}, stale {sorted(names - public)}")
