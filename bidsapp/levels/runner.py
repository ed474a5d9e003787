"""The app's own nipype runner: every node in a child process that the run owns.

nipype's MultiProc hands nodes to a :class:`concurrent.futures.ProcessPoolExecutor`.  When
one of its workers dies (the out-of-memory killer's SIGKILL, a segfault in a native
library) the pool breaks, the future's done-callback raises inside the executor's thread,
nipype never learns the node's fate and the main process waits forever.  A run that ends
that way holds a cluster allocation until its wall-time limit and tells the user nothing.

:class:`ProcessPlugin` keeps MultiProc's scheduling (memory and thread budgets, the
status callback) but starts one forked process per node, talks to it over a pipe, and
watches its exit:

- a worker that exits without a result ends the run within one poll (2 s): the other
  workers are stopped, a crash record names the node, its inputs, the signal and the
  memory it was seen to use, and :class:`bidsapp.errors.WorkerDiedError` (exit 71)
  says what happened and what helps;
- a node that failed because a disk filled (ENOSPC, EDQUOT, or EFBIG under ``ulimit -f``)
  ends the run with :class:`bidsapp.errors.CannotWriteError` (exit 73) instead of letting
  the other branches run on into the same wall;
- however the run ends (an error, Ctrl-C, SIGTERM), no worker outlives it: each worker
  leads its own process group, which the runner terminates, and asks the kernel to kill
  it should the main process die first (``PR_SET_PDEATHSIG``), as under SIGKILL.

Finished nodes keep nipype's result files, so a rerun with the same work folder resumes.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import multiprocessing as mp
import os
import re
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from nipype.pipeline.plugins.base import DistributedPluginBase
from nipype.pipeline.plugins.multiproc import MultiProcPlugin, run_node
from nipype.utils.gpu_count import gpu_count
from nipype.utils.profiler import get_system_total_memory_gb

from bidsapp.errors import BidsAppError, CannotWriteError, WorkerDiedError

LOGGER = logging.getLogger("bidsapp")

#: Seconds a terminated worker gets to exit before SIGKILL.
GRACE_SECONDS = 4.0
_PR_SET_PDEATHSIG = 1
#: Errors of a full disk, a full quota and a file-size limit, as ``strerror`` words them.
_DISK_FULL = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded",
              errno.EFBIG: "File too large"}
_ERRNO_PATH = re.compile(r"\[Errno (\d+)\] [^:\n]*(?:: '([^'\n]+)')?")


class Abort(BaseException):
    """Carries a :class:`BidsAppError` out of nipype's loop, which catches ``Exception``.

    Parameters
    ----------
    error : BidsAppError
        What the command line reports.
    """

    def __init__(self, error: BidsAppError):
        super().__init__(error.paragraph())
        self.error = error


@dataclass
class _Task:
    """One running node: its process, the pipe its result comes back on, what it used."""

    node: object
    process: mp.Process
    reader: Connection
    started: float = field(default_factory=time.monotonic)
    peak_kb: int = 0


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _worker(node, updatehash: bool, taskid: int, writer: Connection, cwd: str,
            parent: int) -> None:
    """Run one node in a child process and send nipype's result dictionary back."""
    _die_with_parent(parent)
    # Its own process group, so that the runner stops the node and anything it started.
    os.setpgrp()
    # The parent's handlers raise exceptions meant for the main process; a worker just dies.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.chdir(cwd)
    os.environ["NIPYPE_NO_ET"] = "1"
    try:
        result = run_node(node, updatehash, taskid)
    except BaseException:  # noqa: BLE001 - run_node re-raises when the result file is missing
        result = {"result": None, "traceback": traceback.format_exception(*sys.exc_info()),
                  "taskid": taskid}
    try:
        writer.send(result)
    except Exception:  # noqa: BLE001 - an unpicklable result must still be reported
        writer.send({"result": None, "taskid": taskid,
                     "traceback": traceback.format_exception(*sys.exc_info())})
    writer.close()


def _peak_kb(pid: int) -> int:
    """Peak resident memory (VmHWM) of a live process in kB, 0 when it cannot be read."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def disk_full_error(text: str, where: Path) -> CannotWriteError | None:
    """Return the exit-73 error when ``text`` (a traceback) shows a full disk, else None.

    Parameters
    ----------
    text : str
        A node's formatted traceback.
    where : Path
        The folder to name when the traceback names no file (the work folder).

    Returns
    -------
    CannotWriteError or None
        The error naming the file that could not be written and the fix.
    """
    # A chained traceback often shows the failed write twice: first as the stream raised
    # it, without a file name, then re-raised with one (bidsapp.io.atomic_write).
    found = [(int(m.group(1)), m.group(2)) for m in _ERRNO_PATH.finditer(text)
             if int(m.group(1)) in _DISK_FULL]
    if found:
        code, name = min(found, key=lambda item: item[1] is None)
        return disk_full(code, Path(name) if name else where)
    for code, words in _DISK_FULL.items():
        if words in text:
            return disk_full(code, where)
    return None


def disk_full(code: int, path: Path) -> CannotWriteError:
    """Return the error of a write that failed for lack of space (or a size limit).

    Parameters
    ----------
    code : int
        ``errno`` of the failed write: ENOSPC, EDQUOT or EFBIG.
    path : Path
        The file or folder that could not be written.

    Returns
    -------
    CannotWriteError
        Exit 73, with the fix and the note that a rerun resumes.
    """
    limit = "raise the file-size limit (ulimit -f)" if code == errno.EFBIG else \
        "free disk space or quota there"
    return CannotWriteError(
        f"The run stopped because a file could not be written ({_DISK_FULL[code]})", path=path,
        fix=f"{limit}, then rerun the same command with the same --work-dir: the steps that "
            "finished are reused",
    )


class ProcessPlugin(MultiProcPlugin):
    """MultiProc's scheduling, with one owned child process per node (see module doc).

    Parameters
    ----------
    plugin_args : dict, optional
        MultiProc's ``n_procs``, ``memory_gb``, ``raise_insufficient`` and
        ``status_callback``; and ``crash_dir``, where a dead worker's record goes, and
        ``work_dir``, named when a full disk gives no file name.
    """

    def __init__(self, plugin_args: dict | None = None):
        # MultiProcPlugin.__init__ would start a process pool; this plugin needs none.
        DistributedPluginBase.__init__(self, plugin_args=plugin_args)
        self._task_obj: dict[int, _Task] = {}
        self._taskid = 0
        self._cwd = os.getcwd()
        self.processors = self.plugin_args.get("n_procs", os.cpu_count() or 1)
        self.memory_gb = self.plugin_args.get("memory_gb", get_system_total_memory_gb() * 0.9)
        self.raise_insufficient = self.plugin_args.get("raise_insufficient", True)
        self.n_gpus_visible = gpu_count()
        self.n_gpu_procs = self.plugin_args.get("n_gpu_procs", self.n_gpus_visible)
        self._stats = None
        # fork, as nipype's MultiProc on Linux: workers inherit logging and the environment.
        self._context = mp.get_context("fork")
        self._crash_dir = Path(self.plugin_args.get("crash_dir") or os.getcwd())
        self._work_dir = Path(self.plugin_args.get("work_dir") or os.getcwd())

    def run(self, graph, config, updatehash=False):
        """Run the graph; however it ends, stop every worker still running."""
        try:
            return super().run(graph, config, updatehash=updatehash)
        finally:
            self.stop_workers()

    def _submit_job(self, node, updatehash=False):
        self._taskid += 1
        if getattr(node.interface, "terminal_output", "") == "stream":
            node.interface.terminal_output = "allatonce"
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker, args=(node, updatehash, self._taskid, writer, self._cwd, os.getpid()),
            name=f"bidsapp:{node.fullname}")
        process.start()
        writer.close()
        self._task_obj[self._taskid] = _Task(node, process, reader)
        return self._taskid

    def _get_result(self, taskid):
        task = self._task_obj[taskid]
        if task.process.pid is not None:
            task.peak_kb = max(task.peak_kb, _peak_kb(task.process.pid))
        result = None
        if task.reader.poll():
            try:
                result = task.reader.recv()
            except EOFError:  # the pipe closed without a result: the worker died
                result = None
            else:
                task.process.join(timeout=GRACE_SECONDS)
                self._check_disk_full(result)
                return result
        elif task.process.is_alive():
            return None
        task.process.join(timeout=GRACE_SECONDS)
        raise Abort(self._worker_died(task))

    def _clear_task(self, taskid):
        task = self._task_obj.pop(taskid)
        task.reader.close()

    def _postrun_check(self):
        # MultiProc shuts its pool down here; this plugin's workers are stopped in run().
        pass

    def _clean_queue(self, jobid, graph, result=None):
        # Steps that run in this process (run_without_submitting: the data sinks) fail here,
        # not through a worker's result: a full disk must end the run the same way, before
        # a crash file is written to the disk that filled.
        text = result.get("traceback") if result else None
        if not text:
            text = traceback.format_exception(*sys.exc_info())
        error = disk_full_error("".join(text), self._work_dir)
        if error is not None:
            raise Abort(error)
        return super()._clean_queue(jobid, graph, result=result)

    def _check_disk_full(self, result: dict) -> None:
        if result.get("traceback"):
            error = disk_full_error("".join(result["traceback"]), self._work_dir)
            if error is not None:
                raise Abort(error)

    def _worker_died(self, task: _Task) -> WorkerDiedError:
        """Write the crash record of a worker that exited without a result; return the error."""
        code = task.process.exitcode
        node = task.node
        name = node.fullname.split(".", 1)[-1]
        if code is not None and code < 0:
            signame = signal.Signals(-code).name
            how = f"was killed by {signame}"
        else:
            signame = None
            how = f"exited with status {code} without a result"
        peak = f"{task.peak_kb / 2**20:.2f} GB" if task.peak_kb else "not measured"
        mem = float(getattr(node, "mem_gb", 0) or 0)
        if signame == "SIGKILL":
            cause = (f"Most often that is the out-of-memory killer: the step was budgeted "
                     f"{mem:g} GB and was seen using {peak} at its peak")
            fix = ("give the run more memory, or lower what runs at once: --mem (the budget "
                   "steps are scheduled within), --nprocs (fewer steps at a time), "
                   "--omp-nthreads; check the kernel log (dmesg) for 'Out of memory'. Then "
                   "rerun with the same --work-dir: the steps that finished are reused")
        elif signame in ("SIGSEGV", "SIGBUS", "SIGILL", "SIGABRT", "SIGFPE"):
            cause = "That is a crash inside a native library (ANTs, BLAS, torch)"
            fix = ("rerun with the same --work-dir (finished steps are reused); if it crashes "
                   "again at the same step, report it with the crash record")
        else:
            cause = "Something outside the run stopped it (a scheduler, a user, the system)"
            fix = "rerun with the same --work-dir: the steps that finished are reused"
        seconds = time.monotonic() - task.started
        record = self._write_record(task, how, mem, peak, seconds)
        return WorkerDiedError(
            f"The worker process running step {name} {how} after {seconds:.0f} s, so the run "
            f"was stopped. {cause}. Crash record: {record or 'could not be written'}",
            path=record or self._crash_dir, fix=fix,
        )

    def _write_record(self, task: _Task, how: str, mem: float, peak: str,
                      seconds: float) -> Path | None:
        node = task.node
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self._crash_dir / f"crash-{stamp}-{node.name}-worker-died.txt"
        try:
            inputs = str(node.inputs)
        except Exception:  # noqa: BLE001 - a record without inputs is still worth writing
            inputs = "(could not be listed)"
        text = (f"Node: {node.fullname}\nWorking directory: {node.output_dir()}\n"
                f"Worker process: pid {task.process.pid}, {how}\n"
                f"Ran for: {seconds:.1f} s\nMemory budget (mem_gb): {mem:g} GB\n"
                f"Peak resident memory seen (sampled every poll): {peak}\n\n"
                f"Node inputs:\n{inputs}\n")
        try:
            self._crash_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError:
            return None
        return path

    def stop_workers(self) -> None:
        """Terminate every worker still running (SIGTERM, then SIGKILL after a grace time)."""
        live = [task.process for task in self._task_obj.values() if task.process.is_alive()]
        if not live:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for process in live:
                _signal_group(process.pid, sig)
            deadline = time.monotonic() + (GRACE_SECONDS if sig == signal.SIGTERM else 10)
            for process in live:
                process.join(timeout=max(0.0, deadline - time.monotonic()))
            live = [p for p in live if p.is_alive()]
            if not live:
                break
        for task in self._task_obj.values():
            task.reader.close()
        self._task_obj.clear()


def _signal_group(pid: int, sig: int) -> None:
    """Signal a worker's process group, or the worker alone before it has made one."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
