"""Benchmark: preprocessing of one simulated subject, minutes and peak RSS, plus accuracy.

Simulates one subject of a preset (``study``: 8 runs of 16 x 29 s clips at TR 0.735 s,
2.4 mm, 64 slices, multiband 8, 1 mm T1w), runs the anatomical and every BOLD workflow
with nipype MultiProc, and scores the result against the planted truth (motion error,
GM Dice, sphere-centre error).  Goal on 2 cores: <= 30 min and <= 8 GB per subject.

    python benchmarks/bench_preproc.py --preset study [--runs 8] [--nprocs 2]
    python benchmarks/bench_preproc.py --preset tiny --quality fast      # a quick check
    python benchmarks/bench_preproc.py --preset study --bids DIR     # reuse a simulation

``--bids`` takes a dataset written earlier by ``bidsapp simulate DIR --preset <preset>
--seed 0 --subjects 1 --runs <runs>`` (15 min for the study preset) instead of writing it
again; the simulation is never part of the measured time either way.

Peak memory is the largest sum of the proportional set size (PSS: resident memory, shared
pages divided among the processes sharing them) over this process and all its children,
sampled every 0.5 s from /proc; the simulation runs in its own process beforehand.
Prints the result and writes it to ``benchmarks/results/bench_preproc_<preset>.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _pss_bytes(pid: int) -> int:
    # Forked workers share most pages with their parent: summing RSS would count them twice.
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def _tree_rss_bytes(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            rss[int(entry)] = _pss_bytes(int(entry))
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class PeakMemory:
    """Sample the resident memory of this process tree in a background thread."""

    def __init__(self, interval: float = 0.5):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss_bytes(os.getpid()))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def node_durations(work_dir: Path) -> dict[str, float]:
    """Seconds per node type (summed over runs), from nipype's result files."""
    from nipype.utils.filemanip import loadpkl

    totals: dict[str, float] = {}
    for path in work_dir.rglob("result_*.pklz"):
        try:
            result = loadpkl(path)
        except Exception:  # noqa: BLE001 - a half-written result of an interrupted run
            continue
        name = path.parent.name
        duration = getattr(result.runtime, "duration", 0.0) or 0.0
        totals[name] = totals.get(name, 0.0) + float(duration)
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def node_schedule(work_dir: Path, origin: float) -> dict[str, list[float]]:
    """Start and end (s after ``origin``, a ``time.time()``) of every job, from nipype.

    Shows how MultiProc packed the jobs on the cores: e.g. whether the normalization ran
    beside the first head-motion jobs.
    """
    from datetime import datetime

    from nipype.utils.filemanip import loadpkl

    spans = {}
    for path in work_dir.rglob("result_*.pklz"):
        try:
            runtime = loadpkl(path).runtime
            start = datetime.fromisoformat(runtime.startTime).timestamp() - origin
            end = datetime.fromisoformat(runtime.endTime).timestamp() - origin
        except Exception:  # noqa: BLE001 - a half-written result or one without times
            continue
        if end - start >= 1.0:
            name = "/".join(path.parent.relative_to(work_dir).parts[-2:])
            spans[name] = [round(start, 1), round(end, 1)]
    return dict(sorted(spans.items(), key=lambda kv: kv[1][0]))


def score(bids: Path, values: dict, runs: list, output_res: float) -> dict:
    """Accuracy against the simulation's truth (see :mod:`bidsapp.preproc.validation`)."""
    import nibabel as nb
    import numpy as np

    from bidsapp.preproc._ants import read_itk_affines
    from bidsapp.preproc.resample import template_to_t1w_points
    from bidsapp.preproc.validation import (
        brain_points,
        chain_error,
        field_at,
        gm_dice,
        motion_error,
    )
    from bidsapp.simulate import truth
    from bidsapp.templates import get_template

    planted = truth.load_transform(bids, "01")
    grid = nb.load(values["anat_ref_file"])
    t1w = nb.load(values["anat_t1w_preproc"])
    points = template_to_t1w_points(grid, t1w, values["anat_t1w2std_xfm"])
    brain = np.asarray(nb.load(values["anat_brain_mask_std"]).dataobj) > 0
    grid_points = (np.indices(grid.shape).transpose(1, 2, 3, 0) @ grid.affine[:3, :3].T
                   + grid.affine[:3, 3])
    template = get_template(truth.load(bids)["Space"])
    out = {"gm_dice": gm_dice(nb.load(template.gm_probseg), grid_points[brain], points[brain],
                              planted.to_template_fast)}
    centres = np.array([s["center_mni"] for s in truth.load(bids)["Spheres"]], dtype=float)
    motion, chain = [], []
    for k, run in enumerate(runs):
        number = int(run.entities.get("run", k + 1))
        hmc = read_itk_affines(values[f"run{k}_hmc_xforms"])
        true = truth.load_motion(bids, "01", number)
        motion.append(motion_error(hmc, true, brain_points(nb.load(values[f"run{k}_boldref"]))))
        chain.append(chain_error(centres, field_at(grid, points, centres),
                                 read_itk_affines(values[f"run{k}_coreg_xfm"])[0], hmc,
                                 planted.to_native, true).tolist())
    out["motion_rms_mm"] = [m["rms_mm"] for m in motion]
    out["sphere_centre_error_mm"] = chain
    out["sphere_centre_error_voxels_max"] = float(np.max(chain) / output_res)
    return out


def _pack(**fields):
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="study", choices=["tiny", "study"])
    parser.add_argument("--runs", type=int, default=None, help="limit the number of runs")
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--omp-nthreads", type=int, default=1)
    parser.add_argument("--quality", default="default", choices=["default", "fast"])
    parser.add_argument("--interpolation", default="cubic", choices=["cubic", "trilinear"],
                        help="of the BOLD resampling to the template")
    parser.add_argument("--mem-gb", type=float, default=None,
                        help="MultiProc's memory budget, as the app's --mem (default: "
                             "nipype's, 90%% of the machine)")
    parser.add_argument("--bids", type=Path, default=None,
                        help="an existing simulation of this preset (seed 0, 1 subject)")
    parser.add_argument("--work", type=Path, default=Path("bench_preproc_work"))
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--note", default=None, help="stored in the result, e.g. the load")
    args = parser.parse_args()

    from bidsapp.templates import NILEARN_SPACE, configure_templateflow_home

    # TemplateFlow reads its home when first imported: set it before anything imports it.
    configure_templateflow_home(os.environ.get("TEMPLATEFLOW_HOME") or args.work / "tf")
    import nibabel as nb
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe

    from bidsapp.bids import collect_participants, open_layout
    from bidsapp.config import Config
    from bidsapp.io import write_json
    from bidsapp.simulate.presets import make_params
    from bidsapp.workflows.anatomical import init_anat_wf
    from bidsapp.workflows.bold import BOLD_INPUTS, init_bold_wf

    work = args.work.absolute()
    params = make_params(args.preset)
    runs = args.runs or params.runs
    started = time.monotonic()
    if args.bids is not None:
        bids, simulate_s = args.bids.absolute(), None
    else:
        bids = work / "bids"
        # In its own process, so that its memory (the network, the 1 mm images) is not
        # counted.
        subprocess.run([sys.executable, str(REPO / "run.py"), "simulate", str(bids),
                        "--preset", args.preset, "--seed", "0", "--subjects", "1", "--runs",
                        str(runs)], check=True)
        simulate_s = time.monotonic() - started
    config = Config(bids_dir=bids, output_dir=work / "out", analysis_level="participant",
                    participant_label=("01",), output_space=NILEARN_SPACE,
                    output_res=params.voxel_size, nprocs=args.nprocs,
                    omp_nthreads=args.omp_nthreads, work_dir=work / "work")
    subject = collect_participants(open_layout(bids), config)[0]
    workflow = pe.Workflow(name="sub_01_wf", base_dir=str(config.work_dir))
    anat = init_anat_wf(config=config, normalization_quality=args.quality)
    anat.inputs.inputnode.t1w = str(subject.t1w)
    fields = {f"anat_{f}": (anat, f)
              for f in ("t1w_preproc", "t1w2std_xfm", "ref_file", "brain_mask_std")}
    for k, run in enumerate(subject.bold):
        bold = init_bold_wf(bold_run=run, config=config, interpolation=args.interpolation)
        workflow.connect([(anat, bold, [(f"outputnode.{f}", f"inputnode.{f}")
                                        for f in BOLD_INPUTS if f != "bold_file"])])
        fields.update({f"run{k}_{f}": (bold, f) for f in ("hmc_xforms", "coreg_xfm", "boldref")})
    # nipype drops identity nodes from what it runs, so a function node gathers the outputs.
    pack = pe.Node(niu.Function(input_names=list(fields), output_names=["fields"],
                                function=_pack), name="collect")
    for key, (sub, field) in fields.items():
        workflow.connect(sub, f"outputnode.{field}", pack, key)

    plugin_args = {"n_procs": args.nprocs, "raise_insufficient": False}
    if args.mem_gb:
        plugin_args["memory_gb"] = args.mem_gb
    load_before = os.getloadavg()
    started, started_wall = time.monotonic(), time.time()
    with PeakMemory() as memory:
        graph = workflow.run(plugin="MultiProc", plugin_args=plugin_args)
    wall = time.monotonic() - started
    load_after = os.getloadavg()
    values = next(n for n in graph.nodes() if n.name == "collect").result.outputs.fields
    result = {
        "preset": args.preset, "runs": runs, "quality": args.quality,
        "interpolation": args.interpolation, "memory_budget_gb": args.mem_gb,
        "volumes": sum(r.n_volumes for r in subject.bold),
        "bold_shape": list(nb.load(subject.bold[0].path).shape),
        "nprocs": args.nprocs, "omp_nthreads": args.omp_nthreads,
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "simulate_minutes": None if simulate_s is None else round(simulate_s / 60, 2),
        "minutes_per_subject": round(wall / 60, 2),
        "peak_memory_gb": round(memory.peak / 1e9, 2),
        "goal": "<= 30 min and <= 8 GB per subject on 2 cores",
        # 1, 5 and 15 min load averages of the whole machine: other users' jobs show here.
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "node_seconds": {k: round(v, 1) for k, v in node_durations(config.work_dir).items()},
        "schedule": node_schedule(config.work_dir, started_wall),
        "accuracy": score(bids, values, list(subject.bold), config.output_res),
    }
    if args.note:
        result["note"] = args.note
    output = args.output or RESULTS / f"bench_preproc_{args.preset}.json"
    write_json(output, result)
    print({k: v for k, v in result.items() if k != "node_seconds"})
    print("slowest steps (s):", dict(list(result["node_seconds"].items())[:8]))
    print(f"written to {output}")


if __name__ == "__main__":
    main()
