"""Test-suite wide settings.

INITLAB_TEST_NO_TORCH=1 hides PyTorch, so `pytest.importorskip("torch")` skips: the sanitizer run
(.ci/sanitize) sets it because torch is not built to run under an ASan-preloaded interpreter.
"""
import os
import sys

if os.environ.get("INITLAB_TEST_NO_TORCH") == "1":
    sys.modules["torch"] = None  # makes `import torch` raise ImportError
