"""The seed-batched MLP: shapes, initial weights and seed independence."""

from __future__ import annotations

import math

import pytest
import torch

from sublim_core.model import (
    INPUT_SIZE,
    LAYER_NAMES,
    NUM_CLASSES,
    Architecture,
    SeedBatchedMLP,
    accuracy,
    aux_logits,
    class_logits,
    initial_parameters,
)


def uniform_images(*shape: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(sum(shape))
    return torch.rand(shape, generator=generator) * 2 - 1


def make_model(arch: Architecture, seeds: list[int], purpose: str = "init") -> SeedBatchedMLP:
    return SeedBatchedMLP(arch, initial_parameters(arch, seeds, purpose, torch.device("cpu")))


def test_forward_per_seed_inputs_shape(tiny_arch):
    model = make_model(tiny_arch, [0, 1, 2])
    logits = model(uniform_images(3, 5, INPUT_SIZE))
    assert logits.shape == (3, 5, NUM_CLASSES + tiny_arch.num_aux)


def test_forward_shared_inputs_shape(tiny_arch):
    model = make_model(tiny_arch, [0, 1, 2])
    logits = model(uniform_images(5, INPUT_SIZE))
    assert logits.shape == (3, 5, NUM_CLASSES + tiny_arch.num_aux)


def test_forward_shared_equals_repeated(tiny_arch):
    model = make_model(tiny_arch, [0, 1])
    images = uniform_images(4, INPUT_SIZE)
    shared = model(images)
    repeated = model(images.expand(2, 4, INPUT_SIZE))
    torch.testing.assert_close(shared, repeated, rtol=0, atol=1e-6)


def test_logit_split_widths(tiny_arch):
    logits = make_model(tiny_arch, [0])(torch.zeros(2, INPUT_SIZE))
    assert class_logits(logits).shape[-1] == NUM_CLASSES
    assert aux_logits(logits).shape[-1] == tiny_arch.num_aux


def test_parameter_shapes_have_seed_dimension(tiny_arch):
    params = initial_parameters(tiny_arch, [0, 1, 2], "init", torch.device("cpu"))
    assert list(params) == list(LAYER_NAMES)
    for name, shape in tiny_arch.shapes().items():
        assert params[name].shape == (3, *shape), name


def test_named_tensors_order(tiny_arch):
    params = initial_parameters(tiny_arch, [0, 1], "init", torch.device("cpu"))
    model = SeedBatchedMLP(tiny_arch, params)
    named = model.named_tensors()
    assert list(named) == list(LAYER_NAMES)
    for name in LAYER_NAMES:
        assert torch.equal(named[name], params[name]), name


def test_init_weight_std():
    arch = Architecture(hidden=256, num_aux=3)
    params = initial_parameters(arch, [0, 1], "init", torch.device("cpu"))
    for name in ("layer1.weight", "layer2.weight", "output.weight"):
        fan_in = params[name].shape[1]
        expected = 1 / math.sqrt(fan_in)
        std = params[name].std().item()
        assert abs(std / expected - 1) < 0.05, f"{name}: std {std}, expected {expected}"
        assert abs(params[name].mean().item()) < 0.1 * expected, name


def test_init_biases_zero(tiny_arch):
    params = initial_parameters(tiny_arch, [0, 1], "init", torch.device("cpu"))
    for name in ("layer1.bias", "layer2.bias", "output.bias"):
        assert torch.count_nonzero(params[name]) == 0, name


def test_init_same_seed_identical(tiny_arch):
    first = initial_parameters(tiny_arch, [4], "init", torch.device("cpu"))
    second = initial_parameters(tiny_arch, [4], "init", torch.device("cpu"))
    for name in LAYER_NAMES:
        assert torch.equal(first[name], second[name]), name


def test_init_purposes_differ(tiny_arch):
    same = initial_parameters(tiny_arch, [4], "init", torch.device("cpu"))
    cross = initial_parameters(tiny_arch, [4], "cross-init", torch.device("cpu"))
    for name in ("layer1.weight", "layer2.weight", "output.weight"):
        assert not torch.equal(same[name], cross[name]), name


def test_init_seeds_differ(tiny_arch):
    params = initial_parameters(tiny_arch, [0, 1], "init", torch.device("cpu"))
    assert not torch.equal(params["layer1.weight"][0], params["layer1.weight"][1])


@pytest.mark.parametrize("batch", [[5], [5, 0], [9, 5, 2], [5, 7, 8, 11]])
def test_init_independent_of_other_seeds(tiny_arch, batch):
    alone = initial_parameters(tiny_arch, [5], "init", torch.device("cpu"))
    together = initial_parameters(tiny_arch, batch, "init", torch.device("cpu"))
    position = batch.index(5)
    for name in LAYER_NAMES:
        assert torch.equal(together[name][position], alone[name][0]), name


def test_forward_seeds_independent(tiny_arch):
    images = uniform_images(6, INPUT_SIZE)
    pair = make_model(tiny_arch, [3, 4])(images)
    alone = make_model(tiny_arch, [4])(images)
    torch.testing.assert_close(pair[1], alone[0], rtol=0, atol=1e-6)


def test_accuracy_matches_argmax(tiny_arch):
    model = make_model(tiny_arch, [0, 1])
    images = uniform_images(50, INPUT_SIZE)
    labels = torch.randint(NUM_CLASSES, (50,), generator=torch.Generator().manual_seed(0))
    expected = (class_logits(model(images)).argmax(-1) == labels).float().mean(-1)
    measured = accuracy(model, images, labels, chunk=16)
    torch.testing.assert_close(measured, expected, rtol=0, atol=1e-7)


def test_accuracy_ignores_aux_logits(tiny_arch):
    model = make_model(tiny_arch, [0])
    with torch.no_grad():
        model.output_bias[0, NUM_CLASSES:] = 1e6
    images = uniform_images(20, INPUT_SIZE)
    predictions = class_logits(model(images)).argmax(-1)
    assert accuracy(model, images, predictions[0]).item() == 1.0
