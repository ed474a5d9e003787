"""After the participant workflow: the per-participant HTML reports and the methods text."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nipype.pipeline import engine as pe

from bidsapp.bids.collect import SubjectData
from bidsapp.bids.outputs import MASK_DESCS, NULL_DESC, open_output_layout
from bidsapp.config import Config
from bidsapp.reports import TaskMaps, read_methods, write_participant_report

LOGGER = logging.getLogger("bidsapp")


class _WarningsRecorder(logging.Handler):
    """Keep the text of every warning logged in this process, for the reports."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # noqa: BLE001 - a bad log call must not stop the run
            self.handleError(record)


@contextmanager
def recorded_warnings() -> Iterator[list[str]]:
    """Record the warnings the ``bidsapp`` logger emits inside the block.

    Yields
    ------
    list of str
        Filled as warnings arrive; steps run by nipype in other processes are not seen,
        their failures end the run instead.
    """
    recorder = _WarningsRecorder()
    logger = logging.getLogger("bidsapp")
    logger.addHandler(recorder)
    try:
        yield recorder.messages
    finally:
        logger.removeHandler(recorder)


def workflow_descriptions(workflow) -> list[str]:
    """Return the ``__desc__`` methods paragraphs of a workflow and its sub-workflows.

    Parameters
    ----------
    workflow : nipype.pipeline.engine.Workflow
        The top workflow; sub-workflows are visited depth first, in the order they were
        added.

    Returns
    -------
    list of str
        Every non-empty paragraph, duplicates (e.g. one per run) removed.
    """
    found: list[str] = []

    def visit(wf) -> None:
        desc = getattr(wf, "__desc__", None)
        if desc and desc.strip():
            found.append(desc.strip())
        for node in wf._graph.nodes():
            if isinstance(node, pe.Workflow):
                visit(node)

    visit(workflow)
    return list(dict.fromkeys(found))


def _subject_warnings(messages: list[str], label: str, labels: list[str]) -> list[str]:
    """Return the warnings naming this participant, and those naming no one."""
    others = [f"sub-{x}" for x in labels if x != label]
    return [m for m in messages
            if f"sub-{label}" in m or not any(o in m for o in others)]


def _one(found: list) -> Path | None:
    """Return the first NIfTI file among a pybids result, or None."""
    paths = sorted(Path(f.path) for f in found if f.path.endswith((".nii", ".nii.gz")))
    return paths[0] if paths else None


def task_maps(layout, subject: str, task: str) -> TaskMaps:
    """Return one task's searchlight outputs of a participant, found with pybids.

    Parameters
    ----------
    layout : bids.BIDSLayout
        The output folder (:func:`bidsapp.bids.outputs.open_output_layout`).
    subject : str
        The label, without ``sub-``.
    task : str
        The task label.

    Returns
    -------
    TaskMaps
        The layer maps of the first space and resolution found (sorted), and the mask,
        maximum, best layer, null and candidate-RDM figure on the same grid, where
        written.
    """
    common = {"subject": subject, "task": task}
    layers = [f for f in layout.get(suffix="statmap", stat="r", extension=[".nii", ".nii.gz"],
                                    **common)
              if re.fullmatch(r"layer\d+", str(f.get_entities().get("desc", "")))]
    if not layers:
        return TaskMaps(task)
    grids = sorted({(f.get_entities().get("space"), f.get_entities().get("res"))
                    for f in layers}, key=str)
    space, res = grids[0]
    grid = {"space": space or None, "res": res or None}
    maps = sorted(Path(f.path) for f in layers
                  if (f.get_entities().get("space"), f.get_entities().get("res")) == grids[0])
    mask = None
    for desc in MASK_DESCS:
        mask = mask or _one(layout.get(suffix="mask", desc=desc, **common, **grid))
    rdm_figures = layout.get(suffix="rdm", desc="candidates", extension=".svg", **common)
    return TaskMaps(
        task, maps, mask=mask,
        max_r=_one(layout.get(suffix="statmap", stat="r", desc="maxcorr", **common, **grid)),
        best_layer=_one(layout.get(suffix="dseg", desc="bestlayer", **common, **grid)),
        null=_one(layout.get(suffix="statmap", stat="r", desc=NULL_DESC, **common, **grid)),
        candidate_rdms=Path(rdm_figures[0].path) if rdm_figures else None)


def write_participant_reports(config: Config, subjects: list[SubjectData],
                              warnings: list[str],
                              methods: list[str] | None = None) -> list[Path]:
    """Write ``sub-<label>.html`` for every participant, from the files in the output dir.

    Parameters
    ----------
    config : Config
        The run's options (output folder, permutations).
    subjects : list of SubjectData
        The participants this run processed.
    warnings : list of str
        Warnings logged during the run; each report gets those naming its participant
        and those naming none.
    methods : list of str, optional
        The participant level's methods paragraphs (``workflow_descriptions``); by
        default those recorded in ``logs/CITATION.json`` (``--reports-only``).

    Returns
    -------
    list of Path
        The reports written.
    """
    labels = [s.subject for s in subjects]
    if methods is None:
        methods = read_methods(config.output_dir, "participant")
    layout = open_output_layout(config.output_dir)
    written = []
    for subject in subjects:
        label = subject.subject
        tasks = [task_maps(layout, label, task) for task in subject.tasks]
        figures = layout.get(subject=label, extension=".svg")
        reportlets = sorted(Path(f.path) for f in figures
                            if f.get_entities().get("suffix") != "rdm")
        confounds = sorted(Path(f.path) for f in layout.get(
            subject=label, desc="confounds", suffix="timeseries", extension=".tsv"))
        runs = list(subject.bold)
        summary = {
            "BOLD runs": len(runs),
            "repetition time (s)": ", ".join(
                sorted({f"{r.repetition_time:g}" for r in runs})) or "none",
            "trials per run": ", ".join(str(len(r.trials)) for r in runs),
            "stimuli": len(subject.stimuli),
            "permutations of the null": config.n_permutations or "none",
        }
        report = write_participant_report(
            config.output_dir, label, tasks=tasks, reportlets=reportlets,
            confounds=confounds, summary=summary,
            warnings=_subject_warnings(warnings, label, labels),
            tr=runs[0].repetition_time if runs else None, methods=methods)
        LOGGER.info("Report for sub-%s: %s", label, report)
        written.append(report)
    return written
