"""Per-seed summaries of the tidy metric tables, for the chapters' numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def final_values(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Return each (arm, seed)'s value of `metric` at its last recorded step."""
    rows = frame[frame["metric"] == metric]
    last = rows.groupby(["arm", "seed"])["step"].transform("max")
    return rows[rows["step"] == last].reset_index(drop=True)


def per_seed_mean(frame: pd.DataFrame, metric: str, start: int = 0,
                  stop: int | None = None) -> pd.DataFrame:
    """Return each (arm, seed)'s mean of `metric` over steps in [start, stop)."""
    rows = frame[(frame["metric"] == metric) & (frame["step"] >= start)]
    if stop is not None:
        rows = rows[rows["step"] < stop]
    return rows.groupby(["arm", "seed"], as_index=False)["value"].mean()


def per_seed_fraction_positive(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Return each (arm, seed)'s share of recorded steps where `metric` is above zero."""
    rows = frame[frame["metric"] == metric]
    return (rows.assign(value=(rows["value"] > 0).astype(float))
            .groupby(["arm", "seed"], as_index=False)["value"].mean())


def acquisition(frame: pd.DataFrame, steps_per_epoch: int) -> pd.DataFrame:
    """Return, per (arm, seed), when the trait was acquired during distillation.

    With a(t) the test accuracy after t steps and gain = a(T) - a(0), the columns are
    `gain`, `half_step` and `step_90` (the first evaluated step at which a(t) - a(0)
    reaches 50% and 90% of the gain) and `first_epoch_share` ((a(E) - a(0)) / gain, with
    E the steps of one epoch). A seed without a positive gain gets NaN timings.
    """
    rows = []
    accuracy = frame[frame["metric"] == "test_accuracy"]
    for (arm, seed), group in accuracy.groupby(["arm", "seed"], sort=False):
        curve = group.sort_values("step")
        steps = curve["step"].to_numpy()
        values = curve["value"].to_numpy()
        gain = values[-1] - values[0]
        row = {"arm": arm, "seed": seed, "gain": gain, "half_step": math.nan,
               "step_90": math.nan, "first_epoch_share": math.nan}
        if gain > 0:
            progress = (values - values[0]) / gain
            row["half_step"] = float(steps[np.argmax(progress >= 0.5)])
            row["step_90"] = float(steps[np.argmax(progress >= 0.9)])
            at_epoch = values[steps == steps_per_epoch]
            if at_epoch.size:
                row["first_epoch_share"] = float((at_epoch[0] - values[0]) / gain)
        rows.append(row)
    return pd.DataFrame(rows)
