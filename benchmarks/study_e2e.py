"""Benchmark: the simulator's ``study`` preset end to end, as a lab would run it.

Simulates 6 participants x 8 runs (``bidsapp simulate --preset study --seed 0``), runs the
participant level for each participant with the defaults (permutation null K = 100
included) in the simulator's template space (``--output-space MNI152NLin2009aSym``, which
works offline), then the group level, and scores the group maps against the planted truth:

- *layer match*: in the planted voxels that the permutation test finds significant, the
  fraction whose group layer map (``desc-permbestlayer``) names the planted layer;
- *false-positive fraction*: significant voxels among the null voxels of the group mask
  (over 30 mm from every planted center), for the permutation test and, for comparison,
  the study's t-test;
- per planted sphere, each layer's r averaged over the sphere and the participants
  (:func:`bidsapp.simulate.truth.sphere_layer_profiles`), with no threshold.

Every stage is one command of the app; its wall time and the peak memory (proportional set
size, summed over the command's process tree, sampled every 0.5 s) are recorded with the
load averages, in ``benchmarks/results/study_e2e.json``.  The run resumes: a stage already
recorded as done is skipped, so the whole study can be run over several sittings on a small
machine (one participant takes about 45 min on 2 cores).  A participant's work directory
is deleted once it has finished (about 16 GB each), unless ``--keep-work``; the seconds of
each kind of nipype node (summed over runs and chunks) are recorded first.

    python benchmarks/study_e2e.py ROOT [--participants 01 02] [--nprocs 2] [--keep-work]
    python benchmarks/study_e2e.py ROOT --group     # group level and scores

ROOT holds ``bids/``, ``out/``, ``work/``, ``tf/`` (TemplateFlow cache) and one log per
stage.

``--preset naturalistic`` runs the whole-song preset instead (results in
``benchmarks/results/naturalistic_e2e.json``); ``--simulate-args`` and ``--app-args`` add
options to the simulation and to every participant run (e.g. a coarser grid on a small
machine), and each finished participant is scored on its own (planted spheres' layer
profiles, and the maximum against its permutation null far from the spheres), so one
participant at full length is already a result:

    python benchmarks/study_e2e.py ROOT --preset naturalistic --participants 01 \
        --simulate-args "--subjects 1 --voxel-size 4" --app-args "--output-res 4"

A simulation run beforehand by hand under ``/usr/bin/time -v -o ROOT/simulate.time``
is adopted with the figures that file gives.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_preproc import PeakMemory, node_durations  # noqa: E402  (same tools as that one)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SUBJECTS = [f"{i:02d}" for i in range(1, 7)]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _bidsapp() -> str:
    return str(Path(sys.executable).with_name("bidsapp"))


def run_stage(name: str, command: list[str], log: Path, env: dict) -> dict:
    """Run one command of the app; return its wall time, peak memory and exit status.

    Parameters
    ----------
    name : str
        The stage, for the progress line.
    command : list of str
        The command line.
    log : pathlib.Path
        Where its standard output and error go.
    env : dict
        Its environment.

    Returns
    -------
    dict
        ``command``, ``started``, ``wall_s``, ``peak_pss_gb``, ``exit_code`` and the load
        averages at the start and at the end.
    """
    print(f"[{_now()}] {name}: {' '.join(command)} (log: {log})", flush=True)
    record = {"command": " ".join(command), "started": _now(), "load_at_start": _load()}
    started = time.perf_counter()
    with PeakMemory() as peak, open(log, "ab") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    record.update(wall_s=round(time.perf_counter() - started, 1),
                  peak_pss_gb=round(peak.peak / 2**30, 2), exit_code=code,
                  load_at_end=_load())
    print(f"[{_now()}] {name}: exit {code} after {record['wall_s'] / 60:.1f} min, peak "
          f"{record['peak_pss_gb']} GB", flush=True)
    return record


def adopt_time_file(path: Path) -> dict:
    """Read the wall time and maximum RSS that ``/usr/bin/time -v`` wrote to ``path``."""
    text = path.read_text()
    clock = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", text).group(1)
    seconds = sum(float(part) * 60**i for i, part in enumerate(reversed(clock.split(":"))))
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    code = int(re.search(r"Exit status: (\d+)", text).group(1))
    command = re.search(r'Command being timed: "(.*)"', text).group(1)
    return {"command": command, "wall_s": round(seconds, 1),
            "peak_rss_gb": round(rss_kb / 2**20, 2), "exit_code": code,
            "measured_by": "/usr/bin/time -v (one process)"}


def score(bids: Path, out: Path) -> dict:
    """Compare the group maps with the planted truth.

    Parameters
    ----------
    bids, out : pathlib.Path
        The simulated dataset (with ``derivatives/truth``) and the app's output folder.

    Returns
    -------
    dict
        :func:`bidsapp.simulate.truth.group_layer_agreement` (per test: the significant
        planted voxels, the fraction whose layer map names the planted layer, the
        false-positive fraction among the null voxels) with ``sphere_profiles``
        (:func:`~bidsapp.simulate.truth.sphere_layer_profiles`) added.
    """
    from bidsapp.simulate.truth import group_layer_agreement, sphere_layer_profiles

    return {**group_layer_agreement(bids, out),
            "sphere_profiles": sphere_layer_profiles(bids, out)}


def participant_score(bids: Path, out: Path, label: str) -> dict:
    """Score one participant's maps against the planted truth, without the group level.

    Parameters
    ----------
    bids, out : pathlib.Path
        The simulated dataset and the app's output folder.
    label : str
        The participant.

    Returns
    -------
    dict
        ``sphere_profiles`` (:func:`~bidsapp.simulate.truth.sphere_layer_profiles` of this
        participant alone) and, over the voxels more than 30 mm from every planted centre,
        the median of the maximum over layers, the median and standard deviation of the
        maximum minus the mean of the participant's permutation null, and their count.
    """
    import nibabel as nb
    import numpy as np

    from bidsapp.simulate.truth import TRUTH_DIR, far_from_spheres, sphere_layer_profiles

    func = out / f"sub-{label}" / "func"
    profiles = sphere_layer_profiles(bids, out, subjects=[label])
    spheres = json.loads((bids / TRUTH_DIR / "truth_layers.json").read_text())["Spheres"]
    max_img = nb.load(next(func.glob("*_desc-maxcorr_stat-r_statmap.nii.gz")))
    max_r = np.asanyarray(max_img.dataobj)
    # One volume per permutation: its mean is the bias the maximum carries under the null.
    null = np.asanyarray(nb.load(next(func.glob("*_desc-maxnull_stat-r_statmap.nii.gz"))).dataobj)
    if null.ndim == 4:
        null = null.mean(axis=-1)
    far = np.isfinite(max_r) & np.isfinite(null) & far_from_spheres(max_img, spheres)
    debiased = max_r[far] - null[far]
    return {"sphere_profiles": profiles, "far_voxels": int(far.sum()),
            "far_median_max_r": round(float(np.median(max_r[far])), 4),
            "far_median_max_minus_null": round(float(np.median(debiased)), 4),
            "far_sd_max_minus_null": round(float(np.std(debiased)), 4)}


def main(argv: list[str] | None = None) -> dict:
    """Run the stages that are not recorded yet and write the results.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (see the module's docstring).

    Returns
    -------
    dict
        The results written to ``benchmarks/results/study_e2e.json``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--participants", nargs="+", default=SUBJECTS)
    parser.add_argument("--group", action="store_true", help="group level and scores only")
    parser.add_argument("--nprocs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep-work", action="store_true")
    parser.add_argument("--preset", default="study", choices=("study", "naturalistic"))
    parser.add_argument("--simulate-args", default="",
                        help="more options for bidsapp simulate, as one string")
    parser.add_argument("--app-args", default="",
                        help="more options for every participant run, as one string")
    opts = parser.parse_args(argv)
    results_file = RESULTS_DIR / f"{opts.preset}_e2e.json"
    root = opts.root.resolve()
    bids, out, work = root / "bids", root / "out", root / "work"
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(root / "tf")}
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    results.update(machine=platform.node(), cpus=os.cpu_count(), root=str(root),
                   preset=opts.preset, simulate_args=opts.simulate_args,
                   app_args=opts.app_args)
    stages = results.setdefault("stages", {})

    def save() -> None:
        results_file.parent.mkdir(exist_ok=True)
        tmp = results_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=2) + "\n")
        tmp.replace(results_file)

    if "simulate" not in stages:
        if (root / "simulate.time").exists() and (bids / "dataset_description.json").exists():
            stages["simulate"] = adopt_time_file(root / "simulate.time")
        else:
            stages["simulate"] = run_stage(
                "simulate", [_bidsapp(), "simulate", "--preset", opts.preset, "--seed", "0",
                             *shlex.split(opts.simulate_args), str(bids)],
                root / "simulate.log", env)
        save()
    if stages["simulate"]["exit_code"] != 0:
        raise SystemExit(f"the simulation failed: see {root / 'simulate.log'}")

    if not opts.group:
        for label in opts.participants:
            key = f"participant sub-{label}"
            if stages.get(key, {}).get("exit_code") != 0:
                stages[key] = run_stage(
                    key, [_bidsapp(), str(bids), str(out), "participant",
                          "--participant-label", label, "-w", str(work / f"sub-{label}"),
                          "--nprocs", str(opts.nprocs),
                          # the simulator's template space; nilearn's copy works offline
                          "--output-space", "MNI152NLin2009aSym",
                          *shlex.split(opts.app_args)],
                    root / f"participant_sub-{label}.log", env)
                save()
                if stages[key]["exit_code"] != 0:
                    raise SystemExit(
                        f"sub-{label} failed: see {root}/participant_sub-{label}.log")
            if "node_seconds" not in stages[key] and (work / f"sub-{label}").is_dir():
                # Wall seconds per kind of node (summed over runs and chunks), before they go.
                stages[key]["node_seconds"] = {
                    name: round(seconds, 1) for name, seconds
                    in node_durations(work / f"sub-{label}").items() if seconds >= 1.0}
                save()
            if "score" not in stages[key]:
                stages[key]["score"] = participant_score(bids, out, label)
                save()
            if not opts.keep_work:
                shutil.rmtree(work / f"sub-{label}", ignore_errors=True)
        return results

    stages["group"] = run_stage("group", [_bidsapp(), str(bids), str(out), "group",
                                          "--nprocs", str(opts.nprocs)],
                                root / "group.log", env)
    save()
    if stages["group"]["exit_code"] == 0:
        results["score"] = score(bids, out)
        save()
        print(json.dumps(results["score"], indent=2))
    return results


if __name__ == "__main__":
    main()
