"""Across-seed means and Student-t confidence intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from sublim_core.stats import format_ci, intervals_overlap, mean_ci, summarize, t_interval


def hand_interval(values: list[float], confidence: float) -> tuple[float, float, float]:
    n = len(values)
    mean = sum(values) / n
    sample_std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = scipy_stats.t.ppf((1 + confidence) / 2, df=n - 1) * sample_std / math.sqrt(n)
    return mean, mean - half, mean + half


def test_mean_ci_matches_hand():
    values = [0.61, 0.58, 0.66, 0.70, 0.55]
    mean, low, high = mean_ci(values)
    expected = hand_interval(values, 0.95)
    assert mean == pytest.approx(expected[0], rel=1e-12)
    assert low == pytest.approx(expected[1], rel=1e-12)
    assert high == pytest.approx(expected[2], rel=1e-12)


def test_mean_ci_other_confidence():
    values = [1.0, 2.0, 4.0]
    _, low, high = mean_ci(values, confidence=0.9)
    expected = hand_interval(values, 0.9)
    assert low == pytest.approx(expected[1], rel=1e-12)
    assert high == pytest.approx(expected[2], rel=1e-12)


def test_mean_ci_two_values():
    mean, low, high = mean_ci([0.0, 2.0])
    half = scipy_stats.t.ppf(0.975, df=1) * 1.0
    assert mean == 1.0
    assert low == pytest.approx(1.0 - half, rel=1e-12)
    assert high == pytest.approx(1.0 + half, rel=1e-12)


def test_mean_ci_single_value_nan():
    mean, low, high = mean_ci([0.42])
    assert mean == 0.42
    assert math.isnan(low)
    assert math.isnan(high)


def test_mean_ci_constant_values():
    assert mean_ci([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)


def test_mean_ci_accepts_series():
    values = pd.Series([1.0, 2.0, 3.0, 4.0])
    assert mean_ci(values) == pytest.approx(mean_ci(values.to_numpy()))


def test_t_interval_bounds():
    values = [1.0, 2.0, 4.0]
    assert t_interval(values) == pytest.approx(mean_ci(values)[1:])


def test_summarize_groups():
    frame = pd.DataFrame({
        "arm": ["a", "a", "a", "b"],
        "step": [1, 1, 1, 1],
        "value": [1.0, 2.0, 4.0, 5.0],
    })
    summary = summarize(frame, ["arm", "step"])
    assert summary.columns.tolist() == ["arm", "step", "n", "mean", "ci_low", "ci_high"]
    assert summary.arm.tolist() == ["a", "b"]
    assert summary.n.tolist() == [3, 1]
    first = summary.iloc[0]
    expected = hand_interval([1.0, 2.0, 4.0], 0.95)
    assert first["mean"] == pytest.approx(expected[0])
    assert first["ci_low"] == pytest.approx(expected[1])
    assert first["ci_high"] == pytest.approx(expected[2])
    assert np.isnan(summary.iloc[1]["ci_low"])


def test_summarize_single_key():
    frame = pd.DataFrame({"arm": ["a", "b", "b"], "value": [1.0, 2.0, 3.0]})
    summary = summarize(frame, ["arm"])
    assert summary.arm.tolist() == ["a", "b"]
    assert summary["mean"].tolist() == [1.0, 2.5]


def test_format_ci_percent():
    assert format_ci(0.616, 0.582, 0.650, scale=100, unit="%") == "61.6% [58.2, 65.0]"


def test_format_ci_digits():
    assert format_ci(1.23456, 1.0, 1.5, digits=3) == "1.235 [1.000, 1.500]"


def test_intervals_overlap():
    assert intervals_overlap((1.0, 0.5, 1.5), (2.0, 1.4, 2.6))
    assert not intervals_overlap((1.0, 0.5, 1.5), (2.0, 1.6, 2.4))
    assert intervals_overlap((1.0, 0.5, 1.5), (1.5, 1.5, 1.5))
