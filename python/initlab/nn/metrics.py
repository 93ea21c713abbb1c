"""Scores for `Network.score`: accuracy comes from `evaluate`; R^2 for a linear output is here.

>>> r2_score(np.array([3.0, -0.5, 2.0, 7.0]), np.array([2.5, 0.0, 2.0, 8.0]))
0.9486081370449679
"""
from __future__ import annotations

import numpy as np

__all__ = ["r2_score"]


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The coefficient of determination as scikit-learn's ``r2_score`` (multioutput="uniform_average",
    force_finite=True): per output column 1 - SS_res / SS_tot, averaged over columns, in float64; a
    column with constant targets scores 1.0 when predicted exactly, else 0.0."""
    t = np.asarray(y_true, np.float64)
    p = np.asarray(y_pred, np.float64)
    if t.ndim == 1:
        t = t.reshape(-1, 1)
    if p.ndim == 1:
        p = p.reshape(-1, 1)
    ss_res = ((t - p) ** 2).sum(axis=0)
    ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    scores = np.ones(t.shape[1])
    varying = ss_tot != 0
    scores[varying] = 1.0 - ss_res[varying] / ss_tot[varying]
    scores[~varying & (ss_res != 0)] = 0.0
    return float(scores.mean())
