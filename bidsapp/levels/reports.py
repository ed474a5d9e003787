"""After the participant workflow: the per-participant HTML reports and the methods text."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nipype.pipeline import engine as pe

from bidsapp.bids.collect import SubjectData
from bidsapp.config import Config
from bidsapp.reports import write_participant_report

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


def write_participant_reports(config: Config, subjects: list[SubjectData],
                              warnings: list[str]) -> list[Path]:
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

    Returns
    -------
    list of Path
        The reports written.
    """
    labels = [s.subject for s in subjects]
    written = []
    for subject in subjects:
        root = config.output_dir / f"sub-{subject.subject}"
        task = subject.tasks[0]
        layer_maps = sorted(
            root.rglob(f"*_task-{task}_*_desc-layer[0-9][0-9]_stat-r_statmap.nii.gz"))
        masks = sorted(root.rglob(f"*_task-{task}_*_desc-searchlight_mask.nii.gz"))
        figures = sorted(root.rglob("figures/*.svg"))
        rdm_figures = [f for f in figures
                       if f.name.endswith(f"task-{task}_desc-candidates_rdm.svg")]
        reportlets = [f for f in figures if not f.name.endswith("_rdm.svg")]
        confounds = sorted(root.rglob("func/*_desc-confounds_timeseries.tsv"))
        runs = [r for r in subject.bold if r.task == task]
        summary = {
            "tasks": ", ".join(subject.tasks) + (
                f" (maps shown for task-{task})" if len(subject.tasks) > 1 else ""),
            "BOLD runs": len(subject.bold),
            "repetition time (s)": runs[0].repetition_time,
            "trials per run": ", ".join(str(len(r.trials)) for r in runs),
            "stimuli": len(subject.stimuli),
            "permutations of the null": config.n_permutations or "none",
        }
        report = write_participant_report(
            config.output_dir, subject.subject, layer_maps=layer_maps,
            mask=masks[0] if masks else None, reportlets=reportlets, confounds=confounds,
            candidate_rdms=rdm_figures[0] if rdm_figures else None, summary=summary,
            warnings=_subject_warnings(warnings, subject.subject, labels),
            tr=runs[0].repetition_time)
        LOGGER.info("Report for sub-%s: %s", subject.subject, report)
        written.append(report)
    return written
