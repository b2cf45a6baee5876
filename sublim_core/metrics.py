"""Collection of per-seed training metrics into a tidy table."""

from __future__ import annotations

import pandas as pd
import torch

COLUMNS = ["seed", "step", "epoch", "metric", "value"]


class MetricRecorder:
    """Per-step, per-seed metrics, kept on the training device until `to_frame`.

    Values stay as tensors so that recording a metric never forces a device sync.
    """

    def __init__(self, seeds: tuple[int, ...], steps_per_epoch: int):
        self.seeds = tuple(seeds)
        self.steps_per_epoch = steps_per_epoch
        self._entries: list[tuple[int, str, torch.Tensor]] = []

    def add(self, step: int, metric: str, values: torch.Tensor) -> None:
        """Record one value per seed, `values` of shape (S,)."""
        self._entries.append((step, metric, values.detach().reshape(len(self.seeds))))

    def add_many(self, step: int, metrics: dict[str, torch.Tensor]) -> None:
        for metric, values in metrics.items():
            self.add(step, metric, values)

    def add_scalar(self, step: int, metric: str, value: float) -> None:
        """Record a value shared by all seeds, such as a schedule's weight."""
        self._entries.append((step, metric, torch.full((len(self.seeds),), float(value))))

    def to_frame(self) -> pd.DataFrame:
        """Return one row per seed, step and metric, with columns `COLUMNS`."""
        if not self._entries:
            return pd.DataFrame(columns=COLUMNS)
        values = torch.stack([v.to("cpu", torch.float64) for _, _, v in self._entries])
        num_seeds = len(self.seeds)
        steps = [step for step, _, _ in self._entries]
        names = [metric for _, metric, _ in self._entries]
        frame = pd.DataFrame({
            "seed": list(self.seeds) * len(self._entries),
            "step": [step for step in steps for _ in range(num_seeds)],
            "metric": [name for name in names for _ in range(num_seeds)],
            "value": values.reshape(-1).numpy(),
        })
        frame["epoch"] = frame["step"] / self.steps_per_epoch
        return frame[COLUMNS]
