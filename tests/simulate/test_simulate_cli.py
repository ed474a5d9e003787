"""``bidsapp simulate`` as a user runs it: exit codes and one successful small run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bidsapp.cli.run import main as bidsapp_main

REPO = Path(__file__).resolve().parents[2]

SMALL_ARGS = ["--subjects", "1", "--runs", "1", "--clips", "2", "--clip-seconds", "4",
              "--tr", "1", "--voxel-size", "6", "--t1w-voxel-size", "4", "--slices", "24",
              "--fov", "192", "--gap-seconds", "1", "2", "--rest", "2", "--radius", "12"]


def _simulate(*args, cwd):
    return subprocess.run([sys.executable, str(REPO / "run.py"), "simulate", *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=cwd)


def _one_error(stderr):
    lines = [ln for ln in stderr.splitlines() if ln.startswith("bidsapp: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("args,code,words", [
    ([], 64, "the following arguments are required"),
    (["{out}", "--preset", "huge"], 64, "invalid choice"),
    (["{out}", "--layers", "11"], 64, "between 1 and 10"),
    (["{out}", "--seed", "-1"], 64, "at least 0"),
    (["{out}", "--center=0,0", "--layers", "1"], 64, "X,Y,Z"),
    (["{out}", "--slices", "30", "--multiband", "4"], 64, "multiple of --multiband"),
    (["{out}", "--center=0,0,120"], 64, "no brain voxel"),
    (["{out}", "--weights", "/nonexistent/w.safetensors"], 66, "weights"),
    (["{file}/out"], 73, "Cannot create"),
    (["{full}"], 64, "--overwrite"),
])
def test_exit_codes(tmp_path, capsys, args, code, words):
    """The same entry point as ``bidsapp simulate``, in-process to keep the test fast."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    args = [a.format(out=tmp_path / "out", file=tmp_path / "file", full=tmp_path / "full")
            for a in args]
    assert bidsapp_main(["simulate", *args]) == code
    assert words in _one_error(capsys.readouterr().err)
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["notes.txt"]
    assert not (tmp_path / "out").exists()  # every error is found before writing


def test_usage_error_through_run_py(tmp_path):
    proc = _simulate(tmp_path / "out", "--snr", "-2", cwd=tmp_path)
    assert proc.returncode == 64
    assert "--snr" in _one_error(proc.stderr)


def test_print_params(tmp_path):
    proc = _simulate(tmp_path / "out", "--preset", "study", "--snr", "0.3", "--print-params",
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    params = json.loads(proc.stdout)
    assert params["snr"] == 0.3 and params["multiband"] == 8 and params["preset"] == "study"


def test_small_multiband_dataset(tmp_path):
    out = tmp_path / "sim"
    proc = _simulate(out, *SMALL_ARGS, "--multiband", "4", "--center=-44,-22,8", "--layers",
                     "5", "--seed", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "simulate: sub-01 run-1" in proc.stderr  # progress is printed
    meta = json.loads((out / "sub-01/func/sub-01_task-music_run-1_bold.json").read_text())
    timing = meta["SliceTiming"]
    assert meta["MultibandAccelerationFactor"] == 4 and len(timing) == 24
    assert len(set(timing)) == 6 and all(timing[k] == timing[k % 6] for k in range(24))
    truth = json.loads((out / "derivatives/truth/truth_layers.json").read_text())
    assert [(s["center_mni"], s["layer"]) for s in truth["Spheres"]] == [([-44, -22, 8], 5)]
