"""Benchmark: the cost of the participant permutation null against the observed searchlight.

At the study's size (GM mask at 2.4 mm, 16 trials of 31 TRs, t = 496, 10 layers) on a
subset of centers: the observed maps (``bidsapp.rsa.searchlight``) and
``bidsapp.stats.participant_null`` with K permutations, on the same centers, timed in the
same process.  The ratio null / observed per permutation is what scales the participant
level's searchlight time by ``--n-permutations``.  ``--compare`` also times the way the null
was computed before the engine took TR orders (every permuted RDM ranked as a candidate of
its own, batches of 256 MB), on the same centers, and checks that both give the same maxima.

    python benchmarks/bench_null.py [--centers 1000] [--permutations 100] [--device cpu]
                                    [--compare]

Prints a summary and writes ``benchmarks/results/bench_null.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from bidsapp.rsa.neighbors import neighbors
from bidsapp.rsa.searchlight import searchlight
from bidsapp.stats import participant_null

RESULTS = Path(__file__).resolve().parent / "results" / "bench_null.json"
N_TRIALS, TRIAL_TRS, N_LAYERS, WHOLE_BRAIN_CENTERS = 16, 31, 10, 110_298


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and write its JSON results.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (``--centers``, ``--permutations``, ``--device``).

    Returns
    -------
    dict
        The results written to ``benchmarks/results/bench_null.json``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--centers", type=int, default=1000)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compare", action="store_true")
    opts = parser.parse_args(argv)

    from bench_searchlight import gm_mask  # same mask as the searchlight benchmark

    mask, _ = gm_mask()
    rng = np.random.default_rng(0)
    n_tr = N_TRIALS * TRIAL_TRS
    patterns = rng.standard_normal((n_tr, int(mask.sum()))).astype(np.float32)
    nbrs = neighbors(mask, 100)
    centers = np.sort(rng.choice(len(nbrs), opts.centers, replace=False))
    nbrs = nbrs[centers]
    features = rng.standard_normal((N_LAYERS, n_tr, 8)).cumsum(axis=1)
    rdms = np.stack([1.0 - np.corrcoef(f) for f in features]).astype(np.float32)
    engine = functools.partial(searchlight, device=opts.device, n_jobs=os.cpu_count() or 1)

    started = time.perf_counter()
    engine(patterns, nbrs, rdms)
    observed = time.perf_counter() - started
    started = time.perf_counter()
    result = participant_null(patterns, nbrs, rdms, [TRIAL_TRS] * N_TRIALS,
                              opts.permutations, 0, engine)
    null = time.perf_counter() - started
    per_permutation = null / opts.permutations / observed
    compared = {}
    if opts.compare:
        def explicit(p, n, c):  # no ``orders`` keyword: participant_null permutes the RDMs
            return engine(p, n, c)

        started = time.perf_counter()
        before = participant_null(patterns, nbrs, rdms, [TRIAL_TRS] * N_TRIALS,
                                  opts.permutations, 0, explicit, max_batch_bytes=256 * 2**20)
        seconds = time.perf_counter() - started
        compared = {"null_permuted_rdms_s": round(seconds, 3),
                    "speedup_over_permuted_rdms": round(seconds / null, 2),
                    "identical_maxima": bool(np.array_equal(before.max_r, result.max_r))}
    results = {
        "machine": platform.node(), "cpus": os.cpu_count(), "device": opts.device,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "centers": opts.centers, "n_tr": n_tr, "layers": N_LAYERS,
        "permutations": opts.permutations,
        "observed_s": round(observed, 3), "null_s": round(null, 3),
        "null_per_permutation_over_observed": round(per_permutation, 3),
        "estimated_whole_brain_null_h_per_100_permutations": round(
            100 * per_permutation * observed * WHOLE_BRAIN_CENTERS / opts.centers / 3600, 2),
        **compared,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
