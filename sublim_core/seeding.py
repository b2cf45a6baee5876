"""Per-purpose seeds derived from one run seed.

Every random stream in an experiment (initial weights, data order, noise images, probe
batches, random projection directions) draws from its own seed, derived from the run
seed and a purpose string. Adding a new stream or a new seed therefore never shifts the
random numbers of another.
"""

from __future__ import annotations

import hashlib

import torch

_SEED_BITS = 63


def derived_seed(seed: int, purpose: str) -> int:
    """Derive a 63-bit seed for one purpose from a run seed, stable across platforms."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> (64 - _SEED_BITS)


def cpu_generator(seed: int, purpose: str) -> torch.Generator:
    """Return a CPU generator seeded for one purpose.

    Random numbers are drawn on the CPU and then moved to the training device, so a
    run draws the same numbers on CPU and CUDA.
    """
    generator = torch.Generator(device="cpu")
    generator.manual_seed(derived_seed(seed, purpose))
    return generator
