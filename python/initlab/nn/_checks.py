"""Argument validators shared by the layers, the network and the training loop.

Each names the argument, what was given and what is allowed: TypeError for a wrong kind,
ValueError for a wrong value.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np


def check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def check_float(name: str, value: Any, *, minimum: float = 0.0, strict: bool = False,
                maximum: Optional[float] = None, max_strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    lo_ok = v > minimum if strict else v >= minimum
    hi_ok = True if maximum is None else (v < maximum if max_strict else v <= maximum)
    if not math.isfinite(v) or not lo_ok or not hi_ok:
        allowed = f"{'>' if strict else '>='} {minimum}"
        if maximum is not None:
            allowed += f" and {'<' if max_strict else '<='} {maximum}"
        raise ValueError(f"{name} must be a finite number {allowed}, got {value!r}")
    return v


def check_name(name: str, value: Any, valid: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"{name}={value!r} is not valid; valid: {', '.join(valid)}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def kernel_input(arr: np.ndarray, dtype: Any) -> np.ndarray:
    """`arr` as the kernels read it: C-contiguous, aligned, of `dtype` (copied only when needed).
    Aligned matters: arrays that Dask or pickle protocol 5 rebuild from network frames can start
    at an odd byte offset, which the bindings refuse (reading them through T* is undefined)."""
    return np.require(arr, dtype=dtype, requirements=["C", "A"])
