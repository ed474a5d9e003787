"""Benchmark: the searchlight with its permutation null at the study's T and at T ~ 2,400.

Two sizes, each in a process of its own (so that each has its own peak RSS), in one run:

- the study: 16 trials of 31 TRs (T = 496, the exact trial-block null);
- a naturalistic dataset shaped like OpenNeuro ds004007: 16 whole songs of 89 to 225 s at
  TR 1 s, 6 s dropped from each (T = 2,416, the fitted null).

For each, on a random subset of the centres of the 2.4-mm grey-matter mask (110,298 centres),
with 10 layers, 100-voxel spheres and K permutations: the participant level's computation
(:func:`bidsapp.stats.participant_null` with the maps, as ``SearchlightChunk`` calls it, under
a memory budget), and, on fewer centres, one pass of the engine as it was before (K x L
reordered columns held in float64, as many permutations per pass as 1 GiB holds, every pass
building the target RDMs again), extrapolated to all its passes.  The same process measures
this machine's single-precision matrix-product rate (``sgemm``, one thread per core), so that
the null's share of the hardware's peak is a ratio of two numbers measured side by side.

    python benchmarks/bench_null_scale.py [--centers 256] [--permutations 100] [--mem-gb 8]

Prints a table and writes ``benchmarks/results/bench_null_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

RESULTS = Path(__file__).resolve().parent / "results" / "bench_null_scale.json"
WHOLE_BRAIN_CENTERS, N_LAYERS, SPHERE = 110_298, 10, 100
SIZES = {
    "study": [31] * 16,
    "naturalistic": [s - 6 for s in (89, 90, 134, 135, 179, 180, 224, 225) * 2],
}
#: The engine before (commit 3c9db00): permuted candidates per pass.
OLD_BATCH_BYTES = 2**30


def sgemm_rate(n_threads: int) -> float:
    """Multiply-adds per second of ``n_threads`` single-threaded float32 products at once."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 16384), dtype=np.float32)
    b = rng.standard_normal((16384, 1024), dtype=np.float32)

    def run(_: int) -> float:
        a @ b
        started = time.perf_counter()
        for _ in range(4):
            a @ b
        return time.perf_counter() - started

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(n_threads) as pool:
        seconds = max(pool.map(run, range(n_threads)))
    return n_threads * 4 * a.shape[0] * a.shape[1] * b.shape[1] / seconds


def run_case(name: str, n_centers: int, n_permutations: int, mem_gb: float,
             old_centers: int) -> dict:
    """Time one size in this process and return its figures."""
    import functools

    from bench_searchlight import gm_mask

    from bidsapp.rsa._engine_numpy import run_numpy
    from bidsapp.rsa._ranks import order_keys, prepare_candidates, reorder_columns
    from bidsapp.rsa.neighbors import neighbors
    from bidsapp.rsa.searchlight import null_stack_rows, searchlight
    from bidsapp.stats import draw_orders, participant_null, permutation_scheme
    from bidsapp.stats.permutation import block_index, fitted_index

    lengths = SIZES[name]
    n_trs = sum(lengths)
    n_jobs = len(os.sched_getaffinity(0))
    mask, _ = gm_mask()
    rng = np.random.default_rng(0)
    patterns = rng.standard_normal((n_trs, int(mask.sum())), dtype=np.float32)
    nbrs = neighbors(mask, SPHERE)
    nbrs = nbrs[np.sort(rng.choice(len(nbrs), n_centers, replace=False))]
    features = rng.standard_normal((N_LAYERS, n_trs, 8)).cumsum(axis=1)
    rdms = np.stack([1.0 - np.corrcoef(f) for f in features]).astype(np.float32)
    memory = int(mem_gb * 2**30)
    engine = functools.partial(searchlight, device="cpu", n_jobs=n_jobs, memory=memory)
    rows = null_stack_rows(n_trs, patterns.shape[1], n_centers, SPHERE, N_LAYERS,
                           n_permutations + 1, n_jobs=n_jobs, memory=memory)

    started, cpu = time.perf_counter(), time.process_time()
    null = participant_null(patterns, nbrs, rdms, lengths, n_permutations, 0, engine,
                            with_observed=True)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rate = sgemm_rate(n_jobs)
    pairs = n_trs * (n_trs - 1) // 2
    useful = n_centers * pairs * (n_permutations + 1) * N_LAYERS  # the null's multiply-adds

    # The engine before: float64 columns of as many orders as 1 GiB holds, one pass each.
    scheme = permutation_scheme(lengths)
    index_of = block_index if scheme == "trial-blocks" else fitted_index
    orders = np.stack([np.arange(n_trs)] + [index_of(lengths, o) for o in draw_orders(
        lengths, n_permutations, 0, scheme)])
    per_pass = max(1, OLD_BATCH_BYTES // (n_trs * (n_trs + 1) // 2 * 8 * N_LAYERS))
    passes = -(-len(orders) // per_pass)
    columns, norms = reorder_columns(*prepare_candidates(rdms, "spearman"), orders[:per_pass])
    keys = order_keys(patterns)
    few = np.ascontiguousarray(nbrs[:old_centers])
    out = np.empty((len(few), columns.shape[1]), dtype=np.float32)
    started = time.perf_counter()
    run_numpy(keys, few, columns, norms, "spearman", 8, n_jobs, out)
    old_pass = (time.perf_counter() - started) / len(few)

    per_center = seconds / n_centers
    return {
        "case": name, "trs": n_trs, "trials": len(lengths), "scheme": null.scheme,
        "centers": n_centers, "permutations": n_permutations, "threads": n_jobs,
        "mem_gb": mem_gb, "stack_rows": rows,
        "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
        "ms_per_center": round(1e3 * per_center, 1),
        "whole_brain_h": round(per_center * WHOLE_BRAIN_CENTERS / 3600, 2),
        "peak_rss_gb": round(peak_rss / 2**30, 2),
        "null_gmac_per_s": round(useful / seconds / 1e9, 1),
        "sgemm_gmac_per_s": round(rate / 1e9, 1),
        "fraction_of_sgemm_peak": round(useful / seconds / rate, 3),
        "before": {"permutations_per_pass": per_pass, "passes": passes,
                   "centers_timed": len(few),
                   "ms_per_center": round(1e3 * old_pass * passes, 1),
                   "whole_brain_h": round(old_pass * passes * WHOLE_BRAIN_CENTERS / 3600, 2)},
        "speedup": round(old_pass * passes / per_center, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    """Run both sizes, each in a child process, and write the JSON results.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    dict
        The results written to ``benchmarks/results/bench_null_scale.json``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--centers", type=int, default=256)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--mem-gb", type=float, default=8.0)
    parser.add_argument("--old-centers", type=int, default=16)
    parser.add_argument("--case", choices=sorted(SIZES), help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.case:
        print(json.dumps(run_case(opts.case, opts.centers, opts.permutations, opts.mem_gb,
                                  opts.old_centers)))
        return {}
    cases = {}
    for name in SIZES:
        child = subprocess.run(
            [sys.executable, __file__, "--case", name, "--centers", str(opts.centers),
             "--permutations", str(opts.permutations), "--mem-gb", str(opts.mem_gb),
             "--old-centers", str(opts.old_centers)],
            check=True, capture_output=True, text=True, cwd=Path(__file__).parent)
        cases[name] = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{name}: {cases[name]}", flush=True)
    study, natural = cases["study"], cases["naturalistic"]
    results = {
        "benchmark": "bench_null_scale",
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "cases": cases,
        "ratio_per_center_naturalistic_over_study": round(
            natural["ms_per_center"] / study["ms_per_center"], 1),
        "ratio_pairs": round((natural["trs"] / study["trs"]) ** 2, 1),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
