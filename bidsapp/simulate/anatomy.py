"""Subject anatomy: the MNI152 template, a known affine and warp per subject, and images.

The template is nilearn's copy of the ICBM 2009a nonlinear symmetric template
(``MNI152NLin2009aSym``), so no download is needed.  A subject is the template deformed by

    y = A @ (x + u(x))

where ``x`` is a template (MNI) point in mm, ``u`` a smooth displacement field defined on a
coarse template-space grid and interpolated trilinearly (clamped at the grid's edge), ``A`` a
4 x 4 affine (rotation, translation, scaling) and ``y`` the same tissue point in the
subject's native (scanner) space in mm.  Both ``A`` and ``u`` are written to the truth
folder; :class:`SubjectTransform` evaluates the mapping and its inverse.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from nilearn import datasets
from scipy.ndimage import gaussian_filter

from .grid import Grid, apply_affine, in_slabs, presmooth, sample
from .motion import rotation_matrix
from .transform import WARP_SPACING_MM, SubjectTransform

TEMPLATE_SPACE = "MNI152NLin2009aSym"
"""The true space of nilearn's bundled MNI152 template."""

_EPI_CONTRAST = {"gm": 850.0, "wm": 650.0, "csf": 1200.0}
"""T2*-weighted EPI intensity of pure tissue: CSF brightest, grey above white matter."""

_DROPOUT_BLOBS = (((0.0, 32.0, -22.0), 10.0), ((-36.0, 12.0, -34.0), 8.0),
                  ((36.0, 12.0, -34.0), 8.0))
"""Susceptibility dropout: orbitofrontal cortex and both temporal poles (MNI mm, sigma mm)."""


@dataclass(frozen=True)
class Template:
    """Template images on their 1 mm grid: T1 (0-1), tissue probabilities and brain mask."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    mask: np.ndarray
    affine: np.ndarray

    @property
    def grid(self) -> Grid:
        """The template's own grid."""
        return Grid(self.t1.shape, self.affine)

    @property
    def brain_center(self) -> np.ndarray:
        """Centre of the brain mask's bounding box, in MNI mm."""
        idx = np.argwhere(self.mask > 0.5)
        mid = (idx.min(0) + idx.max(0)) / 2.0
        return apply_affine(self.affine, mid[None])[0]


@functools.cache
def load_template() -> Template:
    """Return nilearn's MNI152NLin2009aSym images at 1 mm (loaded once per process).

    Returns
    -------
    Template
        CSF probability is the brain mask minus grey and white matter.
    """
    def data(img) -> np.ndarray:
        return np.asarray(img.get_fdata(dtype=np.float32))

    t1 = datasets.load_mni152_template(resolution=1)
    gm = data(datasets.load_mni152_gm_template(resolution=1))
    wm = data(datasets.load_mni152_wm_template(resolution=1))
    mask = data(datasets.load_mni152_brain_mask(resolution=1))
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    return Template(data(t1), gm, wm, csf, mask, t1.affine.copy())


def template_grid(template: Template, voxel_size: float) -> Grid:
    """Return the template's box at ``voxel_size`` mm, sharing its first voxel's centre.

    This is the grid of the truth maps: the same origin as the 1 mm template and as many
    voxels as fit in its extent.

    Parameters
    ----------
    template : Template
        The 1 mm template.
    voxel_size : float
        Voxel size in mm.

    Returns
    -------
    Grid
        The grid in template (MNI) space.
    """
    shape = tuple(int(np.floor((n - 1) / voxel_size + 1e-6)) + 1 for n in template.t1.shape)
    affine = template.affine.copy()
    affine[:3, :3] = np.diag([voxel_size] * 3)
    return Grid(shape, affine)


@dataclass(frozen=True)
class BiasField:
    """A smooth multiplicative field ``exp(strength * P(q))`` bounded by ``exp(+-strength)``.

    ``P`` is a second-order polynomial of the normalised coordinates
    ``q = (y - center) / half_extent`` whose coefficients' absolute values sum to 1.
    """

    coefficients: np.ndarray
    center: np.ndarray
    half_extent: np.ndarray
    strength: float

    N_TERMS = 9
    """x, y, z, x^2, y^2, z^2, xy, xz, yz."""

    @classmethod
    def random(cls, rng: np.random.Generator, grid: Grid, percent: float) -> BiasField:
        """Draw a field over ``grid`` whose gain stays within ``1 +- percent / 100``.

        Parameters
        ----------
        rng : numpy.random.Generator
            The stream to draw the coefficients from.
        grid : Grid
            The box the polynomial is normalised to.
        percent : float
            Largest gain change in percent (``exp(+-log(1 + percent / 100))``).

        Returns
        -------
        BiasField
            The field; call it on points (N, 3) to get the gain.
        """
        coefficients = rng.standard_normal(cls.N_TERMS)
        coefficients /= np.abs(coefficients).sum()
        corners = grid.corners()
        center = (corners.min(0) + corners.max(0)) / 2
        half = np.maximum((corners.max(0) - corners.min(0)) / 2, 1.0)
        return cls(coefficients, center, half, float(np.log1p(percent / 100.0)))

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Return the gain at world points (N, 3)."""
        q = np.clip((points - self.center) / self.half_extent, -1, 1)
        qx, qy, qz = q.T
        terms = (qx, qy, qz, qx * qx, qy * qy, qz * qz, qx * qy, qx * qz, qy * qz)
        poly = sum(c * term for c, term in zip(self.coefficients, terms, strict=True))
        return np.exp(self.strength * poly)


def random_transform(rng: np.random.Generator, template: Template, *, max_warp_mm: float,
                     rotation_deg: float, shift_mm: float, scale: float) -> SubjectTransform:
    """Draw a subject's affine and smooth displacement field.

    Parameters
    ----------
    rng : numpy.random.Generator
        The subject's anatomy stream.
    template : Template
        Defines the extent of the field's grid.
    max_warp_mm : float
        Largest displacement; the field's peak is a random 60-100% of it.
    rotation_deg, shift_mm, scale : float
        Limits of the uniform random rotation per axis, translation per axis and relative
        scaling per axis of ``A``.

    Returns
    -------
    SubjectTransform
        The known transform.
    """
    angles = np.deg2rad(rng.uniform(-rotation_deg, rotation_deg, 3))
    affine = np.eye(4)
    affine[:3, :3] = rotation_matrix(*angles) @ np.diag(1 + rng.uniform(-scale, scale, 3))
    affine[:3, 3] = rng.uniform(-shift_mm, shift_mm, 3)
    grid = template_grid(template, WARP_SPACING_MM)
    noise = rng.standard_normal((*grid.shape, 3))
    # A 20 mm smoothing gives folds-and-bulges scale deformations, not voxel-scale jitter.
    field = np.stack([gaussian_filter(noise[..., c], 20.0 / WARP_SPACING_MM, mode="nearest")
                      for c in range(3)], -1)
    peak = np.linalg.norm(field, axis=-1).max()
    field *= max_warp_mm * rng.uniform(0.6, 1.0) / peak if peak > 0 else 0.0
    # Keep the Jacobian of u small, so the fixed-point inverse converges and folds never occur.
    steepest = max(np.abs(np.gradient(field[..., c], WARP_SPACING_MM, axis=a)).max()
                   for c in range(3) for a in range(3))
    if steepest > 0.5:
        field *= 0.5 / steepest
    return SubjectTransform(affine, field.astype(np.float32), grid.affine)


def native_t1w(template: Template, transform: SubjectTransform, grid: Grid,
               rng: np.random.Generator, bias: BiasField, noise_percent: float = 1.5
               ) -> np.ndarray:
    """Return the subject's T1w on ``grid``: warped template, bias field, Rician-like noise.

    The template is skull-stripped, so the T1w is too.  Intensities are the template's
    0-1 values times 1000.

    Parameters
    ----------
    template : Template
        Source images.
    transform : SubjectTransform
        The subject's template-to-native mapping.
    grid : Grid
        The T1w grid in native space.
    rng : numpy.random.Generator
        Noise stream.
    bias : BiasField
        Intensity non-uniformity in native space.
    noise_percent : float, optional
        Noise standard deviation in percent of 1000.

    Returns
    -------
    numpy.ndarray
        float32 volume of ``grid.shape``.
    """
    smoothed = presmooth(template.t1, grid.affine[0, 0])
    sigma = 10.0 * noise_percent

    def one_slab(points: np.ndarray, start: int) -> np.ndarray:
        clean = 1000.0 * sample(smoothed, template.affine, transform.to_template_fast(points))
        clean *= bias(points)
        # Magnitude of a complex signal with Gaussian noise: Rician, as MR magnitude images.
        real = clean + sigma * rng.standard_normal(clean.size)
        imag = sigma * rng.standard_normal(clean.size)
        return np.hypot(real, imag)

    return in_slabs(grid, one_slab)


def epi_template(template: Template, voxel_size: float, dropout: float) -> np.ndarray:
    """Return the template-space EPI contrast at 1 mm, blurred for ``voxel_size`` sampling.

    Grey matter is brighter than white matter and CSF brightest, as in T2*-weighted EPI;
    susceptibility dropout multiplies the orbitofrontal cortex and the temporal poles by
    down to ``1 - dropout``.

    Parameters
    ----------
    template : Template
        Tissue probabilities.
    voxel_size : float
        BOLD voxel size in mm (sets the blur).
    dropout : float
        Depth of the dropout, 0 (none) to 1 (no signal at the centres).

    Returns
    -------
    numpy.ndarray
        float32 intensity on the template's 1 mm grid.
    """
    epi = (_EPI_CONTRAST["gm"] * template.gm + _EPI_CONTRAST["wm"] * template.wm
           + _EPI_CONTRAST["csf"] * template.csf)
    if dropout > 0:
        # The template grid is axis-aligned, so each Gaussian blob is a product of 1D ones.
        axes = [template.affine[a, a] * np.arange(n) + template.affine[a, 3]
                for a, n in enumerate(epi.shape)]
        loss = np.zeros(epi.shape, dtype=np.float32)
        for center, sigma in _DROPOUT_BLOBS:
            gx, gy, gz = (np.exp(-((ax - c) ** 2) / (2 * sigma**2)).astype(np.float32)
                          for ax, c in zip(axes, center, strict=True))
            loss += gx[:, None, None] * gy[None, :, None] * gz[None, None, :]
        epi *= 1.0 - dropout * np.clip(loss, 0, 1)
    return presmooth(epi.astype(np.float32), voxel_size)
