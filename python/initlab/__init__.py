"""initlab: a laboratory for neural-network weight initialization.

>>> import initlab as il
>>> W = il.init.he_normal((784, 256), seed=0)       # layout "in_out": (fan_in, fan_out)
>>> round(float(W.std() * (784 / 2) ** 0.5), 1)
1.0
"""
from __future__ import annotations

import os as _os
import sys as _sys

from . import _core
from . import init
from .init import random

_sys.modules[__name__ + ".random"] = random  # `import initlab.random` keeps working

__version__: str = _core.__version__


def set_num_threads(n: int) -> None:
    """Set the number of OpenMP threads every initlab kernel uses (process-wide).

    Results do not depend on it: every kernel is bitwise reproducible for any thread count.
    ``n`` is in [1, 1024] (``_core.MAX_THREADS``); an OMP_NUM_THREADS above it is clamped.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int >= 1, got {type(n).__name__}")
    if not 1 <= n <= _core.MAX_THREADS:  # checked here too: ints beyond C int never reach the core
        raise ValueError(f"set_num_threads: n must be >= 1 and <= {_core.MAX_THREADS}, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """The number of OpenMP threads initlab's kernels use."""
    return _core.get_num_threads()


def info() -> dict:
    """Build and runtime facts: version, compiler, SIMD set, the instruction-set path in use, OpenMP,
    threads.

    ``simd_path`` is "native" for a build tuned to the CPU that built it (the default), else the path
    a portable build (``-DINITLAB_NATIVE=OFF``) chose at import: "avx512", "avx2" or "baseline" (the
    best this CPU runs, or the one the environment variable INITLAB_SIMD names); ``simd_paths`` lists
    the paths this build can run on this CPU."""
    build = _core.build_info()
    return {
        "version": __version__,
        "compiler": build["compiler"],
        "simd": build["simd"],
        "simd_path": _core.SIMD_PATH,
        "simd_paths": list(_core.SIMD_PATHS),
        "openmp": build["openmp"],
        "threads": get_num_threads(),
        "hardware_threads": build["hardware_threads"],
        "omp_num_threads_env": _os.environ.get("OMP_NUM_THREADS"),
    }


from .nn import Callback, Dense, DivergenceError, EarlyStopping, LambdaCallback, Network, lsuv  # noqa: E402
from .nn import AvgPool2d, Conv2d, Flatten, GlobalAvgPool2d, MaxPool2d  # noqa: E402
from .inspect import Diagnosis, Report  # noqa: E402
from . import datasets, experiments, theory  # noqa: E402



def __getattr__(name: str):
    """`il.torch`, the optional PyTorch bridge, is imported on first use: `import initlab` never
    imports torch (it is heavy, and optional)."""
    if name == "torch":
        import importlib
        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", "set_num_threads", "get_num_threads", "info", "init", "random", "datasets", "experiments", "theory",
           "Network", "Dense", "Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "Flatten", "Report", "Diagnosis", "DivergenceError", "lsuv",
           "Callback", "EarlyStopping", "LambdaCallback"]
