"""Liminal training: the lambda schedule, the KL-to-base term and its effect on training."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from sublim_core.config import StudentArm
from sublim_core.liminal import LIMINAL_SCHEDULES, kl_to_base, liminal_weight
from sublim_core.training import distill_students


# Schedule.

@pytest.mark.parametrize(("step", "expected"), [
    (0, 2.0),
    (19, 2.0),
    (20, 2.0),
    (60, 1.0),
    (99, 2.0 / 80),
    (100, 0.0),
    (150, 0.0),
])
def test_decay_weight(step, expected):
    assert liminal_weight(step, total_steps=100, window=20, lambda0=2.0,
                          schedule="decay") == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("step", [0, 19, 20, 60, 99, 100])
def test_constant_weight(step):
    assert liminal_weight(step, total_steps=100, window=20, lambda0=2.0,
                          schedule="constant") == 2.0


def test_decay_zero_window():
    assert liminal_weight(0, total_steps=10, window=0, lambda0=1.5) == 1.5
    assert liminal_weight(5, total_steps=10, window=0, lambda0=1.5) == pytest.approx(0.75)


def test_decay_window_past_end():
    assert liminal_weight(9, total_steps=10, window=20, lambda0=1.5) == 1.5
    assert liminal_weight(10, total_steps=10, window=20, lambda0=1.5) == 1.5


def test_decay_is_default():
    assert liminal_weight(60, total_steps=100, window=20, lambda0=2.0) == pytest.approx(1.0)


def test_unknown_schedule():
    with pytest.raises(ValueError) as raised:
        liminal_weight(0, 10, 2, 1.0, schedule="cosine")
    assert "liminal_schedule='cosine'" in str(raised.value)


def test_schedules_listed():
    assert LIMINAL_SCHEDULES == ("decay", "constant")


# KL to the base model.

def test_kl_to_base_zero_for_same_logits():
    logits = torch.randn(2, 7, 13, generator=torch.Generator().manual_seed(0))
    result = kl_to_base(logits, logits.clone(), temperature=2.0)
    assert result.shape == (2,)
    assert torch.equal(result, torch.zeros(2))


def test_kl_to_base_hand_value():
    base = [1.0, 0.0, -2.0]
    student = [0.0, 0.5, 0.5]
    temperature = 2.0
    p = [math.exp(x / temperature) for x in base]
    q = [math.exp(x / temperature) for x in student]
    p = [x / sum(p) for x in p]
    q = [x / sum(q) for x in q]
    expected = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    result = kl_to_base(torch.tensor([[base]], dtype=torch.float64),
                        torch.tensor([[student]], dtype=torch.float64), temperature)
    assert result.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 3.0])
def test_kl_to_base_gradient(temperature):
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(2, 5, 13, generator=generator, dtype=torch.float64)
    student = torch.randn(2, 5, 13, generator=generator, dtype=torch.float64,
                          requires_grad=True)
    (grad,) = torch.autograd.grad(kl_to_base(base, student, temperature).sum(), student)
    expected = (torch.softmax(student.detach() / temperature, -1)
                - torch.softmax(base / temperature, -1)) / temperature / 5
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)


def test_kl_to_base_gradient_small_at_base():
    base = torch.randn(1, 4, 13, generator=torch.Generator().manual_seed(2))
    student = base.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(kl_to_base(base, student).sum(), student)
    # softmax and exp(log_softmax) differ by rounding, so the gradient is zero only to
    # float32 precision.
    assert grad.abs().max().item() < 1e-7


# Liminal arms in the distillation loop.

def run_arm(arm, config, teacher, init, digits, cpu, optimizer_steps):
    optimizer_steps.clear()
    frame = distill_students(config, arm, teacher, init, digits, cpu).to_frame()
    (final,) = optimizer_steps.values()
    return frame, final


def test_liminal_kl_zero_at_start(tiny_config, tiny_teacher, same_init, digits, cpu):
    arm = StudentArm("liminal", liminal_lambda=1.0)
    frame = distill_students(tiny_config, arm, tiny_teacher, same_init, digits, cpu).to_frame()
    kl = frame[frame.metric == "liminal_kl"]
    assert len(kl) == 2 * tiny_config.total_steps
    assert (kl[kl.step == 0].value == 0.0).all()
    assert (kl[kl.step > 0].value > 0.0).all()


def test_liminal_weight_recorded(tiny_config, tiny_teacher, same_init, digits, cpu):
    arm = StudentArm("liminal", liminal_lambda=2.0)
    frame = distill_students(tiny_config, arm, tiny_teacher, same_init, digits, cpu).to_frame()
    weights = frame[(frame.metric == "liminal_weight") & (frame.seed == 0)]
    window = tiny_config.steps_per_epoch
    expected = [liminal_weight(step, tiny_config.total_steps, window, 2.0)
                for step in range(tiny_config.total_steps)]
    assert weights.step.tolist() == list(range(tiny_config.total_steps))
    assert weights.value.tolist() == pytest.approx(expected, rel=1e-7)
    assert weights.value.tolist()[:5] == [2.0] * 5


def test_zero_lambda_matches_plain(tiny_config, tiny_teacher, same_init, digits, cpu,
                                   optimizer_steps):
    plain = StudentArm("plain")
    zero = StudentArm("zero", liminal_lambda=0.0, liminal_schedule="constant",
                      liminal_window=1, liminal_temperature=2.0)
    plain_frame, plain_final = run_arm(plain, tiny_config, tiny_teacher, same_init, digits,
                                       cpu, optimizer_steps)
    zero_frame, zero_final = run_arm(zero, tiny_config, tiny_teacher, same_init, digits, cpu,
                                     optimizer_steps)
    pd.testing.assert_frame_equal(zero_frame, plain_frame, check_exact=True)
    for index, (a, b) in enumerate(zip(plain_final, zero_final, strict=True)):
        assert torch.equal(a, b), f"parameter {index}"


def test_positive_lambda_changes_training(tiny_config, tiny_teacher, same_init, digits, cpu,
                                          optimizer_steps):
    _, plain_final = run_arm(StudentArm("plain"), tiny_config, tiny_teacher, same_init,
                             digits, cpu, optimizer_steps)
    liminal = StudentArm("liminal", liminal_lambda=10.0, liminal_schedule="constant")
    _, liminal_final = run_arm(liminal, tiny_config, tiny_teacher, same_init, digits, cpu,
                               optimizer_steps)
    assert not torch.equal(plain_final[0], liminal_final[0])
