"""Benchmark: reading template-space runs into in-mask time courses, whole or in blocks.

The participant level's pattern step reads every run of a task inside the GM mask.
Loading a run whole holds its full grid in memory before masking; ``masked_volumes``
reads blocks of volumes through one open file.  Each way runs in a fresh process over
the same runs, so its peak RSS is its own; the script checks that both give the same
values.

    python benchmarks/bench_masked_read.py MASK BOLD [BOLD ...] [--block 32]

e.g. with the study preset's outputs::

    python benchmarks/bench_masked_read.py \\
        out/sub-01/anat/sub-01_space-MNI152NLin2009aSym_res-2p4_label-GM_mask.nii.gz \\
        out/sub-01/func/sub-01_task-music_run-[12]_*desc-preproc_bold.nii.gz

Prints a summary and writes ``benchmarks/results/bench_masked_read.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "bench_masked_read.json"


def read_all(way: str, mask_file: str, bolds: list[str], block: int) -> dict:
    """Read every run one way; return seconds, peak RSS and a checksum.

    Parameters
    ----------
    way : {"whole", "blocks"}
        ``np.asanyarray(img.dataobj)[mask].T`` or
        :func:`bidsapp.rsa.timeseries.masked_volumes`.
    mask_file : str
        The mask on the runs' grid.
    bolds : list of str
        4D NIfTI runs.
    block : int
        Volumes per block for ``blocks``.

    Returns
    -------
    dict
        ``seconds``, ``peak_rss_gb`` (this process), ``values`` (in-mask values kept) and
        ``checksum`` (sum of every value, float64).
    """
    import nibabel as nb
    import numpy as np

    from bidsapp.rsa.timeseries import masked_volumes

    mask = np.asanyarray(nb.load(mask_file).dataobj) > 0
    start = time.perf_counter()
    runs = []
    for bold in bolds:
        if way == "whole":
            runs.append(np.asanyarray(nb.load(bold).dataobj)[mask].T)
        else:
            runs.append(masked_volumes(bold, mask, block=block))
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
            "values": int(sum(r.size for r in runs)),
            "checksum": float(sum(r.sum(dtype=np.float64) for r in runs))}


def main(argv: list[str] | None = None) -> dict:
    """Run both ways in fresh processes, compare them and write the results file.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    dict
        What was written to ``benchmarks/results/bench_masked_read.json``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mask")
    parser.add_argument("bolds", nargs="+")
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--way", choices=["whole", "blocks"], help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.way:  # the child process
        print(json.dumps(read_all(opts.way, opts.mask, opts.bolds, opts.block)))
        return {}
    results = {"machine": platform.node(), "mask": opts.mask, "bolds": opts.bolds,
               "block": opts.block}
    for way in ("whole", "blocks"):
        proc = subprocess.run([sys.executable, __file__, opts.mask, *opts.bolds,
                               "--block", str(opts.block), "--way", way],
                              capture_output=True, text=True, check=True)
        results[way] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{way}: {results[way]['seconds']} s, peak {results[way]['peak_rss_gb']} GB")
    results["identical"] = results["whole"]["checksum"] == results["blocks"]["checksum"]
    results["peak_ratio_whole_over_blocks"] = round(
        results["whole"]["peak_rss_gb"] / results["blocks"]["peak_rss_gb"], 2)
    print(f"identical: {results['identical']}; peak whole / blocks: "
          f"{results['peak_ratio_whole_over_blocks']}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
