"""Validation of configurations and other user-facing parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sublim_core.config import (
    ConfigError,
    ExperimentConfig,
    StudentArm,
    check_seeds,
)
from sublim_core.data import load_digits
from sublim_core.device import resolve_device
from sublim_core.experiment import Experiment
from sublim_core.notebook import (
    COMMON_PARAMETERS,
    UnknownParameterError,
    check_parameter_names,
    injected_parameter_names,
    start_chapter,
)

VALID = {"seeds": (0, 1), "noise_size": 256, "student_batch_size": 64, "device": "cpu"}
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def experiment(**changes):
    return lambda: ExperimentConfig(**{**VALID, **changes})


def arm(**changes):
    return lambda: StudentArm(**{"name": "arm", **changes})


def injected(**parameters) -> dict:
    """Return a kernel namespace in which papermill injected `parameters`."""
    cell = "# Parameters\n" + "".join(f"{name} = {value!r}\n"
                                      for name, value in parameters.items())
    return {"In": ["", "import numpy as np", cell], **parameters}


def chapter_namespace(**changes) -> dict:
    """Return a namespace defining every common chapter parameter, with `changes` injected."""
    values = {name: None for name in COMMON_PARAMETERS}
    values.update({**VALID, "dataset": "mnist-5k", "download": False, "num_aux": 3,
                   "teacher_lr": 3e-4, "student_epochs": 1, "student_lr": 3e-4,
                   "eval_every": 1, "progress": False})
    namespace = injected(**changes)
    return {**values, **namespace}


def case(build, error, *fragments, marks=(), id):
    return pytest.param(build, error, fragments, marks=marks, id=id)


BAD_INPUTS = [
    # ExperimentConfig
    case(experiment(dataset="fashion"), ConfigError, "dataset='fashion'", "mnist-5k",
         id="dataset-unknown"),
    case(experiment(dataset="mnist"), ConfigError, "data_root=None", "mnist",
         id="mnist-without-data-root"),
    case(experiment(student_epochs=-1), ConfigError, "student_epochs=-1", id="epochs-negative"),
    case(experiment(teacher_epochs=0), ConfigError, "teacher_epochs=0", id="teacher-epochs-0"),
    case(experiment(student_epochs=1.5), ConfigError, "student_epochs=1.5",
         id="epochs-float"),
    case(experiment(hidden=True), ConfigError, "hidden=True", id="hidden-bool"),
    case(experiment(num_aux=0), ConfigError, "num_aux=0", id="num-aux-0"),
    case(experiment(seeds=[0, "1"]), ConfigError, "seeds=", "'1'", id="seed-string"),
    case(experiment(seeds=[0.0, 1.0]), ConfigError, "seeds=", "0.0", id="seeds-float-list"),
    case(experiment(seeds=3.0), ConfigError, "seeds=3.0", id="seeds-float-count"),
    case(experiment(seeds=True), ConfigError, "seeds=True", id="seeds-bool"),
    case(experiment(seeds=[0, True]), ConfigError, "seeds=", "True", id="seed-bool"),
    case(experiment(seeds=[1, 1]), ConfigError, "seeds=[1, 1]", "distinct",
         id="seeds-duplicate"),
    case(experiment(seeds=[]), ConfigError, "seeds=[]", id="seeds-empty"),
    case(experiment(seeds=0), ConfigError, "seeds=0", id="seeds-count-0"),
    case(experiment(seeds=[-1, 2]), ConfigError, "seeds=", "-1", id="seed-negative"),
    case(experiment(device="tpu"), ConfigError, "device='tpu'", id="device-unknown"),
    case(experiment(device=0), ConfigError, "device=0", id="device-int"),
    case(experiment(device="cuda"), ConfigError, "device='cuda'", "device='cpu'",
         marks=NO_CUDA, id="device-cuda-missing"),
    case(experiment(student_lr=0), ConfigError, "student_lr=0", id="lr-zero"),
    case(experiment(student_lr=-1e-3), ConfigError, "student_lr=-0.001", id="lr-negative"),
    case(experiment(student_lr=math.nan), ConfigError, "student_lr=nan", id="lr-nan"),
    case(experiment(teacher_lr=math.inf), ConfigError, "teacher_lr=inf", id="lr-inf"),
    case(experiment(teacher_lr=100.0), ConfigError, "teacher_lr=100.0", "10.0",
         id="lr-too-large"),
    case(experiment(student_lr="0.001"), ConfigError, "student_lr='0.001'", id="lr-string"),
    case(experiment(student_batch_size=512), ConfigError, "student_batch_size=512",
         "noise_size=256", id="batch-over-noise-size"),
    case(experiment(teacher_batch_size=0), ConfigError, "teacher_batch_size=0",
         id="teacher-batch-0"),
    case(experiment(noise_size=0, student_batch_size=1), ConfigError, "noise_size=0",
         id="noise-size-0"),
    case(experiment(eval_every=0), ConfigError, "eval_every=0", id="eval-every-0"),
    case(experiment(download="yes"), ConfigError, "download='yes'", id="download-string"),
    # StudentArm
    case(arm(name=""), ConfigError, "name=''", id="arm-name-empty"),
    case(arm(init="random"), ConfigError, "init='random'", "cross", id="init-unknown"),
    case(arm(target="class"), ConfigError, "target='class'", id="target-unknown"),
    case(arm(projection="orthogonal"), ConfigError, "projection='orthogonal'", "positive",
         id="projection-unknown"),
    case(arm(liminal_schedule="cosine"), ConfigError, "liminal_schedule='cosine'", "decay",
         id="schedule-unknown"),
    case(arm(projection="positive", liminal_lambda=1.0), ConfigError,
         "projection='positive'", "liminal_lambda=1.0", id="projection-with-liminal"),
    case(arm(probe_every=-1), ConfigError, "probe_every=-1", id="probe-every-negative"),
    case(arm(probe_batch_size=0), ConfigError, "probe_batch_size=0", id="probe-batch-0"),
    case(arm(liminal_lambda=-0.5), ConfigError, "liminal_lambda=-0.5",
         id="liminal-lambda-negative"),
    case(arm(liminal_lambda=math.nan), ConfigError, "liminal_lambda=nan",
         id="liminal-lambda-nan"),
    case(arm(liminal_window=-2), ConfigError, "liminal_window=-2", id="window-negative"),
    case(arm(liminal_temperature=0.0), ConfigError, "liminal_temperature=0.0",
         id="temperature-zero"),
    # resolve_device
    case(lambda: resolve_device("tpu"), ValueError, "device='tpu'", "cuda:N",
         id="resolve-unknown"),
    case(lambda: resolve_device("CPU"), ValueError, "device='CPU'", id="resolve-uppercase"),
    case(lambda: resolve_device("cuda:x"), ValueError, "device='cuda:x'",
         id="resolve-bad-index"),
    case(lambda: resolve_device(None), ValueError, "device=None", id="resolve-none"),
    case(lambda: resolve_device("cuda"), RuntimeError, "device='cuda'", "no CUDA device",
         marks=NO_CUDA, id="resolve-cuda-missing"),
    case(lambda: resolve_device("cuda:1"), RuntimeError, "device='cuda:1'",
         marks=NO_CUDA, id="resolve-cuda-index-missing"),
    # check_seeds
    case(lambda: check_seeds([]), ConfigError, "seeds=[]", id="check-seeds-empty"),
    case(lambda: check_seeds([2, 2]), ConfigError, "seeds=[2, 2]", "distinct",
         id="check-seeds-duplicate"),
    case(lambda: check_seeds([0, 1.5]), ConfigError, "seeds=", "1.5",
         id="check-seeds-float"),
    case(lambda: check_seeds("0,1"), ConfigError, "seeds='0,1'", id="check-seeds-string"),
    case(lambda: check_seeds(-3), ConfigError, "seeds=-3", id="check-seeds-count-negative"),
    # load_digits
    case(lambda: load_digits("fashion"), ValueError, "dataset='fashion'",
         id="load-dataset-unknown"),
    case(lambda: load_digits("mnist"), ValueError, "data_root", "missing",
         id="load-mnist-without-root"),
    # notebook parameters
    case(lambda: check_parameter_names(injected(seeds=3, lerning_rate=0.1), ["seeds"]),
         UnknownParameterError, "lerning_rate", "seeds", id="notebook-unknown-name"),
    case(lambda: check_parameter_names({"In": []}, ["seeds"]), UnknownParameterError,
         "seeds", "not defined", id="notebook-missing-name"),
    case(lambda: start_chapter(chapter_namespace(cache_dir=3)), ConfigError, "cache_dir=3",
         id="chapter-cache-dir-int"),
    case(lambda: start_chapter(chapter_namespace(progress="no")), ConfigError,
         "progress='no'", id="chapter-progress-string"),
    case(lambda: start_chapter(chapter_namespace(student_lr=0.0)), ConfigError,
         "student_lr=0.0", id="chapter-lr-zero"),
]


@pytest.mark.parametrize(("build", "error", "fragments"), BAD_INPUTS)
def test_bad_input_rejected(build, error, fragments):
    with pytest.raises(error) as raised:
        build()
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from {message!r}"


def test_bad_input_table_size():
    assert len(BAD_INPUTS) >= 25


def test_config_error_is_value_error():
    assert issubclass(ConfigError, ValueError)


# Valid inputs.

def test_seed_count_expands():
    assert ExperimentConfig(**{**VALID, "seeds": 3}).seeds == (0, 1, 2)


def test_seed_list_becomes_tuple():
    assert ExperimentConfig(**{**VALID, "seeds": [4, 2]}).seeds == (4, 2)


def test_numpy_seeds_accepted():
    seeds = ExperimentConfig(**{**VALID, "seeds": list(np.arange(3))}).seeds
    assert seeds == (0, 1, 2)
    assert all(type(seed) is int for seed in seeds)


def test_teacher_defaults_mnist_5k():
    config = ExperimentConfig(**VALID)
    assert config.teacher_batch_size == 64
    assert config.teacher_epochs == 5


def test_teacher_defaults_mnist(tmp_path):
    config = ExperimentConfig(**{**VALID, "dataset": "mnist", "data_root": str(tmp_path)})
    assert config.teacher_batch_size == 1024
    assert config.teacher_epochs == 5


def test_explicit_teacher_settings_kept():
    config = ExperimentConfig(**{**VALID, "teacher_batch_size": 32, "teacher_epochs": 2})
    assert config.teacher_batch_size == 32
    assert config.teacher_epochs == 2


def test_step_counts_round_up():
    config = ExperimentConfig(**{**VALID, "noise_size": 250, "student_epochs": 3})
    assert config.steps_per_epoch == 4
    assert config.total_steps == 12


def test_config_to_dict_has_seeds():
    assert ExperimentConfig(**VALID).to_dict()["seeds"] == (0, 1)


def test_config_frozen():
    config = ExperimentConfig(**VALID)
    with pytest.raises(AttributeError):
        config.hidden = 8


def test_arm_defaults():
    arm_config = StudentArm("same")
    assert arm_config.init == "same"
    assert arm_config.target == "aux"
    assert arm_config.projection == "none"
    assert not arm_config.liminal


def test_arm_liminal_flag():
    assert StudentArm("l", liminal_lambda=0.5).liminal


def test_arm_zero_window_accepted():
    assert StudentArm("l", liminal_lambda=0.5, liminal_window=0).liminal_window == 0


def test_resolve_cpu():
    assert resolve_device("cpu") == torch.device("cpu")


def test_resolve_auto():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_notebook_names_pass():
    namespace = {**injected(seeds=3, lr=0.1), "np": np, "helper": len, "other": 1}
    assert check_parameter_names(namespace, ["seeds", "lr"]) is None


def test_notebook_without_injection_passes():
    namespace = {"In": ["seeds = 3"], "seeds": 3, "stray": 1}
    assert check_parameter_names(namespace, ["seeds"]) is None


def test_injected_names_last_cell():
    history = ["# Parameters\nold = 1\n", "x = 2", "# Parameters\nseeds = 3\nlr: float = 0.1\n"]
    assert injected_parameter_names(history) == {"seeds", "lr"}


def test_injected_names_none():
    assert injected_parameter_names(["seeds = 3", "# parameters\nlr = 1"]) == set()


def test_start_chapter_builds_experiment():
    experiment = start_chapter(chapter_namespace(seeds=[3, 4]))
    assert isinstance(experiment, Experiment)
    assert experiment.config.seeds == (3, 4)
    assert experiment.cache.root is None
