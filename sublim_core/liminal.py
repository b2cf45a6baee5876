"""Liminal training: a KL penalty that keeps the student near its base model early on.

The student's loss becomes L_distill + lambda(t) * KL(p_base || p_student), both
distributions the softmax over all 10 + m logits at temperature T on the same noise
batch, with p_base the frozen initial student. The KL term is not rescaled by T**2.

Schedules, for a window of W steps out of N:

- ``decay``: lambda(t) = lambda0 for t < W, then falls linearly to 0 at t = N.
- ``constant``: lambda(t) = lambda0 for every step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LIMINAL_SCHEDULES = ("decay", "constant")


def liminal_weight(step: int, total_steps: int, window: int, lambda0: float,
                   schedule: str = "decay") -> float:
    """Return lambda(step) for the schedule above."""
    if schedule not in LIMINAL_SCHEDULES:
        raise ValueError(f"liminal_schedule={schedule!r} is invalid; allowed values are "
                         f"{list(LIMINAL_SCHEDULES)}")
    if schedule == "constant" or step < window:
        return lambda0
    if step >= total_steps:
        return 0.0
    return lambda0 * (total_steps - step) / (total_steps - window)


def kl_to_base(base_logits: torch.Tensor, student_logits: torch.Tensor,
               temperature: float = 1.0) -> torch.Tensor:
    """Return KL(p_base || p_student) over the last dimension, batch mean per seed (S,)."""
    log_base = F.log_softmax(base_logits / temperature, dim=-1)
    log_student = F.log_softmax(student_logits / temperature, dim=-1)
    return (log_base.exp() * (log_base - log_student)).sum(-1).mean(-1)
