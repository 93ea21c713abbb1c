"""`import initlab` never imports torch; `il.torch` does, on first use (runs with or without torch)."""
import os
import subprocess
import sys

import pytest

import initlab

# the tree that holds the initlab under test (installed in CI), so the child imports the same package
PACKAGE_ROOT = os.path.dirname(os.path.dirname(initlab.__file__))


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_ROOT, env.get("PYTHONPATH", "")])
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


def test_il_torch_imports_torch_on_first_use():
    pytest.importorskip("torch")
    r = _run("import sys, initlab as il\nassert 'torch' not in sys.modules\nm = il.torch\n"
             "print('torch' in sys.modules, m.__name__, callable(m.init_))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "initlab.torch", "True"]


def test_il_torch_without_torch_names_the_extra():
    # torch hidden in the child (None in sys.modules makes `import torch` an ImportError)
    r = _run("import sys\nsys.modules['torch'] = None\nimport initlab as il\n"
             "try:\n    il.torch\nexcept ImportError as e:\n    print(e)")
    assert r.returncode == 0, r.stderr
    assert "pip install 'initlab[torch]'" in r.stdout


def test_unknown_attribute_is_an_attribute_error():
    import initlab
    with pytest.raises(AttributeError, match="no_such_thing"):
        initlab.no_such_thing  # noqa: B018
