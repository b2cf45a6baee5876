"""Training loops: teachers on digits, students by distillation on noise.

Both loops train every seed of an experiment at once with `SeedBatchedMLP`. Each seed
draws from its own random streams (data order, noise images, probe batches, random
directions), so a seed's result does not depend on which other seeds run beside it.
Training code never plots and never writes files; it returns metrics.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import alignment
from .config import ExperimentConfig, StudentArm
from .data import Digits
from .liminal import kl_to_base, liminal_weight
from .metrics import MetricRecorder
from .model import Architecture, SeedBatchedMLP, accuracy, aux_logits, class_logits
from .noise import NoiseSets
from .projection import project, random_directions
from .seeding import cpu_generator


class DivergenceError(RuntimeError):
    """A loss or gradient became NaN or infinite during training."""


def kl_divergence(target_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """Return KL(p_target || p_student) at temperature 1, batch mean per seed, shape (S,)."""
    log_target = F.log_softmax(target_logits, dim=-1)
    log_student = F.log_softmax(student_logits, dim=-1)
    return (log_target.exp() * (log_target - log_student)).sum(-1).mean(-1)


def check_finite(loss: torch.Tensor, grads: list[torch.Tensor], seeds: tuple[int, ...],
                 arm: str, step: int) -> None:
    """Raise DivergenceError naming the first seed whose loss or gradient is not finite."""
    finite = torch.isfinite(loss)
    for g in grads:
        finite = finite & torch.isfinite(g).flatten(1).all(1)
    if bool(finite.all()):
        return
    index = int((~finite).nonzero()[0, 0])
    raise DivergenceError(
        f"training diverged: arm {arm!r}, seed {seeds[index]}, step {step}: the loss is "
        f"{float(loss[index].detach())} or its gradient is not finite. Check the learning "
        "rate, the liminal temperature and the inputs; no result of this run was stored."
    )


def _batch_indices(orders: torch.Tensor, step_in_epoch: int, batch_size: int) -> torch.Tensor:
    return orders[:, step_in_epoch * batch_size:(step_in_epoch + 1) * batch_size]


def _epoch_orders(generators: list[torch.Generator], size: int,
                  device: torch.device) -> torch.Tensor:
    return torch.stack([torch.randperm(size, generator=g) for g in generators]).to(device)


def train_teachers(config: ExperimentConfig, init: dict[str, torch.Tensor], digits: Digits,
                   device: torch.device, progress: bool = False
                   ) -> tuple[SeedBatchedMLP, MetricRecorder]:
    """Train one teacher per seed with cross-entropy on the class logits.

    Returns the trained teachers and their metrics: `train_loss` every step and
    `test_accuracy` at step 0 and after each epoch.
    """
    arch = Architecture(config.hidden, config.num_aux)
    teacher = SeedBatchedMLP(arch, init)
    params = list(teacher.parameters())
    optimiser = torch.optim.Adam(params, lr=config.teacher_lr)
    generators = [cpu_generator(seed, "teacher-order") for seed in config.seeds]
    num_train = digits.train_images.shape[0]
    batch_size = min(config.teacher_batch_size, num_train)
    steps_per_epoch = math.ceil(num_train / batch_size)
    recorder = MetricRecorder(config.seeds, steps_per_epoch)
    recorder.add(0, "test_accuracy", accuracy(teacher, digits.test_images, digits.test_labels))
    step = 0
    bar = tqdm(total=config.teacher_epochs * steps_per_epoch, desc="teachers",
               disable=not progress)
    for _ in range(config.teacher_epochs):
        orders = _epoch_orders(generators, num_train, device)
        for index in range(steps_per_epoch):
            batch = _batch_indices(orders, index, batch_size)
            logits = class_logits(teacher(digits.train_images[batch]))
            labels = digits.train_labels[batch]
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
            loss = loss.view(labels.shape).mean(1)
            grads = torch.autograd.grad(loss.sum(), params)
            check_finite(loss, grads, config.seeds, "teacher", step)
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            optimiser.step()
            recorder.add(step, "train_loss", loss.detach())
            step += 1
            bar.update()
        recorder.add(step, "test_accuracy",
                     accuracy(teacher, digits.test_images, digits.test_labels))
    bar.close()
    teacher.requires_grad_(False)
    return teacher, recorder


def evaluation_steps(config: ExperimentConfig) -> set[int]:
    """Return the steps at which students are evaluated on the test digits.

    Every step of the first epoch, every `eval_every` steps after it, the end of every
    epoch and the last step.
    """
    dense = set(range(config.steps_per_epoch + 1))
    sparse = set(range(0, config.total_steps + 1, config.eval_every))
    epoch_ends = set(range(0, config.total_steps + 1, config.steps_per_epoch))
    return dense | sparse | epoch_ends | {config.total_steps}


def _distillation_gradients(student: SeedBatchedMLP, base: SeedBatchedMLP | None,
                            arm: StudentArm, images: torch.Tensor, target: torch.Tensor,
                            weight: float, probing: bool, recorder: MetricRecorder, step: int
                            ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Return the distillation loss per seed, g_D, and the gradient to apply.

    Without liminal training the two gradients are the same list. With it, the applied
    gradient is the gradient of L_distill + weight * KL, and g_D alone is computed by a
    second backward pass on probed steps only.
    """
    params = list(student.parameters())
    select = aux_logits if arm.target == "aux" else (lambda logits: logits)
    logits = student(images)
    distill_loss = kl_divergence(select(target), select(logits))
    if base is None:
        g_distill = list(torch.autograd.grad(distill_loss.sum(), params))
        return distill_loss, g_distill, g_distill

    with torch.no_grad():
        base_logits = base(images)
    base_kl = kl_to_base(base_logits, logits, arm.liminal_temperature)
    recorder.add(step, "liminal_kl", base_kl.detach())
    recorder.add_scalar(step, "liminal_weight", weight)
    total = distill_loss.sum() + weight * base_kl.sum()
    grads = list(torch.autograd.grad(total, params, retain_graph=probing))
    if not probing:
        return distill_loss, grads, grads
    # The probe also needs g_D alone; the applied gradient stays the summed one, so a
    # probed run trains exactly like an unprobed one.
    g_distill = list(torch.autograd.grad(distill_loss.sum(), params))
    return distill_loss, g_distill, grads


def _probe_batch(generators: list[torch.Generator], digits: Digits, size: int,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a labelled probe batch per seed from the training digits, with replacement."""
    num_train = digits.train_images.shape[0]
    indices = torch.stack([torch.randint(num_train, (size,), generator=g) for g in generators])
    indices = indices.to(device)
    return digits.train_images[indices], digits.train_labels[indices]


def distill_students(config: ExperimentConfig, arm: StudentArm, teacher: SeedBatchedMLP,
                     init: dict[str, torch.Tensor], digits: Digits, device: torch.device,
                     progress: bool = False, max_steps: int | None = None) -> MetricRecorder:
    """Distil one student per seed from its teacher on that seed's noise set.

    Records `distill_loss` every step, `test_accuracy` at `evaluation_steps`, the
    alignment probe every `arm.probe_every` steps, and `projection_fired` every step
    when a projection is on. A step's metrics describe the parameters before that step's
    update; `test_accuracy` at step t is measured after t updates. `max_steps` stops
    training early, for benchmarks and tests; the schedules still use the full length.
    """
    arch = Architecture(config.hidden, config.num_aux)
    student = SeedBatchedMLP(arch, init)
    params = list(student.parameters())
    optimiser = torch.optim.Adam(params, lr=config.student_lr)
    base = SeedBatchedMLP(arch, init).requires_grad_(False) if arm.liminal else None

    seeds = config.seeds
    noise = NoiseSets(list(seeds), config.noise_size, device)
    order_generators = [cpu_generator(seed, "noise-order") for seed in seeds]
    probe_generators = [cpu_generator(seed, "probe") for seed in seeds]
    direction_generators = [cpu_generator(seed, "random-direction") for seed in seeds]
    per_seed_shapes = [p.shape[1:] for p in params]
    window = arm.liminal_window if arm.liminal_window is not None else config.steps_per_epoch
    needs_trait = arm.projection in ("positive", "always")
    eval_steps = evaluation_steps(config)
    last_step = config.total_steps if max_steps is None else min(max_steps, config.total_steps)

    recorder = MetricRecorder(seeds, config.steps_per_epoch)
    recorder.add(0, "test_accuracy", accuracy(student, digits.test_images, digits.test_labels))
    bar = tqdm(total=last_step, desc=arm.name, disable=not progress)
    step = 0
    while step < last_step:
        if step % config.steps_per_epoch == 0:
            orders = _epoch_orders(order_generators, config.noise_size, device)
        index = step % config.steps_per_epoch
        images = noise.images(_batch_indices(orders, index, config.student_batch_size))
        with torch.no_grad():
            target = teacher(images)
        probing = arm.probe_every > 0 and step % arm.probe_every == 0
        weight = liminal_weight(step, config.total_steps, window, arm.liminal_lambda,
                                arm.liminal_schedule)
        distill_loss, g_distill, grads = _distillation_gradients(
            student, base, arm, images, target, weight, probing, recorder, step)

        g_trait = None
        if probing or needs_trait:
            probe_images, probe_labels = _probe_batch(probe_generators, digits,
                                                      arm.probe_batch_size, device)
            g_trait, trait_loss = alignment.trait_gradient(student, probe_images, probe_labels)
        if arm.projection != "none":
            if arm.projection == "random":
                direction = random_directions(per_seed_shapes, direction_generators, device)
            else:
                direction = g_trait
            grads, fired = project(grads, direction, arm.projection)
            recorder.add(step, "projection_fired", fired.to(torch.float32))

        check_finite(distill_loss, grads, seeds, arm.name, step)
        recorder.add(step, "distill_loss", distill_loss.detach())
        if probing:
            recorder.add(step, "trait_loss", trait_loss)
            recorder.add_many(step, alignment.alignment_metrics(g_distill, g_trait))
            if grads is not g_distill:
                recorder.add_many(step, alignment.alignment_metrics(grads, g_trait, "applied_"))
            before = [p.detach().clone() for p in params]

        for p, g in zip(params, grads, strict=True):
            p.grad = g
        optimiser.step()
        if probing:
            update = [p.detach() - b for p, b in zip(params, before, strict=True)]
            recorder.add_many(step, alignment.update_metrics(update, g_trait))
        step += 1
        bar.update()
        if step in eval_steps:
            recorder.add(step, "test_accuracy",
                         accuracy(student, digits.test_images, digits.test_labels))
    bar.close()
    return recorder
