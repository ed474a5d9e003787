"""Registrations with antspyx: BOLD reference to T1w (rigid) and T1w to template (SyN).

Transforms follow ITK's ``mode-image`` convention, as fMRIPrep's derivatives do: the
transform ``from-A_to-B`` resamples an image of space A into space B, so as a point
mapping it takes B's points to A's.  Affine transforms are handed around as 4 x 4 RAS+
matrices; the nonlinear normalization as ANTs composite ``.h5`` files.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._ants import ants_environment, read_ants_transform, to_ants, to_nibabel

LOGGER = logging.getLogger("bidsapp.preproc")

NORMALIZATION_QUALITY = {"default": 1.0, "fast": 2.0}
"""Finest voxel size (mm) at which the T1w and the template are registered, per quality."""


@dataclass(frozen=True)
class Normalization:
    """A T1w-to-template registration.

    Attributes
    ----------
    forward : Path
        ANTs composite ``.h5`` resampling T1w images into the template
        (``from-T1w_to-<tpl>_mode-image_xfm``); maps template points to T1w points.
    inverse : Path
        The inverse composite (``from-<tpl>_to-T1w_mode-image_xfm``).
    """

    forward: Path
    inverse: Path


def n4_bias_correct(img, *, n_threads: int | None = None, seed: int = 0):
    """Remove the intensity non-uniformity of a T1w image with ANTs' N4.

    The field is fitted within a head mask (Otsu threshold, dilated by 2 voxels), on the
    image shrunk 4 times, as fMRIPrep does.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        The T1w image.
    n_threads : int, optional
        ITK threads.
    seed : int, optional
        Random seed (N4 itself is deterministic; kept for symmetry).

    Returns
    -------
    nibabel.Nifti1Image
        The corrected image, float32, same grid.
    """
    # ITK fixes its thread count at its first import: ants_environment sets it before
    import ants

    with ants_environment(n_threads, seed):
        image = to_ants(img)
        # Fitting the field to the head only is both faster (4x here) and not thrown off by
        # the background's noise.
        head = ants.iMath(ants.get_mask(image), "MD", 2)
        corrected = ants.n4_bias_field_correction(image, mask=head, shrink_factor=4)
    out = to_nibabel(corrected, like=img)
    out.set_data_dtype(np.float32)
    return out


def _resample_to_spacing(image, spacing: float):
    # ITK fixes its thread count at its first import: ants_environment sets it before
    import ants

    if min(image.spacing) >= spacing - 1e-3:
        return image
    return ants.resample_image(image, (spacing,) * 3, use_voxels=False, interp_type=0)


def normalize_t1w(t1w, template, *, template_mask=None, out_dir: str | Path,
                  quality: str = "default", n_threads: int | None = None,
                  seed: int = 0) -> Normalization:
    """Register a T1w image to a template with ANTs SyN (``antsRegistrationSyNQuick[s]``).

    Rigid, affine and SyN stages with mutual information, as ANTs'
    ``antsRegistrationSyNQuick.sh -t s``.  The metric is restricted to the template's
    brain mask, dilated by 4 mm, so the skull and neck do not drive the warp.

    Parameters
    ----------
    t1w : nibabel.Nifti1Image
        The (bias-corrected) T1w image.
    template : nibabel.Nifti1Image
        The template T1w at 1 mm.
    template_mask : nibabel.Nifti1Image, optional
        The template's brain mask.
    out_dir : str or Path
        Where the two ``.h5`` transforms are written.
    quality : {'default', 'fast'}, optional
        ``default`` registers at 1 mm; ``fast`` at 2 mm (about 8 times faster, for tests).
        Never finer than the T1w itself: a 2 mm T1w is registered at 2 mm either way
        (finer SyN steps then fit noise: GM Dice 0.89 instead of 0.94 on the simulator).
    n_threads : int, optional
        ITK threads.
    seed : int, optional
        Random seed of the metric sampling.

    Returns
    -------
    Normalization
        The forward and inverse composite transforms.
    """
    # ITK fixes its thread count at its first import: ants_environment sets it before
    import ants

    if quality not in NORMALIZATION_QUALITY:
        raise ValueError(f"quality must be one of {sorted(NORMALIZATION_QUALITY)}")
    t1w_voxel = float(min(np.linalg.norm(np.asarray(t1w.affine)[:3, :3], axis=0)))
    spacing = max(NORMALIZATION_QUALITY[quality], t1w_voxel)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ants_environment(n_threads, seed), tempfile.TemporaryDirectory() as tmp:
        fixed = _resample_to_spacing(to_ants(template), spacing)
        moving = _resample_to_spacing(to_ants(t1w), spacing)
        mask = None
        if template_mask is not None:
            mask = ants.resample_image_to_target(to_ants(template_mask), fixed,
                                                 interp_type="nearestNeighbor")
            mask = ants.iMath(ants.threshold_image(mask, 0.5, None), "MD",
                              int(np.ceil(4.0 / spacing)))
        result = ants.registration(
            fixed, moving, type_of_transform="antsRegistrationSyNQuick[s]", mask=mask,
            write_composite_transform=True, outprefix=str(Path(tmp) / "t1w2tpl_"))
        forward = out_dir / "from-T1w_to-template_mode-image_xfm.h5"
        inverse = out_dir / "from-template_to-T1w_mode-image_xfm.h5"
        shutil.copyfile(result["fwdtransforms"], forward)
        shutil.copyfile(result["invtransforms"], inverse)
    return Normalization(forward, inverse)


def apply_transform(img, reference, transform: str | Path, *, interpolation: str = "linear",
                    n_threads: int | None = None):
    """Resample ``img`` onto ``reference``'s grid through one ANTs transform file.

    Parameters
    ----------
    img, reference : nibabel.Nifti1Image
        The moving image and the grid to resample it on.
    transform : str or Path
        A ``mode-image`` transform from ``img``'s space to ``reference``'s (``.h5``,
        ``.mat`` or ``.txt``).
    interpolation : str, optional
        ANTs interpolator (``linear``, ``genericLabel``, ``nearestNeighbor``, ...).
    n_threads : int, optional
        ITK threads.

    Returns
    -------
    nibabel.Nifti1Image
        The resampled image (float32) with ``reference``'s geometry.
    """
    # ITK fixes its thread count at its first import: ants_environment sets it before
    import ants

    with ants_environment(n_threads):
        warped = ants.apply_transforms(to_ants(reference), to_ants(img), [str(transform)],
                                       interpolator=interpolation)
    out = to_nibabel(warped, like=reference)
    out.set_data_dtype(np.float32)
    return out


def warp_template_to_t1w(template_img, t1w, normalization: Normalization, *,
                         interpolation: str = "genericLabel", n_threads: int | None = None):
    """Bring a template-space image (e.g. the brain mask) onto the T1w grid.

    Parameters
    ----------
    template_img : nibabel.Nifti1Image
        An image in the template space.
    t1w : nibabel.Nifti1Image
        The T1w image (gives the grid).
    normalization : Normalization
        From :func:`normalize_t1w`.
    interpolation : str, optional
        ``genericLabel`` (default) for masks and labels, ``linear`` for intensities.
    n_threads : int, optional
        ITK threads.

    Returns
    -------
    nibabel.Nifti1Image
        The image on the T1w grid.
    """
    return apply_transform(template_img, t1w, normalization.inverse,
                           interpolation=interpolation, n_threads=n_threads)


def coregister_bold_to_t1w(bold_reference, t1w, *, t1w_mask=None, n_threads: int | None = None,
                           seed: int = 0) -> np.ndarray:
    """Rigidly register a BOLD reference volume to the T1w with mutual information.

    The T1w, restricted to its brain mask (dilated by 5 mm) when given, is the fixed image
    at 2 mm; the registration starts from the scanner coordinates of both images (they
    come from one session) and runs Mattes mutual information at 3 resolutions.

    Parameters
    ----------
    bold_reference : nibabel.Nifti1Image
        The run's reference (mean) volume.
    t1w : nibabel.Nifti1Image
        The bias-corrected T1w.
    t1w_mask : nibabel.Nifti1Image, optional
        The T1w brain mask.
    n_threads : int, optional
        ITK threads.
    seed : int, optional
        Random seed of the metric sampling.

    Returns
    -------
    numpy.ndarray
        4 x 4 RAS+ matrix mapping T1w points to BOLD-reference points: the ``mode-image``
        transform ``from-boldref_to-T1w``.
    """
    # ITK fixes its thread count at its first import: ants_environment sets it before
    import ants

    with ants_environment(n_threads, seed), tempfile.TemporaryDirectory() as tmp:
        fixed = _resample_to_spacing(to_ants(t1w), 2.0)
        mask = None
        if t1w_mask is not None:
            mask = ants.resample_image_to_target(to_ants(t1w_mask), fixed,
                                                 interp_type="nearestNeighbor")
            mask = ants.iMath(ants.threshold_image(mask, 0.5, None), "MD", 3)
        result = ants.registration(
            fixed, to_ants(bold_reference), type_of_transform="Rigid",
            initial_transform="Identity", mask=mask, aff_metric="mattes", aff_sampling=32,
            aff_random_sampling_rate=0.25, aff_iterations=(100, 50, 25),
            aff_shrink_factors=(4, 2, 1), aff_smoothing_sigmas=(2, 1, 0),
            outprefix=str(Path(tmp) / "coreg_"))
        return read_ants_transform(result["fwdtransforms"][0])
