"""Reportlets of preprocessing: SVG figures the participant report embeds.

The registration overlays are niworkflows' ``SimpleBeforeAfterRPT`` (re-exported here);
the motion plot and the carpet plot draw with niworkflows' plotting functions.  None of
them needs an external command-line tool: the SVGs are compressed only when ``svgo`` and
``cwebp`` happen to be installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

# Nodes draw in worker processes without a display: the backend goes before pyplot.
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import gridspec  # noqa: E402
from nipype.interfaces.base import (  # noqa: E402
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)
from nipype.pipeline import engine as pe  # noqa: E402
from niworkflows.interfaces.reportlets.registration import SimpleBeforeAfterRPT  # noqa: E402
from niworkflows.viz.plots import plot_carpet  # noqa: E402

from bidsapp.preproc.carpet import carpet_timeseries, drop_flat_rows  # noqa: E402
from bidsapp.preproc.resample import axis_aligned_box, resample_to_grid  # noqa: E402
from bidsapp.reports.figures import (  # noqa: E402
    FD_THRESHOLD_MM,
    draw_framewise_displacement,
    plot_candidate_rdms,
    plot_motion,
)

__all__ = ["CandidateRDMPlot", "CarpetPlot", "MotionPlot", "RegistrationOverlay",
           "SimpleBeforeAfterRPT", "registration_overlay"]

#: Coarsest voxel size (mm) at which a registration overlay is drawn: a figure's cut is
#: a few hundred pixels wide, so finer T1w voxels only cost time.
OVERLAY_VOXEL_MM = 1.0


class RegistrationOverlay(SimpleBeforeAfterRPT):
    """niworkflows' before/after overlay, drawn from images put on one RAS grid first.

    nilearn resamples an oblique image (most T1w images are acquired tilted) with cubic
    splines for every view and every overlay, twelve times per figure: 656 s of node time
    for one coregistration figure of a study run.  Here the images are resampled once,
    trilinearly (the contour's mask by nearest neighbour), onto a RAS grid of at most
    :data:`OVERLAY_VOXEL_MM` mm cut to the contour's (or the fixed image's) extent.
    """

    def _post_run_hook(self, runtime):
        cwd = Path(runtime.cwd)
        after = nb.load(self.inputs.after)
        contour = nb.load(self.inputs.wm_seg) if isdefined(self.inputs.wm_seg) else None
        voxel = max(OVERLAY_VOXEL_MM, float(min(after.header.get_zooms()[:3])))
        affine, shape = axis_aligned_box(contour if contour is not None else after,
                                         voxel_size=voxel)
        self._fixed_image_label = self.inputs.after_label
        self._moving_image_label = self.inputs.before_label
        self._dismiss_affine = self.inputs.dismiss_affine
        self._fixed_image = str(cwd / "overlay_after.nii")
        resample_to_grid(after, affine, shape).to_filename(self._fixed_image)
        self._moving_image = str(cwd / "overlay_before.nii")
        resample_to_grid(nb.load(self.inputs.before), affine, shape).to_filename(
            self._moving_image)
        self._contour = None
        if contour is not None:
            self._contour = str(cwd / "overlay_contour.nii")
            resample_to_grid(contour, affine, shape, order=0).to_filename(self._contour)
        # SimpleBeforeAfterRPT's own hook would set the original files again.
        return super(SimpleBeforeAfterRPT, self)._post_run_hook(runtime)


def registration_overlay(*, after: str | None = None, after_label: str = "reference",
                         before_label: str = "moving", contour: str | None = None,
                         name: str = "overlay"):
    """Return a node drawing the flicker overlay of a registration (before/after).

    Parameters
    ----------
    after : str, optional
        The fixed image (template or T1w); may also be connected.
    after_label, before_label : str, optional
        Labels shown on the two frames.
    contour : str, optional
        A mask whose outline is drawn on both frames.
    name : str, optional
        Node name.

    Returns
    -------
    nipype.pipeline.engine.Node
        Connect ``before`` (the moving image resampled into the fixed space); its
        ``out_report`` is the SVG.
    """
    node = pe.Node(RegistrationOverlay(after_label=after_label, before_label=before_label),
                   name=name, mem_gb=1.0)
    node.interface.generate_report = True
    if after is not None:
        node.inputs.after = after
    if contour is not None:
        node.inputs.wm_seg = contour
    return node


def _save_svg(figure, path: Path) -> str:
    """Write a reportlet figure as SVG, free its memory and return the path."""
    figure.savefig(path, bbox_inches="tight", format="svg")
    plt.close(figure)
    return str(path)


class _MotionPlotInputSpec(BaseInterfaceInputSpec):
    confounds_file = File(exists=True, mandatory=True, desc="desc-confounds_timeseries.tsv")
    repetition_time = traits.Float(mandatory=True, desc="TR in seconds")


class _PlotOutputSpec(TraitedSpec):
    out_report = File(exists=True, desc="the SVG figure")


class MotionPlot(SimpleInterface):
    """Translations, rotations and framewise displacement of one run, as SVG.

    Drawn by :func:`bidsapp.reports.figures.plot_motion`, the report's own motion figure,
    so that the two never differ.
    """

    input_spec = _MotionPlotInputSpec
    output_spec = _PlotOutputSpec

    def _run_interface(self, runtime):
        table = pd.read_csv(self.inputs.confounds_file, sep="\t", na_values="n/a")
        figure = plot_motion(table, self.inputs.repetition_time, FD_THRESHOLD_MM)
        self._results["out_report"] = _save_svg(figure, Path(runtime.cwd) / "motion.svg")
        return runtime


class _CarpetPlotInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="preprocessed BOLD in template space")
    dseg = File(exists=True, mandatory=True, desc="1 grey matter, 3 other brain")
    confounds_file = File(exists=True, mandatory=True, desc="desc-confounds_timeseries.tsv")
    repetition_time = traits.Float(mandatory=True, desc="TR in seconds")


class CarpetPlot(SimpleInterface):
    """The carpet plot (Power, 2017) of the preprocessed run, with FD above it, as SVG.

    The rows are read from the series one volume at a time (the subsample of voxels the
    plot shows), so memory stays at a few MB whatever the size of the series.
    """

    input_spec = _CarpetPlotInputSpec
    output_spec = _PlotOutputSpec

    def _run_interface(self, runtime):
        table = pd.read_csv(self.inputs.confounds_file, sep="\t", na_values="n/a")
        tr = self.inputs.repetition_time
        # Only the voxels the plot draws are read (see bidsapp.preproc.carpet); those
        # outside the field of view have no signal and would draw as flat grey bands.
        data, segments = drop_flat_rows(*carpet_timeseries(
            self.inputs.in_file, self.inputs.dseg, {1: "grey matter", 3: "other brain"}))
        figure = plt.figure(figsize=(12, 7))
        grid = gridspec.GridSpec(2, 1, hspace=0.15, height_ratios=[1, 4])
        draw_framewise_displacement(figure.add_subplot(grid[0]),
                                    table["framewise_displacement"].to_numpy(dtype=float),
                                    tr, FD_THRESHOLD_MM)
        if data.shape[0]:
            plot_carpet(data, segments=segments, subplot=grid[1], tr=tr)
        self._results["out_report"] = _save_svg(figure, Path(runtime.cwd) / "carpetplot.svg")
        return runtime


class _CandidateRDMPlotInputSpec(BaseInterfaceInputSpec):
    candidate_rdms = File(exists=True, mandatory=True, desc="L x T x T float32 (.npy)")
    candidate_info = File(exists=True, mandatory=True, desc="JSON from CandidateRDMs")


class CandidateRDMPlot(SimpleInterface):
    """The candidate RDM of every layer side by side (the study's Fig. 5), as SVG."""

    input_spec = _CandidateRDMPlotInputSpec
    output_spec = _PlotOutputSpec

    def _run_interface(self, runtime):
        info = json.loads(Path(self.inputs.candidate_info).read_text())
        figure = plot_candidate_rdms(np.load(self.inputs.candidate_rdms), info["Layers"])
        self._results["out_report"] = _save_svg(figure, Path(runtime.cwd) / "candidate_rdms.svg")
        return runtime
