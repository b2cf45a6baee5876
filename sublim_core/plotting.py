"""Figures for the chapters: means over seeds with Student-t 95% intervals.

Plotting code never trains; it reads the tidy tables that `Experiment` returns
(columns arm, seed, step, epoch, metric, value).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .stats import t_interval

sns.set_theme(style="whitegrid", context="notebook")


def seeds_label(frame: pd.DataFrame) -> str:
    """Return "n = 10 seeds" for the seeds in a table."""
    return f"n = {frame['seed'].nunique()} seeds"


def plot_arm_points(values: pd.DataFrame, order: list[str], ax: plt.Axes,
                    scale: float = 100.0) -> plt.Axes:
    """Plot each arm's mean with its 95% interval, and every seed as a dot."""
    data = values.assign(scaled=values["value"] * scale)
    sns.stripplot(data=data, x="arm", y="scaled", order=order, ax=ax, color="0.55",
                  size=4, jitter=0.15, alpha=0.8, zorder=1)
    sns.pointplot(data=data, x="arm", y="scaled", order=order, ax=ax, errorbar=t_interval,
                  color="C3", linestyle="none", markers="D", capsize=0.15, zorder=3)
    ax.set_xlabel("")
    return ax


def plot_curves(frame: pd.DataFrame, metric: str, ax: plt.Axes, hue: str = "arm",
                x: str = "step", scale: float = 1.0, hue_order: list[str] | None = None,
                palette=None) -> plt.Axes:
    """Plot `metric` against `x`, mean over seeds with a 95% interval band per `hue`."""
    data = frame[frame["metric"] == metric]
    data = data.assign(scaled=data["value"] * scale)
    sns.lineplot(data=data, x=x, y="scaled", hue=hue, hue_order=hue_order, ax=ax,
                 errorbar=t_interval, palette=palette)
    ax.set_ylabel(metric)
    return ax
