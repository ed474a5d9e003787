"""Benchmark: the whole-brain searchlight on a GPU, at the study's size, against the CPU engine.

The same data as ``bench_searchlight.py`` (2.4 mm GM mask, t = 496, 10 layers, 100-voxel
spheres, synthetic patterns with shared slow components).  A GPU machine may lack nilearn,
so the mask can travel as a small ``.npz`` written here first::

    python benchmarks/bench_searchlight_gpu.py --save-mask mask.npz     # where nilearn is
    python benchmarks/bench_searchlight_gpu.py --mask mask.npz --device cuda

Times the whole brain on the device (after a warm-up, median of ``--repeats``), records the
peak GPU memory, and compares the device's maps with the numpy engine's on a subset of
centers spread over the brain.  Writes ``benchmarks/results/bench_searchlight_gpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_searchlight import VOXEL_MM, spread_blocks, synthetic_data  # noqa: E402

from bidsapp.rsa.neighbors import neighbors  # noqa: E402
from bidsapp.rsa.searchlight import searchlight  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_searchlight_gpu.json"


def main() -> int:
    """Run the benchmark (see the module docstring); return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mask", type=Path, help="mask .npz (mask, affine); default nilearn's")
    parser.add_argument("--save-mask", type=Path, help="write the mask .npz and stop")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-sizes", type=int, nargs="+", default=[None],
                        help="centers per GPU task to compare (default: the engine's)")
    parser.add_argument("--check-centers", type=int, default=2000)
    parser.add_argument("--trs", type=int, default=496)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--n-voxels", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    if args.mask is not None:
        with np.load(args.mask) as data:
            mask, affine = data["mask"].astype(bool), data["affine"]
    else:
        from bench_searchlight import gm_mask

        mask, affine = gm_mask()
    if args.save_mask is not None:
        np.savez_compressed(args.save_mask, mask=mask, affine=affine)
        print(f"wrote {args.save_mask}: {int(mask.sum())} voxels at {VOXEL_MM} mm")
        return 0

    import torch

    nbrs = neighbors(mask, args.n_voxels, affine=affine)
    patterns, candidates = synthetic_data(len(nbrs), args.trs, args.layers, args.seed)
    device = torch.device(args.device)
    searchlight(patterns, nbrs[:1024], candidates, device=device)  # warm-up (kernels, cuBLAS)
    by_chunk, maps = {}, None
    for chunk in args.chunk_sizes:
        times, peak = [], None
        try:
            for _ in range(args.repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
                chunk_maps = searchlight(patterns, nbrs, candidates, device=device,
                                         chunk_size=chunk)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                    peak = round(torch.cuda.max_memory_allocated() / 2**30, 2)
                times.append(time.perf_counter() - start)
        except RuntimeError as exc:  # out of GPU memory at a large chunk
            by_chunk[str(chunk)] = {"error": str(exc).splitlines()[0]}
            continue
        by_chunk[str(chunk)] = {"whole_brain_s": [round(t, 3) for t in times],
                                "median_s": round(statistics.median(times), 3),
                                "peak_gpu_memory_gb": peak}
        maps = chunk_maps if maps is None else maps
        if device.type == "cuda":
            torch.cuda.empty_cache()
    subset = spread_blocks(len(nbrs), args.check_centers)
    start = time.perf_counter()
    reference = searchlight(patterns, nbrs[subset], candidates, device="cpu", backend="numpy")
    cpu_subset_s = time.perf_counter() - start
    result = {
        "benchmark": "bench_searchlight_gpu",
        "size": {"centers": len(nbrs), "trs": args.trs, "layers": args.layers,
                 "n_voxels": args.n_voxels},
        "device": str(device),
        "device_name": (torch.cuda.get_device_name() if device.type == "cuda"
                        else platform.processor()),
        "torch": torch.__version__,
        "by_chunk_size": by_chunk,
        "check_centers": len(subset),
        "max_abs_diff_vs_numpy_engine": float(np.nanmax(np.abs(maps[subset] - reference))),
        "nan_centers": int(np.isnan(maps).any(axis=1).sum()),
        "numpy_engine_subset_s": round(cpu_subset_s, 2),
        "cpu_count": os.cpu_count(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
