"""Benchmark: training throughput (samples/s) of the study's recipe, batch 36, on one device.

Each step is one Adam update on 36 random 50,176-sample crops (masked BCE), exactly what
``bidsapp train`` does, including drawing the batch.  The first step of each precision is a
warm-up and not timed.  ``--amp none bf16`` times float32 and bfloat16 autocast in
alternating steps of one run, so their ratio holds even on a busy machine (bf16 only where
the device computes it natively, :func:`bidsapp.training.train.native_bf16`).

    python benchmarks/bench_training.py [--device cpu] [--steps 3] [--threads 2] [--amp none bf16]

Prints the result and writes it to ``benchmarks/results/bench_training.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from bidsapp.audio.resnet import ResNet18Audio
from bidsapp.device import resolve_device
from bidsapp.io import write_json
from bidsapp.training.data import ClipSet, training_batch
from bidsapp.training.train import TrainConfig, make_optimizer, native_bf16, optimisation_step

RESULTS = Path(__file__).resolve().parent / "results" / "bench_training.json"


def synthetic_set(clips: int = 72, seconds: float = 6.0) -> ClipSet:
    """Noise clips with random tags: throughput does not depend on the content."""
    rng = np.random.default_rng(0)
    audio = [(0.1 * rng.standard_normal(int(seconds * 16_000))).astype(np.float32)
             for _ in range(clips)]
    labels = (rng.random((clips, 50)) < 0.2).astype(np.float32)
    return ClipSet(audio, labels, np.ones((clips, 50), bool), [str(i) for i in range(clips)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=36)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--amp", nargs="+", choices=("none", "bf16"), default=["none"],
                        help="precisions to time, in alternating steps")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = ResNet18Audio().to(device).train()
    optimizer = make_optimizer(model, TrainConfig(out_dir="."))
    clip_set = synthetic_set()

    if "bf16" in args.amp and not native_bf16(device):
        parser.error(f"{device} has no native bfloat16: time --amp none only")

    def step(number: int, amp: str) -> None:
        audio, labels, mask = (torch.from_numpy(a).to(device) for a in
                               training_batch(clip_set, args.batch_size, 0, number))
        optimisation_step(model, optimizer, audio, labels, mask, bf16=amp == "bf16")
        if device.type == "cuda":
            torch.cuda.synchronize()

    for amp in args.amp:
        step(0, amp)
    load_before = os.getloadavg()[0]  # other work on the machine slows the steps
    times: dict[str, list[float]] = {amp: [] for amp in args.amp}
    for number in range(1, args.steps + 1):
        for amp in args.amp:
            start = time.perf_counter()
            step(number, amp)
            times[amp].append(time.perf_counter() - start)
    by_amp = {amp: {"seconds_per_step": [round(t, 2) for t in times[amp]],
                    "samples_per_second": round(float(np.median(
                        [args.batch_size / t for t in times[amp]])), 2),
                    "samples_per_second_best": round(float(np.max(
                        [args.batch_size / t for t in times[amp]])), 2)}
              for amp in args.amp}
    first = by_amp[args.amp[0]]
    result = {
        "benchmark": "bench_training",
        "device": str(device),
        "batch_size": args.batch_size,
        "crop_samples": 50_176,
        "steps_timed": args.steps,
        **first,
        "amp": args.amp[0],
        "by_amp": by_amp,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min_before": round(load_before, 2),
        "machine": platform.processor() or platform.machine(),
    }
    if {"none", "bf16"} <= set(args.amp):
        result["bf16_speedup"] = round(by_amp["bf16"]["samples_per_second"]
                                       / by_amp["none"]["samples_per_second"], 2)
    for amp, numbers in by_amp.items():
        print(f"bench_training: batch {args.batch_size} on {device}, amp {amp}: "
              f"{numbers['samples_per_second']} samples/s (median of {args.steps} steps; "
              f"load average before {load_before:.1f})")
    write_json(args.output, result)


if __name__ == "__main__":
    main()
