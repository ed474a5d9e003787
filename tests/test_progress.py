"""Progress lines (:mod:`bidsapp.progress`) and the long steps that report them."""

from __future__ import annotations

import functools
import logging

import numpy as np
import pytest

from bidsapp.design import RunDesign, build_trial_design
from bidsapp.progress import Progress, format_duration
from bidsapp.rsa import searchlight
from bidsapp.stats import participant_null


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bidsapp"]


def test_format_duration():
    assert format_duration(0) == "0:00:00"
    assert format_duration(59.6) == "0:01:00"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(2 * 86400 + 61) == "2 days, 0:01:01"
    assert format_duration(-5) == "0:00:00"


def test_first_estimate_tenths_and_end(caplog):
    caplog.set_level(logging.INFO, logger="bidsapp")
    clock = FakeClock()
    progress = Progress("Step", 1000, "centres", clock=clock)
    for _ in range(100):  # 10 s per 10 centres: 1,000 s in all
        clock.now += 10
        progress.advance(10)
    lines = _lines(caplog)
    # The first piece of work gives the first estimate, then one line per tenth, the end.
    assert lines[0] == "Step: 10/1,000 centres (1%), 1.0/s, elapsed 0:00:10, ETA 0:16:30"
    assert lines[1] == "Step: 100/1,000 centres (10%), 1.0/s, elapsed 0:01:40, ETA 0:15:00"
    assert lines[-1] == "Step: 1,000 centres done in 0:16:40 (1.0/s)"
    assert len(lines) == 11


def test_short_steps_write_two_lines(caplog):
    caplog.set_level(logging.INFO, logger="bidsapp")
    clock = FakeClock()
    progress = Progress("Resampling", 24, "volumes", clock=clock)
    for _ in range(24):
        clock.now += 0.1
        progress.advance()
    lines = _lines(caplog)
    assert len(lines) == 2 and "ETA" in lines[0] and "done in 0:00:02" in lines[1]


def test_heartbeat_when_no_tenth_is_crossed(caplog):
    caplog.set_level(logging.INFO, logger="bidsapp")
    clock = FakeClock()
    progress = Progress("Slow", 100, "centres", clock=clock, heartbeat=300)
    progress.advance(1)
    clock.now += 299
    progress.advance(1)
    clock.now += 2
    progress.advance(1)
    lines = _lines(caplog)
    assert len(lines) == 2 and lines[1].startswith("Slow: 3/100 centres (3%)")


def test_long_estimate_warns_once_with_the_advice(caplog):
    caplog.set_level(logging.INFO, logger="bidsapp")
    clock = FakeClock()
    progress = Progress("Searchlight", 1000, "centres", clock=clock, warn_after=3600,
                        advice="Use a GPU (--device cuda).")
    for _ in range(20):
        clock.now += 100
        progress.advance(10)  # 10,000 s in all
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["Searchlight is estimated to take 2:46:40 in all. "
                        "Use a GPU (--device cuda)."]


def test_no_warning_under_the_limit(caplog):
    caplog.set_level(logging.INFO, logger="bidsapp")
    clock = FakeClock()
    progress = Progress("Searchlight", 10, "centres", clock=clock, warn_after=3600)
    for _ in range(10):
        clock.now += 1
        progress.advance()
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_empty_work_logs_nothing(caplog):
    caplog.set_level(logging.INFO, logger="bidsapp")
    Progress("Nothing", 0, "centres").advance(5)
    assert _lines(caplog) == []


def _data(n_centers=40, n_trs=12, n_voxels=60, sphere=10, seed=0):
    rng = np.random.default_rng(seed)
    patterns = rng.standard_normal((n_trs, n_voxels)).astype(np.float32)
    nbrs = np.array([rng.choice(n_voxels, sphere, replace=False) for _ in range(n_centers)])
    rdms = rng.random((3, n_trs, n_trs))
    return patterns, nbrs, (rdms + rdms.transpose(0, 2, 1)) / 2


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_searchlight_reports_every_center_once(backend):
    patterns, nbrs, rdms = _data()
    counts = []
    with_progress = searchlight(patterns, nbrs, rdms, device="cpu", backend=backend,
                                chunk_size=7, n_jobs=2, progress=counts.append)
    assert sum(counts) == len(nbrs) and len(counts) == 6  # ceil(40 / 7) tasks
    # Reporting changes nothing in the values.
    np.testing.assert_array_equal(
        with_progress, searchlight(patterns, nbrs, rdms, device="cpu", backend=backend,
                                   chunk_size=7, n_jobs=2))


def test_null_reports_every_center_in_every_pass():
    patterns, nbrs, rdms = _data()
    counts = []
    engine = functools.partial(searchlight, device="cpu", n_jobs=1)
    # The bidsapp engine takes every permutation in one pass, whatever the batch bound.
    null = participant_null(patterns, nbrs, rdms, [4, 4, 4], 5, 0, engine,
                            max_batch_bytes=1, progress=counts.append)
    assert sum(counts) == len(nbrs)

    # An engine that takes whole RDMs: a bound that holds 2 permutations makes 3 passes.
    def plain_engine(patterns, neighbors, candidate_rdms, progress=None):
        return searchlight(patterns, neighbors, candidate_rdms, device="cpu", n_jobs=1,
                           progress=progress)

    counts.clear()
    per_permutation = 3 * 12 * 12 * 8
    plain = participant_null(patterns, nbrs, rdms, [4, 4, 4], 5, 0, plain_engine,
                             max_batch_bytes=2 * per_permutation, progress=counts.append)
    assert sum(counts) == 3 * len(nbrs)
    np.testing.assert_allclose(null.max_r, plain.max_r, rtol=0, atol=1e-6)


def test_null_under_a_tight_memory_budget_stacks_fewer_targets_with_the_same_values(
        tmp_path, caplog, monkeypatch):
    """``--mem`` reaches the searchlight job as ``mem_gb``: smaller stacks, same null."""
    from bidsapp.interfaces.rsa import SearchlightChunk
    from bidsapp.rsa.searchlight import MIN_STACK, null_engine_memory

    caplog.set_level(logging.INFO, logger="bidsapp")
    patterns, nbrs, rdms = _data(n_centers=200, n_trs=40, n_voxels=200, sphere=20)
    np.save(tmp_path / "patterns.npy", patterns)
    np.save(tmp_path / "neighbors.npy", nbrs.astype(np.int32))
    np.save(tmp_path / "rdms.npy", rdms)
    design = build_trial_design("music", 2.0, [RunDesign("run-1", (0.0, 20.0, 40.0, 60.0),
                                                         tuple("abcd"), 1.0)],
                                audio={s: f"{s}.wav" for s in "abcd"},
                                trial_trs=dict.fromkeys("abcd", 10), drop_seconds=0)
    # Room for the smallest stack only.
    tight = null_engine_memory(40, 200, 200, 20, 3, 13, stack_rows=MIN_STACK) / 2**30
    nulls = {}
    for name, extra in (("free", {}), ("tight", {"mem_gb": tight})):
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.chdir(folder)
        node = SearchlightChunk(patterns=str(tmp_path / "patterns.npy"),
                                neighbors=str(tmp_path / "neighbors.npy"),
                                candidate_rdms=str(tmp_path / "rdms.npy"), chunk=(0, 200),
                                device="cpu", n_permutations=12, seed=3,
                                design=design.to_dict(), **extra)
        result = node.run(cwd=str(folder))
        nulls[name] = np.load(result.outputs.null)["max_r"]
    stacks = [r.getMessage() for r in caplog.records if "target RDMs at a time" in
              r.getMessage()]
    # A quarter of the centres when memory allows: progress comes in 4 steps.
    assert "in one pass, 50 target RDMs at a time" in stacks[0], stacks[0]
    assert f"in one pass, {MIN_STACK} target RDMs at a time" in stacks[1], stacks[1]
    # The null's products are float32 GEMMs; OpenBLAS may pick another kernel (and so
    # another summation order) for a stack of another height, which moves the last bit
    # on some CPUs (seen: 15 of 2,400 values by 1e-7 on an AMD EPYC). A wrong stacking
    # would move values by orders of magnitude more.
    np.testing.assert_allclose(nulls["free"], nulls["tight"], rtol=0, atol=1e-6)
