"""nipype interfaces over :mod:`bidsapp.preproc`: files in, one library call, files out.

Each interface reads its inputs, calls one function of the preprocessing library and
writes what it returns into the node's working directory.  Intermediate series are
written uncompressed (``.nii``) so the next step can read them one volume at a time.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nb
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from bidsapp.errors import BadDataError
from bidsapp.preproc._ants import read_itk_affines, write_itk_affines
from bidsapp.preproc.masks import (
    brain_mask_on_grid,
    carpet_dseg,
    coverage_mask,
    gm_mask_from_probseg,
    gm_mask_like,
    mask_like,
)
from bidsapp.preproc.motion import estimate_head_motion, write_confounds
from bidsapp.preproc.registration import (
    apply_transform,
    coregister_bold_to_t1w,
    n4_bias_correct,
    normalize_t1w,
    warp_template_to_t1w,
)
from bidsapp.preproc.resample import (
    resample_bold_to_template,
    template_grid,
    template_to_t1w_points,
)
from bidsapp.preproc.slice_timing import plan_slice_timing, slice_time_correct_img

_THREADS = traits.Int(1, usedefault=True, desc="ITK threads for antspyx")
_SEED = traits.Int(0, usedefault=True, desc="random seed of the metric sampling")


def _load(path: str):
    return nb.load(path)


def _load_in_memory(path: str):
    """Load a (possibly gzipped) series once: reading a .nii.gz volume by volume is O(n^2).

    Raises
    ------
    BadDataError
        If the series holds NaN or infinite values, which no registration can use.
    """
    img = nb.load(path)
    data = np.asanyarray(img.dataobj)
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise BadDataError("The BOLD series holds NaN or infinite values", path=path,
                           fix="re-export the run from the scanner data, or replace the "
                               "non-finite values (e.g. with 0) before running bidsapp")
    return nb.Nifti1Image(data, img.affine, img.header)


class _SliceTimingInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="4D BOLD series")
    metadata = traits.Dict(mandatory=True, desc="BOLD sidecar (SliceTiming, ...)")
    repetition_time = traits.Float(mandatory=True, desc="TR in seconds")
    slice_time_ref = traits.Range(0.0, 1.0, 0.5, usedefault=True,
                                  desc="reference as a fraction of the slice time range")


class _SliceTimingOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="corrected (or unchanged) float32 series, .nii")
    slice_timing_corrected = traits.Bool(desc="whether the correction was applied")
    start_time = traits.Float(desc="StartTime of the output (0 when not corrected)")
    warning = traits.Str(desc="why the correction was skipped ('' when applied)")
    sidecar = traits.Dict(desc="SliceTimingCorrected and StartTime for the sidecar")


class SliceTimingCorrection(SimpleInterface):
    """Shift every slice to one reference time (:func:`bidsapp.preproc.slice_time_correct`)."""

    input_spec = _SliceTimingInputSpec
    output_spec = _SliceTimingOutputSpec

    def _run_interface(self, runtime):
        img = _load_in_memory(self.inputs.in_file)
        # The input checks warned already; the reason travels in ``warning``.
        plan = plan_slice_timing(self.inputs.metadata, img.shape, self.inputs.repetition_time,
                                 self.inputs.slice_time_ref, log=False)
        out = Path(runtime.cwd) / "bold_stc.nii"
        slice_time_correct_img(img, plan, self.inputs.repetition_time).to_filename(out)
        self._results.update(out_file=str(out), slice_timing_corrected=plan.corrected,
                             start_time=float(plan.start_time or 0.0),
                             warning=plan.warning or "", sidecar=plan.sidecar())
        return runtime


class _HeadMotionInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="4D BOLD series (before STC)")
    n_threads = traits.Int(1, usedefault=True,
                           desc="ITK threads; only 1 gives bit-identical reruns")
    seed = _SEED


class _HeadMotionOutputSpec(TraitedSpec):
    reference_file = File(exists=True, desc="the reference (mean) volume, boldref")
    xforms_file = File(exists=True, desc="ITK text file, one rigid transform per volume")
    confounds_file = File(exists=True, desc="TSV: trans_x ... rot_z, framewise_displacement")


class HeadMotionEstimation(SimpleInterface):
    """Rigid head motion to the mean volume (:func:`bidsapp.preproc.estimate_head_motion`)."""

    input_spec = _HeadMotionInputSpec
    output_spec = _HeadMotionOutputSpec

    def _run_interface(self, runtime):

        img = _load_in_memory(self.inputs.in_file)
        motion = estimate_head_motion(img, n_threads=self.inputs.n_threads,
                                      seed=self.inputs.seed, label=_run_label(runtime))
        cwd = Path(runtime.cwd)
        motion.reference.to_filename(cwd / "boldref.nii.gz")
        write_itk_affines(cwd / "hmc_xfm.txt", motion.matrices)
        write_confounds(cwd / "confounds.tsv", motion)
        self._results.update(reference_file=str(cwd / "boldref.nii.gz"),
                             xforms_file=str(cwd / "hmc_xfm.txt"),
                             confounds_file=str(cwd / "confounds.tsv"))
        return runtime


class _NormalizationInputSpec(BaseInterfaceInputSpec):
    t1w_file = File(exists=True, mandatory=True,
                    desc="T1w: bias-corrected, or raw with bias_correct")
    bias_correct = traits.Bool(False, usedefault=True,
                               desc="run N4 on t1w_file first (see SpatialNormalization)")
    template_file = File(exists=True, mandatory=True, desc="template T1w, 1 mm")
    template_mask = File(exists=True, mandatory=True, desc="template brain mask, 1 mm")
    quality = traits.Enum("default", "fast", usedefault=True,
                          desc="register at 1 mm (default) or 2 mm (fast)")
    n_threads = _THREADS
    seed = _SEED


class _NormalizationOutputSpec(TraitedSpec):
    t1w_preproc = File(exists=True, desc="the T1w registered: bias-corrected with "
                                         "bias_correct, else t1w_file itself")
    forward_xfm = File(exists=True, desc="from-T1w_to-<tpl>_mode-image_xfm.h5")
    inverse_xfm = File(exists=True, desc="from-<tpl>_to-T1w_mode-image_xfm.h5")
    t1w_mask = File(exists=True, desc="T1w brain mask: the template's, warped back")
    std_t1w = File(exists=True, desc="the T1w resampled into the 1 mm template")
    std_mask = File(exists=True, desc="the brain mask on the grid of std_t1w")


class SpatialNormalization(SimpleInterface):
    """T1w to template with ANTs SyN, and the template's brain mask warped back.

    With ``bias_correct``, N4 (:func:`.registration.n4_bias_correct`) runs first, in the
    same job.  A workflow whose first anatomical step is this node has the long
    registration ready to start with the BOLD runs' first steps: nipype's MultiProc starts
    jobs in topological order, so an N4 node in front of it would hold the registration
    back until every head-motion and slice-timing job had been started.
    """

    input_spec = _NormalizationInputSpec
    output_spec = _NormalizationOutputSpec

    def _run_interface(self, runtime):
        t1w, template = _load(self.inputs.t1w_file), _load(self.inputs.template_file)
        template_mask = _load(self.inputs.template_mask)
        cwd = Path(runtime.cwd)
        t1w_preproc = self.inputs.t1w_file
        if self.inputs.bias_correct:
            t1w = n4_bias_correct(t1w, n_threads=self.inputs.n_threads)
            t1w_preproc = str(cwd / "t1w_preproc.nii.gz")
            t1w.to_filename(t1w_preproc)
            # Registered as it was written (float32), exactly what a separate N4 step
            # would have handed over.
            t1w = _load(t1w_preproc)
        norm = normalize_t1w(t1w, template, template_mask=template_mask, out_dir=cwd,
                             quality=self.inputs.quality, n_threads=self.inputs.n_threads,
                             seed=self.inputs.seed)
        mask = warp_template_to_t1w(template_mask, t1w, norm, n_threads=self.inputs.n_threads)
        mask.set_data_dtype(np.uint8)
        mask.to_filename(cwd / "t1w_brain_mask.nii.gz")
        apply_transform(t1w, template, norm.forward, n_threads=self.inputs.n_threads
                        ).to_filename(cwd / "t1w_space-template.nii.gz")
        # The T1w mask is the template's warped back; in template space it is the template's.
        mask_like(template_mask, template).to_filename(cwd / "t1w_space-template_mask.nii.gz")
        self._results.update(std_mask=str(cwd / "t1w_space-template_mask.nii.gz"),
                             t1w_preproc=str(t1w_preproc),
                             forward_xfm=str(norm.forward), inverse_xfm=str(norm.inverse),
                             t1w_mask=str(cwd / "t1w_brain_mask.nii.gz"),
                             std_t1w=str(cwd / "t1w_space-template.nii.gz"))
        return runtime


class _CoregistrationInputSpec(BaseInterfaceInputSpec):
    reference_file = File(exists=True, mandatory=True, desc="BOLD reference volume")
    t1w_file = File(exists=True, mandatory=True, desc="bias-corrected T1w")
    t1w_mask = File(exists=True, desc="T1w brain mask")
    n_threads = _THREADS
    seed = _SEED


class _CoregistrationOutputSpec(TraitedSpec):
    xfm_file = File(exists=True, desc="from-boldref_to-T1w_mode-image_xfm.txt (ITK)")
    reference_t1w = File(exists=True, desc="the BOLD reference resampled onto the T1w")


class BoldToT1wRegistration(SimpleInterface):
    """Rigid, mutual-information coregistration (:func:`.coregister_bold_to_t1w`)."""

    input_spec = _CoregistrationInputSpec
    output_spec = _CoregistrationOutputSpec

    def _run_interface(self, runtime):
        reference, t1w = _load(self.inputs.reference_file), _load(self.inputs.t1w_file)
        mask = _load(self.inputs.t1w_mask) if isdefined(self.inputs.t1w_mask) else None
        matrix = coregister_bold_to_t1w(reference, t1w, t1w_mask=mask,
                                        n_threads=self.inputs.n_threads, seed=self.inputs.seed)
        cwd = Path(runtime.cwd)
        xfm = write_itk_affines(cwd / "coreg_xfm.txt", matrix)
        apply_transform(reference, t1w, xfm, n_threads=self.inputs.n_threads
                        ).to_filename(cwd / "boldref_space-T1w.nii.gz")
        self._results.update(xfm_file=str(xfm),
                             reference_t1w=str(cwd / "boldref_space-T1w.nii.gz"))
        return runtime


class _TemplateMasksInputSpec(BaseInterfaceInputSpec):
    template_file = File(exists=True, mandatory=True, desc="template T1w, 1 mm")
    brain_mask = File(exists=True, mandatory=True, desc="template brain mask, 1 mm")
    gm_probseg = File(exists=True, mandatory=True, desc="template GM probability, 1 mm")
    wm_probseg = File(exists=True, desc="template WM probability, 1 mm (carpet plot)")
    resolution = traits.Float(mandatory=True, desc="output voxel size (mm)")
    gm_threshold = traits.Range(0.0, 1.0, 0.5, usedefault=True)


class _TemplateMasksOutputSpec(TraitedSpec):
    ref_file = File(exists=True, desc="template T1w on the output grid")
    brain_mask = File(exists=True, desc="template brain mask on the output grid")
    gm_mask = File(exists=True, desc="template GM mask on the output grid")
    resample_mask = File(exists=True, desc="brain mask dilated by 1 voxel")
    dseg = File(exists=True, desc="1 GM, 3 WM+CSF, for the carpet plot")


class TemplateMasks(SimpleInterface):
    """The output grid and its masks (:mod:`bidsapp.preproc.masks`)."""

    input_spec = _TemplateMasksInputSpec
    output_spec = _TemplateMasksOutputSpec

    def _run_interface(self, runtime):
        res = self.inputs.resolution
        cwd = Path(runtime.cwd)
        brain = _load(self.inputs.brain_mask)
        outputs = {
            "ref_file": template_grid(_load(self.inputs.template_file), res),
            "brain_mask": brain_mask_on_grid(brain, res),
            "gm_mask": gm_mask_from_probseg(_load(self.inputs.gm_probseg), res,
                                            self.inputs.gm_threshold, brain_mask=brain),
            "resample_mask": brain_mask_on_grid(brain, res, dilate_voxels=1),
        }
        outputs["dseg"] = carpet_dseg(outputs["brain_mask"], outputs["gm_mask"])
        for key, img in outputs.items():
            img.to_filename(cwd / f"{key}.nii.gz")
            self._results[key] = str(cwd / f"{key}.nii.gz")
        return runtime


class _ResampleInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="slice-timing corrected native series")
    hmc_xforms = File(exists=True, mandatory=True, desc="head-motion transforms (ITK text)")
    coreg_xfm = File(exists=True, mandatory=True, desc="from-boldref_to-T1w (ITK text)")
    t1w_file = File(exists=True, mandatory=True, desc="T1w (its grid)")
    t1w2std_xfm = File(exists=True, mandatory=True, desc="from-T1w_to-<tpl> (.h5)")
    ref_file = File(exists=True, mandatory=True, desc="output grid")
    resample_mask = File(exists=True, mandatory=True, desc="grid voxels to compute")
    brain_mask = File(exists=True, mandatory=True, desc="template brain mask on the grid")
    gm_mask = File(exists=True, mandatory=True, desc="template GM mask on the grid")
    repetition_time = traits.Float(mandatory=True)
    order = traits.Enum(3, 1, usedefault=True, desc="spline order of the interpolation")
    n_threads = _THREADS


class _ResampleOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="preprocessed BOLD in template space")
    bold_mask = File(exists=True, desc="template brain mask within the run's field of view")
    gm_mask = File(exists=True, desc="template GM mask within the run's field of view")


class ResampleBoldToTemplate(SimpleInterface):
    """One interpolation from native to template (:func:`.resample_bold_to_template`)."""

    input_spec = _ResampleInputSpec
    output_spec = _ResampleOutputSpec

    def _run_interface(self, runtime):
        cwd = Path(runtime.cwd)
        grid = _load(self.inputs.ref_file)
        points = template_to_t1w_points(grid, _load(self.inputs.t1w_file),
                                        self.inputs.t1w2std_xfm,
                                        n_threads=self.inputs.n_threads)
        mask = np.asarray(_load(self.inputs.resample_mask).dataobj) > 0
        out, coverage = resample_bold_to_template(
            _load(self.inputs.in_file), read_itk_affines(self.inputs.hmc_xforms),
            read_itk_affines(self.inputs.coreg_xfm)[0], points, grid,
            cwd / "bold_space-template.nii.gz", tr=self.inputs.repetition_time, mask=mask,
            order=self.inputs.order, label=_run_label(runtime))
        for key in ("brain_mask", "gm_mask"):
            name = "bold_mask" if key == "brain_mask" else key
            coverage_mask(_load(getattr(self.inputs, key)), coverage).to_filename(
                cwd / f"{name}.nii.gz")
            self._results[name] = str(cwd / f"{name}.nii.gz")
        self._results["out_file"] = str(out)
        return runtime



class _GMMaskLikeInputSpec(BaseInterfaceInputSpec):
    gm_probseg = File(exists=True, mandatory=True, desc="template GM probability, 1 mm")
    reference = File(exists=True, mandatory=True, desc="a template-space image (its grid)")
    brain_mask = File(exists=True, desc="brain mask on the reference grid")
    gm_threshold = traits.Range(0.0, 1.0, 0.5, usedefault=True)


class _GMMaskLikeOutputSpec(TraitedSpec):
    gm_mask = File(exists=True, desc="template GM mask on the reference grid")
    dseg = File(desc="1 GM, 3 other brain, for the carpet plot (with brain_mask)")


class GMMaskLike(SimpleInterface):
    """The template GM mask on another grid, e.g. fMRIPrep's (:func:`.masks.gm_mask_like`)."""

    input_spec = _GMMaskLikeInputSpec
    output_spec = _GMMaskLikeOutputSpec

    def _run_interface(self, runtime):
        brain = _load(self.inputs.brain_mask) if isdefined(self.inputs.brain_mask) else None
        out = Path(runtime.cwd) / "gm_mask.nii.gz"
        gm = gm_mask_like(_load(self.inputs.gm_probseg), _load(self.inputs.reference),
                          self.inputs.gm_threshold, brain_mask=brain)
        gm.to_filename(out)
        self._results["gm_mask"] = str(out)
        if brain is not None:
            carpet_dseg(brain, gm).to_filename(Path(runtime.cwd) / "dseg.nii.gz")
            self._results["dseg"] = str(Path(runtime.cwd) / "dseg.nii.gz")
        return runtime


def _run_label(runtime) -> str:
    """Name the run a node works on for progress lines, from its work folder.

    The folders are ``.../sub_01_wf/bold_task_music_run_1_wf/<node>``; the node's input
    files are intermediates whose names do not say which run they belong to.
    """
    run_wf = Path(runtime.cwd).parent
    return (f"{run_wf.parent.name.removesuffix('_wf')} "
            f"{run_wf.name.removeprefix('bold_').removesuffix('_wf')}")
