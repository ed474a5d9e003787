"""A real progress log of one searchlight job at a chosen size, through the app's interface.

Runs :class:`bidsapp.interfaces.rsa.SearchlightChunk` (what a participant's searchlight
node runs) on random patterns of the chosen size, with the permutation null, and keeps its
log lines: the start line (T, layers, passes, memory), the progress lines with their ETA,
and the warning a long CPU run gets.  With ``--stop-after`` the job is stopped once that
many progress lines are out, so that a job of hours still shows its first estimates.

    python benchmarks/progress_log.py --trs 496 --voxels 78000 --centres 20000
    python benchmarks/progress_log.py --trs 2400 --voxels 78000 --centres 20000 --stop-after 3

Writes the lines and the measured peak RSS to ``benchmarks/results/progress_log_T<T>.txt``.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bidsapp.design import RunDesign, build_trial_design

RESULTS = Path(__file__).resolve().parent / "results"


def _job(folder: str, args: argparse.Namespace) -> None:
    from bidsapp.interfaces.rsa import SearchlightChunk
    from bidsapp.logs import setup_logging

    setup_logging(0)
    folder = Path(folder)
    node = SearchlightChunk(patterns=str(folder / "patterns.npy"),
                            neighbors=str(folder / "neighbors.npy"),
                            candidate_rdms=str(folder / "rdms.npy"), chunk=(0, args.centres),
                            device="cpu", n_jobs=args.threads, n_permutations=args.permutations,
                            seed=0, design=json.loads((folder / "design.json").read_text()))
    node.run(cwd=str(folder))


def main(argv: list[str] | None = None) -> int:
    """Write the inputs, run the job in a child process, and keep its log.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (see the module docstring).

    Returns
    -------
    int
        0.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trs", type=int, default=496)
    parser.add_argument("--voxels", type=int, default=78000)
    parser.add_argument("--centres", type=int, default=20000)
    parser.add_argument("--sphere", type=int, default=100)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--stop-after", type=int, default=0,
                        help="stop after this many progress lines (0: run to the end)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.save(folder / "patterns.npy",
                rng.standard_normal((args.trs, args.voxels)).astype(np.float32))
        np.save(folder / "neighbors.npy", np.stack(
            [rng.choice(args.voxels, args.sphere, replace=False)
             for _ in range(args.centres)]).astype(np.int32))
        rdms = rng.random((args.layers, args.trs, args.trs))
        np.save(folder / "rdms.npy", (rdms + rdms.transpose(0, 2, 1)) / 2)
        del rdms
        lengths = np.diff(np.linspace(0, args.trs, args.trials + 1).round().astype(int))
        stims = [f"s{i:02d}" for i in range(args.trials)]
        onsets = tuple(float(t) for t in np.cumsum([0, *lengths[:-1]]))
        design = build_trial_design(
            "bench", 1.0, [RunDesign("run-1", onsets, tuple(stims), 0.5)],
            audio={s: f"{s}.wav" for s in stims},
            trial_trs={s: int(n) for s, n in zip(stims, lengths, strict=True)}, drop_seconds=0)
        (folder / "design.json").write_text(json.dumps(design.to_dict()))
        log = folder / "job.log"
        started = time.monotonic()
        with log.open("w") as stream:
            sys.stderr.flush()
            saved = sys.stderr
            sys.stderr = stream
            try:
                job = mp.get_context("fork").Process(target=_job, args=(str(folder), args))
                job.start()
            finally:
                sys.stderr = saved
        while job.is_alive():
            job.join(timeout=2)
            progress = [line for line in log.read_text().splitlines() if "ETA" in line]
            if args.stop_after and len(progress) >= args.stop_after:
                job.terminate()
                job.join()
        seconds = time.monotonic() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        lines = log.read_text()
    out = RESULTS / f"progress_log_T{args.trs}.txt"
    out.parent.mkdir(exist_ok=True)
    header = (f"# {' '.join(sys.argv)}\n# {time.strftime('%Y-%m-%d %H:%M')}, "
              f"{seconds:.0f} s, peak RSS of the job {peak:.2f} GB\n")
    out.write_text(header + lines)
    print(header + lines)
    return 0


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
