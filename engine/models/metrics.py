"""Discrimination and calibration metrics for PD models (AUC, KS, Gini, Brier) and the seeded
stratified splits used by training; numpy only, so the numbers are reproducible anywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd


def auc(bad: np.ndarray, pd_: np.ndarray) -> float:
    """P(score of a random bad > score of a random good), ties counted half (Mann-Whitney)."""
    ranks = pd.Series(pd_).rank(method="average").to_numpy()
    n_bad = float(bad.sum())
    n_good = float(len(bad) - n_bad)
    return float((ranks[bad == 1].sum() - n_bad * (n_bad + 1) / 2) / (n_bad * n_good))


def ks(bad: np.ndarray, pd_: np.ndarray) -> float:
    """Largest gap between the cumulative score distributions of bads and goods (at distinct scores)."""
    order = np.argsort(-pd_, kind="mergesort")
    scores, labels = pd_[order], bad[order]
    cum_bad = np.cumsum(labels) / max(labels.sum(), 1)
    cum_good = np.cumsum(1 - labels) / max((1 - labels).sum(), 1)
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]
    return float(np.max(np.abs(cum_bad - cum_good)[last_of_tie]))


def brier(bad: np.ndarray, pd_: np.ndarray) -> float:
    return float(np.mean((pd_ - bad) ** 2))


def all_metrics(bad: np.ndarray, pd_: np.ndarray) -> dict[str, float]:
    value = auc(bad, pd_)
    return {"auc": value, "ks": ks(bad, pd_), "gini": 2 * value - 1, "brier": brier(bad, pd_)}


def stratified_folds(bad: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number per row: each class shuffled with `seed` and dealt round-robin."""
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(bad), dtype=np.int64)
    for label in (0, 1):
        index = np.flatnonzero(bad == label)
        rng.shuffle(index)
        assignment[index] = np.arange(len(index)) % folds
    return assignment


def stratified_holdout(bad: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of holdout rows: `fraction` of each class, chosen with `seed`."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(bad), dtype=bool)
    for label in (0, 1):
        index = np.flatnonzero(bad == label)
        rng.shuffle(index)
        mask[index[: round(len(index) * fraction)]] = True
    return mask
