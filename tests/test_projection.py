"""Projection of the distillation gradient away from a direction."""

from __future__ import annotations

import pytest
import torch

from sublim_core.alignment import inner, norm
from sublim_core.config import StudentArm
from sublim_core.projection import PROJECTION_MODES, project, random_directions
from sublim_core.seeding import cpu_generator
from sublim_core.training import distill_students

SHAPES = [(3, 6, 4), (3, 4), (3, 4, 2), (3, 2)]


def random_gradients(seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in SHAPES]


def with_signs(grads: list[torch.Tensor], direction: list[torch.Tensor],
               signs: list[float]) -> list[torch.Tensor]:
    """Flip each seed's gradient so that its inner product with `direction` has `signs`."""
    dot = inner(grads, direction)
    flip = torch.tensor(signs, dtype=torch.float64) * dot.sign()
    return [g * flip.view(-1, *([1] * (g.dim() - 1))) for g in grads]


def test_positive_projects_to_orthogonal():
    direction = random_gradients(1)
    grads = with_signs(random_gradients(0), direction, [1.0, 1.0, 1.0])
    projected, fired = project(grads, direction, "positive")
    assert fired.tolist() == [True, True, True]
    residual = inner(projected, direction) / (norm(projected) * norm(direction))
    assert residual.abs().max().item() < 1e-12


def test_positive_matches_formula():
    direction = random_gradients(1)
    grads = with_signs(random_gradients(0), direction, [1.0, 1.0, 1.0])
    projected, _ = project(grads, direction, "positive")
    coefficient = inner(grads, direction) / inner(direction, direction)
    for g, d, p in zip(grads, direction, projected, strict=True):
        expected = g - coefficient.view(-1, *([1] * (g.dim() - 1))) * d
        torch.testing.assert_close(p, expected, rtol=0, atol=1e-12)


def test_positive_skips_negative_inner():
    direction = random_gradients(1)
    grads = with_signs(random_gradients(0), direction, [1.0, -1.0, 1.0])
    projected, fired = project(grads, direction, "positive")
    assert fired.tolist() == [True, False, True]
    for g, p in zip(grads, projected, strict=True):
        assert torch.equal(p[1], g[1])
    assert abs(inner(projected, direction)[0].item()) < 1e-10


def test_positive_skips_zero_inner():
    direction = [torch.zeros(shape, dtype=torch.float64) for shape in SHAPES]
    direction[0][:, 0, 0] = 1.0
    grads = random_gradients(0)
    for g in grads:
        g[:, 0, ...] = 0.0
    projected, fired = project(grads, direction, "positive")
    assert fired.tolist() == [False, False, False]
    for g, p in zip(grads, projected, strict=True):
        assert torch.equal(p, g)


def test_always_projects_negative_inner():
    direction = random_gradients(1)
    grads = with_signs(random_gradients(0), direction, [-1.0, -1.0, 1.0])
    projected, fired = project(grads, direction, "always")
    assert fired.tolist() == [True, True, True]
    residual = inner(projected, direction) / (norm(projected) * norm(direction))
    assert residual.abs().max().item() < 1e-12


def test_random_mode_skips_negative_inner():
    direction = random_gradients(1)
    grads = with_signs(random_gradients(0), direction, [-1.0, 1.0, -1.0])
    projected, fired = project(grads, direction, "random")
    assert fired.tolist() == [False, True, False]
    for g, p in zip(grads, projected, strict=True):
        assert torch.equal(p[0], g[0])


@pytest.mark.parametrize("mode", ["positive", "always", "random"])
def test_zero_direction_unchanged(mode):
    grads = random_gradients(0)
    direction = [torch.zeros_like(g) for g in grads]
    projected, fired = project(grads, direction, mode)
    assert not fired.any()
    for g, p in zip(grads, projected, strict=True):
        assert torch.equal(p, g)


def test_zero_direction_one_seed():
    grads = random_gradients(0)
    direction = random_gradients(1)
    for d in direction:
        d[2] = 0.0
    projected, fired = project(grads, direction, "always")
    assert fired.tolist() == [True, True, False]
    for g, p in zip(grads, projected, strict=True):
        assert torch.equal(p[2], g[2])


def test_none_returns_input():
    grads = random_gradients(0)
    projected, fired = project(grads, random_gradients(1), "none")
    assert projected is grads
    assert fired.dtype == torch.bool
    assert fired.tolist() == [False, False, False]


def test_unknown_mode():
    with pytest.raises(ValueError) as raised:
        project(random_gradients(0), random_gradients(1), "orthogonal")
    assert "projection='orthogonal'" in str(raised.value)


def test_modes_listed():
    assert set(PROJECTION_MODES) == {"none", "positive", "always", "random"}


# Random directions.

def direction_generators(seeds: list[int]) -> list[torch.Generator]:
    return [cpu_generator(seed, "random-direction") for seed in seeds]


def test_random_directions_unit_norm():
    shapes = [torch.Size(shape[1:]) for shape in SHAPES]
    directions = random_directions(shapes, direction_generators([0, 1, 2]),
                                   torch.device("cpu"))
    for d, shape in zip(directions, SHAPES, strict=True):
        assert d.shape == shape
    torch.testing.assert_close(norm(directions), torch.ones(3), rtol=1e-6, atol=0)


def test_random_directions_reproducible():
    shapes = [torch.Size(shape[1:]) for shape in SHAPES]
    first = random_directions(shapes, direction_generators([0, 1]), torch.device("cpu"))
    second = random_directions(shapes, direction_generators([0, 1]), torch.device("cpu"))
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


def test_random_directions_seed_independent():
    shapes = [torch.Size(shape[1:]) for shape in SHAPES]
    alone = random_directions(shapes, direction_generators([5]), torch.device("cpu"))
    beside = random_directions(shapes, direction_generators([2, 5]), torch.device("cpu"))
    for a, b in zip(alone, beside, strict=True):
        assert torch.equal(a[0], b[1])


def test_random_directions_fresh_each_draw():
    shapes = [torch.Size(shape[1:]) for shape in SHAPES]
    generators = direction_generators([0])
    first = random_directions(shapes, generators, torch.device("cpu"))
    second = random_directions(shapes, generators, torch.device("cpu"))
    assert not torch.equal(first[0], second[0])


# Projection inside the distillation loop.

def test_positive_arm_removes_trait_component(tiny_config, tiny_teacher, same_init, digits,
                                              cpu):
    arm = StudentArm("positive", projection="positive", probe_every=1, probe_batch_size=64)
    frame = distill_students(tiny_config, arm, tiny_teacher, same_init, digits, cpu).to_frame()
    fired = frame[frame.metric == "projection_fired"].value
    assert len(fired) == 2 * tiny_config.total_steps
    assert set(fired) <= {0.0, 1.0}
    applied_cos = frame[frame.metric == "applied_cos"].value
    assert len(applied_cos) == 2 * tiny_config.total_steps
    assert applied_cos.max() < 1e-5
    fired_rows = frame[frame.metric == "projection_fired"].set_index(["seed", "step"]).value
    cos_rows = frame[frame.metric == "cos"].set_index(["seed", "step"]).value
    assert ((cos_rows > 0) == (fired_rows == 1.0)).all()


def test_random_arm_records_firing(tiny_config, tiny_teacher, same_init, digits, cpu):
    arm = StudentArm("random", projection="random")
    frame = distill_students(tiny_config, arm, tiny_teacher, same_init, digits, cpu).to_frame()
    fired = frame[frame.metric == "projection_fired"].value
    assert len(fired) == 2 * tiny_config.total_steps
    assert set(fired) <= {0.0, 1.0}
    assert "cos" not in set(frame.metric)
