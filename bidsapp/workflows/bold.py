"""Functional preprocessing of one BOLD run, or the adapter to fMRIPrep's outputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nb
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from bidsapp.bids.derivatives import resolution_text
from bidsapp.config import Config
from bidsapp.interfaces.bids import datasink
from bidsapp.interfaces.preproc import (
    BoldToT1wRegistration,
    GMMaskLike,
    HeadMotionEstimation,
    ResampleBoldToTemplate,
    SliceTimingCorrection,
)
from bidsapp.interfaces.reports import CarpetPlot, MotionPlot, registration_overlay
from bidsapp.preproc.fmriprep import find_fmriprep_run, open_fmriprep_layout
from bidsapp.preproc.resample import resolution_label
from bidsapp.preproc.slice_timing import plan_slice_timing
from bidsapp.templates import get_template

BOLD_INPUTS = ("bold_file", "t1w_preproc", "t1w_mask", "t1w2std_xfm", "ref_file",
               "resample_mask", "brain_mask_std", "gm_mask", "dseg")
BOLD_OUTPUTS = ("bold_std", "bold_mask_std", "gm_mask", "confounds", "boldref", "hmc_xforms",
                "coreg_xfm", "repetition_time", "start_time",
                "slice_timing_corrected", "warnings", "reportlets")

_CONFOUNDS_META = {
    **{f"trans_{a}": {"Description": f"translation along {a} (RAS+)", "Units": "mm"}
       for a in "xyz"},
    **{f"rot_{a}": {"Description": f"rotation about {a}, about the world origin",
                    "Units": "rad"} for a in "xyz"},
    "framewise_displacement": {"Description": "Power et al. (2012), 50 mm head radius",
                               "Units": "mm"},
}


def _run_name(bold_run) -> str:
    parts = [f"{key}_{bold_run.entities[key]}" for key in ("session", "task", "acquisition",
                                                           "run") if key in bold_run.entities]
    return "bold_" + "_".join(parts) + "_wf"


#: How a run's methods paragraph names the runs it describes, until
#: :func:`name_runs_in_methods` finds that runs were preprocessed differently.
EVERY_RUN = "each BOLD run"


def name_runs_in_methods(workflows: Sequence[Workflow]) -> None:
    """Name each run in its methods paragraph when the runs' paragraphs differ.

    The methods text keeps one copy of identical paragraphs, so runs preprocessed alike
    share one "For each BOLD run, ..." paragraph.  When they differ (e.g. one run lacks
    ``SliceTiming``), two paragraphs that both say "each BOLD run" would contradict each
    other; each then names its run instead.

    Parameters
    ----------
    workflows : sequence of nipype Workflow
        Every run's workflow from :func:`init_bold_wf`, of every participant.
    """
    if len({wf.__desc__ for wf in workflows}) < 2:
        return
    for wf in workflows:
        run = Path(wf.get_node("inputnode").inputs.bold_file).name
        wf.__desc__ = wf.__desc__.replace(f"For {EVERY_RUN},", f"For {run},", 1)


#: Interpolation of the one resampling to the template: name -> spline order.
INTERPOLATIONS = {"cubic": 3, "trilinear": 1}


def _mem_gb(bold_run) -> dict[str, float]:
    # What each BOLD-sized step holds at its peak, in GB, so that MultiProc under a
    # --mem budget does not start two whose sum would not fit.  A float32 copy of the
    # series is the unit (1.6 GB for a study run): head motion holds the raw series
    # (int16 there, up to float32), slice timing the raw series and its float32 result.
    # Resampling reads and writes one volume at a time and the carpet plot keeps only
    # the voxels it draws, so they hold the template-grid coordinates and a few volumes.
    shape = nb.load(bold_run.path).shape
    series = 4 * float(shape[0] * shape[1] * shape[2] * shape[3]) / 1e9
    return {"hmc": 0.3 + series, "stc": 0.3 + 2 * series, "resample": 0.5,
            "carpet_rpt": 0.3}


def init_bold_wf(*, bold_run, config: Config, name: str | None = None,
                 interpolation: str = "cubic"):
    """Build the preprocessing of one BOLD run, from native space to the template.

    Head motion is estimated on the raw series (rigid, to its mean volume); the series is
    slice-timing corrected; the mean volume is coregistered to the T1w (rigid, mutual
    information); and every volume is resampled once, from the slice-timing corrected
    native series to the template grid, through its head-motion transform, the
    coregistration and the T1w-to-template normalization.  With
    ``config.derivatives['fmriprep']`` this returns :func:`init_fmriprep_bold_wf` instead,
    with the same outputs.

    Parameters
    ----------
    bold_run : bidsapp.bids.collect.BoldRun
        The run: its file, sidecar metadata (``RepetitionTime``, ``SliceTiming``) and
        trials.
    config : Config
        Uses ``output_space``, ``output_res``, ``slice_time_ref``, ``output_dir``,
        ``omp_nthreads``, ``random_seed`` and ``derivatives``.
    name : str, optional
        Workflow name (default ``bold_task_<t>_run_<r>_wf``).
    interpolation : {'cubic', 'trilinear'}, optional
        Interpolation of the resampling to the template: cubic B-splines (default), or
        trilinear, which takes less than half the time (0.07 against 0.15 s of CPU per
        study volume) and smooths slightly more (see ``docs/validation.md``).

    Inputs
    ------
    bold_file
        The raw BOLD series (set from ``bold_run``).
    t1w_preproc, t1w_mask, t1w2std_xfm
        From the anatomical workflow (``init_anat_wf``).
    ref_file, resample_mask, brain_mask_std, gm_mask, dseg
        The output grid and its masks, from the anatomical workflow.

    Outputs
    -------
    bold_std
        ``space-<tpl>_res-<r>_desc-preproc_bold.nii.gz``: what the RSA reads.
    bold_mask_std
        The template brain mask within the run's field of view.
    gm_mask
        The template grey-matter mask within the run's field of view (the RSA mask).
    confounds
        ``desc-confounds_timeseries.tsv``: ``trans_x`` ... ``rot_z``,
        ``framewise_displacement``.
    boldref, hmc_xforms, coreg_xfm
        The reference volume and the transforms (native space).
    repetition_time
        TR in seconds.
    start_time
        ``StartTime``: volume ``n`` of ``bold_std`` samples time ``n * TR + start_time``
        after the run's first volume began (0 when slice timing was not corrected).  The
        analysis places volumes with :func:`bidsapp.design.run_volume_time` instead, which
        applies the same rule when the trial design is built.
    slice_timing_corrected
        Whether slice timing was corrected.
    warnings
        Messages for the report (e.g. why slice timing was not corrected).
    reportlets
        SVG files: coregistration overlay, motion plot, carpet plot.
    """
    if config.derivatives.get("fmriprep"):
        return init_fmriprep_bold_wf(bold_run=bold_run, config=config, name=name)
    tr = float(bold_run.repetition_time)
    metadata = dict(bold_run.metadata)
    # The input checks already warned, once per run, when slice timing will be skipped.
    plan = plan_slice_timing(metadata, nb.load(bold_run.path).shape, tr, config.slice_time_ref,
                             log=False)
    start_time = float(plan.start_time or 0.0)
    space, res = config.output_space, float(config.output_res)
    threads = config.threads
    mem_gb = _mem_gb(bold_run)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {sorted(INTERPOLATIONS)}, "
                         f"not {interpolation!r}")
    interpolation_text = {"cubic": "cubic B-splines", "trilinear": "trilinear interpolation"}

    workflow = Workflow(name=name or _run_name(bold_run))
    if plan.corrected:
        times = plan.slice_times
        stc_text = (f"BOLD runs were slice-time corrected to {start_time:.3g} s "
                    f"({config.slice_time_ref:g} of the slice acquisition range "
                    f"{min(times):.3g}-{max(times):.3g} s) by a Fourier (sinc) shift of "
                    "each slice's time series. ")
        series = "slice-timing corrected native series"
    else:
        reason = (plan.warning or "").removeprefix("Slice-timing correction skipped: ")
        stc_text = f"Slice timing was not corrected ({reason}). "
        series = "native series, without slice-timing correction,"
    workflow.__desc__ = f"""\
For {EVERY_RUN}, head motion was estimated by registering every volume to the run's
mean volume (rigid, mutual information; ANTs through *antspyx*), and framewise displacement
was computed as in Power et al. (2012). {stc_text}The mean volume was coregistered to the
T1w reference (rigid, mutual information). Every volume was resampled once, with
{interpolation_text[interpolation]}, from the {series} onto the {space} template at
{res:g} mm, composing its head-motion transform, the coregistration and the spatial
normalization.
"""
    inputnode = pe.Node(niu.IdentityInterface(fields=list(BOLD_INPUTS)), name="inputnode")
    inputnode.inputs.bold_file = str(bold_run.path)
    outputnode = pe.Node(niu.IdentityInterface(fields=list(BOLD_OUTPUTS)), name="outputnode")
    outputnode.inputs.repetition_time = tr
    outputnode.inputs.start_time = start_time
    outputnode.inputs.slice_timing_corrected = plan.corrected
    outputnode.inputs.warnings = [plan.warning] if plan.warning else []

    # ITK fixes its thread count once per process and nipype reuses worker processes, so
    # every ANTs step asks for the same count; --omp-nthreads 1 makes reruns bit-identical.
    hmc = pe.Node(HeadMotionEstimation(n_threads=threads, seed=config.random_seed),
                  name="hmc", n_procs=threads, mem_gb=mem_gb["hmc"])
    stc = pe.Node(SliceTimingCorrection(metadata=metadata, repetition_time=tr,
                                        slice_time_ref=config.slice_time_ref),
                  name="stc", mem_gb=mem_gb["stc"])
    coreg = pe.Node(BoldToT1wRegistration(n_threads=threads, seed=config.random_seed),
                    name="coreg", n_procs=threads, mem_gb=2.0)
    # Mostly single-threaded numpy; only composing the warp (seconds) uses ITK threads.
    resample = pe.Node(ResampleBoldToTemplate(repetition_time=tr, n_threads=threads,
                                              order=INTERPOLATIONS[interpolation]),
                       name="resample", mem_gb=mem_gb["resample"])
    coreg_rpt = registration_overlay(after_label="T1w", before_label="BOLD reference",
                                     name="coreg_rpt")
    motion_rpt = pe.Node(MotionPlot(repetition_time=tr), name="motion_rpt", mem_gb=0.5)
    carpet_rpt = pe.Node(CarpetPlot(repetition_time=tr), name="carpet_rpt",
                         mem_gb=mem_gb["carpet_rpt"])
    reportlets = pe.Node(niu.Merge(3), name="reportlets", run_without_submitting=True)

    workflow.connect([
        (inputnode, hmc, [("bold_file", "in_file")]),
        (inputnode, stc, [("bold_file", "in_file")]),
        (hmc, coreg, [("reference_file", "reference_file")]),
        (inputnode, coreg, [("t1w_preproc", "t1w_file"), ("t1w_mask", "t1w_mask")]),
        (stc, resample, [("out_file", "in_file")]),
        (hmc, resample, [("xforms_file", "hmc_xforms")]),
        (coreg, resample, [("xfm_file", "coreg_xfm")]),
        (inputnode, resample, [("t1w_preproc", "t1w_file"), ("t1w2std_xfm", "t1w2std_xfm"),
                               ("ref_file", "ref_file"), ("resample_mask", "resample_mask"),
                               ("brain_mask_std", "brain_mask"), ("gm_mask", "gm_mask")]),
        (coreg, coreg_rpt, [("reference_t1w", "before")]),
        (inputnode, coreg_rpt, [("t1w_preproc", "after"), ("t1w_mask", "wm_seg")]),
        (hmc, motion_rpt, [("confounds_file", "confounds_file")]),
        (resample, carpet_rpt, [("out_file", "in_file")]),
        (inputnode, carpet_rpt, [("dseg", "dseg")]),
        (hmc, carpet_rpt, [("confounds_file", "confounds_file")]),
        (coreg_rpt, reportlets, [("out_report", "in1")]),
        (motion_rpt, reportlets, [("out_report", "in2")]),
        (carpet_rpt, reportlets, [("out_report", "in3")]),
        (resample, outputnode, [("out_file", "bold_std"), ("bold_mask", "bold_mask_std"),
                                ("gm_mask", "gm_mask")]),
        (hmc, outputnode, [("confounds_file", "confounds"), ("reference_file", "boldref"),
                           ("xforms_file", "hmc_xforms")]),
        (coreg, outputnode, [("xfm_file", "coreg_xfm")]),
        (reportlets, outputnode, [("out", "reportlets")]),
    ])
    _connect_sinks(workflow, config.output_dir, space, res, resolution_label(res), plan,
                   tr, inputnode, hmc, coreg, resample, coreg_rpt, motion_rpt, carpet_rpt)
    return workflow


def _connect_sinks(workflow, out_dir: Path, space: str, res: float, label: str, plan,
                   tr: float, inputnode, hmc, coreg, resample, coreg_rpt, motion_rpt,
                   carpet_rpt) -> None:
    std = {"space": space, "resolution": label, "resolution_text": resolution_text(space, res)}
    bold_meta = {"RepetitionTime": tr, "SkullStripped": False, **plan.sidecar()}
    sinks = [
        (datasink("ds_bold_std", out_dir, desc="preproc", suffix="bold", compress=True,
                  **std),
         resample, "out_file", bold_meta),
        (datasink("ds_bold_mask_std", out_dir, desc="brain", suffix="mask", compress=True,
                  **std), resample, "bold_mask", None),
        (datasink("ds_confounds", out_dir, desc="confounds", suffix="timeseries"),
         hmc, "confounds_file", _CONFOUNDS_META),
        (datasink("ds_boldref", out_dir, desc="hmc", suffix="boldref", compress=True),
         hmc, "reference_file", None),
        (datasink("ds_hmc_xfm", out_dir, suffix="xfm", mode="image", desc="hmc", to="boldref",
                  **{"from": "orig"}), hmc, "xforms_file", None),
        (datasink("ds_coreg_xfm", out_dir, suffix="xfm", mode="image", desc="coreg",
                  to="T1w", **{"from": "boldref"}), coreg, "xfm_file", None),
        (datasink("ds_coreg_rpt", out_dir, desc="coreg", suffix="bold", datatype="figures"),
         coreg_rpt, "out_report", None),
        (datasink("ds_motion_rpt", out_dir, desc="motion", suffix="bold", datatype="figures"),
         motion_rpt, "out_report", None),
        (datasink("ds_carpet_rpt", out_dir, desc="carpetplot", suffix="bold",
                  datatype="figures"), carpet_rpt, "out_report", None),
    ]
    for sink, source, field, meta in sinks:
        if meta:
            sink.inputs.meta_dict = meta
        workflow.connect([(inputnode, sink, [("bold_file", "source_file")]),
                          (source, sink, [(field, "in_file")])])


def init_fmriprep_bold_wf(*, bold_run, config: Config, name: str | None = None):
    """Take one run's preprocessing from fMRIPrep's derivatives instead of computing it.

    The series, brain mask and confounds are fMRIPrep's (found with pybids, see
    :func:`bidsapp.preproc.fmriprep.find_fmriprep_run`); the grey-matter mask is the
    template's, on fMRIPrep's grid, within fMRIPrep's brain mask.  Nothing is written to
    the output folder for this run.

    Parameters
    ----------
    bold_run : bidsapp.bids.collect.BoldRun
        The raw run.
    config : Config
        ``derivatives['fmriprep']`` is the fMRIPrep folder; ``output_space`` the space.
    name : str, optional
        Workflow name.

    Returns
    -------
    Workflow
        Same ``inputnode`` fields as :func:`init_bold_wf` (unused except ``bold_file``)
        and the same ``outputnode`` fields; ``hmc_xforms`` and ``coreg_xfm`` are empty
        and ``reportlets`` holds only the carpet plot.

    Raises
    ------
    MissingInputError
        At build time, if fMRIPrep's files for the run or the template are missing.
    """
    layout = open_fmriprep_layout(config.derivatives["fmriprep"])
    found = find_fmriprep_run(layout, bold_run, config.output_space)
    template = get_template(config.output_space)
    tr = float(found.metadata.get("RepetitionTime", bold_run.repetition_time))
    start_time = found.start_time
    workflow = Workflow(name=name or _run_name(bold_run))
    workflow.__desc__ = f"""\
Preprocessed BOLD series in {config.output_space} space, brain masks and confounds were
taken from fMRIPrep's derivatives; the grey-matter mask was the template's grey-matter
probability map on fMRIPrep's grid, thresholded at 0.5, within fMRIPrep's brain mask.
"""
    inputnode = pe.Node(niu.IdentityInterface(fields=list(BOLD_INPUTS)), name="inputnode")
    inputnode.inputs.bold_file = str(bold_run.path)
    outputnode = pe.Node(niu.IdentityInterface(fields=list(BOLD_OUTPUTS)), name="outputnode")
    corrected = bool(found.metadata.get("SliceTimingCorrected", False))
    outputnode.inputs.trait_set(
        bold_std=str(found.bold), bold_mask_std=str(found.mask),
        confounds=str(found.confounds), boldref="", hmc_xforms="", coreg_xfm="",
        repetition_time=tr, start_time=start_time,
        slice_timing_corrected=corrected,
        warnings=[] if corrected else ["fMRIPrep did not correct slice timing for this run"])
    gm = pe.Node(GMMaskLike(gm_probseg=str(template.gm_probseg), reference=str(found.mask),
                            brain_mask=str(found.mask)), name="gm_mask", mem_gb=1.0)
    carpet = pe.Node(CarpetPlot(repetition_time=tr, in_file=str(found.bold),
                                confounds_file=str(found.confounds)), name="carpet_rpt")
    workflow.connect([
        (gm, outputnode, [("gm_mask", "gm_mask")]),
        (gm, carpet, [("dseg", "dseg")]),
        (carpet, outputnode, [(("out_report", _listify), "reportlets")]),
    ])
    return workflow


def _listify(value):
    return [value]

