"""What every preset shares: the `Preset` record and small helpers over a grid's runs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple


from ..compare import Claim, Comparison
from ..runs import Data, RunSpec, prepare_data

# ================================================================================================
# presets: the papers' experiments
# ================================================================================================

@dataclass
class Preset:
    """A published experiment: its grid, the claims it checks and the figures it draws."""

    name: str
    title: str
    description: str
    grid: Callable[[bool], Tuple[Data, List[RunSpec], Dict[str, Any]]]
    check: Callable[[List[Dict[str, Any]], Dict[str, Any]], List[Claim]]
    figures: Callable[[Comparison, str], List[str]]


def _digits(reduced: bool = False, max_samples: Optional[int] = None) -> Data:
    return prepare_data("digits", seed=0, max_samples=max_samples if reduced else None, name="digits")


def _runs(runs: List[Dict[str, Any]], **match) -> List[Dict[str, Any]]:
    return [r for r in runs if all(r[k] == v for k, v in match.items())]


def _one(runs: List[Dict[str, Any]], **match) -> Dict[str, Any]:
    found = _runs(runs, **match)
    if not found:
        raise ValueError(f"no run with {match}")
    return found[0]


def _losses(run: Dict[str, Any]) -> List[float]:
    return [h["loss"] for h in run["history"]]


