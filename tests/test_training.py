"""Teacher and student training loops: losses, exact zero gradients, probe neutrality."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from sublim_core.config import ExperimentConfig, StudentArm
from sublim_core.model import (
    NUM_CLASSES,
    Architecture,
    SeedBatchedMLP,
    aux_logits,
    class_logits,
    initial_parameters,
)
from sublim_core.noise import NoiseSets
from sublim_core.training import (
    DivergenceError,
    check_finite,
    distill_students,
    evaluation_steps,
    kl_divergence,
    train_teachers,
)


def hand_kl(target: list[float], student: list[float]) -> float:
    """Compute KL(softmax(target) || softmax(student)) for one row in Python floats."""
    def softmax(logits):
        exps = [math.exp(x) for x in logits]
        return [e / sum(exps) for e in exps]

    p, q = softmax(target), softmax(student)
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def noise_batch(seeds: list[int], size: int = 32) -> torch.Tensor:
    noise = NoiseSets(seeds, size, torch.device("cpu"))
    return noise.images(torch.arange(size).expand(len(seeds), size))


# Distillation loss.

def test_kl_matches_hand_computation():
    target = [[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]]
    student = [[0.0, 1.0, -1.0], [1.0, -2.0, 0.0]]
    expected = (hand_kl(target[0], student[0]) + hand_kl(target[1], student[1])) / 2
    loss = kl_divergence(torch.tensor([target], dtype=torch.float64),
                         torch.tensor([student], dtype=torch.float64))
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_kl_direction_target_first():
    target = [3.0, 0.0, 0.0]
    student = [0.0, 0.0, 0.0]
    forward = hand_kl(target, student)
    reverse = hand_kl(student, target)
    assert abs(forward - reverse) > 0.1
    loss = kl_divergence(torch.tensor([[target]], dtype=torch.float64),
                         torch.tensor([[student]], dtype=torch.float64)).item()
    assert loss == pytest.approx(forward, rel=1e-12)
    assert loss != pytest.approx(reverse, rel=1e-3)


def test_kl_zero_for_equal_logits():
    logits = torch.randn(2, 5, 13, generator=torch.Generator().manual_seed(0))
    assert torch.equal(kl_divergence(logits, logits), torch.zeros(2))


def test_kl_per_seed_batch_mean():
    generator = torch.Generator().manual_seed(1)
    target = torch.randn(3, 4, 6, generator=generator, dtype=torch.float64)
    student = torch.randn(3, 4, 6, generator=generator, dtype=torch.float64)
    loss = kl_divergence(target, student)
    assert loss.shape == (3,)
    for s in range(3):
        rows = [hand_kl(target[s, b].tolist(), student[s, b].tolist()) for b in range(4)]
        assert loss[s].item() == pytest.approx(sum(rows) / 4, rel=1e-12), f"seed {s}"


def test_kl_aux_ignores_class_logits():
    generator = torch.Generator().manual_seed(2)
    target = torch.randn(2, 8, NUM_CLASSES + 3, generator=generator)
    student = torch.randn(2, 8, NUM_CLASSES + 3, generator=generator)
    before = kl_divergence(aux_logits(target), aux_logits(student))
    target[..., :NUM_CLASSES] += 5 * torch.randn(2, 8, NUM_CLASSES, generator=generator)
    student[..., :NUM_CLASSES] -= 3.0
    after = kl_divergence(aux_logits(target), aux_logits(student))
    assert torch.equal(before, after)


def test_kl_all_logits_sees_class_logits():
    generator = torch.Generator().manual_seed(2)
    target = torch.randn(2, 8, NUM_CLASSES + 3, generator=generator)
    student = torch.randn(2, 8, NUM_CLASSES + 3, generator=generator)
    before = kl_divergence(target, student)
    target[..., :NUM_CLASSES] += 5 * torch.randn(2, 8, NUM_CLASSES, generator=generator)
    after = kl_divergence(target, student)
    assert not torch.allclose(before, after)


# Exact zero gradients on the logits a loss does not use.

def test_teacher_loss_zero_aux_gradient(tiny_arch, digits):
    model = SeedBatchedMLP(tiny_arch, initial_parameters(tiny_arch, [0, 1], "init",
                                                         torch.device("cpu")))
    images = digits.train_images[:64]
    labels = digits.train_labels[:64]
    logits = class_logits(model(images))
    loss = F.cross_entropy(logits.flatten(0, 1), labels.repeat(2), reduction="none").sum()
    weight_grad, bias_grad = torch.autograd.grad(loss, [model.output_weight, model.output_bias])
    assert torch.count_nonzero(weight_grad[..., NUM_CLASSES:]) == 0
    assert torch.count_nonzero(bias_grad[..., NUM_CLASSES:]) == 0
    assert torch.count_nonzero(weight_grad[..., :NUM_CLASSES]) > 0
    assert torch.count_nonzero(bias_grad[..., :NUM_CLASSES]) > 0


def test_aux_distill_zero_class_gradient(tiny_arch, tiny_teacher):
    student = SeedBatchedMLP(tiny_arch, initial_parameters(tiny_arch, [0, 1], "cross-init",
                                                           torch.device("cpu")))
    images = noise_batch([0, 1])
    with torch.no_grad():
        target = tiny_teacher(images)
    loss = kl_divergence(aux_logits(target), aux_logits(student(images))).sum()
    weight_grad, bias_grad = torch.autograd.grad(loss, [student.output_weight,
                                                        student.output_bias])
    assert torch.count_nonzero(weight_grad[..., :NUM_CLASSES]) == 0
    assert torch.count_nonzero(bias_grad[..., :NUM_CLASSES]) == 0
    assert torch.count_nonzero(weight_grad[..., NUM_CLASSES:]) > 0
    assert torch.count_nonzero(bias_grad[..., NUM_CLASSES:]) > 0


def test_teacher_training_keeps_aux_outputs(tiny_teacher, same_init):
    weight = tiny_teacher.output_weight
    bias = tiny_teacher.output_bias
    assert torch.equal(weight[..., NUM_CLASSES:], same_init["output.weight"][..., NUM_CLASSES:])
    assert torch.equal(bias[..., NUM_CLASSES:], same_init["output.bias"][..., NUM_CLASSES:])
    assert not torch.equal(weight[..., :NUM_CLASSES],
                           same_init["output.weight"][..., :NUM_CLASSES])


def test_aux_distillation_keeps_class_outputs(tiny_config, tiny_teacher, same_init, digits,
                                              cpu, optimizer_steps):
    distill_students(tiny_config, StudentArm("aux"), tiny_teacher, same_init, digits, cpu)
    (final,) = optimizer_steps.values()
    weight, bias = final[4], final[5]
    assert torch.equal(weight[..., :NUM_CLASSES], same_init["output.weight"][..., :NUM_CLASSES])
    assert torch.equal(bias[..., :NUM_CLASSES], same_init["output.bias"][..., :NUM_CLASSES])
    assert not torch.equal(weight[..., NUM_CLASSES:],
                           same_init["output.weight"][..., NUM_CLASSES:])


# Recorded metrics.

def test_teacher_metric_steps(tiny_settings, digits, same_init, cpu):
    config = ExperimentConfig(**{**tiny_settings, "teacher_batch_size": 1000})
    _, recorder = train_teachers(config, same_init, digits, cpu)
    frame = recorder.to_frame()
    loss_steps = sorted(frame[frame.metric == "train_loss"].step.unique())
    accuracy_steps = sorted(frame[frame.metric == "test_accuracy"].step.unique())
    assert loss_steps == [0, 1, 2, 3]
    assert accuracy_steps == [0, 4]
    assert set(frame.seed) == {0, 1}


def test_evaluation_steps_dense_then_sparse(tiny_config):
    assert evaluation_steps(tiny_config) == {0, 1, 2, 3, 4, 6, 8}


def test_evaluation_steps_epoch_ends_and_last(tiny_settings):
    config = ExperimentConfig(**{**tiny_settings, "student_epochs": 3, "eval_every": 5})
    assert config.total_steps == 12
    assert config.steps_per_epoch == 4
    assert evaluation_steps(config) == {0, 1, 2, 3, 4, 5, 8, 10, 12}


def test_student_metric_steps(tiny_config, tiny_teacher, same_init, digits, cpu):
    recorder = distill_students(tiny_config, StudentArm("a"), tiny_teacher, same_init,
                                digits, cpu)
    frame = recorder.to_frame()
    loss_steps = sorted(frame[frame.metric == "distill_loss"].step.unique())
    accuracy_steps = set(frame[frame.metric == "test_accuracy"].step.unique())
    assert loss_steps == list(range(tiny_config.total_steps))
    assert accuracy_steps == evaluation_steps(tiny_config)
    assert set(frame.metric) == {"distill_loss", "test_accuracy"}


# The probe only reads the student, so it must not change training.

def assert_probe_neutral(config, arm, teacher, init, digits, cpu, optimizer_steps):
    """Train `arm` with the probe off and on every step, and compare the runs exactly."""
    off_arm = dataclasses.replace(arm, probe_every=0)
    on_arm = dataclasses.replace(arm, probe_every=1, probe_batch_size=64)
    optimizer_steps.clear()
    off = distill_students(config, off_arm, teacher, init, digits, cpu)
    (off_final,) = optimizer_steps.values()
    optimizer_steps.clear()
    on = distill_students(config, on_arm, teacher, init, digits, cpu)
    (on_final,) = optimizer_steps.values()

    for index, (a, b) in enumerate(zip(off_final, on_final, strict=True)):
        assert torch.equal(a, b), f"parameter {index}"

    off_frame = off.to_frame()
    on_frame = on.to_frame()
    shared = on_frame[on_frame.metric.isin(set(off_frame.metric))].reset_index(drop=True)
    pd.testing.assert_frame_equal(shared, off_frame, check_exact=True)
    assert "cos" in set(on_frame.metric)
    assert "trait_loss" in set(on_frame.metric)


def test_probe_leaves_training_unchanged(tiny_config, tiny_teacher, same_init, digits, cpu,
                                         optimizer_steps):
    assert_probe_neutral(tiny_config, StudentArm("plain"), tiny_teacher, same_init, digits,
                         cpu, optimizer_steps)


def test_probe_leaves_cross_init_unchanged(tiny_config, tiny_teacher, digits, cpu,
                                          optimizer_steps):
    arch = Architecture(tiny_config.hidden, tiny_config.num_aux)
    cross_init = initial_parameters(arch, list(tiny_config.seeds), "cross-init", cpu)
    arm = StudentArm("cross", init="cross", target="all")
    assert_probe_neutral(tiny_config, arm, tiny_teacher, cross_init, digits, cpu,
                         optimizer_steps)


def test_probe_leaves_liminal_unchanged(tiny_config, tiny_teacher, same_init, digits, cpu,
                                        optimizer_steps):
    arm = StudentArm("liminal", liminal_lambda=1.0)
    assert_probe_neutral(tiny_config, arm, tiny_teacher, same_init, digits, cpu,
                         optimizer_steps)


def test_probe_every_three_steps(tiny_config, tiny_teacher, same_init, digits, cpu):
    arm = StudentArm("on", probe_every=3, probe_batch_size=32)
    frame = distill_students(tiny_config, arm, tiny_teacher, same_init, digits, cpu).to_frame()
    assert sorted(frame[frame.metric == "cos"].step.unique()) == [0, 3, 6]
    assert sorted(frame[frame.metric == "update_cos"].step.unique()) == [0, 3, 6]


def test_max_steps_stops_early(tiny_config, tiny_teacher, same_init, digits, cpu):
    arm = StudentArm("liminal", liminal_lambda=2.0)
    full = distill_students(tiny_config, arm, tiny_teacher, same_init, digits,
                            cpu).to_frame()
    short = distill_students(tiny_config, arm, tiny_teacher, same_init, digits, cpu,
                             max_steps=3).to_frame()
    assert sorted(short[short.metric == "distill_loss"].step.unique()) == [0, 1, 2]
    assert sorted(short[short.metric == "test_accuracy"].step.unique()) == [0, 1, 2, 3]
    prefix = full[(full.step < 3) | ((full.step == 3) & (full.metric == "test_accuracy"))]
    pd.testing.assert_frame_equal(short, prefix.reset_index(drop=True), check_exact=True)


def test_max_steps_beyond_total(tiny_config, tiny_teacher, same_init, digits, cpu):
    frame = distill_students(tiny_config, StudentArm("a"), tiny_teacher, same_init, digits,
                             cpu, max_steps=100).to_frame()
    losses = frame[frame.metric == "distill_loss"]
    assert losses.step.max() == tiny_config.total_steps - 1


# Non-finite losses and gradients.

def test_check_finite_passes_finite():
    loss = torch.tensor([0.5, 1.5])
    grads = [torch.ones(2, 3, 4), torch.zeros(2, 3)]
    assert check_finite(loss, grads, (5, 7), "arm", 0) is None


def test_check_finite_names_nan_loss_seed():
    loss = torch.tensor([0.5, float("nan")])
    grads = [torch.ones(2, 3, 4), torch.ones(2, 3)]
    with pytest.raises(DivergenceError) as raised:
        check_finite(loss, grads, (5, 7), "cross", 3)
    message = str(raised.value)
    assert "seed 7" in message
    assert "'cross'" in message
    assert "step 3" in message


def test_check_finite_names_inf_gradient_seed():
    loss = torch.tensor([0.5, 1.0, 2.0])
    grads = [torch.ones(3, 4, 2), torch.ones(3, 2)]
    grads[1][1, 0] = float("inf")
    with pytest.raises(DivergenceError) as raised:
        check_finite(loss, grads, (0, 4, 9), "same", 12)
    message = str(raised.value)
    assert "seed 4" in message
    assert "step 12" in message


def test_teacher_nan_weights_diverge(tiny_settings, digits, cpu):
    config = ExperimentConfig(**{**tiny_settings, "seeds": (3, 8)})
    arch = Architecture(config.hidden, config.num_aux)
    init = initial_parameters(arch, [3, 8], "init", cpu)
    init["output.bias"][1, 0] = float("nan")
    with pytest.raises(DivergenceError) as raised:
        train_teachers(config, init, digits, cpu)
    message = str(raised.value)
    assert "seed 8" in message
    assert "'teacher'" in message
    assert "step 0" in message


def test_check_finite_no_grad_warning():
    # The loss reaching check_finite still requires grad. torch warns only once per
    # process about float() on such a tensor, so a fresh interpreter runs the check.
    script = textwrap.dedent("""
        import warnings
        import torch
        from sublim_core.training import DivergenceError, check_finite

        warnings.simplefilter("error")
        weight = torch.ones(2, requires_grad=True)
        loss = weight * torch.tensor([1.0, float("nan")])
        try:
            check_finite(loss, [torch.ones(2, 3)], (0, 1), "a", 0)
        except DivergenceError:
            print("raised DivergenceError")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "raised DivergenceError"
