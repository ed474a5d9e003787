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

    For each task: the stimulus features (cached in ``<output_dir>/features`` and shared
    by every participant) and the candidate RDMs of the network's ten layers, in the
    canonical trial order the fMRI side uses too.

    Parameters
    ----------
    config : Config
        The options of this run.
    subject : SubjectData
        The participant's checked inputs.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        ``sub_<label>_wf``; per task, the node ``candidate_rdms_<task>``.
    """
    from bidsapp.interfaces.features import CandidateRDMs

    workflow = pe.Workflow(name=f"sub_{subject.subject}_wf")
    workflow.__desc__ = (
        "Candidate representational dissimilarity matrices (RDMs) were computed from the "
        "activations of the ten layers of a one-dimensional ResNet-18 for each stimulus "
        "(averaged within each TR and convolved with the canonical SPM haemodynamic "
        f"response), after dropping the first {config.drop_seconds:g} s of each trial, as "
        "1 - Spearman correlation between TRs."
    )
    for task in subject.tasks:
        runs = [run for run in subject.bold if run.task == task]
        stim_ids = sorted({trial.stim_file for run in runs for trial in run.trials})
        inputnode = pe.Node(niu.IdentityInterface(fields=["stimuli"]),
                            name=f"inputnode_{task}")
        inputnode.inputs.stimuli = {stim: str(subject.stimuli[stim]) for stim in stim_ids}
        rdms = pe.Node(CandidateRDMs(repetition_time=runs[0].repetition_time,
                                     cache_dir=str(config.output_dir / "features"),
                                     drop_seconds=config.drop_seconds,
                                     device=config.device),
                       name=f"candidate_rdms_{task}", mem_gb=2)
        workflow.connect(inputnode, "stimuli", rdms, "stimuli")
    return workflow
