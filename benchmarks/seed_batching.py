"""Benchmark seed batching: one batched run of S students against S single-seed runs.

One invocation measures, on one device:

1. the float32 matmul peak of the device (best of several square matmuls);
2. the throughput of same-init, aux-only distillation trained as S separate library runs
   (`ExperimentConfig(seeds=(s,))`, one after another) and as one run over all S seeds,
   over the same number of steps, and the achieved GFLOP/s of each;
3. the peak memory of a student run over `--memory-seeds` seeds with a full-size noise
   set, in a child process, next to the size of the noise images as float32 tensors.

Teachers are trained for one epoch on mnist-5k (63 steps at batch 64) before timing
starts, so teacher training is never inside a timed region. The memory run leaves its
teachers at their initial weights, which does not change the memory a step needs.

Run `python benchmarks/seed_batching.py --help` for the options.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from sublim_core import Experiment, ExperimentConfig, StudentArm
from sublim_core.data import MNIST_5K_TEST_SIZE, Digits, load_digits
from sublim_core.device import resolve_device
from sublim_core.model import INPUT_SIZE, Architecture, SeedBatchedMLP
from sublim_core.noise import NoiseSets
from sublim_core.training import distill_students, evaluation_steps

logger = logging.getLogger("seed_batching")

DATASET = "mnist-5k"
TEACHER_EPOCHS = 1
CALIBRATION_EPOCHS = 2
BYTES_PER_FLOAT32 = 4
LEFT_OUT_OF_FLOP_COUNT = (
    "bias additions, ReLU, log-softmax and KL",
    "the Adam update (about a dozen elementwise operations per parameter)",
    "noise image generation (integer hashing, about 12 operations per pair of pixels)",
    "the per-epoch index permutation",
    "test-set evaluation (reported separately as evaluation_flops_per_seed)",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare seed-steps per second of the per-seed loop and the "
                    "seed-batched path, and measure the memory of a many-seed run.")
    parser.add_argument("--seeds", type=int, default=16,
                        help="number of seeds S (seeds 0..S-1) in both timed paths "
                             "(default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None,
                        help="student steps per seed in each timed path, rounded up to "
                             "whole epochs; by default chosen from --time-budget")
    parser.add_argument("--time-budget", type=float, default=60.0,
                        help="target seconds for both timed paths together, used only "
                             "when --steps is not given (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=1024,
                        help="noise images per student step (default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=256,
                        help="width of both hidden layers (default: %(default)s)")
    parser.add_argument("--steps-per-epoch", type=int, default=4,
                        help="student steps per epoch in the timed paths, which sets the "
                             "noise set to steps-per-epoch x batch-size images "
                             "(default: %(default)s)")
    parser.add_argument("--device", default="auto",
                        help="'auto', 'cpu', 'cuda' or 'cuda:N' (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch.set_num_threads (default: torch's own "
                             "choice)")
    parser.add_argument("--output", type=Path, default=None,
                        help="path of the JSON record to write (default: print only)")
    parser.add_argument("--matmul-size", type=int, default=None,
                        help="side n of the n x n float32 matmuls that measure the peak "
                             "(default: 4096 on CUDA, 2048 on CPU)")
    parser.add_argument("--matmul-repeats", type=int, default=10,
                        help="timed matmuls; the fastest one gives the peak "
                             "(default: %(default)s)")
    parser.add_argument("--memory-seeds", type=int, default=100,
                        help="seeds in the memory run, or 0 to skip it "
                             "(default: %(default)s)")
    parser.add_argument("--memory-noise-size", type=int, default=60_000,
                        help="noise images per seed in the memory run (default: %(default)s)")
    parser.add_argument("--memory-steps", type=int, default=5,
                        help="student steps of the memory run (default: %(default)s)")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads={args.threads} is invalid; expected an integer >= 1")
    for name in ("seeds", "batch_size", "hidden", "steps_per_epoch", "matmul_repeats",
                 "memory_steps", "memory_noise_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}={getattr(args, name)} is invalid; "
                         "expected an integer >= 1")
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps={args.steps} is invalid; expected an integer >= 1")
    if args.memory_seeds < 0:
        parser.error(f"--memory-seeds={args.memory_seeds} is invalid; expected an "
                     "integer >= 0")
    if args.time_budget <= 0:
        parser.error(f"--time-budget={args.time_budget} is invalid; expected seconds > 0")
    if args.memory_seeds and args.batch_size > args.memory_noise_size:
        parser.error(f"--batch-size={args.batch_size} exceeds --memory-noise-size="
                     f"{args.memory_noise_size}; lower the batch size")
    return args


# ----------------------------------------------------------------------------- machine


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def describe_machine(device: torch.device) -> dict:
    machine = {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "memory_total_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "device": str(device),
    }
    if device.type == "cuda":
        machine["cuda_device"] = torch.cuda.get_device_name(device)
        machine["cuda_version"] = torch.version.cuda
        machine["tf32_matmul_allowed"] = torch.backends.cuda.matmul.allow_tf32
    return machine


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages, which show other work on the CPU."""
    return [round(value, 2) for value in os.getloadavg()]


def measure_matmul_peak(device: torch.device, size: int, repeats: int) -> dict:
    """Time `repeats` float32 (size x size) @ (size x size) products, the fastest as GFLOP/s."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    left = torch.randn(size, size, generator=generator).to(device)
    right = torch.randn(size, size, generator=generator).to(device)
    torch.matmul(left, right)  # warm-up: thread pools, kernel selection
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(left, right)
        synchronize(device)
        times.append(time.perf_counter() - start)
    flops = 2 * size**3
    return {"size": size, "repeats": repeats, "best_seconds": min(times),
            "median_seconds": sorted(times)[len(times) // 2],
            "gflops": flops / min(times) / 1e9}


# ---------------------------------------------------------------------------- flops


def weight_count(arch: Architecture) -> int:
    """Return P, the number of weights (biases excluded) of one model."""
    return sum(math.prod(shape) for name, shape in arch.shapes().items()
               if name.endswith("weight"))


def count_flops(arch: Architecture, batch_size: int) -> dict:
    """Count the matmul FLOPs of one seed-step of aux-only distillation.

    The nominal count is 2BP for the teacher forward and 6BP for the student forward
    and backward. The student never needs the gradient of its input images. So the
    first layer's backward skips 2 * B * 784 * hidden FLOPs, which `exact` subtracts.
    """
    weights = weight_count(arch)
    nominal = 2 * batch_size * weights + 6 * batch_size * weights
    skipped_input_gradient = 2 * batch_size * INPUT_SIZE * arch.hidden
    return {
        "weights_per_model": weights,
        "nominal_per_seed_step": nominal,
        "exact_per_seed_step": nominal - skipped_input_gradient,
        "evaluation_flops_per_seed": 2 * MNIST_5K_TEST_SIZE * weights,
        "left_out": list(LEFT_OUT_OF_FLOP_COUNT),
    }


# --------------------------------------------------------------------------- timing


def student_config(seeds: tuple[int, ...], args: argparse.Namespace, device: torch.device,
                   epochs: int) -> ExperimentConfig:
    steps = epochs * args.steps_per_epoch
    return ExperimentConfig(
        dataset=DATASET,
        seeds=seeds,
        hidden=args.hidden,
        teacher_epochs=TEACHER_EPOCHS,
        student_epochs=epochs,
        student_batch_size=args.batch_size,
        noise_size=args.steps_per_epoch * args.batch_size,
        eval_every=steps,  # test-set evaluation only in the first epoch and at the end
        device=str(device),
    )


def time_student_run(config: ExperimentConfig, arm: StudentArm, digits: Digits,
                     repeats: int = 1) -> tuple[float, pd.DataFrame]:
    """Train the teachers untimed, then time `Experiment.run_arm` `repeats` times.

    Returns the seconds and metrics of the last run; earlier runs are warm-up. With no
    results cache, each call trains the students afresh.
    """
    experiment = Experiment(config, cache_dir=None, digits=digits)
    experiment.teachers()
    device = experiment.device
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        frame = experiment.run_arm(arm)
        synchronize(device)
        seconds = time.perf_counter() - start
    return seconds, frame


def choose_epochs(args: argparse.Namespace, device: torch.device, seeds: tuple[int, ...],
                 arm: StudentArm, digits: Digits) -> tuple[int, dict]:
    """Warm up both paths on a short run and pick the number of timed epochs.

    The batched path and the first seed alone each run twice. The first run warms up
    kernels, thread pools and allocator caches, and the second is timed. Unless --steps
    is given, the steps are chosen so that both paths take about --time-budget seconds.
    """
    short = student_config(seeds, args, device, CALIBRATION_EPOCHS)
    short_steps = short.total_steps
    batched_seconds, _ = time_student_run(short, arm, digits, repeats=2)
    single = student_config(seeds[:1], args, device, CALIBRATION_EPOCHS)
    single_seconds, _ = time_student_run(single, arm, digits, repeats=2)
    estimate = {
        "calibration_steps": short_steps,
        "batched_seconds_per_step": batched_seconds / short_steps,
        "per_seed_loop_seconds_per_step_estimate": single_seconds * len(seeds) / short_steps,
    }
    if args.steps is not None:
        steps = args.steps
    else:
        seconds_per_step = (estimate["batched_seconds_per_step"]
                            + estimate["per_seed_loop_seconds_per_step_estimate"])
        steps = max(2 * args.steps_per_epoch, int(args.time_budget / seconds_per_step))
    epochs = math.ceil(steps / args.steps_per_epoch)
    return epochs, estimate


def path_record(seconds: float, seeds: int, steps: int, flops: dict, load_before: list,
                load_after: list) -> dict:
    seed_steps = seeds * steps
    return {
        "seconds": seconds,
        "seed_steps": seed_steps,
        "seed_steps_per_second": seed_steps / seconds,
        "gflops_nominal": seed_steps * flops["nominal_per_seed_step"] / seconds / 1e9,
        "gflops_exact": seed_steps * flops["exact_per_seed_step"] / seconds / 1e9,
        "load_average_before": load_before,
        "load_average_after": load_after,
    }


def measure_noise_generation(seeds: tuple[int, ...], batch_size: int, noise_size: int,
                             device: torch.device, repeats: int = 5) -> float:
    """Return the best time, in seconds, to generate one step's noise batch for all seeds."""
    noise = NoiseSets(list(seeds), noise_size, device)
    indices = torch.arange(batch_size, device=device).repeat(len(seeds), 1)
    noise.images(indices)  # warm-up
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        noise.images(indices)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def max_distill_loss_difference(batched: pd.DataFrame, singles: list[pd.DataFrame]) -> float:
    """Return the largest |difference| of any seed's distill_loss between the two paths."""
    keys = ["seed", "step"]
    left = batched[batched.metric == "distill_loss"][keys + ["value"]]
    right = pd.concat(singles)
    right = right[right.metric == "distill_loss"][keys + ["value"]]
    merged = left.merge(right, on=keys, suffixes=("_batched", "_single"), validate="1:1")
    if len(merged) != len(left):
        raise RuntimeError(f"the paths recorded different distill_loss rows: "
                           f"{len(left)} batched, {len(merged)} matched")
    return float((merged.value_batched - merged.value_single).abs().max())


def compare_paths(args: argparse.Namespace, device: torch.device, flops: dict) -> dict:
    seeds = tuple(range(args.seeds))
    arm = StudentArm("same-init-aux", init="same", target="aux")
    # Reading the digits takes seconds, so every Experiment below shares this one copy.
    # The read happens before any timed region.
    logger.info("loading %s", DATASET)
    digits = load_digits(DATASET).to(device)
    logger.info("warming up both paths on %d seed(s)", len(seeds))
    epochs, calibration = choose_epochs(args, device, seeds, arm, digits)
    config = student_config(seeds, args, device, epochs)
    steps = config.total_steps
    logger.info("timing %d steps per seed, %d seeds", steps, len(seeds))

    load_before = load_average()
    loop_seconds = 0.0
    single_frames = []
    for seed in seeds:
        single = student_config((seed,), args, device, epochs)
        seconds, frame = time_student_run(single, arm, digits)
        loop_seconds += seconds
        single_frames.append(frame)
    load_middle = load_average()
    batched_seconds, batched_frame = time_student_run(config, arm, digits)
    load_after = load_average()

    per_seed = path_record(loop_seconds, len(seeds), steps, flops, load_before, load_middle)
    batched = path_record(batched_seconds, len(seeds), steps, flops, load_middle, load_after)
    noise_seconds = measure_noise_generation(seeds, args.batch_size, config.noise_size, device)
    batched["noise_generation_seconds_per_step"] = noise_seconds
    batched["noise_generation_share_estimate"] = noise_seconds * steps / batched_seconds
    evaluations = len(evaluation_steps(config))
    training_flops = steps * flops["nominal_per_seed_step"]
    return {
        "settings": {
            "dataset": DATASET,
            "seeds": len(seeds),
            "steps_per_seed": steps,
            "student_epochs": epochs,
            "noise_size": config.noise_size,
            "batch_size": args.batch_size,
            "hidden": args.hidden,
            "num_aux": config.num_aux,
            "arm": arm.to_dict(),
            "teachers": f"trained {TEACHER_EPOCHS} epoch on {DATASET} "
                        f"(batch {config.teacher_batch_size}), outside the timed regions",
            "evaluations_per_seed": evaluations,
            "evaluation_flop_share": evaluations * flops["evaluation_flops_per_seed"]
                                     / training_flops,
        },
        "calibration": calibration,
        "per_seed_loop": per_seed,
        "batched": batched,
        "throughput_ratio": batched["seed_steps_per_second"] / per_seed["seed_steps_per_second"],
        "max_distill_loss_difference": max_distill_loss_difference(batched_frame,
                                                                   single_frames),
    }


# --------------------------------------------------------------------------- memory


def read_proc_status_bytes(field: str) -> int:
    """Return a `kB` field of /proc/self/status (VmRSS, VmHWM) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def run_memory_child(args: argparse.Namespace) -> None:
    """Run a few student steps over many seeds and print memory use as one JSON line."""
    device = resolve_device(args.device)
    config = ExperimentConfig(
        dataset=DATASET,
        seeds=args.memory_seeds,
        hidden=args.hidden,
        teacher_epochs=TEACHER_EPOCHS,
        student_epochs=1,
        student_batch_size=args.batch_size,
        noise_size=args.memory_noise_size,
        device=str(device),
    )
    arm = StudentArm("same-init-aux", init="same", target="aux")
    experiment = Experiment(config, cache_dir=None)
    digits = experiment.digits
    init = experiment.initial_parameters("same")
    teacher = SeedBatchedMLP(experiment.arch, init)
    teacher.requires_grad_(False)

    synchronize(device)
    record = {"baseline_peak_rss_bytes": read_proc_status_bytes("VmHWM")}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        record["cuda_baseline_allocated_bytes"] = torch.cuda.memory_allocated(device)
    start = time.perf_counter()
    # max_steps stops the run after --memory-steps steps instead of a whole epoch of
    # the noise set.
    recorder = distill_students(config, arm, teacher, init, digits, device,
                                max_steps=args.memory_steps)
    synchronize(device)
    record["seconds"] = time.perf_counter() - start
    record["peak_rss_bytes"] = read_proc_status_bytes("VmHWM")
    if device.type == "cuda":
        record["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
        record["cuda_max_reserved_bytes"] = torch.cuda.max_memory_reserved(device)
    metrics = recorder.to_frame()
    record["steps_done"] = int(metrics[metrics.metric == "distill_loss"].step.nunique())
    print(json.dumps(record))


def measure_memory(args: argparse.Namespace, device: torch.device) -> dict:
    """Run `run_memory_child` in a fresh process and collect its peak memory."""
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-child",
               "--device", str(device), "--memory-seeds", str(args.memory_seeds),
               "--memory-noise-size", str(args.memory_noise_size),
               "--memory-steps", str(args.memory_steps),
               "--batch-size", str(args.batch_size), "--hidden", str(args.hidden)]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    logger.info("memory run: %d seeds, %d noise images each, %d steps",
                args.memory_seeds, args.memory_noise_size, args.memory_steps)

    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"the memory run failed with exit status {completed.returncode}:\n"
                           f"{completed.stderr[-4000:]}")
    record = json.loads(completed.stdout.strip().splitlines()[-1])

    # ru_maxrss is in KiB on Linux. RUSAGE_CHILDREN reports the largest waited-for child.
    children_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    record["children_ru_maxrss_bytes"] = children_usage.ru_maxrss * 1024

    noise_bytes = args.memory_seeds * args.memory_noise_size * INPUT_SIZE * BYTES_PER_FLOAT32
    peak = record.get("cuda_max_allocated_bytes", record["peak_rss_bytes"])
    record.update({
        "seeds": args.memory_seeds,
        "noise_size": args.memory_noise_size,
        "batch_size": args.batch_size,
        "steps_requested": args.memory_steps,
        "teachers": "initial weights (untrained)",
        "measured": "cuda_max_allocated_bytes" if device.type == "cuda" else "peak_rss_bytes",
        "float32_noise_tensor_bytes": noise_bytes,
        "noise_tensor_to_peak_ratio": noise_bytes / peak,
    })
    return record


# ----------------------------------------------------------------------------- main


def gigabytes(value: float) -> str:
    return f"{value / 1e9:.2f} GB"


def print_summary(record: dict) -> None:
    peak = record["matmul_peak"]
    print(f"matmul peak: {peak['gflops']:.1f} GFLOP/s "
          f"(float32 {peak['size']}x{peak['size']}, best of {peak['repeats']})")
    comparison = record.get("comparison")
    if comparison is not None:
        settings = comparison["settings"]
        print(f"students: {settings['seeds']} seeds x {settings['steps_per_seed']} steps, "
              f"batch {settings['batch_size']}, hidden {settings['hidden']}")
        for name in ("per_seed_loop", "batched"):
            path = comparison[name]
            print(f"  {name:>13}: {path['seconds']:8.2f} s  "
                  f"{path['seed_steps_per_second']:8.2f} seed-steps/s  "
                  f"{path['gflops_nominal']:8.1f} GFLOP/s (nominal count)")
        batched = comparison["batched"]
        print(f"  throughput ratio batched / per-seed: {comparison['throughput_ratio']:.2f}")
        print(f"  batched: {batched['gflops_nominal'] / peak['gflops']:.1%} of the matmul "
              f"peak (nominal), {batched['gflops_exact'] / peak['gflops']:.1%} (exact count)")
        print(f"  batched: generating the noise images takes about "
              f"{batched['noise_generation_share_estimate']:.0%} of the time "
              f"({batched['noise_generation_seconds_per_step'] * 1e3:.1f} ms per step, "
              "timed alone)")
        print(f"  max |distill_loss difference| between paths: "
              f"{comparison['max_distill_loss_difference']:.3g}")
        print(f"  load average before / between / after: "
              f"{comparison['per_seed_loop']['load_average_before']} / "
              f"{batched['load_average_before']} / {batched['load_average_after']}")
    memory = record.get("memory")
    if memory is not None:
        print(f"memory run: {memory['seeds']} seeds, {memory['noise_size']} noise images "
              f"each, batch {memory['batch_size']}, {memory['steps_done']} steps: "
              f"peak RSS {gigabytes(memory['peak_rss_bytes'])} "
              f"({gigabytes(memory['baseline_peak_rss_bytes'])} before training)")
        if "cuda_max_allocated_bytes" in memory:
            print(f"  CUDA max allocated: {gigabytes(memory['cuda_max_allocated_bytes'])}")
        print(f"  float32 noise tensors would take "
              f"{gigabytes(memory['float32_noise_tensor_bytes'])}, "
              f"{memory['noise_tensor_to_peak_ratio']:.1f}x the measured peak")


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        run_memory_child(args)
        return None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # The library logs every finished arm at INFO, once per seed in the per-seed loop.
    logging.getLogger("sublim_core").setLevel(logging.WARNING)
    device = resolve_device(args.device)
    arch = Architecture(args.hidden)
    flops = count_flops(arch, args.batch_size)
    record = {
        "benchmark": "seed_batching",
        "command": shlex.join(["python", *sys.argv]),
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": describe_machine(device),
        "load_average_start": load_average(),
        "flops": flops,
    }
    matmul_size = args.matmul_size or (4096 if device.type == "cuda" else 2048)
    logger.info("measuring the float32 matmul peak at n=%d", matmul_size)
    record["matmul_peak"] = measure_matmul_peak(device, matmul_size, args.matmul_repeats)

    record["comparison"] = compare_paths(args, device, flops)
    batched = record["comparison"]["batched"]
    record["comparison"]["batched_fraction_of_peak_nominal"] = (
        batched["gflops_nominal"] / record["matmul_peak"]["gflops"])
    record["comparison"]["batched_fraction_of_peak_exact"] = (
        batched["gflops_exact"] / record["matmul_peak"]["gflops"])

    if args.memory_seeds:
        record["memory"] = measure_memory(args, device)
    print_summary(record)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(record, indent=2) + "\n")
        logger.info("wrote %s", args.output)
    return record


if __name__ == "__main__":
    main()
