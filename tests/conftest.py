"""Test-suite wide settings.

INITLAB_TEST_NO_TORCH=1 hides PyTorch, so `pytest.importorskip("torch")` skips: the sanitizer run
(.ci/sanitize) sets it because torch is not built to run under an ASan-preloaded interpreter.
The import itself is refused (an ImportError from a meta-path finder), rather than a None entry in
sys.modules: scipy and scikit-learn look torch up in sys.modules and would trip over a None there.
"""
import importlib.abc
import os
import sys


class _HideTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname == "torch" or fullname.startswith("torch."):
            # ModuleNotFoundError: importorskip then skips as for a missing module, no warning.
            raise ModuleNotFoundError(f"{fullname} is hidden by INITLAB_TEST_NO_TORCH=1", name=fullname)
        return None


if os.environ.get("INITLAB_TEST_NO_TORCH") == "1":
    sys.modules.pop("torch", None)
    sys.meta_path.insert(0, _HideTorch())
