"""Across-seed summaries: mean and 95% confidence interval of the mean."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

CONFIDENCE = 0.95


def mean_ci(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Return (mean, low, high): Student-t interval of the mean over independent seeds.

    A single value has no interval, so low and high are NaN.
    """
    array = np.asarray(values, dtype=float)
    mean = float(array.mean())
    if array.size < 2:
        return mean, math.nan, math.nan
    half = float(scipy_stats.sem(array) * scipy_stats.t.ppf((1 + confidence) / 2,
                                                              array.size - 1))
    return mean, mean - half, mean + half


def t_interval(values) -> tuple[float, float]:
    """Return the 95% interval only, in the form seaborn's `errorbar=` callable expects."""
    _, low, high = mean_ci(values)
    return low, high


def summarize(frame: pd.DataFrame, by: list[str], value: str = "value") -> pd.DataFrame:
    """Return n, mean, ci_low and ci_high of `value` for each group of `by`."""
    rows = []
    for keys, group in frame.groupby(by, sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        mean, low, high = mean_ci(group[value])
        rows.append({**dict(zip(by, keys)), "n": len(group), "mean": mean,
                     "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def format_ci(mean: float, low: float, high: float, scale: float = 1.0,
              digits: int = 1, unit: str = "", notation: str = "f") -> str:
    """Format a mean and interval as "61.6% [58.2, 65.0]"-style text.

    `notation` is a format type: "f" for fixed point, "e" for scientific.
    """
    spec = f".{digits}{notation}"
    return (f"{mean * scale:{spec}}{unit} "
            f"[{low * scale:{spec}}, {high * scale:{spec}}]")


def intervals_overlap(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    """Return whether two (mean, low, high) intervals overlap."""
    return not (a[2] < b[1] or b[2] < a[1])
