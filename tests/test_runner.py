"""The app's runner (:mod:`bidsapp.levels.runner`) on small nipype workflows of real processes.

Each workflow's nodes run in worker processes that the tests kill, fill up or signal as
the out-of-memory killer, a full disk or a scheduler would; the runner must end the run
with the documented error, leave no process behind, and let a rerun resume.  The same
behaviours are checked on the tiny preset through the command line in
``tests/test_unattended.py`` (slow).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bidsapp.errors import CannotWriteError, WorkerDiedError
from bidsapp.levels.runner import Abort, ProcessPlugin, disk_full_error


def _write_pid_and_wait(folder, name, seconds):
    import os
    import time
    from pathlib import Path

    Path(folder, f"{name}.pid").write_text(str(os.getpid()))
    time.sleep(seconds)
    return seconds


def _add(a, b):
    return a + b


def _fill_disk(folder):
    import errno
    import os

    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"{folder}/big.nii.gz")


def _workflow(base: Path, folder: Path, *, slow_seconds: float = 60.0) -> pe.Workflow:
    """first (fast) -> second (fast); and two slow nodes beside them."""
    wf = pe.Workflow(name="wf", base_dir=str(base))
    first = pe.Node(niu.Function(function=_add, input_names=["a", "b"],
                                 output_names=["out"]), name="first")
    first.inputs.a, first.inputs.b = 1, 2
    second = pe.Node(niu.Function(function=_add, input_names=["a", "b"],
                                  output_names=["out"]), name="second")
    second.inputs.b = 10
    wf.connect(first, "out", second, "a")
    for name in ("slow_a", "slow_b"):
        node = pe.Node(niu.Function(function=_write_pid_and_wait,
                                    input_names=["folder", "name", "seconds"],
                                    output_names=["out"]), name=name, mem_gb=0.5)
        node.inputs.folder, node.inputs.name, node.inputs.seconds = str(folder), name, \
            slow_seconds
        wf.add_nodes([node])
    return wf


def _plugin(tmp_path: Path, n_procs: int = 3) -> ProcessPlugin:
    return ProcessPlugin(plugin_args={"n_procs": n_procs, "memory_gb": 4,
                                      "raise_insufficient": False,
                                      "crash_dir": tmp_path / "crash",
                                      "work_dir": tmp_path / "work"})


def _wait_for(path: Path, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text():
            return int(path.read_text())
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent, the test, reaps it later).
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


def test_runs_a_workflow_like_multiproc(tmp_path):
    wf = _workflow(tmp_path / "work", tmp_path, slow_seconds=0.1)
    graph = wf.run(plugin=_plugin(tmp_path))
    nodes = {node.name: node for node in graph.nodes()}
    assert nodes["second"].result.outputs.out == 13
    assert nodes["slow_a"].result.outputs.out == 0.1


def test_killed_worker_ends_the_run_and_the_rerun_resumes(tmp_path):
    import threading

    folder = tmp_path / "pids"
    folder.mkdir()
    wf = _workflow(tmp_path / "work", folder)
    killed = {}

    def kill_slow_a():
        pid = _wait_for(folder / "slow_a.pid")
        _wait_for(folder / "slow_b.pid")
        second = tmp_path / "work" / "wf" / "second" / "result_second.pklz"
        deadline = time.monotonic() + 60
        while not second.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        killed["pid"] = pid
        killed["at"] = time.monotonic()
        os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=kill_slow_a)
    thread.start()
    with pytest.raises(Abort) as info:
        wf.run(plugin=_plugin(tmp_path))
    ended = time.monotonic()
    thread.join()
    assert ended - killed["at"] < 30
    error = info.value.error
    assert isinstance(error, WorkerDiedError) and error.exit_code == 71
    text = error.paragraph()
    assert "step slow_a was killed by SIGKILL" in text
    assert "out-of-memory killer" in text and "budgeted 0.5 GB" in text
    assert "--mem" in text and "--nprocs" in text
    records = list((tmp_path / "crash").glob("crash-*-slow_a-worker-died.txt"))
    assert len(records) == 1 and str(records[0]) in text
    record = records[0].read_text()
    assert "Node: wf.slow_a" in record and "SIGKILL" in record and "seconds = 60.0" in record
    # The other slow worker was stopped with the run, not left to finish.
    assert not _alive(int((folder / "slow_b.pid").read_text()))

    # A rerun resumes: the nodes that finished are not run again.
    results = {name: tmp_path / "work" / "wf" / name / f"result_{name}.pklz"
               for name in ("first", "second")}
    stamps = {name: path.stat().st_mtime_ns for name, path in results.items()}
    rerun = _workflow(tmp_path / "work", folder, slow_seconds=0.1)
    graph = rerun.run(plugin=_plugin(tmp_path))
    assert {name: path.stat().st_mtime_ns for name, path in results.items()} == stamps
    assert {node.name: node.result.outputs.out for node in graph.nodes()}["second"] == 13


def test_full_disk_in_a_node_ends_the_run_with_exit_73(tmp_path):
    wf = pe.Workflow(name="wf", base_dir=str(tmp_path / "work"))
    node = pe.Node(niu.Function(function=_fill_disk, input_names=["folder"],
                                output_names=["out"]), name="fill")
    node.inputs.folder = str(tmp_path / "deep")
    wf.add_nodes([node])
    with pytest.raises(Abort) as info:
        wf.run(plugin=_plugin(tmp_path))
    error = info.value.error
    assert isinstance(error, CannotWriteError) and error.exit_code == 73
    assert error.path == tmp_path / "deep" / "big.nii.gz"
    assert "No space left on device" in error.message and "--work-dir" in error.fix


def test_disk_full_error_reads_errno_and_file():
    text = "OSError: [Errno 27] File too large: '/w/x.nii'\n"
    error = disk_full_error(text, Path("/w"))
    assert error.path == Path("/w/x.nii") and "ulimit -f" in error.fix
    assert disk_full_error("OSError: [Errno 2] No such file or directory: '/a'", Path("/w")) \
        is None
    # A stream's write fails without a file name, and is re-raised with one.
    chained = ("OSError: [Errno 28] No space left on device\n\nDuring handling ...\n"
               "OSError: [Errno 28] No space left on device: '/o/features/a_features.npz'\n")
    assert disk_full_error(chained, Path("/w")).path == Path("/o/features/a_features.npz")
    # nipype's own wording, without an errno in brackets.
    assert disk_full_error("No space left on device", Path("/w")).path == Path("/w")


_SIGTERM_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from test_runner import _plugin, _workflow
    from bidsapp.cli.run import _handle_stop_signals
    from bidsapp.errors import Terminated

    _handle_stop_signals()
    tmp = Path({tmp!r})
    try:
        _workflow(tmp / "work", tmp / "pids", slow_seconds=300).run(plugin=_plugin(tmp))
    except Terminated as exc:
        print("terminated", exc, file=sys.stderr)
        sys.exit(exc.exit_code)
""")


def _ignore_sigint() -> None:
    # What a non-interactive shell does to a job it starts in the background ('cmd &').
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_the_workers_and_exits_128_plus_it(tmp_path, sig):
    (tmp_path / "pids").mkdir()
    script = _SIGTERM_SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(tmp_path))
    # SIGINT arrives at a process that inherited it ignored, as in a batch script.
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ignore_sigint if sig == signal.SIGINT else None)
    try:
        workers = [_wait_for(tmp_path / "pids" / f"{name}.pid") for name in ("slow_a", "slow_b")]
        sent = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
        assert time.monotonic() - sent < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 128 + sig, proc.stderr.read()
    assert f"terminated {sig.name}" in proc.stderr.read()
    assert not any(_alive(pid) for pid in workers)


def test_workers_die_with_a_killed_main_process(tmp_path):
    """SIGKILL to the main process (no handler can run) still takes the workers with it."""
    (tmp_path / "pids").mkdir()
    script = _SIGTERM_SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.DEVNULL)
    try:
        workers = [_wait_for(tmp_path / "pids" / f"{name}.pid") for name in ("slow_a", "slow_b")]
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
