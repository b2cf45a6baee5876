"""Bad notebook parameters stop a papermill run before any training.

Each case runs a real chapter through papermill's Python API, as a reader would from the
command line, with the results cache off so that nothing is read or written.
"""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

CASES = [
    ("01_subliminal_learning", {"seedz": 3}, "UnknownParameterError", "seedz"),
    ("01_subliminal_learning", {"dataset": "cifar10"}, "ConfigError", "dataset='cifar10'"),
    ("01_subliminal_learning", {"seeds": [0, 1.5]}, "ConfigError", "seeds="),
    ("01_subliminal_learning", {"student_epochs": -1}, "ConfigError", "student_epochs=-1"),
    ("01_subliminal_learning", {"device": "tpu"}, "ConfigError", "device='tpu'"),
    ("03_projection", {"probe_every": -2}, "ConfigError", "probe_every=-2"),
    ("04_critical_period", {"small_batch_size": 0}, "ConfigError", "small_batch_size=0"),
    ("05_liminal_training", {"liminal_lambdas": [1.0, -3.0]}, "ConfigError",
     "liminal_lambdas[1]=-3.0"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("notebook", "parameters", "error", "fragment"), CASES,
                         ids=[f"{case[0][:2]}-{next(iter(case[1]))}" for case in CASES])
def test_bad_parameter_stops_notebook(tmp_path, notebook, parameters, error, fragment):
    output = tmp_path / f"{notebook}.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as raised:
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{notebook}.ipynb"), str(output),
            parameters={**parameters, "cache_dir": None}, kernel_name="python3",
            cwd=str(NOTEBOOKS), progress_bar=False, log_output=False,
            # A bad value must fail in seconds; a cell still running after a minute is
            # training, and the timeout fails the test.
            execution_timeout=60)
    assert raised.value.ename == error
    assert fragment in raised.value.evalue
    # The setup cell raised, so no later cell, and no training, ran.
    assert "start_chapter(" in raised.value.source
