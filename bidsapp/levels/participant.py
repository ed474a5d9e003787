"""Participant level: check the inputs, build the trial designs, run the workflow, report."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import nibabel as nb
import numpy as np

from bidsapp.audio import LAYER_NAMES
from bidsapp.audio.weights import check_weights
from bidsapp.bids import collect_participants, open_layout
from bidsapp.bids.collect import SubjectData
from bidsapp.bids.derivatives import write_dataset_description
from bidsapp.bids.validate import validate_bids
from bidsapp.config import Config
from bidsapp.design import TrialDesign, subject_designs
from bidsapp.device import resolve_device_name
from bidsapp.errors import MissingInputError, UsageError
from bidsapp.preproc.masks import gm_mask_from_probseg
from bidsapp.reports import write_citation
from bidsapp.rsa.searchlight import CHUNK_CENTERS, device_memory_need, minimum_job_memory
from bidsapp.templates import get_template

from .common import plugin_settings, prepare_dir, run_workflow, save_config
from .reports import recorded_warnings, workflow_descriptions, write_participant_reports

LOGGER = logging.getLogger("bidsapp")


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
    with recorded_warnings() as warnings:
        return _run_participant(config, warnings)


def check_inputs(config: Config) -> tuple[list[SubjectData], dict[str, dict[str, TrialDesign]]]:
    """Check the dataset, the weights, the template and the device before anything is written.

    Parameters
    ----------
    config : Config
        The options of this run.

    Returns
    -------
    subjects : list of SubjectData
        The selected participants' checked inputs.
    designs : dict
        ``designs[subject][task]``: each task's :class:`~bidsapp.design.TrialDesign`.

    Raises
    ------
    BidsAppError
        The first problem found, with its exit code.
    """
    if not config.skip_bids_validation:
        validate_bids(config.bids_dir)
    layout = open_layout(config.bids_dir)
    subjects = collect_participants(layout, config)
    designs = {}
    for subject in subjects:
        runs = ", ".join(r.path.name for r in subject.bold)
        LOGGER.info("sub-%s: T1w %s; %d BOLD run(s): %s; %d stimuli", subject.subject,
                    subject.t1w.name, len(subject.bold), runs, len(subject.stimuli))
        designs[subject.subject] = subject_designs(subject, config)
    # The weights come from the install, not the dataset, and the network first runs after
    # preprocessing; like an unknown or uncached template they must stop the run before
    # anything is written.  Checked after the dataset, whose errors are the common ones,
    # because loading torch takes seconds.
    info = check_weights()
    LOGGER.info("Network weights: %s (%s, sha256 %s...)", info["path"], info["status"],
                info["sha256"][:12])
    template = get_template(config.output_space)
    # A GPU that is not there must stop the run now, not after the preprocessing (exit 69).
    device = resolve_device_name(config.device)
    _check_memory(config, designs, template, device)
    return subjects, designs


def _check_memory(config: Config, designs: dict, template, device: str = "cpu") -> None:
    """Stop now if one searchlight job cannot fit its share of the memory (exit 64).

    Each of the jobs that run at once gets ``--mem`` (else the machine's memory) divided by
    their number; a job needs at least :func:`bidsapp.rsa.searchlight.minimum_job_memory`
    for the task's T and the grey-matter voxels of the output grid, whatever the null.  On a
    GPU, one center of the torch engine must also fit in the GPU's free memory
    (:func:`gpu_memory_error`).
    """
    budget = config.job_memory_gb
    free_gpu = None
    if device.startswith("cuda"):
        import torch  # only with --device cuda: CPU runs need no GPU query

        free_gpu = torch.cuda.mem_get_info(torch.device(device))[0]
    n_voxels = int(np.count_nonzero(np.asanyarray(gm_mask_from_probseg(
        nb.load(template.gm_probseg), config.output_res).dataobj)))
    threads = config.threads
    for subject, tasks in designs.items():
        for task, design in tasks.items():
            need = minimum_job_memory(
                design.n_trs, n_voxels, min(n_voxels, CHUNK_CENTERS), config.searchlight_size,
                len(LAYER_NAMES), config.n_permutations, n_jobs=threads,
                device=config.device) / 2**30
            if need > budget:
                raise UsageError(
                    f"A searchlight job of sub-{subject} task-{task} needs about {need:.1f} GB "
                    f"(T = {design.n_trs} TRs, about {n_voxels} grey-matter voxels at "
                    f"{config.output_res:g} mm, {threads} thread(s)), more than the "
                    f"{budget:.1f} GB each of the {config.jobs_at_once} job(s) that run at "
                    f"once gets", path=config.bids_dir,
                    fix="give more memory (--mem), run fewer jobs at once (--nprocs), or "
                        "use a coarser output grid (--output-res 4)")
            if free_gpu is not None:
                error = gpu_memory_error(subject, task, design.n_trs, n_voxels, free_gpu)
                if error is not None:
                    raise error


def gpu_memory_error(subject: str, task: str, n_trs: int, n_voxels: int,
                     free_bytes: int) -> UsageError | None:
    """Return the error that stops a run whose searchlight cannot fit on the GPU, or None.

    The torch engine sizes its chunks of centers and its passes of candidates from the free
    GPU memory (:func:`bidsapp.rsa.searchlight.device_chunk_size`), so any T that leaves
    room for one center and one pass of the L candidates runs
    (:func:`bidsapp.rsa.searchlight.device_memory_need`).

    Parameters
    ----------
    subject, task : str
        Where the T comes from, for the message.
    n_trs : int
        T of the task's stacked trials.
    n_voxels : int
        Grey-matter voxels of the output grid.
    free_bytes : int
        Free GPU memory.

    Returns
    -------
    UsageError or None
        Exit 64, naming the need and the fix (``--device cpu``), or None when it fits.
    """
    need = device_memory_need(n_trs, n_voxels, len(LAYER_NAMES))
    if need <= free_bytes:
        return None
    return UsageError(
        f"The searchlight of sub-{subject} task-{task} cannot run on this GPU: at T = {n_trs} "
        f"TRs it needs at least {need / 2**30:.1f} GB of GPU memory, and "
        f"{free_bytes / 2**30:.1f} GB are free",
        fix="run with --device cpu (the searchlight then uses --mem), or on a GPU with more "
            "free memory")


def clean_work_dir(config: Config) -> None:
    """Empty the work folder (``--clean-workdir``), refusing a folder that holds other data.

    Parameters
    ----------
    config : Config
        The work folder and the folders it must not hold.

    Raises
    ------
    UsageError
        If the work folder is, or holds, the BIDS or the output folder.
    """
    work = config.resolved_work_dir.resolve()
    for other in (config.bids_dir, config.output_dir):
        other = Path(other).resolve()
        if work == other or work in other.parents:
            raise UsageError("--clean-workdir would delete the BIDS or the output folder, "
                             "which the work folder holds", path=work,
                             fix="give a work folder of its own (-w)")
    if work.is_dir():
        LOGGER.info("Emptying the work folder %s (--clean-workdir)", work)
        for child in work.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def _reports_only(config: Config, subjects: list[SubjectData], warnings: list[str]) -> int:
    for subject in subjects:
        if not (config.output_dir / f"sub-{subject.subject}").is_dir():
            raise MissingInputError(
                f"sub-{subject.subject} has no outputs to report on",
                path=config.output_dir / f"sub-{subject.subject}",
                fix="run the participant level without --reports-only first")
    write_participant_reports(config, subjects, warnings)
    return 0


def _run_participant(config: Config, warnings: list[str]) -> int:
    prepare_dir(config.output_dir, "output folder")
    if config.clean_workdir:
        clean_work_dir(config)
    prepare_dir(config.resolved_work_dir, "work folder")
    subjects, designs = check_inputs(config)
    if config.reports_only:
        return _reports_only(config, subjects, warnings)
    write_dataset_description(config.output_dir, config.bids_dir)
    saved = save_config(config)
    LOGGER.info("Configuration saved to %s", saved)

    # niworkflows indexes TemplateFlow when imported (seconds): after the input checks.
    from bidsapp.workflows.participant import init_participant_wf

    workflow = init_participant_wf(config, subjects, designs)
    if config.write_graph:
        # Graphviz source (.dot): rendering it needs Graphviz, which the image need not have.
        workflow.base_dir = str(config.resolved_work_dir)
        workflow.write_graph(graph2use="colored", format="dot", simple_form=True)
        LOGGER.info("Workflow graph: %s", config.resolved_work_dir / workflow.name
                    / "graph.dot")
    if config.boilerplate_only:
        citation = write_citation(config.output_dir, workflow_descriptions(workflow),
                                  section="participant")
        LOGGER.info("Methods text (--boilerplate-only, nothing run): %s", citation)
        return 0
    code = run_workflow(workflow, config)
    if plugin_settings(config)["plugin"].endswith("Graph"):
        # Graph plugins return once the jobs are queued; the outputs do not exist yet.
        LOGGER.info("Jobs submitted. When they have finished, run the same command without "
                    "--use-plugin: it reuses their results and writes the reports.")
        return code
    # The methods text first: the reports show the same paragraphs.
    methods = workflow_descriptions(workflow)
    citation = write_citation(config.output_dir, methods, section="participant")
    LOGGER.info("Methods text: %s", citation)
    write_participant_reports(config, subjects, warnings, methods)
    return code
