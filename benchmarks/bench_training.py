"""Benchmark: training throughput (samples/s) of the study's recipe, batch 36, on one device.

Each step is one Adam update on 36 random 50,176-sample crops (masked BCE), exactly what
``bidsapp train`` does, including drawing the batch.  The first step is a warm-up and not
timed.

    python benchmarks/bench_training.py [--device cpu] [--steps 3] [--threads 2]

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
from bidsapp.training.train import TrainConfig, make_optimizer, masked_bce

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
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = ResNet18Audio().to(device).train()
    optimizer = make_optimizer(model, TrainConfig(out_dir="."))
    clip_set = synthetic_set()

    def step(number: int) -> None:
        audio, labels, mask = (torch.from_numpy(a).to(device) for a in
                               training_batch(clip_set, args.batch_size, 0, number))
        loss = masked_bce(model(audio), labels, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step(0)
    load_before = os.getloadavg()[0]  # other work on the machine slows the steps
    times = []
    for number in range(1, args.steps + 1):
        start = time.perf_counter()
        step(number)
        times.append(time.perf_counter() - start)
    rates = [args.batch_size / t for t in times]
    result = {
        "benchmark": "bench_training",
        "device": str(device),
        "batch_size": args.batch_size,
        "crop_samples": 50_176,
        "steps_timed": args.steps,
        "seconds_per_step": [round(t, 2) for t in times],
        "samples_per_second": round(float(np.median(rates)), 2),
        "samples_per_second_best": round(float(np.max(rates)), 2),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min_before": round(load_before, 2),
        "machine": platform.processor() or platform.machine(),
    }
    print(f"bench_training: batch {args.batch_size} on {device}: "
          f"{result['samples_per_second']} samples/s (median of {args.steps} steps; "
          f"load average before {load_before:.1f})")
    write_json(args.output, result)


if __name__ == "__main__":
    main()
