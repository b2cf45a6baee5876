"""The results cache: keys, atomic entries, leftovers of dead processes, killed runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import REFERENCE_ARMS, TINY_SETTINGS
from sublim_core import results
from sublim_core.config import ExperimentConfig
from sublim_core.experiment import Experiment
from sublim_core.results import ResultsCache, cache_key, code_version

REPOSITORY = Path(__file__).resolve().parents[1]


def sample_frame() -> pd.DataFrame:
    values = torch.randn(6, generator=torch.Generator().manual_seed(0)).double()
    return pd.DataFrame({
        "seed": [0, 1, 0, 1, 0, 1],
        "step": [0, 0, 1, 1, 2, 2],
        "epoch": [0.0, 0.0, 1 / 3, 1 / 3, 2 / 3, 2 / 3],
        "metric": ["loss"] * 4 + ["cos"] * 2,
        "value": values.tolist()[:5] + [0.1 + 0.2],
    })


def entries(root: Path) -> list[Path]:
    return sorted(path for path in root.iterdir() if not path.name.startswith("."))


def temporary_folders(root: Path) -> list[Path]:
    return sorted(root.glob(".tmp-*"))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# Keys.

def test_key_stable():
    assert cache_key({"kind": "students", "lr": 0.1}) == cache_key({"lr": 0.1, "kind": "students"})


def test_key_changes_with_config():
    base = ExperimentConfig(seeds=(0, 1), device="cpu").to_dict()
    changed = ExperimentConfig(seeds=(0, 1), device="cpu", student_lr=1e-3).to_dict()
    assert cache_key({"config": base}) != cache_key({"config": changed})


def test_key_changes_with_seeds():
    first = ExperimentConfig(seeds=(0, 1), device="cpu").to_dict()
    second = ExperimentConfig(seeds=(1, 0), device="cpu").to_dict()
    assert cache_key({"config": first}) != cache_key({"config": second})


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """Point `code_version` at a copy of the package sources that a test may edit.

    `code_version` is computed once per process, so its stored value is cleared on entry
    and again on exit, when the real sources are back in place.
    """
    copy = tmp_path / "sublim_core"
    shutil.copytree(results._PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    code_version.cache_clear()
    monkeypatch.setattr(results, "_PACKAGE_DIR", copy)
    yield copy
    monkeypatch.undo()
    code_version.cache_clear()


def test_key_changes_with_code(package_copy):
    payload = {"kind": "students", "lr": 0.1}
    copy_version = code_version()
    copy_key = cache_key(payload)

    with open(package_copy / "liminal.py", "a") as handle:
        handle.write("\n# one more line\n")
    code_version.cache_clear()
    assert code_version() != copy_version
    assert cache_key(payload) != copy_key


def test_code_version_of_copy_unchanged(package_copy, monkeypatch):
    copy_version = code_version()
    code_version.cache_clear()
    monkeypatch.setattr(results, "_PACKAGE_DIR", Path(results.__file__).resolve().parent)
    assert code_version() == copy_version


def test_code_version_fixed_per_process(package_copy):
    before = code_version()
    with open(package_copy / "liminal.py", "a") as handle:
        handle.write("\n# edited while a run is going on\n")
    assert code_version() == before


def test_code_version_format():
    version = code_version()
    assert len(version) == 16
    assert int(version, 16) >= 0


# Store and load.

def test_store_load_round_trip(tmp_path):
    cache = ResultsCache(tmp_path)
    frame = sample_frame()
    tensors = {"layer1.weight": torch.randn(2, 3, 4), "counts": torch.arange(5)}
    payload = {"kind": "students", "config": {"seeds": [0, 1]}}
    folder = cache.store(payload, frame, {"seconds": 1.5}, tensors)
    assert folder == tmp_path / cache_key(payload)

    loaded = cache.load(payload)
    assert loaded is not None
    loaded_frame, meta, loaded_tensors = loaded
    pd.testing.assert_frame_equal(loaded_frame, frame, check_exact=True)
    assert meta["key"] == payload
    assert meta["seconds"] == 1.5
    assert meta["code_version"] == code_version()
    assert "torch" in meta["versions"]
    assert set(loaded_tensors) == set(tensors)
    for name, tensor in tensors.items():
        assert torch.equal(loaded_tensors[name], tensor), name


def test_load_other_payload_misses(tmp_path):
    cache = ResultsCache(tmp_path)
    cache.store({"kind": "students", "lr": 0.1}, sample_frame(), {})
    assert cache.load({"kind": "students", "lr": 0.2}) is None


def test_store_without_tensors(tmp_path):
    cache = ResultsCache(tmp_path)
    cache.store({"kind": "students"}, sample_frame(), {})
    _, _, tensors = cache.load({"kind": "students"})
    assert tensors == {}


def test_store_leaves_no_temporary(tmp_path):
    cache = ResultsCache(tmp_path)
    cache.store({"kind": "students"}, sample_frame(), {})
    assert temporary_folders(tmp_path) == []
    assert len(entries(tmp_path)) == 1


def test_store_twice_keeps_first(tmp_path):
    cache = ResultsCache(tmp_path)
    payload = {"kind": "students"}
    cache.store(payload, sample_frame(), {"run": 1})
    cache.store(payload, sample_frame().assign(value=0.0), {"run": 2})
    frame, meta, _ = cache.load(payload)
    assert meta["run"] == 1
    pd.testing.assert_frame_equal(frame, sample_frame(), check_exact=True)
    assert temporary_folders(tmp_path) == []


def test_disabled_cache():
    cache = ResultsCache(None)
    assert cache.store({"kind": "students"}, sample_frame(), {}) is None
    assert cache.load({"kind": "students"}) is None


def test_entry_without_meta_ignored(tmp_path):
    payload = {"kind": "students"}
    folder = tmp_path / cache_key(payload)
    folder.mkdir()
    sample_frame().to_csv(folder / "metrics.csv.gz", index=False)
    assert ResultsCache(tmp_path).load(payload) is None


# Temporary folders of other processes.

def write_temporary(root: Path, payload: dict, pid: int | str) -> Path:
    """Write a complete-looking entry into a temporary folder named as `store` names it."""
    folder = root / f".tmp-{cache_key(payload)}-{pid}"
    folder.mkdir(parents=True)
    sample_frame().to_csv(folder / "metrics.csv.gz", index=False)
    (folder / "meta.json").write_text(json.dumps({"key": payload}))
    return folder


def test_dead_process_temporary_removed(tmp_path):
    payload = {"kind": "students"}
    leftover = write_temporary(tmp_path, payload, dead_pid())
    cache = ResultsCache(tmp_path)
    assert not leftover.exists()
    assert cache.load(payload) is None


def test_unnamed_temporary_removed(tmp_path):
    leftover = write_temporary(tmp_path, {"kind": "students"}, "x")
    ResultsCache(tmp_path)
    assert not leftover.exists()


def test_live_process_temporary_kept(tmp_path):
    payload = {"kind": "students"}
    in_progress = write_temporary(tmp_path, payload, os.getpid())
    cache = ResultsCache(tmp_path)
    assert in_progress.exists()
    assert cache.load(payload) is None


def test_finished_entries_kept_on_open(tmp_path):
    ResultsCache(tmp_path).store({"kind": "students"}, sample_frame(), {})
    write_temporary(tmp_path, {"kind": "teachers"}, dead_pid())
    cache = ResultsCache(tmp_path)
    assert cache.load({"kind": "students"}) is not None
    assert len(entries(tmp_path)) == 1


# A run killed after its teachers were stored.

CHILD_SCRIPT = textwrap.dedent("""
    import json
    import sys

    import torch

    from sublim_core import Experiment, ExperimentConfig, StudentArm

    torch.set_num_threads(int(sys.argv[4]))
    settings = json.loads(sys.argv[1])
    arms = [StudentArm(**arm) for arm in json.loads(sys.argv[2])]
    experiment = Experiment(ExperimentConfig(**settings), cache_dir=sys.argv[3])
    experiment.teachers()
    print("teachers stored", flush=True)
    experiment.run(arms)
    print("finished", flush=True)
""")


@pytest.mark.slow
def test_killed_run_resumes_exactly(tmp_path, digits):
    # 100 student steps per arm keep the child training long after it reports its
    # teachers, so the kill lands before any arm is finished.
    settings = {**TINY_SETTINGS, "student_epochs": 25}
    config = ExperimentConfig(**settings)
    arms = list(REFERENCE_ARMS)
    cache_dir = tmp_path / "cache"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT, json.dumps(settings),
         json.dumps([arm.to_dict() for arm in arms]), str(cache_dir),
         str(torch.get_num_threads())],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPOSITORY,
    )
    try:
        line = child.stdout.readline()
        child.kill()
    finally:
        child.wait(timeout=60)
    assert line.strip() == "teachers stored", child.stderr.read()[-2000:]
    assert child.returncode == -signal.SIGKILL

    # Only the teachers were finished when the child died.
    (teacher_entry,) = entries(cache_dir)
    meta = json.loads((teacher_entry / "meta.json").read_text())
    assert meta["key"]["kind"] == "teachers"

    resumed = Experiment(config, cache_dir=str(cache_dir), digits=digits).run(arms)
    reference = Experiment(config, cache_dir=None, digits=digits).run(arms)
    pd.testing.assert_frame_equal(resumed, reference, check_exact=True)
    assert temporary_folders(cache_dir) == []
    assert len(entries(cache_dir)) == 1 + len(arms)

    reloaded = Experiment(config, cache_dir=str(cache_dir)).run(arms)
    pd.testing.assert_frame_equal(reloaded, reference, check_exact=True)
