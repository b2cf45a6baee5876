"""Projection of the distillation gradient away from the trait gradient.

Modes, applied to the gradient before the optimiser step:

- ``none``: the gradient is left alone.
- ``positive``: if g_D . d > 0, g_D <- g_D - (g_D . d / |d|^2) d, with d = g_T.
- ``always``: the same projection whatever the sign of g_D . d.
- ``random``: the ``positive`` rule with d a fresh random unit direction each step, a
  control for the effect of removing one direction at all.

A zero direction leaves the gradient unchanged.
"""

from __future__ import annotations

import torch

from .alignment import Gradients, inner

PROJECTION_MODES = ("none", "positive", "always", "random")


def project(grads: Gradients, direction: Gradients, mode: str
            ) -> tuple[Gradients, torch.Tensor]:
    """Project each seed's gradient by `mode`; return it and a (S,) mask of where it fired."""
    if mode not in PROJECTION_MODES:
        raise ValueError(f"projection={mode!r} is invalid; allowed values are "
                         f"{list(PROJECTION_MODES)}")
    if mode == "none":
        return grads, torch.zeros(grads[0].shape[0], dtype=torch.bool, device=grads[0].device)
    dot = inner(grads, direction)
    squared_norm = inner(direction, direction)
    fires = squared_norm > 0
    if mode in ("positive", "random"):
        fires = fires & (dot > 0)
    coefficient = torch.where(fires, dot / squared_norm.clamp_min(1e-30),
                              torch.zeros_like(dot))
    projected = []
    for g, d in zip(grads, direction, strict=True):
        shape = (-1,) + (1,) * (g.dim() - 1)
        projected.append(g - coefficient.view(shape) * d)
    return projected, fires


def random_directions(shapes: list[torch.Size], generators: list[torch.Generator],
                      device: torch.device) -> Gradients:
    """Draw one random unit direction per seed over the whole parameter vector.

    `shapes` are the per-seed parameter shapes. Each seed draws from its own CPU
    generator, so the directions do not depend on the device or on the other seeds.
    """
    per_seed = []
    for generator in generators:
        parts = [torch.randn(shape, generator=generator) for shape in shapes]
        total = torch.sqrt(sum((part * part).sum() for part in parts))
        per_seed.append([part / total for part in parts])
    return [torch.stack([seed_parts[i] for seed_parts in per_seed]).to(device)
            for i in range(len(shapes))]
