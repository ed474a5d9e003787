"""One end-to-end run of the command line on the tiny dataset, checked file by file."""

from __future__ import annotations

import re
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
_HASH = re.compile(r"_[0-9a-f]{16}_features\.npz$")


def output_list(out: Path) -> list[str]:
    """Relative paths of every output file, logs excluded, content hashes normalised."""
    files = (p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    return sorted(_HASH.sub("_<hash>_features.npz", f) for f in files
                  if not f.startswith("logs/"))


def test_participant_then_group(run_app, bids_root, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    for label in ("01", "sub-02"):
        proc = run_app(bids_root, out, "participant", "--participant-label", label,
                       "-w", work, "--nprocs", "1")
        assert proc.returncode == 0, proc.stderr
    expected = (DATA / "expected_outputs.txt").read_text().split()
    assert output_list(out) == expected
    assert not [p for p in out.rglob(".*") if p.name != ".bidsignore"], "temporary files left"
    assert len(list((out / "logs").glob("config-participant-*.toml"))) == 2

    # The second participant found the first one's features in the shared cache.
    assert "2 of 2 stimuli cached" in proc.stderr

    # A rerun with the same work dir resumes: nothing is recomputed.
    before = {p: p.stat().st_mtime_ns for p in (out / "features").iterdir()}
    proc = run_app(bids_root, out, "participant", "-w", work, "--nprocs", "1",
                   "--skip-bids-validation")
    assert proc.returncode == 0, proc.stderr
    assert "computing" not in proc.stderr
    assert before == {p: p.stat().st_mtime_ns for p in (out / "features").iterdir()}

    # The saved configuration reproduces the run.
    config = sorted((out / "logs").glob("config-participant-*.toml"))[0]
    proc = run_app(bids_root, out, "participant", "--config-file", config)
    assert proc.returncode == 0, proc.stderr

    # No participant maps exist until the searchlight step lands, so the group level must
    # refuse with "nothing selected" rather than produce empty statistics.
    proc = run_app(bids_root, out, "group", "-w", work)
    assert proc.returncode == 18, proc.stderr
    assert "at least 2 participants" in proc.stderr
