"""The participant-level workflow: one sub-workflow per participant and task."""

from __future__ import annotations

import logging

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bidsapp.bids.collect import SubjectData
from bidsapp.config import Config

LOGGER = logging.getLogger("bidsapp")


def init_participant_wf(config: Config, subjects: list[SubjectData]) -> pe.Workflow:
    """Build the participant-level workflow for every selected participant.

    Parameters
    ----------
    config : Config
        The options of this run.
    subjects : list of SubjectData
        The checked inputs of each participant (:func:`bidsapp.bids.collect_participants`).

    Returns
    -------
    nipype.pipeline.engine.Workflow
        ``bidsapp_participant_wf``, with one ``sub_<label>_wf`` per participant.
    """
    workflow = pe.Workflow(name="bidsapp_participant_wf")
    for subject in subjects:
        workflow.add_nodes([init_single_subject_wf(config, subject)])
    return workflow


def init_single_subject_wf(config: Config, subject: SubjectData) -> pe.Workflow:
    """Build one participant's workflow.

    The anatomical workflow (T1w to template, masks); per BOLD run the preprocessing to
    template space; per task the candidate RDMs of the network's ten layers (features
    cached in ``<output_dir>/features`` and shared by every participant) and the
    searchlight RSA of the task's runs against them.

    Parameters
    ----------
    config : Config
        The options of this run.
    subject : SubjectData
        The participant's checked inputs.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        ``sub_<label>_wf``.
    """
    from bidsapp.interfaces.features import CandidateRDMs
    from bidsapp.workflows.anatomical import init_anat_wf, resolution_text
    from bidsapp.workflows.bold import BOLD_INPUTS, init_bold_wf
    from bidsapp.workflows.rsa import init_rsa_wf

    workflow = pe.Workflow(name=f"sub_{subject.subject}_wf")
    workflow.__desc__ = (
        "Candidate representational dissimilarity matrices (RDMs) were computed from the "
        "activations of the ten layers of a one-dimensional ResNet-18 for each stimulus "
        "(averaged within each TR and convolved with the canonical SPM haemodynamic "
        f"response), after dropping the first {config.drop_seconds:g} s of each trial, as "
        "1 - Spearman correlation between TRs."
    )
    anat_wf = init_anat_wf(config=config,
                           normalization_quality=config.normalization_quality)
    anat_wf.inputs.inputnode.t1w = str(subject.t1w)
    anat_fields = [f for f in BOLD_INPUTS if f != "bold_file"]
    for task in subject.tasks:
        runs = [run for run in subject.bold if run.task == task]
        bold_wfs = [init_bold_wf(bold_run=run, config=config,
                                 interpolation=config.interpolation) for run in runs]
        for bold_wf in bold_wfs:
            workflow.connect([(anat_wf, bold_wf, [(f"outputnode.{f}", f"inputnode.{f}")
                                                  for f in anat_fields])])
        stim_ids = sorted({trial.stim_file for run in runs for trial in run.trials})
        rdms = pe.Node(CandidateRDMs(stimuli={s: str(subject.stimuli[s]) for s in stim_ids},
                                     repetition_time=runs[0].repetition_time,
                                     cache_dir=str(config.output_dir / "features"),
                                     drop_seconds=config.drop_seconds,
                                     device=config.device),
                       name=f"candidate_rdms_{task}", mem_gb=2)
        space_entities = {"space": config.output_space,
                          "resolution": _resolution_label(config.output_res),
                          "Resolution": resolution_text(config.output_space,
                                                        config.output_res)}
        rsa_wf = init_rsa_wf(config=config, runs=runs, space_entities=space_entities,
                             name=f"rsa_{task}_wf")
        rsa_wf.inputs.inputnode.start_times = [_effective_start(w) for w in bold_wfs]
        merge_bold = pe.Node(niu.Merge(len(bold_wfs)), name=f"merge_bold_{task}",
                             run_without_submitting=True)
        for i, bold_wf in enumerate(bold_wfs, start=1):
            workflow.connect(bold_wf, "outputnode.bold_std", merge_bold, f"in{i}")
        workflow.connect([
            (merge_bold, rsa_wf, [("out", "inputnode.bold_files")]),
            (bold_wfs[0], rsa_wf, [("outputnode.gm_mask", "inputnode.mask_file")]),
            (rdms, rsa_wf, [("candidate_rdms", "inputnode.candidate_rdms"),
                            ("info", "inputnode.candidate_info")]),
        ])
    return workflow


def _resolution_label(res: float) -> str:
    from bidsapp.preproc.resample import resolution_label

    return resolution_label(res)


def _effective_start(bold_wf: pe.Workflow) -> float:
    """Time within each TR that a template-space volume of this run represents.

    After slice-timing correction it is the run's ``StartTime``; without it, a volume
    mixes slices from the whole TR, so half a TR is the better estimate than 0.
    """
    outputs = bold_wf.get_node("outputnode").inputs
    if outputs.slice_timing_corrected:
        return float(outputs.start_time)
    return 0.5 * float(outputs.repetition_time)
