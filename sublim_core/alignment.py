"""The alignment probe: how the distillation gradient lines up with the trait gradient.

Gradients are lists of tensors with a leading seed dimension, one per parameter in
`LAYER_NAMES` order. Every measure is computed per seed over the whole flattened
parameter vector, and the inner product and cosine also per parameter tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import LAYER_NAMES, SeedBatchedMLP, class_logits

Gradients = list[torch.Tensor]


def per_layer_inner(a: Gradients, b: Gradients) -> list[torch.Tensor]:
    """Return the inner product of each parameter tensor's slices, each of shape (S,)."""
    return [(x * y).flatten(1).sum(1) for x, y in zip(a, b, strict=True)]


def inner(a: Gradients, b: Gradients) -> torch.Tensor:
    """Return the inner product over the whole parameter vector, shape (S,)."""
    return torch.stack(per_layer_inner(a, b)).sum(0)


def norm(a: Gradients) -> torch.Tensor:
    """Return the Euclidean norm over the whole parameter vector, shape (S,)."""
    return inner(a, a).sqrt()


def cosine(a: Gradients, b: Gradients, eps: float = 1e-30) -> torch.Tensor:
    """Return the cosine over the whole parameter vector, shape (S,); 0 if either is zero."""
    return inner(a, b) / (norm(a) * norm(b)).clamp_min(eps)


def trait_gradient(model: SeedBatchedMLP, images: torch.Tensor, labels: torch.Tensor
                   ) -> tuple[Gradients, torch.Tensor]:
    """Return the trait gradient g_T and the trait loss per seed.

    The trait loss is the cross-entropy of the class logits on a labelled probe batch,
    images (S, P, 784) and labels (S, P), averaged over the batch for each seed.
    """
    logits = class_logits(model(images))
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
    loss = loss.view(labels.shape).mean(1)
    grads = torch.autograd.grad(loss.sum(), list(model.parameters()))
    return list(grads), loss.detach()


def alignment_metrics(g_distill: Gradients, g_trait: Gradients, prefix: str = ""
                      ) -> dict[str, torch.Tensor]:
    """Return cosine, inner product and norms of two gradients, whole and per layer.

    Keys are `{prefix}cos`, `{prefix}inner`, `{prefix}norm_distill`, and
    `{prefix}inner[layer]` and `{prefix}cos[layer]` for each parameter tensor, plus
    `norm_trait` when there is no prefix.
    """
    layer_inner = per_layer_inner(g_distill, g_trait)
    total = torch.stack(layer_inner).sum(0)
    norm_distill, norm_trait = norm(g_distill), norm(g_trait)
    metrics = {
        f"{prefix}cos": total / (norm_distill * norm_trait).clamp_min(1e-30),
        f"{prefix}inner": total,
        f"{prefix}norm_distill": norm_distill,
    }
    if not prefix:
        metrics["norm_trait"] = norm_trait
    for name, layer_value, a, b in zip(LAYER_NAMES, layer_inner, g_distill, g_trait,
                                       strict=True):
        layer_norms = a.flatten(1).norm(dim=1) * b.flatten(1).norm(dim=1)
        metrics[f"{prefix}inner[{name}]"] = layer_value
        metrics[f"{prefix}cos[{name}]"] = layer_value / layer_norms.clamp_min(1e-30)
    return metrics


def update_metrics(update: Gradients, g_trait: Gradients) -> dict[str, torch.Tensor]:
    """Measure the parameter change an optimiser step applied against the trait gradient.

    `update_cos` is cos(delta, -g_T): positive when the step moves down the trait loss.
    `predicted_trait_change` is g_T . delta, the first-order change of the trait loss.
    """
    negative_trait = [-g for g in g_trait]
    return {
        "update_cos": cosine(update, negative_trait),
        "predicted_trait_change": inner(g_trait, update),
    }
