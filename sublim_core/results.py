"""A results cache keyed by the configuration and the code that produced it.

An entry is a folder named by the SHA-256 of its key: the full configuration of the
run plus `code_version()`, a hash of every source file of this package. Changing any
setting or any line of `sublim_core` therefore gives a new key, so an old result is
never reused by new code. An entry is written into a temporary folder and renamed into
place in one step, so a run killed at any point leaves no partial entry. Opening the
cache removes the temporary folders of processes that no longer run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import time
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_TMP_PREFIX = ".tmp-"
_PACKAGE_DIR = Path(__file__).resolve().parent


@functools.cache
def code_version() -> str:
    """Return a short hash of the contents of every `.py` file in this package.

    Computed once per process, at first use, so that an entry is keyed by the code that
    was loaded, even when the files are edited while a run is going on.
    """
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE_DIR.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def package_versions() -> dict[str, str]:
    """Return the versions of Python and of the packages that affect results."""
    versions = {"python": platform.python_version()}
    for package in ("torch", "numpy", "pandas", "mlxtend", "torchvision"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def cache_key(payload: dict) -> str:
    """Hash a JSON-serialisable key payload together with the code version."""
    text = json.dumps({"schema": SCHEMA_VERSION, "code": code_version(), **payload},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ResultsCache:
    """Folder of finished results; `None` as the root turns caching off."""

    def __init__(self, root: str | Path | None):
        self.root = Path(root) if root is not None else None
        if self.root is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.glob(f"{_TMP_PREFIX}*"):
            pid = leftover.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or not _process_alive(int(pid)):
                logger.info("removing an unfinished cache entry %s", leftover)
                shutil.rmtree(leftover, ignore_errors=True)

    def load(self, payload: dict) -> tuple[pd.DataFrame, dict, dict] | None:
        """Return (metrics, metadata, tensors) for a finished entry, or None."""
        if self.root is None:
            return None
        folder = self.root / cache_key(payload)
        if not (folder / "meta.json").is_file():
            return None
        meta = json.loads((folder / "meta.json").read_text())
        frame = pd.read_csv(folder / "metrics.csv.gz")
        tensors_path = folder / "tensors.pt"
        tensors = torch.load(tensors_path, weights_only=True) if tensors_path.is_file() else {}
        logger.info("loaded %s from the results cache %s", payload.get("kind"), folder)
        return frame, meta, tensors

    def store(self, payload: dict, frame: pd.DataFrame, meta: dict,
              tensors: dict[str, torch.Tensor] | None = None) -> Path | None:
        """Write an entry atomically; return its folder (None when caching is off)."""
        if self.root is None:
            return None
        key = cache_key(payload)
        final = self.root / key
        tmp = self.root / f"{_TMP_PREFIX}{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        frame.to_csv(tmp / "metrics.csv.gz", index=False)
        if tensors:
            torch.save({k: v.detach().cpu() for k, v in tensors.items()}, tmp / "tensors.pt")
        full_meta = {
            "key": payload,
            "code_version": code_version(),
            "schema_version": SCHEMA_VERSION,
            "versions": package_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **meta,
        }
        # meta.json marks a finished entry, so it is written last.
        (tmp / "meta.json").write_text(json.dumps(full_meta, indent=2, default=str))
        for path in tmp.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process finished the same entry first; keep that one.
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("stored %s in the results cache %s", payload.get("kind"), final)
        return final
