"""The alignment probe: inner products, cosines and the trait gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sublim_core import alignment
from sublim_core.config import StudentArm
from sublim_core.model import LAYER_NAMES, SeedBatchedMLP, aux_logits, initial_parameters
from sublim_core.noise import NoiseSets
from sublim_core.training import distill_students, kl_divergence

SHAPES = [(2, 5, 4), (2, 4), (2, 4, 4), (2, 4), (2, 4, 3), (2, 3)]


def random_gradients(seed: int, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator, dtype=dtype) for shape in SHAPES]


def flatten(grads: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.flatten(1) for g in grads], dim=1)


def distillation_and_trait_gradients(arch, teacher, digits):
    """Compute aux-only distillation and trait gradients of cross-init students (0, 1)."""
    params = initial_parameters(arch, [0, 1], "cross-init", torch.device("cpu"))
    student = SeedBatchedMLP(arch, params)
    noise = NoiseSets([0, 1], 64, torch.device("cpu"))
    images = noise.images(torch.arange(64).expand(2, 64))
    with torch.no_grad():
        target = teacher(images)
    loss = kl_divergence(aux_logits(target), aux_logits(student(images)))
    g_distill = list(torch.autograd.grad(loss.sum(), list(student.parameters())))
    probe = torch.arange(128).expand(2, 128)
    g_trait, _ = alignment.trait_gradient(student, digits.train_images[probe],
                                          digits.train_labels[probe])
    return g_distill, g_trait


def test_cosine_matches_torch():
    a, b = random_gradients(0), random_gradients(1)
    expected = F.cosine_similarity(flatten(a), flatten(b), dim=1)
    torch.testing.assert_close(alignment.cosine(a, b), expected, rtol=1e-12, atol=1e-12)


def test_cosine_float32_matches_torch():
    a, b = random_gradients(2, torch.float32), random_gradients(3, torch.float32)
    expected = F.cosine_similarity(flatten(a), flatten(b), dim=1)
    torch.testing.assert_close(alignment.cosine(a, b), expected, rtol=1e-5, atol=1e-6)


def test_cosine_of_self_is_one():
    a = random_gradients(4)
    torch.testing.assert_close(alignment.cosine(a, a), torch.ones(2, dtype=torch.float64))


def test_cosine_zero_gradient_is_zero():
    a = random_gradients(5)
    zero = [torch.zeros_like(g) for g in a]
    assert torch.equal(alignment.cosine(a, zero), torch.zeros(2, dtype=torch.float64))


def test_inner_matches_dot():
    a, b = random_gradients(6), random_gradients(7)
    expected = (flatten(a) * flatten(b)).sum(1)
    torch.testing.assert_close(alignment.inner(a, b), expected, rtol=1e-12, atol=1e-12)


def test_norm_matches_torch():
    a = random_gradients(8)
    torch.testing.assert_close(alignment.norm(a), flatten(a).norm(dim=1), rtol=1e-12, atol=0)


def test_per_layer_inner_sums_to_total():
    a, b = random_gradients(9), random_gradients(10)
    layers = alignment.per_layer_inner(a, b)
    assert len(layers) == len(SHAPES)
    for value in layers:
        assert value.shape == (2,)
    torch.testing.assert_close(sum(layers), alignment.inner(a, b), rtol=1e-12, atol=1e-12)


def test_metrics_keys_unprefixed():
    metrics = alignment.alignment_metrics(random_gradients(0), random_gradients(1))
    expected = {"cos", "inner", "norm_distill", "norm_trait"}
    for name in LAYER_NAMES:
        expected |= {f"inner[{name}]", f"cos[{name}]"}
    assert set(metrics) == expected


def test_metrics_keys_prefixed():
    metrics = alignment.alignment_metrics(random_gradients(0), random_gradients(1), "applied_")
    expected = {"applied_cos", "applied_inner", "applied_norm_distill"}
    for name in LAYER_NAMES:
        expected |= {f"applied_inner[{name}]", f"applied_cos[{name}]"}
    assert set(metrics) == expected


def test_metrics_layer_inner_sums_to_total():
    metrics = alignment.alignment_metrics(random_gradients(11), random_gradients(12))
    layer_sum = sum(metrics[f"inner[{name}]"] for name in LAYER_NAMES)
    torch.testing.assert_close(layer_sum, metrics["inner"], rtol=1e-12, atol=1e-12)


def test_metrics_layer_cosine_matches_torch():
    a, b = random_gradients(13), random_gradients(14)
    metrics = alignment.alignment_metrics(a, b)
    for name, x, y in zip(LAYER_NAMES, a, b, strict=True):
        expected = F.cosine_similarity(x.flatten(1), y.flatten(1), dim=1)
        torch.testing.assert_close(metrics[f"cos[{name}]"], expected, rtol=1e-12, atol=1e-12)


def test_metrics_whole_cosine_and_norms():
    a, b = random_gradients(15), random_gradients(16)
    metrics = alignment.alignment_metrics(a, b)
    torch.testing.assert_close(metrics["cos"], alignment.cosine(a, b), rtol=1e-12, atol=0)
    torch.testing.assert_close(metrics["norm_distill"], alignment.norm(a), rtol=0, atol=0)
    torch.testing.assert_close(metrics["norm_trait"], alignment.norm(b), rtol=0, atol=0)


def test_update_metrics_signs():
    g_trait = random_gradients(17)
    descent = [-0.1 * g for g in g_trait]
    metrics = alignment.update_metrics(descent, g_trait)
    torch.testing.assert_close(metrics["update_cos"], torch.ones(2, dtype=torch.float64))
    expected_change = -0.1 * alignment.inner(g_trait, g_trait)
    torch.testing.assert_close(metrics["predicted_trait_change"], expected_change)


def test_trait_gradient_matches_single_seed(tiny_arch, digits):
    params = initial_parameters(tiny_arch, [0, 1], "init", torch.device("cpu"))
    model = SeedBatchedMLP(tiny_arch, params)
    probe = torch.stack([torch.arange(32), torch.arange(32, 64)])
    grads, loss = alignment.trait_gradient(model, digits.train_images[probe],
                                           digits.train_labels[probe])
    alone = SeedBatchedMLP(tiny_arch, {name: value[1:] for name, value in params.items()})
    logits = alone(digits.train_images[32:64])[0, :, :10]
    alone_loss = F.cross_entropy(logits, digits.train_labels[32:64])
    alone_grads = torch.autograd.grad(alone_loss, list(alone.parameters()))
    assert loss.shape == (2,)
    assert loss[1].item() == pytest.approx(alone_loss.item(), rel=1e-6)
    for name, batched, single in zip(LAYER_NAMES, grads, alone_grads, strict=True):
        torch.testing.assert_close(batched[1], single[0], rtol=1e-5, atol=1e-7, msg=name)


def test_output_layer_inner_exactly_zero(tiny_arch, tiny_teacher, digits):
    g_distill, g_trait = distillation_and_trait_gradients(tiny_arch, tiny_teacher, digits)
    metrics = alignment.alignment_metrics(g_distill, g_trait)
    assert torch.count_nonzero(metrics["inner[output.weight]"]) == 0
    assert torch.count_nonzero(metrics["inner[output.bias]"]) == 0
    assert torch.count_nonzero(metrics["inner[layer1.weight]"]) == 2
    assert torch.count_nonzero(metrics["inner[layer2.weight]"]) == 2


def test_recorded_output_inner_zero(tiny_config, tiny_teacher, same_init, digits, cpu):
    arm = StudentArm("probe", probe_every=1, probe_batch_size=64)
    frame = distill_students(tiny_config, arm, tiny_teacher, same_init, digits, cpu).to_frame()
    for name in ("inner[output.weight]", "inner[output.bias]", "cos[output.weight]"):
        values = frame[frame.metric == name].value
        assert len(values) == 2 * tiny_config.total_steps, name
        assert (values == 0).all(), name
    hidden = frame[frame.metric == "inner[layer1.weight]"].value
    assert (hidden != 0).all()
