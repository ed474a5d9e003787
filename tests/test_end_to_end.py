"""End to end through the command line on the simulated tiny preset, checked file by file.

Slow (preprocessing with antspyx on two participants): run with ``pytest -m slow``; CI runs
it in ``make test-slow``.  One test, because every check needs the same expensive runs:

1. two participants run at the same time, as two processes, into one output folder and
   one feature cache, with the BIDS folder read-only (concurrency);
2. a third run of sub-01 into another folder is killed (SIGKILL) in the middle of its
   searchlight and run again with the same work folder (resume): it must not redo the
   steps that had finished, and its outputs must equal the clean run's;
3. the group level, and the whole output tree against ``tests/data/expected_outputs.txt``;
4. what the maps say about the simulator's planted truth.

The simulation and the app use the untrained (He-initialised, deterministic) weights, not
the trained release in ``models/``.  The recovery check needs the ten candidate RDMs to be
told apart at tiny's 32 TRs, which is a property of the weights and stimuli, not of the
pipeline under test.  The trained release's adjacent deep layers have nearly the same TR
geometry there (Spearman 0.89-0.96 between the candidate RDMs of conv4_1, conv4_2 and
conv5_1), and a planted conv4_2 sphere came out 0.002 below conv5_1 (``docs/validation.md``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
from planted_truth import check_planted_truth
from tree_helpers import set_read_only

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
_HASH = re.compile(r"_[0-9a-f]{16}_features\.npz$")
SPACE = "MNI152NLin2009aSym"  # ships with nilearn: runs offline
PREFIX = f"task-music_space-{SPACE}_res-2p4"
COMMON = ["--output-space", SPACE, "--normalization-quality", "fast", "--nprocs", "1",
          "--omp-nthreads", "1", "--n-permutations", "20"]


def output_list(out: Path) -> list[str]:
    """Relative paths of every output file, logs excluded, content hashes normalised."""
    files = (p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    return sorted(_HASH.sub("_<hash>_features.npz", f) for f in files
                  if not f.startswith("logs/"))


def start_app(cwd: Path, log: Path, *args) -> subprocess.Popen:
    """Start ``run.py`` in the background, its log going to ``log``."""
    with log.open("w") as stream:
        return subprocess.Popen([sys.executable, str(REPO / "run.py"), *map(str, args)],
                                stdout=subprocess.DEVNULL, stderr=stream, cwd=cwd)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 3000) -> None:
    """Wait for a run and fail with its log unless it exited 0."""
    assert proc.wait(timeout=timeout) == 0, log.read_text()[-5000:]


def same_outputs(a: Path, b: Path) -> None:
    """Assert two participant trees hold the same files and the same values.

    NIfTI files are compared by affine and data, HDF5 transforms by their datasets (both
    exactly); SVG figures and HTML only by name, since matplotlib stamps a creation date
    into every SVG.
    """
    names_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    names_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert names_a == names_b
    for name in names_a:
        if name.endswith((".svg", ".html")):
            continue
        if name.endswith(".h5"):
            _same_hdf5(a / name, b / name)
        elif name.endswith((".nii", ".nii.gz")):
            img_a, img_b = nb.load(a / name), nb.load(b / name)
            np.testing.assert_array_equal(img_a.affine, img_b.affine, err_msg=name)
            np.testing.assert_array_equal(np.asanyarray(img_a.dataobj),
                                          np.asanyarray(img_b.dataobj), err_msg=name)
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _same_hdf5(a: Path, b: Path) -> None:
    """Assert two HDF5 files (ITK transforms) hold the same datasets and values.

    The bytes differ: HDF5 stamps modification times into its object headers.
    """
    import h5py

    def datasets(path):
        found = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda key, obj: found.__setitem__(key, obj[()])
                         if isinstance(obj, h5py.Dataset) else None)
        return found

    data_a, data_b = datasets(a), datasets(b)
    assert sorted(data_a) == sorted(data_b), a.name
    for key, value in data_a.items():
        np.testing.assert_array_equal(value, data_b[key], err_msg=f"{a.name}:{key}")


@pytest.mark.slow
@pytest.mark.timeout(3600)  # five app runs; about 15 min on 2 busy cores
def test_simulated_participants_then_group(run_app, tmp_path, monkeypatch):
    from bidsapp.audio.weights import init_untrained

    # Every run.py below inherits this: simulation and analysis use the same weights.
    init_untrained(tmp_path / "models")
    monkeypatch.setenv("BIDSAPP_MODELS_DIR", str(tmp_path / "models"))
    bids, out = tmp_path / "bids", tmp_path / "out"
    proc = run_app("simulate", bids, "--preset", "tiny", "--seed", "0")
    assert proc.returncode == 0, proc.stderr
    set_read_only(bids, True)
    try:
        _participants_resume_and_group(run_app, tmp_path, bids, out)
    finally:
        set_read_only(bids, False)


def _participants_resume_and_group(run_app, tmp_path, bids, out):
    # 1. Two participants at once, sharing the output folder and the feature cache.
    logs = [tmp_path / "sub-01.log", tmp_path / "sub-02.log"]
    procs = [start_app(tmp_path, log, bids, out, "participant", "--participant-label", label,
                       "-w", tmp_path / f"work{label}", *COMMON)
             for label, log in zip(("01", "sub-02"), logs, strict=True)]
    for proc, log in zip(procs, logs, strict=True):
        finish(proc, log)
    expected = (DATA / "expected_outputs.txt").read_text().split()
    assert [f for f in output_list(out) if not f.startswith("group")] == \
        [f for f in expected if not f.startswith("group")]
    assert not [p for p in out.rglob(".*") if p.name != ".bidsignore"], "temporary files left"
    for path in out.rglob("*.nii.gz"):  # every image complete and readable
        assert np.asanyarray(nb.load(path).dataobj).size > 0, path
    for path in out.rglob("*.json"):
        json.loads(path.read_text())
    assert len(list((out / "features").glob("*_features.npz"))) == 4

    # The participant products beyond the maps: report, methods text, permutation null.
    for label in ("01", "02"):
        report = (out / f"sub-{label}.html").read_text()
        assert "Candidate RDMs" in report and report.count("<svg") >= 8
        assert "trained" in report  # the weights' status is stated
    citation = (out / "logs" / "CITATION.md").read_text()
    assert "ResNet-18" in citation and "20 permutations of whole trials" in citation
    null_file = out / "sub-01" / "func" / f"sub-01_{PREFIX}_desc-maxnull_stat-r_statmap.nii.gz"
    assert nb.load(null_file).shape[3] == 20

    # 2. Resume: SIGKILL in the middle of the searchlight, then the same command again.
    out2, work2, log = tmp_path / "out2", tmp_path / "work_resume", tmp_path / "resume.log"
    args = [bids, out2, "participant", "--participant-label", "01", "-w", work2, *COMMON]
    proc = start_app(tmp_path, log, *args)
    deadline = time.monotonic() + 3000
    while "Permutation null:" not in log.read_text():
        assert proc.poll() is None, log.read_text()[-5000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {p: p.stat().st_mtime_ns for p in work2.rglob("result_*.pklz")
            if "ds_" not in p.name}
    assert done and not list(work2.rglob("result_merge_maps.pklz"))
    finish(start_app(tmp_path, log, *args), log)
    assert done == {p: p.stat().st_mtime_ns for p in done}, "finished steps were rerun"
    same_outputs(out / "sub-01", out2 / "sub-01")

    # 3. Group level and the whole tree.
    proc = run_app(out.parent / "bids", out, "group", *COMMON[:4], timeout=3000)
    assert proc.returncode == 0, proc.stderr
    assert output_list(out) == expected
    assert "permutation" in (out / "group.html").read_text()

    # 4. The planted truth (see docs/simulate.md), on the mean of the two participants.
    _check_planted_layers(bids, out)


def _check_planted_layers(bids: Path, out: Path) -> None:
    check_planted_truth(bids, [out / f"sub-{label}" / "func" for label in ("01", "02")],
                        PREFIX, near_mm=5.0)
