"""Benchmark: one finished participant's searchlight chunk again, on 1 and on 2 threads.

    python benchmarks/chunk_threads.py NODE_DIR [--centres 512] [--rounds 2]

NODE_DIR is a searchlight chunk's folder in a kept work directory (``.../rsa_<task>_wf/
searchlight/mapflow/_searchlight0``).  Its first ``--centres`` centres are computed again
with the same inputs (the permutation null included) on 1 and on 2 threads, alternately,
so the ratio comes from one run on the same data; each result is compared with the
participant run's.  Results: ``benchmarks/results/chunk_threads.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from nipype.utils.filemanip import loadpkl

from bidsapp.interfaces.rsa import SearchlightChunk

RESULTS = Path(__file__).resolve().parent / "results" / "chunk_threads.json"


def run_chunk(inputs: dict, centres: int, threads: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """Run the chunk's first ``centres`` centres on ``threads`` threads.

    Parameters
    ----------
    inputs : dict
        The node's inputs (``_inputs.pklz``).
    centres : int
        How many centres, from the first.
    threads : int
        ``n_jobs`` of the node.

    Returns
    -------
    record : dict
        Wall and CPU seconds, ms per centre.
    correlations, null : numpy.ndarray
        The node's outputs.
    """
    with tempfile.TemporaryDirectory() as tmp:
        node = SearchlightChunk(patterns=inputs["patterns"], neighbors=inputs["neighbors"],
                                candidate_rdms=inputs["candidate_rdms"], chunk=(0, centres),
                                device="cpu", n_permutations=inputs["n_permutations"],
                                seed=inputs["seed"], design=inputs["design"],
                                mem_gb=inputs["mem_gb"], n_jobs=threads)
        wall, cpu = time.perf_counter(), time.process_time()
        result = node.run(cwd=tmp)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        correlations = np.load(result.outputs.correlations)
        null = np.load(result.outputs.null)["max_r"] if inputs["n_permutations"] else None
    return ({"threads": threads, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
             "ms_per_centre": round(1000 * wall / centres, 1)}, correlations, null)


def main(argv: list[str] | None = None) -> dict:
    """Time the chunk on 1 and 2 threads and write the results.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (see the module's docstring).

    Returns
    -------
    dict
        The results written to ``benchmarks/results/chunk_threads.json``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("node_dir", type=Path)
    parser.add_argument("--centres", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args(argv)
    inputs = loadpkl(opts.node_dir / "_inputs.pklz")
    full_r = np.load(next(opts.node_dir.glob("correlations_*.npy")))
    nulls = sorted(opts.node_dir.glob("null_*.npz"))
    full_null = np.load(nulls[0])["max_r"] if nulls else None
    n = min(opts.centres, len(full_r))
    results = {"node_dir": str(opts.node_dir), "centres": n,
               "n_permutations": inputs["n_permutations"], "rounds": []}
    for _ in range(opts.rounds):
        for threads in (1, 2):
            record, correlations, null = run_chunk(inputs, n, threads)
            # Threads split the permutations, never a sum: the maps must not move.
            record["max_abs_diff_vs_participant_run"] = float(max(
                np.nanmax(np.abs(correlations - full_r[:n])),
                0.0 if null is None else np.nanmax(np.abs(null - full_null[:, :n]))))
            print(record, flush=True)
            results["rounds"].append(record)
    per = {t: [r["ms_per_centre"] for r in results["rounds"] if r["threads"] == t]
           for t in (1, 2)}
    results["speedup_2_threads_per_round"] = [round(a / b, 2)
                                              for a, b in zip(per[1], per[2], strict=True)]
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
