"""The per-seed metric recorder and its tidy table."""

from __future__ import annotations

import pytest
import torch

from sublim_core.metrics import COLUMNS, MetricRecorder


def test_empty_frame_columns():
    frame = MetricRecorder((0, 1), steps_per_epoch=4).to_frame()
    assert frame.columns.tolist() == COLUMNS
    assert len(frame) == 0


def test_rows_per_seed():
    recorder = MetricRecorder((3, 7), steps_per_epoch=4)
    recorder.add(0, "loss", torch.tensor([0.5, 1.5]))
    recorder.add(2, "loss", torch.tensor([0.25, 1.25]))
    frame = recorder.to_frame()
    assert frame.columns.tolist() == COLUMNS
    assert frame.seed.tolist() == [3, 7, 3, 7]
    assert frame.step.tolist() == [0, 0, 2, 2]
    assert frame.value.tolist() == [0.5, 1.5, 0.25, 1.25]
    assert frame.epoch.tolist() == [0.0, 0.0, 0.5, 0.5]


def test_values_kept_exactly():
    recorder = MetricRecorder((0,), steps_per_epoch=1)
    value = torch.tensor([0.1], dtype=torch.float32)
    recorder.add(0, "x", value)
    assert recorder.to_frame().value.iloc[0] == float(value[0])


def test_add_many_and_scalar():
    recorder = MetricRecorder((0, 1), steps_per_epoch=2)
    recorder.add_many(1, {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([3.0, 4.0])})
    recorder.add_scalar(1, "weight", 0.5)
    frame = recorder.to_frame()
    assert frame.metric.tolist() == ["a", "a", "b", "b", "weight", "weight"]
    assert frame[frame.metric == "weight"].value.tolist() == [0.5, 0.5]


def test_add_detaches():
    recorder = MetricRecorder((0, 1), steps_per_epoch=1)
    values = torch.tensor([1.0, 2.0], requires_grad=True) * 2
    recorder.add(0, "x", values)
    assert recorder.to_frame().value.tolist() == [2.0, 4.0]


def test_add_wrong_size():
    recorder = MetricRecorder((0, 1), steps_per_epoch=1)
    with pytest.raises(RuntimeError):
        recorder.add(0, "x", torch.tensor([1.0, 2.0, 3.0]))
