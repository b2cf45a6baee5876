"""Counter-based noise images: determinism, independence and distribution."""

from __future__ import annotations

import math

import pytest
import torch

from sublim_core.noise import IMAGE_PIXELS, NoiseSets

CPU = torch.device("cpu")


def images_at(seeds: list[int], indices: list[int], size: int = 1000) -> torch.Tensor:
    noise = NoiseSets(seeds, size, CPU)
    index_tensor = torch.tensor(indices).expand(len(seeds), len(indices))
    return noise.images(index_tensor)


def test_images_shape_and_dtype():
    images = images_at([0, 1, 2], [0, 5, 9])
    assert images.shape == (3, 3, IMAGE_PIXELS)
    assert images.dtype == torch.float32


def test_images_deterministic():
    assert torch.equal(images_at([4], [0, 17, 99]), images_at([4], [0, 17, 99]))


def test_images_order_independent():
    forward = images_at([4], [3, 10, 42])
    backward = images_at([4], [42, 10, 3])
    assert torch.equal(forward[0, 0], backward[0, 2])
    assert torch.equal(forward[0, 1], backward[0, 1])
    assert torch.equal(forward[0, 2], backward[0, 0])


def test_images_batch_independent():
    alone = images_at([4], [10])
    in_batch = images_at([4], [0, 1, 10, 500])
    assert torch.equal(alone[0, 0], in_batch[0, 2])


def test_images_independent_of_other_seeds():
    alone = images_at([6], [0, 7])
    beside = images_at([1, 6, 9], [0, 7])
    assert torch.equal(alone[0], beside[1])


def test_images_independent_of_set_size():
    assert torch.equal(images_at([2], [5], size=10), images_at([2], [5], size=60_000))


def test_per_seed_indices():
    noise = NoiseSets([0, 1], 100, CPU)
    images = noise.images(torch.tensor([[3, 4], [8, 9]]))
    assert torch.equal(images[1, 0], images_at([1], [8], size=100)[0, 0])
    assert torch.equal(images[0, 1], images_at([0], [4], size=100)[0, 0])


def test_seeds_differ():
    images = images_at([0, 1], [0])
    assert not torch.equal(images[0, 0], images[1, 0])


def test_indices_differ():
    images = images_at([0], [0, 1])
    assert not torch.equal(images[0, 0], images[0, 1])


def test_values_in_half_open_range():
    images = images_at([0, 1], list(range(256)))
    assert images.min().item() >= -1.0
    assert images.max().item() < 1.0


def test_values_on_16_bit_grid():
    images = images_at([3], list(range(8)))
    levels = (images + 1.0) * 32768.0
    assert torch.equal(levels, levels.round())


def test_distribution_moments():
    images = images_at([0, 1], list(range(1000)))
    assert abs(images.mean().item()) < 0.005
    assert images.std().item() == pytest.approx(1 / math.sqrt(3), rel=0.01)


def test_pixels_uncorrelated():
    images = images_at([5], list(range(500)))[0]
    neighbours = torch.corrcoef(torch.stack([images[:, :-1].flatten(),
                                             images[:, 1:].flatten()]))[0, 1]
    assert abs(neighbours.item()) < 0.01


def test_index_out_of_range():
    noise = NoiseSets([0], 10, CPU)
    with pytest.raises(IndexError, match=r"\[0, 10\)"):
        noise.images(torch.tensor([[10]]))


def test_negative_index():
    noise = NoiseSets([0], 10, CPU)
    with pytest.raises(IndexError):
        noise.images(torch.tensor([[-1]]))
