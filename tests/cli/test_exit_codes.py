"""Exit codes end to end, through a subprocess running run.py as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _one_paragraph(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("bidsapp: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_version(run_app):
    proc = run_app("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"bidsapp {(REPO / 'version').read_text().strip()}"


def test_help_lists_bids_app_options(run_app):
    proc = run_app("--help")
    assert proc.returncode == 0
    for flag in ("--participant-label", "--participant_label", "--session-label", "--task",
                 "--bids-filter-file", "--work-dir", "--nprocs", "--omp-nthreads", "--mem",
                 "--use-plugin", "--skip-bids-validation", "--stop-on-first-crash",
                 "--random-seed", "--device", "--derivatives", "--output-space",
                 "--output-res", "--searchlight-jobs", "--config-file", "--verbose",
                 "--version"):
        assert flag in proc.stdout


def test_nonexistent_bids_dir(run_app, tmp_path):
    proc = run_app("/nonexistent", tmp_path / "o", "participant")
    assert proc.returncode == 66
    message = _one_paragraph(proc.stderr)
    assert "/nonexistent" in message and "Fix:" in message


def test_verbose_shows_traceback(run_app, tmp_path):
    proc = run_app("/nonexistent", tmp_path / "o", "participant", "-v")
    assert proc.returncode == 66 and "Traceback" in proc.stderr


@pytest.mark.parametrize("case,code", [
    ("usage", 64),
    ("same_dir", 64),
    ("not_bids", 66),
    ("unknown_label", 18),
    ("missing_stimulus", 66),
    ("corrupt_stimulus", 65),
    ("cannot_write", 73),
    ("invalid_bids", 16),
    ("group_before_participant", 66),
])
def test_exit_codes(run_app, bids_root, tmp_path, case, code):
    out = tmp_path / "out"
    args = [bids_root, out, "participant", "--skip-bids-validation"]
    if case == "usage":
        args = [bids_root, out, "participant", "--nprocs", "-3"]
    elif case == "same_dir":
        args = [bids_root, bids_root, "participant"]
    elif case == "not_bids":
        (bids_root / "dataset_description.json").unlink()
    elif case == "unknown_label":
        args += ["--participant-label", "sub-99"]
    elif case == "missing_stimulus":
        (bids_root / "stimuli" / "clip-a.wav").unlink()
    elif case == "corrupt_stimulus":
        (bids_root / "stimuli" / "clip-a.wav").write_bytes(b"not audio at all")
    elif case == "cannot_write":
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        args = [bids_root, blocker / "out", "participant", "--skip-bids-validation"]
    elif case == "invalid_bids":
        from bidsapp.bids.validate import find_validator

        if find_validator() is None:
            pytest.skip("bids-validator is not installed")
        (bids_root / "sub-01" / "func" / "sub-01_task-music_run-1_junk.nii.gz").write_bytes(b"")
        args = [bids_root, out, "participant"]
    elif case == "group_before_participant":
        args = [bids_root, out, "group"]
    proc = run_app(*args)
    assert proc.returncode == code, proc.stderr
    _one_paragraph(proc.stderr)
    # A failed check leaves no derivative behind.
    assert not list(out.rglob("sub-*")) if out.exists() else True
