"""`import initlab` never imports torch; `il.torch` does, on first use (runs with or without torch)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "python"), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)


def test_import_initlab_leaves_torch_out():
    code = ("import sys, initlab, initlab.nn, initlab.inspect, initlab.init, initlab.datasets, "
            "initlab.experiments, initlab.cli\n"
            "net = initlab.Network([4, 3, 2], seed=0)\n"
            "print('torch' in sys.modules)")
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_il_torch_is_lazy_and_names_the_extra():
    try:
        import torch  # noqa: F401
        have_torch = os.environ.get("INITLAB_TEST_NO_TORCH") != "1"
    except ImportError:
        have_torch = False
    if have_torch:
        r = _run("import sys, initlab as il\nm = il.torch\nprint('torch' in sys.modules, m.__name__)")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["True", "initlab.torch"]
    else:
        r = _run("import initlab as il\ntry:\n    il.torch\nexcept ImportError as e:\n    print(e)")
        assert "initlab[torch]" in r.stdout


def test_unknown_attribute_is_an_attribute_error():
    import initlab
    with pytest.raises(AttributeError, match="no_such_thing"):
        initlab.no_such_thing  # noqa: B018
