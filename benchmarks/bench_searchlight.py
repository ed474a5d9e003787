"""Benchmark: searchlight RSA at the study's size (GM mask at 2.4 mm, t = 496, 10 layers).

Times, on the same centers and in alternating rounds (so that the load of other processes hits
every engine alike), the searchlight engine on 1 and 2 CPU cores, a straightforward single-core
fused numpy reference, the scipy loop on a few centers and, if installed, rsatoolbox's
searchlight on a few centers.  The default runs a subset of centers (blocks spread over the
brain); ``--full`` also runs the whole brain on every core and records the peak RSS.

    python benchmarks/bench_searchlight.py [--centers 2000] [--full] [--device cpu|cuda]

Prints a table and writes ``benchmarks/results/bench_searchlight.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import rankdata, spearmanr
from threadpoolctl import threadpool_limits

from bidsapp.rsa._ranks import order_keys, prepare_candidates
from bidsapp.rsa.neighbors import neighbors
from bidsapp.rsa.searchlight import searchlight

RESULTS = Path(__file__).resolve().parent / "results" / "bench_searchlight.json"
VOXEL_MM = 2.4


def gm_mask() -> tuple[np.ndarray, np.ndarray]:
    """nilearn's MNI152 gray-matter mask resampled (nearest) to 2.4 mm: (mask, affine)."""
    from nilearn.datasets import load_mni152_gm_mask
    from nilearn.image import resample_img

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = resample_img(load_mni152_gm_mask(), target_affine=np.diag([VOXEL_MM] * 3),
                           interpolation="nearest", force_resample=True, copy_header=True)
    return np.asarray(img.dataobj).astype(bool), img.affine


def synthetic_data(n_voxels: int, n_trs: int, n_layers: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """z-scored float32 patterns (T x V) with shared slow components, and candidate RDMs.

    Shared components make TR patterns correlate as real data do, which widens the range of
    the target RDM's values (the counting sort's bins) compared with white noise.  Built in
    blocks of voxels so that temporaries do not inflate the peak RSS.
    """
    rng = np.random.default_rng(seed)
    kernel = np.hanning(9)
    latent = np.apply_along_axis(np.convolve, 0, rng.standard_normal((n_trs + 8, 20)), kernel,
                                 mode="valid")[:n_trs]
    patterns = np.empty((n_trs, n_voxels), dtype=np.float32)
    for start in range(0, n_voxels, 8192):
        stop = min(start + 8192, n_voxels)
        block = latent @ rng.standard_normal((20, stop - start))
        block += 2 * rng.standard_normal(block.shape)
        block -= block.mean(axis=0)
        block /= block.std(axis=0)
        patterns[:, start:stop] = block
    candidates = np.empty((n_layers, n_trs, n_trs))
    for layer in range(n_layers):
        width = 64 * (layer + 1)
        features = latent @ rng.standard_normal((20, width)) + rng.standard_normal((n_trs, width))
        candidates[layer] = 1 - np.corrcoef(rankdata(features, axis=1))
    return patterns, candidates


def fused_reference(patterns: np.ndarray, nbrs: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Straightforward single-core reference: per center gather, rank, corrcoef, rankdata, dot."""
    n_trs = patterns.shape[0]
    rows, cols = np.triu_indices(n_trs, k=1)
    ranked = rankdata(candidates[:, rows, cols], axis=1)
    ranked -= ranked.mean(axis=1, keepdims=True)
    ranked /= np.linalg.norm(ranked, axis=1, keepdims=True)
    out = np.empty((len(nbrs), len(candidates)), dtype=np.float32)
    for center, sphere in enumerate(nbrs):
        target = 1 - np.corrcoef(rankdata(patterns[:, sphere], axis=1))[rows, cols]
        target_ranks = rankdata(target)
        target_ranks -= target_ranks.mean()
        out[center] = ranked @ (target_ranks / np.linalg.norm(target_ranks))
    return out


def scipy_loop(patterns: np.ndarray, nbrs: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """The definition, with scipy.stats.spearmanr for every correlation."""
    rows, cols = np.triu_indices(patterns.shape[0], k=1)
    out = np.empty((len(nbrs), len(candidates)))
    for center, sphere in enumerate(nbrs):
        target = 1 - spearmanr(patterns[:, sphere], axis=1).statistic
        for layer, candidate in enumerate(candidates):
            out[center, layer] = spearmanr(target[rows, cols], candidate[rows, cols]).statistic
    return out


def rsatoolbox_searchlight(patterns: np.ndarray, nbrs: np.ndarray,
                           candidates: np.ndarray) -> np.ndarray | None:
    """rsatoolbox 0.3's searchlight (``get_searchlight_RDMs`` + ``evaluate_models_searchlight``).

    Its 'correlation' RDM is 1 - Pearson; each sphere's patterns are rank-transformed first so
    that it is 1 - Spearman, as the study's.  Returns None if rsatoolbox is not installed.
    """
    try:
        from rsatoolbox.inference import eval_fixed
        from rsatoolbox.model import ModelFixed
        from rsatoolbox.rdm import RDMs
        from rsatoolbox.util import searchlight as rsatoolbox_searchlight_module
    except ImportError:
        return None
    out = np.empty((len(nbrs), len(candidates)))
    events = np.arange(patterns.shape[0])
    models = [ModelFixed(f"layer{i}", RDMs(c[None])) for i, c in enumerate(candidates)]
    for center, sphere in enumerate(nbrs):
        # One sphere at a time: its within-sphere ranks are then a transform of its own data.
        ranked = rankdata(patterns[:, sphere], axis=1)
        rdms = rsatoolbox_searchlight_module.get_searchlight_RDMs(
            ranked, np.array([0]), [np.arange(len(sphere))], events, verbose=False)
        with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):  # tqdm bars
            result = rsatoolbox_searchlight_module.evaluate_models_searchlight(
                rdms, models, eval_fixed, method="spearman")
        out[center] = np.ravel(result[0].evaluations)
    return out


def per_center_ms(func, selection: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Marginal (wall, CPU) ms per center of ``func(centers)``; and its result on all centers.

    Marginal: (time(all) - time(first center)) / (n - 1), which removes set-up costs (ranking
    the candidates, keying the patterns) that the whole brain pays once.  CPU time is the
    process's (all threads): on a machine shared with other jobs it is closer than wall time
    to what the code costs, and CPU / wall shows how many cores a threaded run kept busy.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    func(selection[:1])
    wall_one, cpu_one = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    result = func(selection)
    wall, cpu = time.perf_counter() - wall - wall_one, time.process_time() - cpu - cpu_one
    return wall * 1e3 / (len(selection) - 1), cpu * 1e3 / (len(selection) - 1), result


def plain_ms(func, selection: np.ndarray) -> tuple[float, object]:
    """Wall ms per center of ``func(centers)`` for the slow baselines (no set-up to speak of)."""
    start = time.perf_counter()
    result = func(selection)
    return (time.perf_counter() - start) * 1e3 / len(selection), result


def spread_blocks(n_centers: int, wanted: int, block: int = 100) -> np.ndarray:
    """Indices of ``wanted`` centers in consecutive blocks spread over the mask (brain-like
    locality, unlike random centers)."""
    n_blocks = max(1, wanted // block)
    starts = np.linspace(0, n_centers - block, n_blocks).astype(int)
    return np.concatenate([np.arange(s, s + block) for s in starts])[:wanted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--centers", type=int, default=2000, help="subset size (default 2000)")
    parser.add_argument("--reference-centers", type=int, default=200)
    parser.add_argument("--scipy-centers", type=int, default=4)
    parser.add_argument("--rsatoolbox-centers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    parser.add_argument("--trs", type=int, default=496)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--n-voxels", type=int, default=100)
    parser.add_argument("--full", action="store_true", help="also run the whole brain")
    parser.add_argument("--device", default="cpu", help="'cuda' adds the torch engine on GPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    mask, affine = gm_mask()
    start = time.perf_counter()
    nbrs = neighbors(mask, args.n_voxels, affine=affine)
    neighbors_s = time.perf_counter() - start
    n_centers = len(nbrs)
    patterns, candidates = synthetic_data(n_centers, args.trs, args.layers, args.seed)
    subset = nbrs[spread_blocks(n_centers, args.centers)]
    ref_subset = subset[spread_blocks(len(subset), args.reference_centers, block=20)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    result: dict = {"benchmark": "bench_searchlight"}
    if args.full:  # first, so that its peak RSS is not the baselines'
        result["full"] = run_full(patterns, nbrs, candidates, args.device)

    def engine(n_jobs: int, method: str = "spearman"):
        return lambda sel: searchlight(patterns, sel, candidates, device="cpu", n_jobs=n_jobs,
                                       method=method)

    def reference(sel: np.ndarray) -> np.ndarray:
        with threadpool_limits(limits=1, user_api="blas"):
            return fused_reference(patterns, sel, candidates)

    runs = {"engine_1core": (engine(1), subset), "engine_2cores": (engine(2), subset),
            "engine_1core_same_as_reference": (engine(1), ref_subset),
            "fused_reference_1core": (reference, ref_subset),
            "pearson_1core": (engine(1, "pearson"), subset)}
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    maps = {}
    for _ in range(args.rounds):
        for name, (func, selection) in runs.items():
            wall_ms, cpu_ms, maps[name] = per_center_ms(func, selection)
            wall[name].append(wall_ms)
            cpu[name].append(cpu_ms)
    median = {k: statistics.median(v) for k, v in wall.items()}
    median_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    ratio_rounds = [e / r for e, r in zip(wall["engine_1core_same_as_reference"],
                                          wall["fused_reference_1core"], strict=True)]
    ratio_rounds_cpu = [e / r for e, r in zip(cpu["engine_1core_same_as_reference"],
                                              cpu["fused_reference_1core"], strict=True)]
    engine_ref_map, ref_map = maps["engine_1core_same_as_reference"], maps["fused_reference_1core"]

    start = time.perf_counter()
    order_keys(patterns)
    prepare_candidates(candidates, "spearman")
    setup_s = time.perf_counter() - start
    scipy_ms, scipy_map = plain_ms(lambda sel: scipy_loop(patterns, sel, candidates),
                                   ref_subset[: args.scipy_centers])
    rsa_ms, rsa_map = plain_ms(lambda sel: rsatoolbox_searchlight(patterns, sel, candidates),
                               ref_subset[: args.rsatoolbox_centers])
    torch_ms, _, torch_map = per_center_ms(
        lambda sel: searchlight(patterns, sel, candidates, device="cpu", backend="torch"),
        ref_subset[:33])

    result |= {
        "machine": {"cpu_count": cores, "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "load_average_at_end": os.getloadavg()},
        "size": {"centers_in_mask": n_centers, "mask_shape": list(mask.shape),
                 "voxel_mm": VOXEL_MM, "trs": args.trs, "layers": args.layers,
                 "n_voxels": args.n_voxels, "subset_centers": len(subset),
                 "reference_centers": len(ref_subset)},
        "neighbors_seconds": round(neighbors_s, 2),
        "setup_seconds_whole_brain": round(setup_s, 2),
        "per_center_wall_ms_rounds": {k: [round(x, 3) for x in v] for k, v in wall.items()},
        "per_center_cpu_ms_rounds": {k: [round(x, 3) for x in v] for k, v in cpu.items()},
        "per_center_ms": {k: round(v, 3) for k, v in median.items()}
        | {"scipy_loop": round(scipy_ms, 1), "torch_engine_on_cpu": round(torch_ms, 2),
           "rsatoolbox": None if rsa_map is None else round(rsa_ms, 1)},
        "per_center_cpu_ms": {k: round(v, 3) for k, v in median_cpu.items()},
        "ratios": {
            "engine_1core_over_fused_reference_per_round": [round(r, 3) for r in ratio_rounds],
            "engine_1core_over_fused_reference": round(statistics.median(ratio_rounds), 3),
            "engine_1core_over_fused_reference_cpu": round(statistics.median(ratio_rounds_cpu),
                                                           3),
            "two_core_speedup": round(median["engine_1core"] / median["engine_2cores"], 2),
            "two_core_cpu_over_wall": round(median_cpu["engine_2cores"]
                                            / median["engine_2cores"], 2),
            "scipy_loop_over_engine_1core": round(scipy_ms / median["engine_1core"], 1),
            "rsatoolbox_over_engine_1core": None if rsa_map is None
            else round(rsa_ms / median["engine_1core"], 1),
            "spearman_over_pearson_1core": round(median["engine_1core"] / median["pearson_1core"],
                                                 2),
        },
        "max_abs_diff": {
            "engine_vs_fused_reference": float(np.nanmax(np.abs(engine_ref_map - ref_map))),
            "engine_vs_scipy": float(np.nanmax(np.abs(engine_ref_map[: len(scipy_map)]
                                                      - scipy_map))),
            "torch_cpu_vs_scipy": float(np.nanmax(np.abs(torch_map[: len(scipy_map)]
                                                         - scipy_map))),
            "engine_vs_rsatoolbox": None if rsa_map is None else float(np.nanmax(np.abs(
                engine_ref_map[: len(rsa_map)] - rsa_map))),
        },
        "whole_brain_estimate_s": round(setup_s + n_centers * median["engine_2cores"] / 1e3, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)


def run_full(patterns: np.ndarray, nbrs: np.ndarray, candidates: np.ndarray,
             device: str) -> dict:
    """Whole brain on every CPU core (and on the GPU when asked): seconds and peak RSS.

    The peak RSS includes the process's own data (mask, neighbours, patterns, torch and
    nilearn imports), reported before the run too.
    """
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start, cpu = time.perf_counter(), time.process_time()
    maps = searchlight(patterns, nbrs, candidates, device="cpu")
    full = {"cpu_all_cores_s": round(time.perf_counter() - start, 1),
            "cpu_seconds_used": round(time.process_time() - cpu, 1),
            "load_average_after": os.getloadavg(),
            "nan_centers": int(np.isnan(maps).any(axis=1).sum()),
            "peak_rss_mb_before": round(rss_before, 1),
            "peak_rss_mb_after_cpu": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.startswith("cuda"):
        import torch

        searchlight(patterns, nbrs[:1024], candidates, device=device)  # warm-up
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        gpu_maps = searchlight(patterns, nbrs, candidates, device=device)
        torch.cuda.synchronize()
        full["gpu_s"] = round(time.perf_counter() - start, 2)
        full["gpu_peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        full["gpu_vs_cpu_max_abs_diff"] = float(np.nanmax(np.abs(gpu_maps - maps)))
        full["gpu_name"] = torch.cuda.get_device_name()
    return full


def print_table(result: dict) -> None:
    """Print the per-center times, ratios and agreement."""
    size = result["size"]
    print(f"searchlight: {size['centers_in_mask']} centers in the 2.4 mm GM mask, "
          f"t = {size['trs']}, n = {size['n_voxels']}, {size['layers']} layers; "
          f"subset {size['subset_centers']} centers")
    print(f"{'engine':42s} {'wall ms / center':>16s} {'CPU ms / center':>16s}")
    for name, ms in result["per_center_ms"].items():
        cpu = result["per_center_cpu_ms"].get(name)
        print(f"{name:42s} {'-' if ms is None else f'{ms:.3f}':>16s} "
              f"{'-' if cpu is None else f'{cpu:.3f}':>16s}")
    for group in ("ratios", "max_abs_diff"):
        for name, value in result[group].items():
            print(f"{group}.{name}: {value}")
    print(f"whole brain estimate (2 cores): {result['whole_brain_estimate_s']} s")
    if "full" in result:
        print(f"whole brain measured: {result['full']}")
    print(f"peak RSS: {result['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
