"""Anatomical preprocessing: T1w bias correction, normalization to the template, masks."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from bidsapp.bids.derivatives import resolution_text
from bidsapp.config import Config
from bidsapp.interfaces.bids import datasink
from bidsapp.interfaces.preproc import SpatialNormalization, TemplateMasks
from bidsapp.interfaces.reports import registration_overlay
from bidsapp.preproc.resample import resolution_label
from bidsapp.templates import get_template

ANAT_OUTPUTS = ("t1w_preproc", "t1w_mask", "t1w2std_xfm", "std2t1w_xfm", "std_t1w", "ref_file",
                "brain_mask_std", "gm_mask", "resample_mask", "dseg", "reportlets")


def init_anat_wf(*, config: Config, normalization_quality: str = "default",
                 name: str = "anat_wf"):
    """Build the anatomical workflow: T1w to template, brain mask, template-space masks.

    The T1w is corrected for intensity non-uniformity (N4), registered to the template
    with ANTs SyN (``antsRegistrationSyNQuick[s]``, mutual information), and the template's
    brain mask is warped back to give the T1w brain mask.  N4 and the registration are
    one job (``normalize``), so that it starts with the first BOLD steps.  The
    grey-matter mask is the template's GM probability on the output grid, thresholded
    at 0.5.

    Parameters
    ----------
    config : Config
        Uses ``output_space`` (template, from TemplateFlow's cache), ``output_res``,
        ``output_dir``, ``omp_nthreads`` and ``random_seed``.
    normalization_quality : {'default', 'fast'}, optional
        ``default`` registers at 1 mm; ``fast`` at 2 mm (tests and demos).
    name : str, optional
        Workflow name.

    Inputs
    ------
    t1w
        The T1w image (BIDS raw); also names the derivatives.

    Outputs
    -------
    t1w_preproc
        Bias-corrected T1w.
    t1w_mask
        T1w brain mask (the template's, warped back).
    t1w2std_xfm, std2t1w_xfm
        ``from-T1w_to-<tpl>`` and ``from-<tpl>_to-T1w`` (``mode-image``, ANTs ``.h5``).
    std_t1w
        T1w resampled into the 1 mm template (report, QC).
    ref_file
        The template on the output grid (``output_res`` mm).
    brain_mask_std, gm_mask
        Template brain and grey-matter masks on the output grid.
    resample_mask
        The brain mask dilated by 1 voxel: where BOLD data are resampled.
    dseg
        1 grey matter, 3 other brain, on the output grid (carpet plots).
    reportlets
        SVG files for the participant report (the normalization overlay).

    Raises
    ------
    MissingInputError
        Before anything runs, if the template is not in TemplateFlow's cache (exit 66).
    """
    template = get_template(config.output_space)
    space, res = config.output_space, float(config.output_res)
    threads = config.threads
    workflow = Workflow(name=name)
    workflow.__desc__ = f"""\
The T1-weighted (T1w) image was corrected for intensity non-uniformity with
`N4BiasFieldCorrection` and registered to the *{space}* template (accessed with
*TemplateFlow*) with nonlinear symmetric normalization (SyN; `antsRegistrationSyNQuick`,
rigid, affine and SyN stages with mutual information, registered at
{1 if normalization_quality == 'default' else 2} mm or the T1w's resolution if coarser),
using ANTs through *antspyx*.
A T1w brain mask was obtained by warping the template's brain mask back to the T1w.
The grey-matter mask was the template's grey-matter probability map at {res:g} mm,
thresholded at 0.5.
"""
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=list(ANAT_OUTPUTS)), name="outputnode")

    # N4 runs inside the normalization job: with nothing in front of it, the longest
    # anatomical step starts at once, beside the BOLD runs' head motion and slice timing,
    # instead of after all of them (nipype's MultiProc starts jobs in topological order).
    normalize = pe.Node(
        SpatialNormalization(template_file=str(template.t1w),
                             template_mask=str(template.brain_mask), bias_correct=True,
                             quality=normalization_quality, n_threads=threads,
                             seed=config.random_seed),
        name="normalize", n_procs=threads, mem_gb=3.0)
    masks = pe.Node(TemplateMasks(template_file=str(template.t1w),
                                  brain_mask=str(template.brain_mask),
                                  gm_probseg=str(template.gm_probseg), resolution=res),
                    name="template_masks", mem_gb=1.0)
    if template.wm_probseg is not None:
        masks.inputs.wm_probseg = str(template.wm_probseg)
    norm_rpt = registration_overlay(after=str(template.t1w), after_label=space,
                                    before_label="T1w", contour=str(template.brain_mask),
                                    name="norm_rpt")
    reportlets = pe.Node(niu.Merge(1), name="reportlets", run_without_submitting=True)

    out_dir = config.output_dir
    label = resolution_label(res)
    ds_t1w = datasink("ds_t1w_preproc", out_dir, desc="preproc", suffix="T1w",
                      compress=True)
    ds_mask = datasink("ds_t1w_mask", out_dir, desc="brain", suffix="mask", compress=True)
    ds_fwd = datasink("ds_t1w2std_xfm", out_dir, suffix="xfm", mode="image",
                      to=space, **{"from": "T1w"})
    ds_inv = datasink("ds_std2t1w_xfm", out_dir, suffix="xfm", mode="image",
                      to="T1w", **{"from": space})
    ds_gm = datasink("ds_gm_mask", out_dir, space=space, resolution=label, label="GM",
                     suffix="mask", compress=True, resolution_text=resolution_text(space, res))
    # As fMRIPrep: the T1w and its brain mask in the template, on the template's own grid.
    ds_std_t1w = datasink("ds_std_t1w", out_dir, space=space, desc="preproc", suffix="T1w",
                          compress=True)
    ds_std_mask = datasink("ds_std_t1w_mask", out_dir, space=space, desc="brain",
                           suffix="mask", compress=True)
    # BIDS requires SkullStripped for a preprocessed T1w; fMRIPrep writes it too.
    for sink in (ds_t1w, ds_std_t1w):
        sink.inputs.meta_dict = {"SkullStripped": False}
    ds_norm_rpt = datasink("ds_norm_rpt", out_dir, space=space, suffix="T1w",
                           datatype="figures")

    workflow.connect([
        (inputnode, normalize, [("t1w", "t1w_file")]),
        (normalize, norm_rpt, [("std_t1w", "before")]),
        (norm_rpt, reportlets, [("out_report", "in1")]),
        (normalize, outputnode, [("t1w_preproc", "t1w_preproc"),
                                 ("t1w_mask", "t1w_mask"), ("forward_xfm", "t1w2std_xfm"),
                                 ("inverse_xfm", "std2t1w_xfm"), ("std_t1w", "std_t1w")]),
        (masks, outputnode, [("ref_file", "ref_file"), ("brain_mask", "brain_mask_std"),
                             ("gm_mask", "gm_mask"), ("resample_mask", "resample_mask"),
                             ("dseg", "dseg")]),
        (reportlets, outputnode, [("out", "reportlets")]),
    ])
    for sink, source, field in ((ds_t1w, normalize, "t1w_preproc"),
                                (ds_mask, normalize, "t1w_mask"),
                                (ds_fwd, normalize, "forward_xfm"),
                                (ds_inv, normalize, "inverse_xfm"),
                                (ds_std_t1w, normalize, "std_t1w"),
                                (ds_std_mask, normalize, "std_mask"),
                                (ds_gm, masks, "gm_mask"), (ds_norm_rpt, norm_rpt, "out_report")):
        workflow.connect([(inputnode, sink, [("t1w", "source_file")]),
                          (source, sink, [(field, "in_file")])])
    return workflow
