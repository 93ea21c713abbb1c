"""Scores for `Network.score`: accuracy and R^2, both as scikit-learn computes them (sample weights too).

>>> r2_score(np.array([3.0, -0.5, 2.0, 7.0]), np.array([2.5, 0.0, 2.0, 8.0]))
0.9486081370449679
"""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["accuracy", "r2_score"]


def accuracy(hits: np.ndarray, sample_weight: Optional[np.ndarray] = None) -> float:
    """The fraction of correct decisions: `hits` (n,) or (n, K) booleans (K decisions per row, as a
    sigmoid output makes); `sample_weight` (n,) weighs rows, as sklearn's accuracy_score."""
    hits = np.asarray(hits, bool).reshape(hits.shape[0], -1)
    per_row = hits.mean(axis=1)
    if sample_weight is None:
        return float(per_row.mean())
    return float((np.asarray(sample_weight, np.float64) * per_row).sum() / np.sum(sample_weight))


def r2_score(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Optional[np.ndarray] = None) -> float:
    """The coefficient of determination as scikit-learn's ``r2_score`` (multioutput="uniform_average",
    force_finite=True): per output column 1 - SS_res / SS_tot, averaged over columns, in float64; a
    column with constant targets scores 1.0 when predicted exactly, else 0.0. `sample_weight` (n,)
    weighs rows in both sums and in the mean."""
    t = np.asarray(y_true, np.float64)
    p = np.asarray(y_pred, np.float64)
    if t.ndim == 1:
        t = t.reshape(-1, 1)
    if p.ndim == 1:
        p = p.reshape(-1, 1)
    w = np.ones((t.shape[0], 1)) if sample_weight is None else np.asarray(sample_weight, np.float64)[:, None]
    ss_res = (w * (t - p) ** 2).sum(axis=0)
    mean = (w * t).sum(axis=0) / w.sum()
    ss_tot = (w * (t - mean) ** 2).sum(axis=0)
    scores = np.ones(t.shape[1])
    varying = ss_tot != 0
    scores[varying] = 1.0 - ss_res[varying] / ss_tot[varying]
    scores[~varying & (ss_res != 0)] = 0.0
    return float(scores.mean())
