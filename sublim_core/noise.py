"""Fixed per-student sets of uniform noise images, generated on demand.

A student's noise set is a fixed list of `size` images with pixels uniform in [-1, 1)
on a grid of 2**16 levels. Image `i` of a set is a pure function of the set's seed and
`i`, computed by a counter-based hash, so no set is ever held in memory: a batch is
generated from its image indices on the training device. Memory is therefore
independent of the set size, which lets 100 students each keep a 60,000-image set
(about 19 GB as float32 tensors). Epoch reshuffling is a permutation of the indices.

The hash runs on int32 tensors and relies on multiplication wrapping modulo 2**32, as it
does in PyTorch's CPU and CUDA kernels (two's-complement hardware arithmetic).
NOTE: the CPU path is tested here; CUDA is expected to give bit-identical images by
the same arithmetic but was not compared on a GPU.
"""

from __future__ import annotations

import torch

from .seeding import derived_seed

IMAGE_PIXELS = 784
_WORDS_PER_IMAGE = IMAGE_PIXELS // 2  # each 32-bit hash yields two 16-bit pixels
_GOLDEN32 = -1640531527  # 0x9E3779B9 as a signed 32-bit integer
_MULTIPLIER_A = 0x7FEB352D
_MULTIPLIER_B = -2073454965  # 0x846CA68B as a signed 32-bit integer


def mix32(x: torch.Tensor) -> torch.Tensor:
    """Scramble int32 values (a murmur3-style finaliser with logical right shifts)."""
    return _mix32_(x.clone())


def _mix32_(x: torch.Tensor) -> torch.Tensor:
    """`mix32` in place, which saves the allocations on large batches."""
    x ^= (x >> 16) & 0xFFFF
    x *= _MULTIPLIER_A
    x ^= (x >> 15) & 0x1FFFF
    x *= _MULTIPLIER_B
    x ^= (x >> 16) & 0xFFFF
    return x


def _to_int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= (1 << 31) else value


class NoiseSets:
    """The noise sets of several students, one per seed, batched over seeds.

    Args:
        seeds: run seed of each student, in batch order.
        size: number of images in each set.
        device: device on which batches are generated.
    """

    def __init__(self, seeds: list[int], size: int, device: torch.device):
        self.size = size
        self.device = device
        keys = [_to_int32(derived_seed(seed, "noise-images")) for seed in seeds]
        self._keys = mix32(torch.tensor(keys, dtype=torch.int32, device=device))
        words = torch.arange(1, _WORDS_PER_IMAGE + 1, dtype=torch.int32, device=device)
        self._word_keys = mix32(words * _GOLDEN32)

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        """Return the images at `indices`, shape (seeds, batch), as (seeds, batch, 784)."""
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.size):
            raise IndexError(f"noise image indices must lie in [0, {self.size})")
        image_keys = mix32(self._keys[:, None] ^ mix32(indices.to(torch.int32)))
        words = _mix32_(image_keys[..., None] ^ self._word_keys)
        pixels = torch.empty((*indices.shape, _WORDS_PER_IMAGE, 2), dtype=torch.float32,
                             device=self.device)
        pixels[..., 0] = words & 0xFFFF
        pixels[..., 1] = (words >> 16) & 0xFFFF
        return pixels.view(*indices.shape, IMAGE_PIXELS).mul_(2.0 / 65536.0).sub_(1.0)
