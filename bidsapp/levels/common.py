"""What both analysis levels share: folders, the saved configuration, running a workflow."""

from __future__ import annotations

import errno
import logging
import os
import re
import time
import traceback
from pathlib import Path

import yaml
from nipype import config as nipype_config
from nipype import logging as nipype_logging

from bidsapp import errors
from bidsapp.config import Config
from bidsapp.errors import BidsAppError, CannotWriteError

from .runner import Abort, ProcessPlugin, disk_full, disk_full_error
from .scheduler import check_scheduler

LOGGER = logging.getLogger("bidsapp")
#: The ``plugin`` name of :func:`plugin_settings` that stands for bidsapp's own runner.
RUNNER = "bidsapp"


def prepare_dir(path: Path, what: str) -> None:
    """Create a folder and check that files can be written in it.

    Parameters
    ----------
    path : Path
        The folder.
    what : str
        How the error names it (``"output folder"``).

    Raises
    ------
    CannotWriteError
        If the folder cannot be created or written (exit 73).
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise CannotWriteError(
            f"The {what} cannot be written ({exc.strerror})", path=path,
            fix=f"choose a {what} you can write to, with free space (in a container, mount it "
                "read-write; the image runs as UID 1000, so in Docker add -u $(id -u):$(id -g) "
                "to write as yourself)",
        ) from exc


def plugin_settings(config: Config) -> dict:
    """Return nipype's ``plugin`` and ``plugin_args`` for this run.

    Parameters
    ----------
    config : Config
        ``use_plugin`` (a YAML file) wins; otherwise the app's own runner
        (:class:`bidsapp.levels.runner.ProcessPlugin`, named :data:`RUNNER`) over ``nprocs``
        processes within ``mem_gb``.

    Returns
    -------
    dict
        Keyword arguments for ``Workflow.run``.
    """
    if config.use_plugin is not None:
        settings = yaml.safe_load(config.use_plugin.read_text())
        return {"plugin": settings["plugin"], "plugin_args": settings.get("plugin_args", {})}
    nprocs = config.nprocs or os.cpu_count() or 1
    args: dict = {"n_procs": nprocs, "raise_insufficient": False}
    if config.mem_gb:
        args["memory_gb"] = config.mem_gb
    # The app's runner (levels/runner.py) for one process too: a node that dies or a signal
    # must end the run the same way whatever --nprocs is.
    return {"plugin": RUNNER, "plugin_args": args}


def save_config(config: Config) -> Path:
    """Save the run's options under ``logs/``, named by level, time and process.

    Parameters
    ----------
    config : Config
        The options of this run.

    Returns
    -------
    Path
        The TOML file written.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"config-{config.analysis_level}-{stamp}-{os.getpid()}.toml"
    path = config.output_dir / "logs" / name
    config.save(path)
    return path


def run_workflow(workflow, config: Config) -> int:
    """Run a nipype workflow in the work folder with the run's plugin.

    Parameters
    ----------
    workflow : nipype.pipeline.engine.Workflow
        The built workflow.
    config : Config
        Work folder, output folder (crash files), plugin options and verbosity.

    Returns
    -------
    int
        0 when every node finished.

    Raises
    ------
    BidsAppError
        A node's own error with its exit code, a dead worker (71), a full disk (73), or
        failed steps named by their crash files.
    """
    crash_dir = config.output_dir / "logs" / "crash"
    workflow.base_dir = str(config.resolved_work_dir)
    workflow.config["execution"].update({
        "crashdump_dir": str(crash_dir),
        "crashfile_format": "txt",
        "stop_on_first_crash": config.stop_on_first_crash,
        "remove_unnecessary_outputs": False,
        "hash_method": "content",
    })
    # nipype's per-node chatter is for debugging; our own log says what runs.
    if config.resource_monitor:
        nipype_config.enable_resource_monitor()
    level = "INFO" if config.verbose else "WARNING"
    nipype_config.set("logging", "workflow_level", level)
    nipype_config.set("logging", "interface_level", level)
    nipype_logging.update_logging(nipype_config)
    settings = plugin_settings(config)
    plugin = settings["plugin"]
    if plugin == RUNNER:
        args = {**settings["plugin_args"], "status_callback": _log_node_status,
                "crash_dir": crash_dir, "work_dir": config.resolved_work_dir}
        plugin = ProcessPlugin(plugin_args=args)
        LOGGER.info("Running %s in %s (%d process(es))", workflow.name, workflow.base_dir,
                    plugin.processors)
    else:
        check_scheduler(plugin)
        LOGGER.info("Running %s with nipype's %s plugin in %s", workflow.name, plugin,
                    workflow.base_dir)
    started = time.time()
    try:
        workflow.run(plugin=plugin, plugin_args=settings["plugin_args"])
    except Abort as abort:
        raise abort.error from None
    except RuntimeError as exc:
        raise _crash_error(crash_dir, started) from exc
    except OSError as exc:
        # The main process writes too (result files, crash files, the data sinks).
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            if exc.filename:
                raise disk_full(exc.errno, Path(exc.filename)) from exc
            # nipype's crash file for a failed write onto the same full disk fails too,
            # naming no file; the failed write it was reporting names it.
            text = "".join(traceback.format_exception(exc))
            raise (disk_full_error(text, Path(workflow.base_dir))
                   or disk_full(exc.errno, Path(workflow.base_dir))) from exc
        raise
    return 0


def _log_node_status(node, status: str) -> None:
    """Log each step as it finishes: progress for long runs without nipype's chatter."""
    if status == "end":
        LOGGER.info("Finished %s", node.fullname.split(".", 1)[-1])
    elif status == "exception":
        LOGGER.warning("Failed %s", node.fullname.split(".", 1)[-1])


_ERROR_LINE = re.compile(r"bidsapp\.errors\.(\w+): (.*)")


def _crash_error(crash_dir: Path, since: float) -> BidsAppError:
    """Turn nipype's crash files into one user-facing error.

    A node that raised one of our errors (bad data found late, say) keeps its class and so
    its exit code; anything else is reported as a failed step with its crash files.
    """
    crashes = sorted(p for p in crash_dir.glob("crash-*") if p.stat().st_mtime >= since - 1)
    for crash in crashes:
        for line in reversed(crash.read_text(errors="replace").splitlines()):
            match = _ERROR_LINE.search(line)
            cls = getattr(errors, match.group(1), None) if match else None
            if isinstance(cls, type) and issubclass(cls, BidsAppError):
                return cls(match.group(2))
    names = ", ".join(c.name for c in crashes[:3]) or "none written"
    return BidsAppError(
        f"{len(crashes)} workflow step(s) failed (crash files: {names})", path=crash_dir,
        fix="read the crash files; rerun with the same --work-dir to resume after fixing",
    )


