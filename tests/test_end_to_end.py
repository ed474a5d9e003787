"""End to end through the command line on the simulated tiny preset, checked file by file.

Slow (preprocessing with antspyx on two participants): run with ``pytest -m slow``; CI runs
it in ``make test-slow``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
_HASH = re.compile(r"_[0-9a-f]{16}_features\.npz$")
SPACE = "MNI152NLin2009aSym"  # ships with nilearn: runs offline


def output_list(out: Path) -> list[str]:
    """Relative paths of every output file, logs excluded, content hashes normalised."""
    files = (p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    return sorted(_HASH.sub("_<hash>_features.npz", f) for f in files
                  if not f.startswith("logs/"))


@pytest.mark.slow
def test_simulated_participants_then_group(run_app, tmp_path):
    bids, out, work = tmp_path / "bids", tmp_path / "out", tmp_path / "work"
    proc = run_app("simulate", bids, "--preset", "tiny", "--seed", "0")
    assert proc.returncode == 0, proc.stderr
    common = ["-w", work, "--nprocs", "2", "--output-space", SPACE,
              "--normalization-quality", "fast"]
    for label in ("01", "sub-02"):
        proc = run_app(bids, out, "participant", "--participant-label", label, *common,
                       timeout=3000)
        assert proc.returncode == 0, proc.stderr
    # The second participant found the first one's features in the shared cache.
    assert re.search(r"Features: (\d+) of \1 stimuli cached; computing 0", proc.stderr)

    expected = (DATA / "expected_outputs.txt").read_text().split()
    assert [f for f in output_list(out) if not f.startswith("group")] == \
        [f for f in expected if not f.startswith("group")]
    assert not [p for p in out.rglob(".*") if p.name != ".bidsignore"], "temporary files left"

    # A rerun with the same work dir resumes: finished steps are not run again (their
    # nipype result files keep their time stamps) and the outputs are identical.
    results = {p: p.stat().st_mtime_ns for p in work.rglob("result_*.pklz")
               if "sub_01_wf" in str(p) and "ds_" not in p.name}
    before = {p: p.read_bytes() for p in out.rglob("sub-01/**/*") if p.is_file()}
    proc = run_app(bids, out, "participant", "--participant-label", "01", *common,
                   "--skip-bids-validation", timeout=3000)
    assert proc.returncode == 0, proc.stderr
    assert results and results == {p: p.stat().st_mtime_ns for p in results}
    assert before == {p: p.read_bytes() for p in out.rglob("sub-01/**/*") if p.is_file()}

    proc = run_app(bids, out, "group", *common, timeout=3000)
    assert proc.returncode == 0, proc.stderr
    assert output_list(out) == expected
