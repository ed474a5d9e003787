"""The participant-level workflow: one sub-workflow per participant and task."""

from __future__ import annotations

from collections.abc import Mapping

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bidsapp.bids.collect import SubjectData
from bidsapp.bids.derivatives import resolution_text
from bidsapp.config import Config
from bidsapp.design import TrialDesign
from bidsapp.interfaces.features import CandidateRDMs
from bidsapp.preproc.resample import resolution_label

from .anatomical import init_anat_wf
from .bold import BOLD_INPUTS, init_bold_wf, name_runs_in_methods
from .rsa import init_rsa_wf


def init_participant_wf(config: Config, subjects: list[SubjectData],
                        designs: Mapping[str, Mapping[str, TrialDesign]]) -> pe.Workflow:
    """Build the participant-level workflow for every selected participant.

    Parameters
    ----------
    config : Config
        The options of this run.
    subjects : list of SubjectData
        The checked inputs of each participant (:func:`bidsapp.bids.collect_participants`).
    designs : mapping
        ``designs[subject][task]``, from :func:`bidsapp.design.subject_designs`.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        ``bidsapp_participant_wf``, with one ``sub_<label>_wf`` per participant.
    """
    workflow = pe.Workflow(name="bidsapp_participant_wf")
    subject_wfs = [init_single_subject_wf(config, subject, designs[subject.subject])
                   for subject in subjects]
    workflow.add_nodes(subject_wfs)
    # One methods text covers every participant: runs preprocessed differently are named.
    name_runs_in_methods([node for subject_wf in subject_wfs
                          for node in subject_wf._graph.nodes()
                          if isinstance(node, pe.Workflow) and node.name.startswith("bold_")])
    return workflow


def init_single_subject_wf(config: Config, subject: SubjectData,
                           designs: Mapping[str, TrialDesign]) -> pe.Workflow:
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
    designs : mapping of str to TrialDesign
        The trial design of each task.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        ``sub_<label>_wf``.
    """
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
        design = designs[task].to_dict()
        rdms = pe.Node(CandidateRDMs(design=design,
                                     cache_dir=str(config.output_dir / "features"),
                                     device=config.device),
                       name=f"candidate_rdms_{task}", mem_gb=2)
        space_entities = {"space": config.output_space,
                          "resolution": resolution_label(config.output_res),
                          "Resolution": resolution_text(config.output_space,
                                                        config.output_res)}
        rsa_wf = init_rsa_wf(config=config, design=design, source_file=runs[0].path,
                             subject=subject.subject, space_entities=space_entities,
                             name=f"rsa_{task}_wf")
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

