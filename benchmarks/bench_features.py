"""Benchmark: layer features for 16 clips x 29 s of synthetic audio at TR 0.735 s.

The study's testing session: 16 clips of 29 s.  The goal is <= 30 s on a 2-core CPU
including decoding, the network, the HRF and the TR averaging (no cache).

    python benchmarks/bench_features.py [--device cpu] [--clips 16] [--seconds 29]
    python benchmarks/bench_features.py --naturalistic

``--naturalistic`` takes the naturalistic preset's 16 whole songs (89-225 s, 44.1 kHz
stereo, TR 1 s) and records the peak memory too.  Prints the result and writes it to
``benchmarks/results/bench_features.json`` (``bench_features_naturalistic.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

from bidsapp.audio import compute_features_many, load_model, weights_info
from bidsapp.audio.weights import default_weights_path, init_untrained
from bidsapp.errors import MissingInputError
from bidsapp.io import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "bench_features.json"


def synthetic_clip(seconds: float, seed: int, rate: int = 44100) -> np.ndarray:
    """Music-like test signal: a few random tones with a beat, plus noise, at 44.1 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tones = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(80, 2000, size=4))
    beat = (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > 0.9).astype(float)
    audio = (
        0.1 * tones + 0.2 * beat * rng.standard_normal(t.size) + 0.01 * rng.standard_normal(t.size)
    )
    return (audio / np.abs(audio).max() * 0.8).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=29.0)
    parser.add_argument("--tr", type=float, default=0.735)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--naturalistic", action="store_true",
                        help="the naturalistic preset's 16 songs of 89-225 s, 44.1 kHz stereo, "
                             "at TR 1 s (overrides --clips, --seconds and --tr)")
    args = parser.parse_args()
    durations = [float(args.seconds)] * args.clips
    if args.naturalistic:
        durations = [89, 89, 90, 90, 134, 134, 135, 135, 179, 179, 180, 180, 224, 224, 225,
                     225]
        args.clips, args.tr = len(durations), 1.0
    output = args.output or (RESULTS.with_name("bench_features_naturalistic.json")
                             if args.naturalistic else RESULTS)

    with tempfile.TemporaryDirectory() as tmp:
        try:
            weights = default_weights_path()
        except MissingInputError:
            weights = init_untrained(Path(tmp) / "models")
        paths = []
        for i, seconds in enumerate(durations):
            path = Path(tmp) / f"clip{i:02d}.wav"
            clip = synthetic_clip(seconds, seed=i)
            soundfile.write(path, np.stack([clip, 0.8 * clip], axis=1) if args.naturalistic
                            else clip, 44100)
            paths.append(path)
            del clip
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

        load_before = os.getloadavg()[0]  # other work on the machine inflates the time
        start, cpu_start = time.perf_counter(), time.process_time()
        load_model(weights, args.device)
        loaded = time.perf_counter()
        features = compute_features_many(
            paths, args.tr, weights=weights, device=args.device, batch_size=args.batch_size
        )
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        end, cpu_end = time.perf_counter(), time.process_time()

    shapes = {name: "x".join(map(str, a.shape)) for name, a in features[paths[0]].items()}
    result = {
        "benchmark": "bench_features",
        "clips": args.clips,
        "clip_seconds": durations if args.naturalistic else args.seconds,
        "audio_seconds_total": sum(durations),
        "channels": 2 if args.naturalistic else 1,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "peak_rss_gb_before_features": round(rss_before, 2),
        "tr": args.tr,
        "device": args.device,
        "batch_size": args.batch_size,
        "seconds_total": round(end - start, 2),
        "seconds_model_load": round(loaded - start, 2),
        "seconds_features": round(end - loaded, 2),
        "cpu_seconds_total": round(cpu_end - cpu_start, 2),
        "goal_seconds": None if args.naturalistic else 30.0,
        "weights_status": weights_info(weights)["status"],
        "feature_shapes": shapes,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min_before": round(load_before, 2),
        "machine": platform.processor() or platform.machine(),
    }
    print(
        f"bench_features: {args.clips} clips, {sum(durations):g} s of audio, TR {args.tr} s "
        f"on {args.device}: {result['seconds_total']} s (model load "
        f"{result['seconds_model_load']} s; peak RSS {result['peak_rss_gb']} GB; load "
        f"average before {load_before:.1f})"
    )
    write_json(output, result)


if __name__ == "__main__":
    main()
