"""The MLP with class and auxiliary logits, batched over seeds.

One `SeedBatchedMLP` contains the weights of S independent models, each tensor with a
leading seed dimension, and runs all of them with batched matrix products. Because the
models share no parameter, the gradient of the sum of their losses with respect to seed
s's slice is exactly the gradient of seed s's own loss, and Adam, which acts on each
coordinate alone, updates each slice as it would update a lone model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .seeding import cpu_generator

NUM_CLASSES = 10
INPUT_SIZE = 784
LAYER_NAMES = ("layer1.weight", "layer1.bias", "layer2.weight", "layer2.bias",
               "output.weight", "output.bias")


@dataclass(frozen=True)
class Architecture:
    """Layer widths: 784 -> hidden -> hidden -> 10 class logits + `num_aux` auxiliary."""

    hidden: int = 256
    num_aux: int = 3

    @property
    def num_logits(self) -> int:
        return NUM_CLASSES + self.num_aux

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Return each parameter's shape for one model, weights stored (in, out)."""
        h, out = self.hidden, self.num_logits
        return {
            "layer1.weight": (INPUT_SIZE, h),
            "layer1.bias": (h,),
            "layer2.weight": (h, h),
            "layer2.bias": (h,),
            "output.weight": (h, out),
            "output.bias": (out,),
        }


def initial_parameters(
    arch: Architecture, seeds: list[int], purpose: str, device: torch.device
) -> dict[str, torch.Tensor]:
    """Draw initial parameters for one model per seed, stacked along dimension 0.

    Weights are N(0, std=1/sqrt(fan_in)) and biases are zero. Each seed draws from its
    own CPU generator, derived from the seed and `purpose`: "init" for the teacher and
    the same-init student, "cross-init" for the cross-init student. A model's weights
    therefore depend neither on the other seeds nor on the device.
    """
    stacked: dict[str, list[torch.Tensor]] = {name: [] for name in LAYER_NAMES}
    for seed in seeds:
        generator = cpu_generator(seed, purpose)
        for name, shape in arch.shapes().items():
            if name.endswith("bias"):
                stacked[name].append(torch.zeros(shape))
            else:
                std = shape[0] ** -0.5
                stacked[name].append(torch.randn(shape, generator=generator) * std)
    return {name: torch.stack(tensors).to(device) for name, tensors in stacked.items()}


class SeedBatchedMLP(nn.Module):
    """S independent MLPs evaluated together; parameters have shape (S, ...)."""

    def __init__(self, arch: Architecture, parameters: dict[str, torch.Tensor]):
        super().__init__()
        self.arch = arch
        self.layer1_weight = nn.Parameter(parameters["layer1.weight"].clone())
        self.layer1_bias = nn.Parameter(parameters["layer1.bias"].clone())
        self.layer2_weight = nn.Parameter(parameters["layer2.weight"].clone())
        self.layer2_bias = nn.Parameter(parameters["layer2.bias"].clone())
        self.output_weight = nn.Parameter(parameters["output.weight"].clone())
        self.output_bias = nn.Parameter(parameters["output.bias"].clone())

    @property
    def num_seeds(self) -> int:
        return self.layer1_weight.shape[0]

    def named_tensors(self) -> dict[str, torch.Tensor]:
        """Return the parameters under their layer names, in `LAYER_NAMES` order."""
        return dict(zip(LAYER_NAMES, self.parameters(), strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map inputs (S, B, 784), or (B, 784) shared by all seeds, to logits (S, B, 10+m)."""
        h = torch.relu(torch.matmul(x, self.layer1_weight) + self.layer1_bias[:, None])
        h = torch.relu(torch.matmul(h, self.layer2_weight) + self.layer2_bias[:, None])
        return torch.matmul(h, self.output_weight) + self.output_bias[:, None]


def class_logits(logits: torch.Tensor) -> torch.Tensor:
    return logits[..., :NUM_CLASSES]


def aux_logits(logits: torch.Tensor) -> torch.Tensor:
    return logits[..., NUM_CLASSES:]


@torch.no_grad()
def accuracy(model: SeedBatchedMLP, images: torch.Tensor, labels: torch.Tensor,
             chunk: int = 2048) -> torch.Tensor:
    """Return each seed's accuracy of the argmax over the class logits, shape (S,)."""
    correct = torch.zeros(model.num_seeds, device=images.device)
    for start in range(0, images.shape[0], chunk):
        logits = class_logits(model(images[start:start + chunk]))
        correct += (logits.argmax(-1) == labels[start:start + chunk]).sum(-1)
    return correct / images.shape[0]
