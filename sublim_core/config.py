"""Validated experiment and arm configurations.

Every value is checked when the object is built, before any data is loaded or any
model trained. A bad value raises `ConfigError` (a ValueError) naming the parameter, the
value received and what is allowed.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from numbers import Integral, Real

from .data import DATASETS
from .liminal import LIMINAL_SCHEDULES
from .projection import PROJECTION_MODES

# Teacher settings that give the teacher a comparable number of optimiser steps on each
# data set. 4,000 training digits at batch 64 for 5 epochs is 315 steps. 60,000 digits
# at batch 1024 for 5 epochs, the authors' setting, is 295 steps.
TEACHER_DEFAULTS = {
    "mnist-5k": {"teacher_batch_size": 64, "teacher_epochs": 5},
    "mnist": {"teacher_batch_size": 1024, "teacher_epochs": 5},
}
STUDENT_INITS = ("same", "cross")
DISTILL_TARGETS = ("aux", "all")


class ConfigError(ValueError):
    """A configuration value is invalid."""


def check_int(name: str, value: object, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """Return `value` if it is an integer in [minimum, maximum], else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ConfigError(f"{name}={value!r} is invalid; expected an integer"
                          + _range_text(minimum, maximum))
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(f"{name}={value!r} is out of range; expected an integer"
                          + _range_text(minimum, maximum))
    return int(value)


def check_float(name: str, value: object, minimum: float = 0.0, inclusive: bool = False,
                maximum: float | None = None) -> float:
    """Return `value` as a float if it is finite and above `minimum`, else raise."""
    bound = f">= {minimum}" if inclusive else f"> {minimum}"
    allowed = f"a finite number {bound}" + (f" and <= {maximum}" if maximum is not None else "")
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} is invalid; expected {allowed}")
    too_low = value < minimum if inclusive else value <= minimum
    if too_low or (maximum is not None and value > maximum):
        raise ConfigError(f"{name}={value!r} is out of range; expected {allowed}")
    return float(value)


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    """Return `value` if it is one of `allowed`, else raise ConfigError listing them."""
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is invalid; allowed values are {list(allowed)}")
    return value


def check_seeds(value: object) -> tuple[int, ...]:
    """Turn `seeds` (a count N, meaning 0..N-1, or a list of distinct integers) into a tuple."""
    if isinstance(value, Integral) and not isinstance(value, bool):
        count = check_int("seeds", value, minimum=1)
        return tuple(range(count))
    if not isinstance(value, (list, tuple)) or len(value) == 0:
        raise ConfigError(f"seeds={value!r} is invalid; expected a positive count N "
                          "(seeds 0..N-1) or a non-empty list of distinct integers >= 0")
    for seed in value:
        if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
            raise ConfigError(f"seeds={value!r} is invalid: {seed!r} is not an integer "
                              ">= 0; expected a positive count or a list of integers >= 0")
    if len(set(value)) != len(value):
        raise ConfigError(f"seeds={value!r} is invalid; the seeds must be distinct")
    return tuple(int(seed) for seed in value)


def _range_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    return ""


@dataclass(frozen=True)
class ExperimentConfig:
    """Settings shared by every arm of an experiment: data, models, teacher, students.

    `teacher_batch_size` and `teacher_epochs` left as None take the data set's defaults
    from `TEACHER_DEFAULTS`.
    """

    dataset: str = "mnist-5k"
    data_root: str | None = None
    download: bool = False
    seeds: tuple[int, ...] = tuple(range(10))
    num_aux: int = 3
    hidden: int = 256
    teacher_epochs: int | None = None
    teacher_batch_size: int | None = None
    teacher_lr: float = 3e-4
    student_epochs: int = 5
    student_batch_size: int = 1024
    student_lr: float = 3e-4
    noise_size: int = 60_000
    eval_every: int = 5
    device: str = "auto"

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        if isinstance(self.data_root, os.PathLike):
            object.__setattr__(self, "data_root", os.fspath(self.data_root))
        if self.data_root is not None and not isinstance(self.data_root, str):
            raise ConfigError(f"data_root={self.data_root!r} is invalid; expected a folder "
                              "path or None")
        if self.dataset == "mnist" and self.data_root is None:
            raise ConfigError(f"data_root={self.data_root!r} is invalid; dataset='mnist' "
                              "needs the path of the folder holding the MNIST IDX files")
        if not isinstance(self.download, bool):
            raise ConfigError(f"download={self.download!r} is invalid; expected True or False")
        object.__setattr__(self, "seeds", check_seeds(self.seeds))
        defaults = TEACHER_DEFAULTS[self.dataset]
        for name in ("teacher_epochs", "teacher_batch_size"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, defaults[name])
        check_int("num_aux", self.num_aux, minimum=1, maximum=1000)
        check_int("hidden", self.hidden, minimum=1, maximum=65536)
        check_int("teacher_epochs", self.teacher_epochs, minimum=1)
        check_int("teacher_batch_size", self.teacher_batch_size, minimum=1)
        check_float("teacher_lr", self.teacher_lr, maximum=10.0)
        check_int("student_epochs", self.student_epochs, minimum=1)
        check_int("student_batch_size", self.student_batch_size, minimum=1)
        check_float("student_lr", self.student_lr, maximum=10.0)
        check_int("noise_size", self.noise_size, minimum=1, maximum=2**31 - 1)
        if self.student_batch_size > self.noise_size:
            raise ConfigError(
                f"student_batch_size={self.student_batch_size} is out of range; it must "
                f"not exceed noise_size={self.noise_size}"
            )
        check_int("eval_every", self.eval_every, minimum=1)
        if not isinstance(self.device, str):
            raise ConfigError(f"device={self.device!r} is invalid; allowed values are "
                              "'auto', 'cpu', 'cuda' and 'cuda:N'")
        from .device import resolve_device

        try:
            resolve_device(self.device)
        except (ValueError, RuntimeError) as error:
            raise ConfigError(str(error)) from None

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.noise_size / self.student_batch_size)

    @property
    def total_steps(self) -> int:
        return self.student_epochs * self.steps_per_epoch

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StudentArm:
    """Settings of one arm's students: initialisation, distillation target and interventions.

    Attributes:
        name: label of the arm in results and figures.
        init: "same" starts from the teacher's initial weights, "cross" from weights
            drawn for another purpose of the same seed, never the teacher's.
        target: "aux" distils the m auxiliary logits only, "all" all 10 + m logits.
        projection: one of `PROJECTION_MODES`.
        probe_every: record the alignment probe every this many steps; 0 turns it off.
        probe_batch_size: labelled training digits per probe batch.
        liminal_lambda: lambda0 of liminal training; 0 turns it off.
        liminal_schedule: one of `LIMINAL_SCHEDULES`.
        liminal_window: steps at full lambda0; None means one epoch.
        liminal_temperature: softmax temperature of the KL term.
    """

    name: str
    init: str = "same"
    target: str = "aux"
    projection: str = "none"
    probe_every: int = 0
    probe_batch_size: int = 1024
    liminal_lambda: float = 0.0
    liminal_schedule: str = "decay"
    liminal_window: int | None = None
    liminal_temperature: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name={self.name!r} is invalid; expected a non-empty string")
        check_choice("init", self.init, STUDENT_INITS)
        check_choice("target", self.target, DISTILL_TARGETS)
        check_choice("projection", self.projection, PROJECTION_MODES)
        check_int("probe_every", self.probe_every, minimum=0)
        check_int("probe_batch_size", self.probe_batch_size, minimum=1)
        check_float("liminal_lambda", self.liminal_lambda, inclusive=True, maximum=1e6)
        check_choice("liminal_schedule", self.liminal_schedule, LIMINAL_SCHEDULES)
        if self.liminal_window is not None:
            check_int("liminal_window", self.liminal_window, minimum=0)
        check_float("liminal_temperature", self.liminal_temperature, maximum=1e3)
        if self.projection != "none" and self.liminal_lambda > 0:
            raise ConfigError(
                f"projection={self.projection!r} with liminal_lambda={self.liminal_lambda} "
                "is not supported; use projection='none' or liminal_lambda=0"
            )

    @property
    def liminal(self) -> bool:
        return self.liminal_lambda > 0

    def to_dict(self) -> dict:
        return asdict(self)
