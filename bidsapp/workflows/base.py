"""Top level of a run: check inputs, prepare the derivatives folder, build and run workflows."""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from pathlib import Path

from bidsapp.config import Config
from bidsapp.errors import (
    BidsAppError,
    CannotWriteError,
    MissingInputError,
    UsageError,
)
from bidsapp.runner import Abort, ProcessPlugin, disk_full

LOGGER = logging.getLogger("bidsapp")
#: The ``plugin`` name of :func:`plugin_settings` that stands for bidsapp's own runner.
RUNNER = "bidsapp"


def _prepare_dir(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise CannotWriteError(
            f"The {what} cannot be written ({exc.strerror})", path=path,
            fix=f"choose a {what} you can write to, with free space (in a container, mount it "
                "read-write)",
        ) from exc


def plugin_settings(config: Config) -> dict:
    """Return nipype's ``plugin`` and ``plugin_args`` for this run.

    Parameters
    ----------
    config : Config
        ``use_plugin`` (a YAML file) wins; otherwise the app's own runner
        (:class:`bidsapp.runner.ProcessPlugin`, named :data:`RUNNER`) over ``nprocs``
        processes within ``mem_gb``.

    Returns
    -------
    dict
        Keyword arguments for ``Workflow.run``.
    """
    if config.use_plugin is not None:
        import yaml

        settings = yaml.safe_load(config.use_plugin.read_text())
        return {"plugin": settings["plugin"], "plugin_args": settings.get("plugin_args", {})}
    nprocs = config.nprocs or os.cpu_count() or 1
    args: dict = {"n_procs": nprocs, "raise_insufficient": False}
    if config.mem_gb:
        args["memory_gb"] = config.mem_gb
    # The app's runner (bidsapp.runner) for one process too: a node that dies or a signal
    # must end the run the same way whatever --nprocs is.
    return {"plugin": RUNNER, "plugin_args": args}


def run(config: Config) -> int:
    """Run one analysis level as configured and return the exit code.

    Parameters
    ----------
    config : Config
        The frozen options of this run.

    Returns
    -------
    int
        0 when the run completed.

    Raises
    ------
    BidsAppError
        For every user error, with its documented exit code.
    """
    if config.analysis_level == "participant":
        return run_participant(config)
    if config.analysis_level == "group":
        return run_group(config)
    raise UsageError(f"Unknown analysis level {config.analysis_level!r}",
                     fix="use participant or group")


def _save_config(config: Config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"config-{config.analysis_level}-{stamp}-{os.getpid()}.toml"
    path = config.output_dir / "logs" / name
    config.save(path)
    return path


def run_participant(config: Config) -> int:
    """Participant level: check every input, then run the per-subject workflows.

    Parameters
    ----------
    config : Config
        The options of this run.

    Returns
    -------
    int
        0 on success.
    """
    from bidsapp.workflows.reporting import recorded_warnings

    with recorded_warnings() as warnings:
        return _run_participant(config, warnings)


def _run_participant(config: Config, warnings: list[str]) -> int:
    from bidsapp.audio.weights import check_weights
    from bidsapp.bids import collect_participants, open_layout
    from bidsapp.bids.derivatives import write_dataset_description
    from bidsapp.templates import get_template

    _prepare_dir(config.output_dir, "output folder")
    work_dir = config.resolved_work_dir
    _prepare_dir(work_dir, "work folder")
    if not config.skip_bids_validation:
        from bidsapp.bids.validate import validate_bids

        validate_bids(config.bids_dir)
    layout = open_layout(config.bids_dir)
    subjects = collect_participants(layout, config)
    for subject in subjects:
        runs = ", ".join(r.path.name for r in subject.bold)
        LOGGER.info("sub-%s: T1w %s; %d BOLD run(s): %s; %d stimuli", subject.subject,
                    subject.t1w.name, len(subject.bold), runs, len(subject.stimuli))
    # The weights come from the install, not the dataset, and the network first runs after
    # preprocessing; like an unknown or uncached template they must stop the run before
    # anything is written.  Checked after the dataset, whose errors are the common ones,
    # because loading torch takes seconds.
    info = check_weights()
    LOGGER.info("Network weights: %s (%s, sha256 %s...)", info["path"], info["status"],
                info["sha256"][:12])
    get_template(config.output_space)
    _check_device(config.device)
    write_dataset_description(config.output_dir, config.bids_dir)
    saved = _save_config(config)
    LOGGER.info("Configuration saved to %s", saved)

    from bidsapp.reports import write_citation
    from bidsapp.workflows.participant import init_participant_wf
    from bidsapp.workflows.reporting import workflow_descriptions, write_participant_reports

    workflow = init_participant_wf(config, subjects)
    code = _run_workflow(workflow, config)
    if plugin_settings(config)["plugin"].endswith("Graph"):
        # Graph plugins return once the jobs are queued; the outputs do not exist yet.
        LOGGER.info("Jobs submitted. When they have finished, run the same command without "
                    "--use-plugin: it reuses their results and writes the reports.")
        return code
    write_participant_reports(config, subjects, warnings)
    citation = write_citation(config.output_dir, workflow_descriptions(workflow),
                              section="participant")
    LOGGER.info("Methods text: %s", citation)
    return code


def _check_device(device: str) -> None:
    """Stop before any work when ``--device cuda`` names a GPU that is not there (exit 69).

    Otherwise the network would fail on it only after the preprocessing, minutes later.
    """
    if not device.startswith("cuda"):
        return
    from bidsapp.audio.weights import resolve_device

    resolve_device(device)  # NotAvailableError (69) with the fix when torch sees no GPU


def _run_workflow(workflow, config: Config) -> int:
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
    from nipype import config as nipype_config
    from nipype import logging as nipype_logging

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
            raise disk_full(exc.errno, Path(exc.filename or workflow.base_dir)) from exc
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
    from bidsapp import errors

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


def run_group(config: Config) -> int:
    """Group level: needs the participant level's outputs in ``output_dir``.

    Parameters
    ----------
    config : Config
        The options of this run.

    Returns
    -------
    int
        0 on success.
    """
    if not (config.output_dir / "dataset_description.json").is_file():
        raise MissingInputError(
            "No participant-level outputs were found in the output folder", path=config.output_dir,
            fix="run the participant level first (same bids_dir and output_dir)",
        )
    subjects = sorted(p.name for p in config.output_dir.glob("sub-*") if p.is_dir())
    if config.participant_label:
        subjects = [s for s in subjects if s.removeprefix("sub-") in config.participant_label]
    if len(subjects) < 2:
        from bidsapp.errors import NothingSelected

        raise NothingSelected(
            f"The group level needs at least 2 participants with outputs; found "
            f"{len(subjects)} ({', '.join(subjects) or 'none'})", path=config.output_dir,
            fix="run the participant level for more participants first",
        )
    _prepare_dir(config.output_dir, "output folder")
    _save_config(config)
    from bidsapp.workflows.group import run_group_level

    return run_group_level(config, subjects)
