"""One experiment: teachers and student arms for a set of seeds, with results cached.

`Experiment` ties the pieces together: it loads the digits, draws initial weights,
trains the teachers, distils each requested student arm and returns tidy tables with
one row per arm, seed, step and metric. Every finished teacher set and arm is stored in
the results cache, so a rebuild reuses it instead of training again.
"""

from __future__ import annotations

import logging
import time

import pandas as pd
import torch

from .config import ExperimentConfig, StudentArm
from .data import Digits, load_digits
from .device import resolve_device
from .model import LAYER_NAMES, Architecture, SeedBatchedMLP, accuracy, initial_parameters
from .results import ResultsCache
from .training import distill_students, train_teachers

logger = logging.getLogger(__name__)

UNTRAINED = "untrained"
TEACHER = "teacher"
_TEACHER_FIELDS = ("dataset", "seeds", "num_aux", "hidden", "teacher_epochs",
                   "teacher_batch_size", "teacher_lr")


class Experiment:
    """Teachers and student arms of one `ExperimentConfig`.

    Args:
        config: the validated experiment settings.
        cache_dir: folder of the results cache, or None to train everything afresh.
        progress: show tqdm progress bars.
        digits: already loaded digits of `config.dataset`, to skip loading them again.
    """

    def __init__(self, config: ExperimentConfig, cache_dir: str | None = None,
                 progress: bool = False, digits: Digits | None = None):
        if not isinstance(config, ExperimentConfig):
            raise TypeError(f"config={config!r} is invalid; expected an ExperimentConfig")
        self.config = config
        self.device = resolve_device(config.device)
        self.cache = ResultsCache(cache_dir)
        self.progress = progress
        self.arch = Architecture(config.hidden, config.num_aux)
        if digits is not None and digits.name != config.dataset:
            raise ValueError(f"digits of data set {digits.name!r} were given for "
                             f"dataset={config.dataset!r}")
        self._digits = digits.to(self.device) if digits is not None else None
        self._teacher: SeedBatchedMLP | None = None
        self._teacher_frame: pd.DataFrame | None = None

    @property
    def digits(self) -> Digits:
        if self._digits is None:
            config = self.config
            self._digits = load_digits(config.dataset, config.data_root,
                                       config.download).to(self.device)
        return self._digits

    def _key(self, kind: str, fields: dict) -> dict:
        return {"kind": kind, "device_type": self.device.type, **fields}

    def _teacher_key(self) -> dict:
        config = self.config.to_dict()
        return self._key("teachers", {name: config[name] for name in _TEACHER_FIELDS})

    def initial_parameters(self, init: str) -> dict[str, torch.Tensor]:
        """Return the initial weights of the "same"-init or "cross"-init models."""
        purpose = "init" if init == "same" else "cross-init"
        return initial_parameters(self.arch, list(self.config.seeds), purpose, self.device)

    def teachers(self) -> tuple[SeedBatchedMLP, pd.DataFrame]:
        """Return the trained teachers and the reference table, training them if needed.

        The table holds the teacher's metrics and the untrained reference arm (the
        teacher's initial weights) at step 0, with an `arm` column.
        """
        if self._teacher is not None:
            return self._teacher, self._teacher_frame
        key = self._teacher_key()
        cached = self.cache.load(key)
        if cached is not None:
            frame, _, tensors = cached
            params = {name: tensors[name].to(self.device) for name in LAYER_NAMES}
            teacher = SeedBatchedMLP(self.arch, params).requires_grad_(False)
        else:
            start = time.perf_counter()
            teacher, recorder = train_teachers(self.config, self.initial_parameters("same"),
                                               self.digits, self.device, self.progress)
            teacher_frame = recorder.to_frame().assign(arm=TEACHER)
            untrained = teacher_frame[(teacher_frame.step == 0)
                                      & (teacher_frame.metric == "test_accuracy")]
            frame = pd.concat([untrained.assign(arm=UNTRAINED), teacher_frame],
                              ignore_index=True)
            seconds = time.perf_counter() - start
            self.cache.store(key, frame, {"config": self.config.to_dict(),
                                          "seconds": seconds},
                             dict(teacher.named_tensors()))
        self._teacher, self._teacher_frame = teacher, frame
        return teacher, frame

    def run_arm(self, arm: StudentArm) -> pd.DataFrame:
        """Return the tidy metrics of one student arm, training it if not cached."""
        if not isinstance(arm, StudentArm):
            raise TypeError(f"arm={arm!r} is invalid; expected a StudentArm")
        # The arm's name is a label, so arms that differ only in name share an entry.
        settings = {k: v for k, v in arm.to_dict().items() if k != "name"}
        key = self._key("students", {"config": self.config.to_dict(), "arm": settings})
        cached = self.cache.load(key)
        if cached is not None:
            return cached[0].assign(arm=arm.name)
        teacher, _ = self.teachers()
        start = time.perf_counter()
        recorder = distill_students(self.config, arm, teacher,
                                    self.initial_parameters(arm.init), self.digits,
                                    self.device, self.progress)
        seconds = time.perf_counter() - start
        frame = recorder.to_frame()
        self.cache.store(key, frame, {"config": self.config.to_dict(), "arm": arm.to_dict(),
                                      "seconds": seconds, "device": str(self.device)})
        logger.info("arm %s trained in %.1f s", arm.name, seconds)
        return frame.assign(arm=arm.name)

    def run(self, arms: list[StudentArm], include_reference: bool = True) -> pd.DataFrame:
        """Return the tidy metrics of several arms, with the reference arms first."""
        names = [arm.name for arm in arms]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"arm names must be distinct; repeated: {duplicates}")
        frames = [self.teachers()[1]] if include_reference else []
        frames += [self.run_arm(arm) for arm in arms]
        return pd.concat(frames, ignore_index=True)
