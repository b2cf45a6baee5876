"""Support for papermill-parameterised notebooks: parameter checks and logging setup."""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterable

# Papermill writes its injected parameters into a cell that starts with this comment.
_INJECTED_HEADER = "# Parameters"


class UnknownParameterError(NameError):
    """A notebook received a parameter it does not define."""


def injected_parameter_names(history: list[str]) -> set[str]:
    """Return the names assigned in the last papermill-injected cell of `history`.

    `history` is the list of executed cell sources (IPython's `In`).
    """
    for source in reversed(history):
        if source.lstrip().startswith(_INJECTED_HEADER):
            names = set()
            for node in ast.parse(source).body:
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, ast.AnnAssign) else [])
                names.update(t.id for t in targets if isinstance(t, ast.Name))
            return names
    return set()


def check_parameter_names(namespace: dict, allowed: Iterable[str]) -> None:
    """Raise UnknownParameterError for an injected name that is not an allowed parameter.

    Papermill injects parameters as assignments in a cell after the `parameters` cell
    and only warns about names the notebook does not declare, so a misspelt parameter
    would otherwise be ignored silently. The injected cell is found in IPython's input
    history, so the check also works when papermill is called directly. Also raises
    when an allowed parameter is not defined at all.
    """
    allowed = set(allowed)
    history = namespace.get("In", [])
    unknown = sorted(injected_parameter_names(list(history)) - allowed)
    if unknown:
        raise UnknownParameterError(
            f"unknown parameter(s) {unknown}; this notebook's parameters are "
            f"{sorted(allowed)}"
        )
    missing = sorted(name for name in allowed if name not in namespace)
    if missing:
        raise UnknownParameterError(
            f"parameter(s) {missing} are not defined; run the parameters cell first"
        )


def configure_logging(level: int = logging.WARNING) -> None:
    """Send `sublim_core` log records at `level` and above to the notebook's stderr.

    Chapters log at WARNING so that re-executed notebooks print the same output each
    time; INFO adds timing lines, which differ between runs.
    """
    logger = logging.getLogger("sublim_core")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


# Parameters that every chapter takes; they build the ExperimentConfig.
COMMON_PARAMETERS = (
    "dataset", "data_root", "download", "seeds", "num_aux", "teacher_epochs",
    "teacher_batch_size", "teacher_lr", "student_epochs", "student_batch_size",
    "student_lr", "noise_size", "eval_every", "device", "cache_dir", "progress",
)


def start_chapter(namespace: dict, extra: Iterable[str] = ()):
    """Check a chapter's parameters and return its Experiment.

    Raises UnknownParameterError for a misspelt or unknown parameter, and ConfigError
    for a bad value, both before any data is loaded or any model trained.
    """
    from .config import ConfigError, ExperimentConfig
    from .experiment import Experiment

    check_parameter_names(namespace, (*COMMON_PARAMETERS, *extra))
    configure_logging()
    fields = {name: namespace[name] for name in COMMON_PARAMETERS
              if name not in ("cache_dir", "progress")}
    config = ExperimentConfig(**fields)
    cache_dir = namespace["cache_dir"]
    if cache_dir is not None and not isinstance(cache_dir, str):
        raise ConfigError(f"cache_dir={cache_dir!r} is invalid; expected a folder path "
                          "or None to turn the results cache off")
    if not isinstance(namespace["progress"], bool):
        raise ConfigError(f"progress={namespace['progress']!r} is invalid; "
                          "expected True or False")
    return Experiment(config, cache_dir=cache_dir, progress=namespace["progress"])
