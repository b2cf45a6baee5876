"""Subliminal learning on MNIST: teachers, students, the alignment probe and interventions."""

from .config import ConfigError, ExperimentConfig, StudentArm
from .experiment import TEACHER, UNTRAINED, Experiment
from .training import DivergenceError

__all__ = [
    "ConfigError",
    "DivergenceError",
    "Experiment",
    "ExperimentConfig",
    "StudentArm",
    "TEACHER",
    "UNTRAINED",
]
__version__ = "0.1.0"
