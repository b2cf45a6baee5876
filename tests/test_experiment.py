"""Whole experiments: table layout, determinism, caching and divergence."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from conftest import REFERENCE_ARMS, TINY_SETTINGS
from sublim_core import TEACHER, UNTRAINED, DivergenceError, Experiment
from sublim_core.config import ExperimentConfig, StudentArm
from sublim_core.metrics import COLUMNS


def cache_entries(root):
    return sorted(path for path in root.iterdir() if not path.name.startswith("."))


def test_table_columns(reference_tables):
    assert reference_tables.columns.tolist() == COLUMNS + ["arm"]


def test_table_arm_order(reference_tables):
    arms = list(dict.fromkeys(reference_tables.arm))
    assert arms == [UNTRAINED, TEACHER] + [arm.name for arm in REFERENCE_ARMS]


def test_untrained_rows_match_teacher_start(reference_tables):
    untrained = reference_tables[reference_tables.arm == UNTRAINED]
    teacher = reference_tables[reference_tables.arm == TEACHER]
    start = teacher[(teacher.step == 0) & (teacher.metric == "test_accuracy")]
    assert set(untrained.metric) == {"test_accuracy"}
    assert untrained.value.tolist() == start.value.tolist()
    assert untrained.seed.tolist() == list(TINY_SETTINGS["seeds"])


def test_teacher_beats_untrained(reference_tables):
    # Sixteen steps of a 16-unit teacher reach about 35% test accuracy, from about 10%.
    teacher = reference_tables[(reference_tables.arm == TEACHER)
                               & (reference_tables.metric == "test_accuracy")]
    start = teacher[teacher.step == 0].value.to_numpy()
    final = teacher[teacher.step == teacher.step.max()].value.to_numpy()
    assert (final > start + 0.1).all()


def test_same_init_student_starts_at_untrained(reference_tables):
    same = reference_tables[(reference_tables.arm == "same")
                            & (reference_tables.metric == "test_accuracy")
                            & (reference_tables.step == 0)]
    untrained = reference_tables[reference_tables.arm == UNTRAINED]
    assert same.value.tolist() == untrained.value.tolist()


def test_rerun_identical_and_cached(tmp_path, reference_tables, digits, optimizer_steps):
    config = ExperimentConfig(**TINY_SETTINGS)
    arms = list(REFERENCE_ARMS)
    experiment = Experiment(config, cache_dir=str(tmp_path), digits=digits)
    fresh = experiment.run(arms)
    pd.testing.assert_frame_equal(fresh, reference_tables, check_exact=True)
    assert len(cache_entries(tmp_path)) == 1 + len(arms)
    kinds = sorted(json.loads((entry / "meta.json").read_text())["key"]["kind"]
                   for entry in cache_entries(tmp_path))
    assert kinds == ["students", "students", "teachers"]

    # A diverging arm raises and leaves the cache as it was.
    diverging = StudentArm("diverging", liminal_lambda=1.0, liminal_temperature=1e-40)
    with pytest.raises(DivergenceError) as raised:
        experiment.run_arm(diverging)
    message = str(raised.value)
    assert "seed 0" in message
    assert "'diverging'" in message
    assert "step 0" in message
    assert len(cache_entries(tmp_path)) == 1 + len(arms)
    assert list(tmp_path.glob(".tmp-*")) == []

    optimizer_steps.clear()
    cached = Experiment(config, cache_dir=str(tmp_path)).run(arms)
    pd.testing.assert_frame_equal(cached, reference_tables, check_exact=True)
    assert optimizer_steps == {}

    # The arm name is only a label, so renamed arms load the same entries.
    renamed = [dataclasses.replace(arm, name=f"{arm.name}-renamed") for arm in arms]
    relabelled = Experiment(config, cache_dir=str(tmp_path)).run(renamed)
    assert optimizer_steps == {}
    assert list(dict.fromkeys(relabelled.arm))[2:] == [arm.name for arm in renamed]
    expected = reference_tables.replace({"arm": {"same": "same-renamed",
                                                 "cross": "cross-renamed"}})
    pd.testing.assert_frame_equal(relabelled, expected, check_exact=True)


def test_duplicate_arm_names():
    experiment = Experiment(ExperimentConfig(**TINY_SETTINGS))
    with pytest.raises(ValueError, match=r"\['a'\]"):
        experiment.run([StudentArm("a"), StudentArm("a", init="cross")])


def test_config_type_checked():
    with pytest.raises(TypeError, match="config="):
        Experiment(TINY_SETTINGS)


def test_digits_of_other_dataset(digits):
    config = ExperimentConfig(**{**TINY_SETTINGS, "dataset": "mnist", "data_root": "unused"})
    with pytest.raises(ValueError) as raised:
        Experiment(config, digits=digits)
    assert "'mnist-5k'" in str(raised.value)
    assert "dataset='mnist'" in str(raised.value)


def test_arm_type_checked():
    experiment = Experiment(ExperimentConfig(**TINY_SETTINGS))
    with pytest.raises(TypeError, match="arm="):
        experiment.run_arm({"name": "a"})
