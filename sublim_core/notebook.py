"""Support for papermill-parameterised notebooks: parameter checks and logging setup."""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import Iterable

# Names that IPython itself puts into a kernel's namespace.
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})


class UnknownParameterError(NameError):
    """A notebook received a parameter it does not define."""


def _is_definition(value: object) -> bool:
    return isinstance(value, types.ModuleType) or inspect.isclass(value) or callable(value)


def check_parameter_names(namespace: dict, allowed: Iterable[str]) -> None:
    """Raise UnknownParameterError if the namespace holds a value no parameter defines.

    Papermill injects parameters as assignments after the `parameters` cell and only
    warns about names the notebook does not declare, so a misspelt parameter would
    otherwise be ignored silently. Call this first thing after the parameters cell:
    every public name bound to a plain value that is not an allowed parameter name is
    treated as an unknown parameter. Imported modules, classes and functions, IPython's
    own names and names starting with an underscore are skipped.
    """
    allowed = set(allowed)
    hidden: set[str] = set()
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            hidden = set(shell.user_ns_hidden)
    except ImportError:
        pass
    unknown = sorted(
        name for name, value in namespace.items()
        if not name.startswith("_") and name not in allowed and name not in hidden
        and name not in _IPYTHON_NAMES and not _is_definition(value)
    )
    missing = sorted(name for name in allowed if name not in namespace)
    if unknown:
        raise UnknownParameterError(
            f"unknown parameter(s) {unknown}; this notebook's parameters are "
            f"{sorted(allowed)}"
        )
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
