"""Figures of the reports, drawn with nilearn and matplotlib (Agg backend, no display).

Brain figures go through :mod:`nilearn.plotting`; the rest are plain matplotlib.  Every
function returns a :class:`matplotlib.figure.Figure` that the caller embeds and closes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib
from nilearn import datasets, plotting
from nilearn.image import resample_img
from nilearn.surface import SurfaceImage

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap, Normalize, to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from scipy import stats  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

HEMISPHERES = ("left", "right")


def layer_colormap(n_layers: int) -> ListedColormap:
    """Return one color per layer, green (shallow) to red (deep) as in the study's Fig. 8.

    Parameters
    ----------
    n_layers : int
        Number of layers L; color k - 1 is layer k.

    Returns
    -------
    matplotlib.colors.ListedColormap
        L colors.
    """
    return ListedColormap(plt.get_cmap("RdYlGn_r")(np.linspace(0.0, 1.0, n_layers)),
                          name="layers")


def layer_colors(n_layers: int) -> list[str]:
    """Return the hex colors of :func:`layer_colormap`, for the dseg lookup table."""
    return [to_hex(c) for c in layer_colormap(n_layers).colors]


def plot_layer_distributions(r_by_layer: Sequence[np.ndarray],
                             layer_names: Sequence[str]) -> Figure:
    """Plot each layer's distribution of searchlight correlations with a Gaussian fit.

    The study's Fig. 6: histograms of the Spearman correlations between each candidate
    RDM and all searchlight target RDMs (uncorrected), with a fitted normal density.

    Parameters
    ----------
    r_by_layer : sequence of numpy.ndarray
        Per layer, the correlations (any shape; NaN ignored), e.g. all in-mask voxels of
        all participants.
    layer_names : sequence of str
        One name per layer, for the panel titles.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per layer, on a common x axis.
    """
    values = [np.asarray(r, dtype=np.float64).ravel() for r in r_by_layer]
    values = [v[np.isfinite(v)] for v in values]
    finite = np.concatenate(values) if values else np.array([])
    lo, hi = (np.percentile(finite, [0.1, 99.9]) if finite.size else (-1.0, 1.0))
    pad = 0.05 * max(hi - lo, 1e-3)
    bins = np.linspace(lo - pad, hi + pad, 50)
    n_cols = min(5, max(1, len(values)))
    n_rows = int(np.ceil(len(values) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols, 2.2 * n_rows),
                             sharex=True, squeeze=False)
    grid = np.linspace(bins[0], bins[-1], 200)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(values):
            ax.set_visible(False)
            continue
        v = values[k]
        ax.hist(v, bins=bins, density=True, color="0.6")
        if v.size > 1:
            mu, sigma = stats.norm.fit(v)
            ax.plot(grid, stats.norm.pdf(grid, mu, sigma), color="red", lw=1.5)
            ax.set_title(f"{k + 1}. {layer_names[k]}\nμ={mu:.3f} σ={sigma:.3f}", fontsize=8)
        else:
            ax.set_title(f"{k + 1}. {layer_names[k]}", fontsize=8)
        ax.axvline(0.0, color="k", lw=0.5)
        ax.tick_params(labelsize=7)
    fig.supxlabel("Spearman r (candidate RDM vs. searchlight RDM)", fontsize=9)
    fig.tight_layout()
    return fig


def hemisphere_of_voxels(img: nib.spatialimages.SpatialImage) -> np.ndarray:
    """Return -1 (left, x < 0), +1 (right, x > 0) or 0 (midline) per voxel of ``img``.

    The world x axis of a template space points right (RAS+), so the sign of x splits the
    hemispheres without an atlas.
    """
    shape = img.shape[:3]
    ijk = np.indices(shape).reshape(3, -1)
    x = nib.affines.apply_affine(img.affine, ijk.T)[:, 0]
    return np.sign(x).reshape(shape).astype(np.int8)


def plot_layer_histograms(dseg_img: nib.spatialimages.SpatialImage,
                          layer_names: Sequence[str]) -> Figure:
    """Plot how many significant voxels each layer was assigned, per hemisphere.

    The study's Fig. 7: distributions of the (FDR-corrected) layer assignments, left and
    right hemisphere side by side.

    Parameters
    ----------
    dseg_img : nibabel image
        Layer index per voxel, 1..L, 0 where not significant.
    layer_names : sequence of str
        One name per layer.

    Returns
    -------
    matplotlib.figure.Figure
        Two bar charts (left, right hemisphere).
    """
    layers = np.rint(np.asarray(dseg_img.dataobj)).astype(int)
    side = hemisphere_of_voxels(dseg_img)
    n_layers = len(layer_names)
    colors = layer_colors(n_layers)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    index = np.arange(1, n_layers + 1)
    for ax, hemi, sign in zip(axes, HEMISPHERES, (-1, 1), strict=True):
        picked = layers[(side == sign) & (layers > 0)]
        counts = np.bincount(picked, minlength=n_layers + 1)[1:n_layers + 1]
        ax.bar(index, counts, color=colors, edgecolor="k", lw=0.5)
        ax.set_title(f"{hemi} hemisphere ({counts.sum()} voxels)", fontsize=9)
        ax.set_xticks(index)
        ax.set_xticklabels([f"{i}\n{n}" for i, n in zip(index, layer_names, strict=True)],
                           fontsize=6)
    axes[0].set_ylabel("significant voxels")
    fig.tight_layout()
    return fig


def _fsaverage():
    # nilearn ships fsaverage5 inside the package: no download, works offline.
    mesh = datasets.load_fsaverage("fsaverage5")
    sulcal = datasets.load_fsaverage_data("fsaverage5", mesh_type="inflated",
                                          data_type="sulcal")
    return mesh, sulcal


_MNI_BOUNDS = np.array([[-100.0, 100.0], [-140.0, 100.0], [-80.0, 120.0]])
"""A box (mm) that holds the fsaverage surfaces in MNI space, with margin."""


def _cover_brain(img: nib.spatialimages.SpatialImage) -> nib.Nifti1Image:
    """Resample ``img`` (nearest) onto a grid covering the whole brain, zero outside.

    nilearn's ``nearest_most_frequent`` sampling fails on vertices that fall outside the
    image (e.g. a partial field of view); with zeros there they read as "no layer".
    """
    zooms = np.abs(np.asarray(img.header.get_zooms()[:3], dtype=float))
    shape = np.ceil((_MNI_BOUNDS[:, 1] - _MNI_BOUNDS[:, 0]) / zooms).astype(int) + 1
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = _MNI_BOUNDS[:, 0]
    return resample_img(img, target_affine=affine, target_shape=tuple(shape),
                        interpolation="nearest", fill_value=0, force_resample=True,
                        copy_header=True)


def plot_surface_maps(activation_img: nib.spatialimages.SpatialImage,
                      layer_img: nib.spatialimages.SpatialImage,
                      layer_names: Sequence[str],
                      views: Sequence[str] = ("lateral",)) -> Figure:
    """Plot the activation and layer maps on the inflated fsaverage5 surface.

    The study's Fig. 8: top row the activation map (mean maximum correlation), bottom row
    the layer map, left and right hemisphere.  Volumes are sampled at the pial surface
    (:meth:`nilearn.surface.SurfaceImage.from_volume`); the layer map with the most
    frequent nearest value, so that layers are not blended into non-existent ones.

    Parameters
    ----------
    activation_img, layer_img : nibabel image
        Volumes in MNI space: correlations (0 where not significant) and layer indices
        1..L (0 where not significant).
    layer_names : sequence of str
        One name per layer.
    views : sequence of str, optional
        nilearn views per hemisphere, e.g. ``("lateral", "medial")``.

    Returns
    -------
    matplotlib.figure.Figure
        A grid of 3D axes: rows activation/layer, columns hemisphere x view.
    """
    mesh, sulcal = _fsaverage()
    with warnings.catch_warnings():
        # Vertices outside the data sample only zeros after padding; no mean of nothing.
        warnings.filterwarnings("ignore", message="Mean of empty slice")
        activation = SurfaceImage.from_volume(mesh["pial"], _cover_brain(activation_img),
                                              interpolation="linear")
        layers = SurfaceImage.from_volume(mesh["pial"], _cover_brain(layer_img),
                                          interpolation="nearest_most_frequent")
    n_layers = len(layer_names)
    values = np.asarray(activation_img.dataobj, dtype=np.float64)
    vmax = float(np.nanmax(np.abs(values))) if np.any(values) else 1.0
    columns = [(h, v) for h in HEMISPHERES for v in views]
    fig = plt.figure(figsize=(3.2 * len(columns), 5.6))
    rows = (
        ("activation", activation, "hot", 1e-6, 0.0, vmax),
        ("layer", layers, layer_colormap(n_layers), 0.5, 0.5, n_layers + 0.5),
    )
    for row, (what, surf_img, cmap, threshold, vmin, vmax_row) in enumerate(rows):
        for col, (hemi, view) in enumerate(columns):
            ax = fig.add_subplot(2, len(columns), row * len(columns) + col + 1,
                                 projection="3d")
            with warnings.catch_warnings():
                # Data sampled on the pial mesh are shown on the inflated one on purpose.
                warnings.filterwarnings("ignore", message="Meshes are not identical")
                plotting.plot_surf_stat_map(
                    surf_mesh=mesh["inflated"], stat_map=surf_img, bg_map=sulcal, hemi=hemi,
                    view=view, cmap=cmap, threshold=threshold, vmin=vmin, vmax=vmax_row,
                    colorbar=col == len(columns) - 1, axes=ax, figure=fig,
                    title=f"{what}, {hemi} {view}",
                )
    return fig


def plot_glass_brains(activation_img: nib.spatialimages.SpatialImage,
                      layer_img: nib.spatialimages.SpatialImage,
                      n_layers: int) -> Figure:
    """Plot glass-brain projections of the activation and the layer map.

    Parameters
    ----------
    activation_img, layer_img : nibabel image
        As in :func:`plot_surface_maps`.
    n_layers : int
        Number of layers, for the color scale of the layer map.

    Returns
    -------
    matplotlib.figure.Figure
        Two rows of ``lyrz`` glass brains.
    """
    fig = plt.figure(figsize=(11, 5))
    values = np.asarray(activation_img.dataobj, dtype=np.float64)
    vmax = float(np.nanmax(values)) if np.any(values > 0) else 1.0
    plotting.plot_glass_brain(activation_img, display_mode="lyrz", colorbar=True,
                              cmap="hot", plot_abs=False, threshold=1e-6, vmin=0.0,
                              vmax=vmax, figure=fig, axes=(0.0, 0.5, 1.0, 0.5),
                              title="mean maximum r")
    # The maximum intensity projection of layer indices shows the deepest layer along
    # each ray, which is what a glass brain can honestly show of a label map.
    plotting.plot_glass_brain(layer_img, display_mode="lyrz", colorbar=True,
                              cmap=layer_colormap(n_layers), plot_abs=False, threshold=0.5,
                              vmin=0.5, vmax=n_layers + 0.5, figure=fig,
                              axes=(0.0, 0.0, 1.0, 0.5), title="layer (deepest along ray)")
    return fig


def plot_layer_maps(layer_imgs: Sequence[nib.spatialimages.SpatialImage],
                    layer_names: Sequence[str]) -> Figure:
    """Plot one axial glass brain per layer map of a participant.

    Parameters
    ----------
    layer_imgs : sequence of nibabel image
        The per-layer correlation maps.
    layer_names : sequence of str
        One name per layer.

    Returns
    -------
    matplotlib.figure.Figure
        A grid of ``z`` glass brains on a common symmetric color scale.
    """
    peaks = [np.nanmax(np.abs(np.asarray(img.dataobj, dtype=np.float64)), initial=0.0)
             for img in layer_imgs]
    vmax = float(max(peaks, default=0.0)) or 1.0
    n_cols = min(5, max(1, len(layer_imgs)))
    n_rows = int(np.ceil(len(layer_imgs) / n_cols))
    fig = plt.figure(figsize=(2.6 * n_cols, 2.8 * n_rows))
    for k, img in enumerate(layer_imgs):
        row, col = divmod(k, n_cols)
        rect = (col / n_cols, 1.0 - (row + 1) / n_rows, 1.0 / n_cols, 1.0 / n_rows)
        # NaN marks voxels outside the mask; 0 draws them the same and warns no one.
        img = nib.Nifti1Image(np.nan_to_num(np.asarray(img.dataobj, dtype=np.float32)),
                              img.affine)
        plotting.plot_glass_brain(img, display_mode="z", plot_abs=False, cmap="RdBu_r",
                                  vmin=-vmax, vmax=vmax, colorbar=False, figure=fig,
                                  axes=rect, title=f"{k + 1}. {layer_names[k]}")
    # One shared color bar, so that no panel shrinks to make room for its own.
    bar = fig.add_axes((0.3, -0.04, 0.4, 0.025))
    mappable = plt.cm.ScalarMappable(norm=Normalize(-vmax, vmax), cmap="RdBu_r")
    fig.colorbar(mappable, cax=bar, orientation="horizontal", label="Spearman r")
    return fig


def plot_candidate_rdms(candidate_rdms: np.ndarray, layer_names: Sequence[str]) -> Figure:
    """Plot the candidate RDMs, one panel per layer (the study's Fig. 5).

    Parameters
    ----------
    candidate_rdms : numpy.ndarray
        Shape (L, T, T): 1 - Spearman between TRs.
    layer_names : sequence of str
        One name per layer.

    Returns
    -------
    matplotlib.figure.Figure
        One image per layer, each on its own color scale as in the study, each with its
        color bar (the scales differ, so one shared bar would mislead).
    """
    rdms = np.asarray(candidate_rdms)
    n_cols = min(5, max(1, rdms.shape[0]))
    n_rows = int(np.ceil(rdms.shape[0] / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.8 * n_cols, 2.6 * n_rows),
                             squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k < rdms.shape[0]:
            image = ax.imshow(rdms[k], cmap="viridis", interpolation="nearest")
            ax.set_title(f"{k + 1}. {layer_names[k]}", fontsize=8)
            bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
            bar.ax.tick_params(labelsize=6)
            if k % n_cols == n_cols - 1 or k == rdms.shape[0] - 1:
                bar.set_label("1 - Spearman", fontsize=7)
    fig.tight_layout()
    return fig


FD_THRESHOLD_MM = 0.5
"""Framewise displacement marked in the plots (Power et al., 2012)."""


def draw_framewise_displacement(ax, fd: np.ndarray, tr: float | None = None,
                                threshold: float = FD_THRESHOLD_MM) -> None:
    """Draw framewise displacement on ``ax``: y ticks in mm, the threshold, mean and max.

    Shared by the motion plot and the carpet plot, so that both show FD alike and in a
    readable size.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The panel to draw on.
    fd : numpy.ndarray
        FD per volume (mm); NaN (the first volume) is not drawn.
    tr : float, optional
        Repetition time, for an x axis in seconds instead of volumes.
    threshold : float, optional
        FD marked with a dashed line and counted.
    """
    fd = np.asarray(fd, dtype=float)
    time = np.arange(fd.size) * (tr or 1.0)
    ax.plot(time, fd, lw=0.9, color="tab:red")
    ax.axhline(threshold, color="0.3", lw=0.8, ls="--")
    finite = fd[np.isfinite(fd)]
    top = max(threshold * 1.2, float(finite.max()) * 1.1 if finite.size else 0.0)
    ax.set_ylim(0.0, top)
    ax.set_ylabel("FD (mm)", fontsize=9)
    ax.tick_params(labelsize=8)
    if fd.size:
        ax.set_xlim(time[0], max(time[-1], tr or 1.0))
    summary = (f"mean {np.mean(finite):.2f} mm, max {np.max(finite):.2f} mm, "
               f"{int(np.sum(finite > threshold))} volumes > {threshold:g} mm"
               if finite.size else "no FD values")
    # Above the panel, where no curve can hide it.
    ax.set_title(f"FD: {summary}", loc="right", fontsize=9)


def plot_motion(confounds: pd.DataFrame, tr: float | None = None,
                fd_threshold: float = FD_THRESHOLD_MM) -> Figure:
    """Plot head motion: translations, rotations and framewise displacement.

    Parameters
    ----------
    confounds : pandas.DataFrame
        fMRIPrep-style columns ``trans_x/y/z`` (mm), ``rot_x/y/z`` (rad) and
        ``framewise_displacement`` (mm); missing columns are skipped.
    tr : float, optional
        Repetition time, to label the x axis in seconds instead of volumes.
    fd_threshold : float, optional
        FD marked in the bottom panel.

    Returns
    -------
    matplotlib.figure.Figure
        Three stacked panels.
    """
    fig, axes = plt.subplots(3, 1, figsize=(9, 5.5), sharex=True)
    time = np.arange(len(confounds)) * (tr or 1.0)
    panels = (
        ("translation (mm)", ["trans_x", "trans_y", "trans_z"], 1.0),
        ("rotation (deg)", ["rot_x", "rot_y", "rot_z"], 180.0 / np.pi),
    )
    for ax, (label, columns, scale) in zip(axes, panels, strict=False):
        for column in columns:
            if column in confounds:
                ax.plot(time, np.asarray(confounds[column], dtype=float) * scale,
                        lw=0.8, label=column)
        ax.set_ylabel(label, fontsize=9)
        ax.tick_params(labelsize=8)
        if ax.has_data():
            ax.legend(fontsize=8, loc="upper right", ncol=3)
    if "framewise_displacement" in confounds:
        draw_framewise_displacement(axes[2], confounds["framewise_displacement"], tr,
                                    fd_threshold)
    else:
        axes[2].set_ylabel("FD (mm)", fontsize=9)
    axes[-1].set_xlabel("time (s)" if tr else "volume")
    fig.tight_layout()
    return fig


def _background(space: str | None):
    # nilearn's bundled MNI152 is the right background only for an MNI template's grid.
    if (space or "").upper().startswith("MNI"):
        return datasets.load_mni152_template(resolution=2)
    return None


def plot_best_layer_map(dseg_img: nib.spatialimages.SpatialImage,
                        layer_names: Sequence[str], space: str | None = None,
                        n_slices: int = 8, title: str | None = None) -> Figure:
    """Plot a participant's best layer (the layer of maximum r) on axial slices.

    Slices, not a glass brain: a maximum projection of labels would show only the deepest
    layer along each ray.

    Parameters
    ----------
    dseg_img : nibabel image
        Layer index 1..L per voxel, 0 outside the analysis mask.
    layer_names : sequence of str
        One name per layer, for the legend.
    space : str, optional
        The template; an MNI template gets nilearn's MNI152 as background.
    n_slices : int, optional
        Axial slices shown.
    title : str, optional
        Drawn over the slices.

    Returns
    -------
    matplotlib.figure.Figure
        The slices and a legend of the layer colors (green shallow, red deep).
    """
    n_layers = len(layer_names)
    data = np.rint(np.nan_to_num(np.asarray(dseg_img.dataobj, dtype=np.float64)))
    img = nib.Nifti1Image(data.astype(np.float32), dseg_img.affine)
    fig = plt.figure(figsize=(12, 2.9))
    bg = _background(space)
    # A small grid has fewer planes than slices asked for; nilearn would warn.
    plotting.plot_stat_map(img, bg_img=bg, display_mode="z",
                           cut_coords=max(1, min(n_slices, data.shape[2])),
                           cmap=layer_colormap(n_layers), vmin=0.5, vmax=n_layers + 0.5,
                           threshold=0.5, colorbar=False, figure=fig,
                           axes=(0.0, 0.22, 1.0, 0.78), annotate=True,
                           draw_cross=False, symmetric_cbar=False,
                           black_bg=bg is None, resampling_interpolation="nearest",
                           title=title)
    colors = layer_colors(n_layers)
    handles = [Patch(color=colors[k], label=f"{k + 1} {layer_names[k]}")
               for k in range(n_layers)]
    fig.legend(handles=handles, loc="lower center", ncol=min(n_layers, 10), fontsize=8,
               frameon=False)
    return fig


def plot_participant_maxima(max_img: nib.spatialimages.SpatialImage,
                            debiased_img: nib.spatialimages.SpatialImage | None = None,
                            beyond_img: nib.spatialimages.SpatialImage | None = None
                            ) -> Figure:
    """Plot a participant's maximum r over layers beside its debiased version.

    Parameters
    ----------
    max_img : nibabel image
        Maximum r over the layers (NaN or 0 outside the mask).
    debiased_img : nibabel image, optional
        Maximum r minus the participant's null mean at each voxel.
    beyond_img : nibabel image, optional
        The debiased r where the voxel is beyond the null, 0 elsewhere.

    Returns
    -------
    matplotlib.figure.Figure
        One row of ``lzr`` glass brains per map given, each on a symmetric scale of
        its own (the debiased values are smaller than the raw ones).
    """
    rows = [("maximum r over layers (raw, biased upward)", max_img)]
    if debiased_img is not None:
        rows.append(("maximum r minus the null mean (debiased)", debiased_img))
    if beyond_img is not None:
        rows.append(("debiased r, voxels beyond the null only", beyond_img))
    return plot_glass_brain_rows(rows)


def plot_glass_brain_rows(rows: Sequence[tuple[str, nib.spatialimages.SpatialImage]]
                          ) -> Figure:
    """Plot one row of ``lzr`` glass brains per map, each on its own symmetric scale.

    Parameters
    ----------
    rows : sequence of (str, nibabel image)
        Title and map; NaN is drawn as 0.

    Returns
    -------
    matplotlib.figure.Figure
        The rows, each with its colour bar.
    """
    fig = plt.figure(figsize=(10, 2.8 * len(rows)))
    height = 1.0 / max(1, len(rows))
    for k, (title, img) in enumerate(rows):
        data = np.nan_to_num(np.asarray(img.dataobj, dtype=np.float32))
        peak = float(np.max(np.abs(data))) or 1.0
        plotting.plot_glass_brain(nib.Nifti1Image(data, img.affine), display_mode="lzr",
                                  plot_abs=False, cmap="RdBu_r", vmin=-peak, vmax=peak,
                                  colorbar=True, figure=fig, title=title,
                                  axes=(0.0, 1.0 - (k + 1) * height, 1.0, height))
    return fig
