"""Long runs a lab leaves unattended, on the tiny dataset through the command line (slow).

One participant of the demo's tiny dataset (:func:`bidsapp.demo.write_tiny_dataset`) is
run cleanly once; then, each in its own work folder:

- a worker is killed with SIGKILL in the middle of a step (spatial normalization), as the
  out-of-memory killer does: the run must end within 30 s with exit 71, a message that
  names the step and points to memory, no traceback; the rerun resumes without redoing
  finished steps and its outputs equal the clean run's;
- the work folder's or the output folder's disk fills up during the run (a 12 or 10 MiB
  tmpfs; needs root, skipped otherwise): exit 73 within 30 s of the disk filling, nothing
  half-written under a final name, and the rerun after space is freed resumes to the clean
  run's outputs;
- SIGTERM to the main process, as ``kill``, ``docker stop`` and SLURM at its time limit
  send it, to every process of the run, or to the app as PID 1: exit 143 within 10 s and
  no process of the run left alive; SIGINT likewise (exit 130), also to a run that
  inherited SIGINT ignored, as a batch script's background job does; nothing half-written
  under a final name, and the rerun after SIGINT resumes to the clean run's outputs;
- the clean run's log holds the searchlight's progress lines with an ETA.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nibabel as nb
import pytest
from test_end_to_end import same_outputs
from tree_helpers import seed_templateflow_home

from bidsapp.demo import write_tiny_dataset

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ARGS = ["participant", "--participant-label", "01", "--skip-bids-validation",
        "--output-space", "MNI152NLin2009aSym", "--normalization-quality", "fast",
        "--nprocs", "2", "--omp-nthreads", "1", "--n-permutations", "20"]
NORMALIZE = "anat_wf/normalize"


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Run:
    """A ``run.py`` participant run in the background, with its stderr kept."""

    def __init__(self, root: Path, bids: Path, out: Path, work: Path, env: dict,
                 prefix: tuple[str, ...] = (), background: bool = False):
        self.stderr_path = root / f"{out.name}-{work.name}-{time.monotonic_ns()}.log"
        self.stderr = self.stderr_path.open("w")
        # ``background``: started as a batch script's 'bidsapp ... &' is, SIGINT ignored.
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, str(REPO / "run.py"), str(bids), str(out), *ARGS, "-w",
             str(work)], stdout=subprocess.DEVNULL, stderr=self.stderr, env=env, cwd=root,
            preexec_fn=_ignore_sigint if background else None)

    def wait(self, timeout: float = 900) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.stderr.close()

    @property
    def log(self) -> str:
        return self.stderr_path.read_text()


def parent(pid: int) -> int | None:
    """The parent of ``pid``, or None once it is gone."""
    try:
        return int(re.search(r"^PPid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(),
                             re.MULTILINE).group(1))
    except (OSError, AttributeError):
        return None


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid``, from /proc (no psutil in the app's environment)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (ppid := parent(int(entry.name))) is not None:
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def worker_in(run: Run, suffix: str, timeout: float = 300) -> int:
    """Wait until a worker of ``run`` works in a node folder ending in ``suffix``; its pid.

    nipype runs a node inside its own folder, so a worker's current directory says which
    step it is running.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.proc.poll() is None:
        for pid in descendants(run.proc.pid):
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            if cwd.endswith(suffix):
                return pid
        time.sleep(0.05)
    raise AssertionError(f"no worker ever ran {suffix}:\n{run.log[-3000:]}")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The dataset, the environment, and one clean run of sub-01 to compare with."""
    root = tmp_path_factory.mktemp("unattended")
    bids = write_tiny_dataset(root / "bids")
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(root / "templateflow")}
    seed_templateflow_home(env["TEMPLATEFLOW_HOME"])
    clean = Run(root, bids, root / "clean", root / "clean-work", env)
    assert clean.wait() == 0, clean.log[-5000:]
    return root, bids, env, clean


def clean_subject(root: Path) -> Path:
    """The clean run's participant folder."""
    return root / "clean" / "sub-01"


def _check_message(log: str, code_text: str) -> str:
    assert "Traceback" not in log, log[-5000:]
    last = log.rstrip().splitlines()[-1]
    assert last.startswith("bidsapp: error: "), log[-3000:]
    assert code_text in last, last
    return last


def _result_stamps(work: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in work.rglob("result_*.pklz")}


def test_progress_lines_with_eta(setup):
    _, _, _, clean = setup
    lines = [line for line in clean.log.splitlines() if "Searchlight, centres 0-" in line]
    assert any("ETA" in line and "centres (" in line for line in lines), lines
    assert any("engine memory about" in line for line in lines), lines
    assert any(" done in " in line for line in lines), lines
    assert any(re.search(r"Head motion of sub_01 task_music_run_1: .* done in", line)
               for line in clean.log.splitlines())


def test_killed_worker_ends_the_run_and_the_rerun_resumes(setup):
    root, bids, env, clean = setup
    out, work = root / "killed", root / "killed-work"
    run = Run(root, bids, out, work, env)
    pid = worker_in(run, NORMALIZE)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    code = run.wait(timeout=60)
    assert time.monotonic() - killed < 30
    assert code == 71, run.log[-5000:]
    message = _check_message(run.log, "step sub_01_wf.anat_wf.normalize was killed by SIGKILL")
    assert "out-of-memory killer" in message and "--mem" in message, message
    records = list((out / "logs" / "crash").glob("crash-*-normalize-worker-died.txt"))
    assert len(records) == 1 and "SIGKILL" in records[0].read_text()
    assert not descendants(run.proc.pid)

    finished = _result_stamps(work)
    assert finished, "nothing had finished before the kill"
    rerun = Run(root, bids, out, work, env)
    assert rerun.wait() == 0, rerun.log[-5000:]
    after = _result_stamps(work)
    assert {path: after[path] for path in finished} == finished
    same_outputs(clean_subject(root), out / "sub-01")


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True, capture_output=True)


@pytest.mark.parametrize("full, size", [("work", "12m"), ("output", "10m")])
def test_full_disk_ends_the_run_with_73_and_the_rerun_resumes(setup, full, size):
    """The work folder (about 28 MiB needed) or the output folder (28 MB) fills up."""
    root, bids, env, _ = setup
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    out, work = root / f"disk-{full}", root / f"disk-{full}-work"
    folder = work if full == "work" else out
    try:
        _mount_tmpfs(folder, size)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        # The disk is taken to fill when its free space is lowest: a failed write's partial
        # file is removed at once, so the last bytes may never be seen in use.
        lowest: list[float] = [float("inf"), 0.0]

        def watch():
            while run.proc.poll() is None:
                stats = os.statvfs(folder)
                free = stats.f_bavail * stats.f_frsize
                if free < lowest[0]:
                    lowest[:] = [free, time.monotonic()]
                time.sleep(0.05)

        run = Run(root, bids, out, work, env)
        watcher = threading.Thread(target=watch)
        watcher.start()
        code = run.wait(timeout=600)
        ended = time.monotonic()
        watcher.join()
        assert code == 73, run.log[-5000:]
        assert ended - lowest[1] < 30, (ended - lowest[1], lowest[0])
        message = _check_message(run.log, "No space left on device")
        # The message names the folder that filled, or a file in it, and the fix.
        assert str(folder) in message, message
        assert not descendants(run.proc.pid)
        # Nothing half-written under a final name: the sink writes under hidden names.
        for path in out.rglob("*.nii.gz"):
            assert nb.load(path).get_fdata().size
        subprocess.run(["mount", "-o", "remount,size=128m", str(folder)], check=True)
        rerun = Run(root, bids, out, work, env)
        assert rerun.wait() == 0, rerun.log[-5000:]
        same_outputs(clean_subject(root), out / "sub-01")
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


#: The app as PID 1 of its own PID namespace, as in a container without an init.
PID1 = ("unshare", "--pid", "--fork", "--mount-proc", "--kill-child")


@pytest.mark.parametrize(("target", "sig"), [
    ("main", signal.SIGTERM), ("group", signal.SIGTERM), ("pid1", signal.SIGTERM),
    ("main", signal.SIGINT), ("group", signal.SIGINT)],
    ids=["SIGTERM-main", "SIGTERM-group", "SIGTERM-pid1", "SIGINT-main", "SIGINT-group"])
def test_a_stop_signal_exits_128_plus_it_and_leaves_nothing_running(setup, target, sig):
    root, bids, env, clean = setup
    out, work = root / f"{sig.name}-{target}", root / f"{sig.name}-{target}-work"
    if target == "pid1" and (os.geteuid() != 0 or subprocess.run(
            [*PID1, "true"], capture_output=True, check=False).returncode != 0):
        pytest.skip("a PID namespace needs root and unshare(1)")
    run = Run(root, bids, out, work, env, prefix=PID1 if target == "pid1" else (),
              background=sig == signal.SIGINT)
    worker_in(run, NORMALIZE)
    tree = descendants(run.proc.pid)
    sent = time.monotonic()
    if target == "main":
        run.proc.send_signal(sig)
    elif target == "pid1":
        # unshare's one child is the app, PID 1 inside: the kernel gives PID 1 only the
        # signals it has a handler for.
        (main,) = [pid for pid in tree if parent(pid) == run.proc.pid]
        os.kill(main, sig)
    else:
        # Every process of the run, as SLURM signals every process of a job step.
        for pid in (run.proc.pid, *tree):
            if alive(pid):
                os.kill(pid, sig)
    code = run.wait(timeout=60)
    assert time.monotonic() - sent < 10
    assert code == 128 + sig, run.log[-5000:]
    last = run.log.rstrip().splitlines()[-1]
    how = "interrupted" if sig == signal.SIGINT else "terminated"
    assert last.startswith(f"bidsapp: {how} ({sig.name}); rerun the same command"), last
    assert "Traceback" not in run.log
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in tree)
    # Nothing half-written under a final name, nor left under a hidden one.
    assert not [p for p in out.rglob("*") if p.name.startswith((".staging-", ".tmp-"))]
    for path in out.rglob("*.nii.gz"):
        assert nb.load(path).get_fdata().size
    if target == "main" and sig == signal.SIGINT:
        finished = _result_stamps(work)
        rerun = Run(root, bids, out, work, env)
        assert rerun.wait() == 0, rerun.log[-5000:]
        after = _result_stamps(work)
        assert {path: after[path] for path in finished} == finished
        same_outputs(clean_subject(root), out / "sub-01")
