"""BOLD runs: native EPI tissue, moved per volume, sampled slice by slice, plus noise.

The image acquired in volume ``i`` at scanner position ``p`` of slice ``z`` is

    I_i(p) = c(p) * (E(y) + a * S(y, t_iz)) * (1 + D(p, t_i)) + n_i(p),   y = M_i^-1 p

(its magnitude is stored): ``E`` is the native EPI tissue intensity, ``S`` the planted
signal with unit variance within trials, evaluated at the slice's acquisition time
``t_iz = i * TR + SliceTiming[z]``, ``a = snr * sigma`` its amplitude, ``M_i`` the head
motion of the volume (:mod:`bidsapp.simulate.motion`), ``c`` the receive-coil sensitivity
(fixed to the scanner, not to the head), ``D`` a slow global and voxel-wise drift and
``n`` AR(1) noise of stationary standard deviation ``sigma = mean brain intensity / tSNR``.
``E`` and ``S`` live on a native grid of half the BOLD voxel size, so moving the head
interpolates a finer object rather than the acquisition grid itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.ndimage import affine_transform, distance_transform_edt, map_coordinates

from .acquisition import slice_timing
from .anatomy import BiasField
from .grid import Grid, in_slabs, sample
from .motion import max_displacement, rigid_matrix
from .signal import NativeOperator, PlantedVoxels, Sphere
from .transform import SubjectTransform

SUPERSAMPLING = 2
"""Native object grid points per BOLD voxel along each axis."""

_BRAIN_THRESHOLD = 300.0
"""EPI intensity above which a voxel counts as brain when measuring the mean intensity."""


@dataclass(frozen=True)
class BoldGeometry:
    """Where and when a subject's BOLD runs are acquired."""

    grid: Grid
    fine: Grid
    slice_times: np.ndarray

    @property
    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the distinct slice times and, per slice, the index of its time."""
        times, group = np.unique(self.slice_times, return_inverse=True)
        return times, group


def bold_geometry(center: np.ndarray, *, voxel_size: float, matrix: int, slices: int,
                  tr: float, multiband: int, slice_order: str) -> BoldGeometry:
    """Return an axial BOLD grid centred on ``center`` (native mm) and its finer object grid.

    Parameters
    ----------
    center : numpy.ndarray
        Native-space centre of the field of view.
    voxel_size : float
        Isotropic voxel size in mm.
    matrix : int
        In-plane voxels.
    slices : int
        Slices along the third axis.
    tr : float
        Repetition time.
    multiband : int
        Simultaneous-multislice factor.
    slice_order : str
        ``'interleaved'`` or ``'ascending'``.

    Returns
    -------
    BoldGeometry
        The acquisition grid, the supersampled grid (with a 3-voxel margin for motion) and
        the slice times.
    """
    shape = (matrix, matrix, slices)
    grid = Grid.centered(center, (0, 0, 0), voxel_size, shape=shape)
    margin = 3
    fine_shape = tuple(SUPERSAMPLING * (n + 2 * margin) for n in shape)
    fine = Grid.centered(center, (0, 0, 0), voxel_size / SUPERSAMPLING, shape=fine_shape)
    return BoldGeometry(grid, fine, slice_timing(slices, tr, multiband, slice_order))


@dataclass(frozen=True)
class NativeEPI:
    """A subject's EPI object in native space and how planted signal reaches it."""

    intensity: np.ndarray
    signal_index: np.ndarray
    operator: sparse.csr_matrix
    signal_distance: np.ndarray


def native_epi(epi_template: np.ndarray, template_affine: np.ndarray,
               transform: SubjectTransform, geometry: BoldGeometry,
               planted: PlantedVoxels, spheres: list[Sphere]) -> NativeEPI:
    """Warp the template-space EPI contrast and the planted voxels into native space.

    Parameters
    ----------
    epi_template : numpy.ndarray
        Template-space EPI intensity at 1 mm (:func:`~bidsapp.simulate.anatomy.epi_template`).
    template_affine : numpy.ndarray
        Its affine.
    transform : SubjectTransform
        The subject's template-to-native mapping.
    geometry : BoldGeometry
        Gives the fine native grid.
    planted : PlantedVoxels
        The truth-grid voxels carrying signal.
    spheres : list of Sphere
        Their spheres.

    Returns
    -------
    NativeEPI
        Intensity on the fine grid, the fine voxels that receive signal with their weights,
        and each fine voxel's distance (mm) to the nearest of those.
    """
    operator = NativeOperator(planted, spheres)

    def one_slab(points: np.ndarray, start: int) -> np.ndarray:
        template_points = transform.to_template_fast(points)
        operator.add(start, template_points)
        return sample(epi_template, template_affine, template_points)

    intensity = in_slabs(geometry.fine, one_slab)
    index, matrix = operator.finish(planted.n)
    outside = np.ones(geometry.fine.shape, dtype=bool)
    outside.flat[index] = False
    spacing = float(geometry.fine.affine[0, 0])
    distance = distance_transform_edt(outside, sampling=spacing).astype(np.float32)
    return NativeEPI(intensity, index, matrix, distance)


@dataclass(frozen=True)
class Scanner:
    """Subject- and scanner-fixed properties shared by all runs of a subject."""

    coil: np.ndarray
    sigma: float
    drift_field: np.ndarray


def scanner_properties(rng: np.random.Generator, epi: NativeEPI, geometry: BoldGeometry,
                       *, bias_percent: float, drift_percent: float, tsnr: float) -> Scanner:
    """Draw the coil sensitivity and voxel-wise drift, and set the noise level.

    Parameters
    ----------
    rng : numpy.random.Generator
        The subject's scanner stream.
    epi : NativeEPI
        The native EPI object.
    geometry : BoldGeometry
        The acquisition grid.
    bias_percent : float
        Size of the coil sensitivity variation in percent.
    drift_percent : float
        Size of the voxel-wise drift in percent.
    tsnr : float
        Mean brain intensity over noise standard deviation.

    Returns
    -------
    Scanner
        ``sigma`` is the mean brain intensity (after the coil) of the unmoved head over
        tSNR.
    """
    points = geometry.grid.points()
    coil = BiasField.random(rng, geometry.grid, bias_percent)(points).reshape(
        geometry.grid.shape).astype(np.float32)
    drift = (BiasField.random(rng, geometry.grid, drift_percent)(points) - 1.0).reshape(
        geometry.grid.shape).astype(np.float32)
    reference = _baseline(epi, geometry, np.eye(4))
    brain = reference > _BRAIN_THRESHOLD
    mean = float((coil * reference)[brain].mean()) if brain.any() else 1000.0
    return Scanner(coil, mean / tsnr, drift)


def _voxel_to_fine(geometry: BoldGeometry, motion_matrix: np.ndarray) -> np.ndarray:
    """Return the 4 x 4 map from BOLD voxel indices to fine-grid indices of the tissue seen."""
    fine_inverse = np.linalg.inv(geometry.fine.affine)
    return fine_inverse @ np.linalg.inv(motion_matrix) @ geometry.grid.affine


def _baseline(epi: NativeEPI, geometry: BoldGeometry, motion_matrix: np.ndarray) -> np.ndarray:
    matrix = _voxel_to_fine(geometry, motion_matrix)
    return affine_transform(epi.intensity, matrix[:3, :3], matrix[:3, 3],
                            output_shape=geometry.grid.shape, output=np.float32, order=1,
                            mode="constant", cval=0.0, prefilter=False)


def _candidates(epi: NativeEPI, geometry: BoldGeometry, reach_mm: float
                ) -> list[np.ndarray]:
    """Return, per slice-time group, the flat BOLD indices that can see planted signal."""
    points = geometry.grid.points()
    distance = sample(epi.signal_distance, geometry.fine.affine, points, order=0,
                      cval=np.inf)
    near = np.flatnonzero(distance <= reach_mm)
    _, group = geometry.groups
    slice_of = np.unravel_index(near, geometry.grid.shape)[2]
    return [near[group[slice_of] == g] for g in range(group.max() + 1)]


def simulate_run(rng: np.random.Generator, epi: NativeEPI, geometry: BoldGeometry,
                 scanner: Scanner, motion: np.ndarray, signal: np.ndarray, *, tr: float,
                 amplitude: float, ar_coefficient: float, drift_percent: float,
                 dtype: str = "int16") -> np.ndarray:
    """Return one BOLD run (X, Y, Z, T) acquired slice group by slice group.

    Parameters
    ----------
    rng : numpy.random.Generator
        The run's noise stream.
    epi : NativeEPI
        The subject's native EPI object.
    geometry : BoldGeometry
        Grids and slice times.
    scanner : Scanner
        Coil sensitivity, drift field, noise level.
    motion : numpy.ndarray
        (n_volumes, 6) motion parameters.
    signal : numpy.ndarray
        (n_planted, n_volumes, n_groups): each planted voxel's signal at each volume's
        slice-group acquisition times (unit variance within trials).
    tr : float
        Repetition time.
    amplitude : float
        Intensity of one unit of planted signal at coil gain 1 (``snr * scanner.sigma``).
    ar_coefficient : float
        Lag-one autocorrelation of the noise between volumes.
    drift_percent : float
        Size of the slow drift in percent of the intensity.
    dtype : {'int16', 'float32'}, optional
        Stored type; int16 is rounded and clipped at 32767.

    Returns
    -------
    numpy.ndarray
        Fortran-ordered array of ``dtype``, shape ``(*grid.shape, n_volumes)``.
    """
    n_volumes = len(motion)
    shape = geometry.grid.shape
    out = np.empty((*shape, n_volumes), dtype=np.dtype(dtype), order="F")
    # Trilinear support (sqrt(3) fine voxels) plus the nearest-neighbour lookup of the
    # distance map (half a diagonal) stay below 3 fine voxels beyond the largest motion.
    fine_voxel = float(geometry.fine.affine[0, 0])
    reach = max_displacement(motion, geometry.grid.corners()) + 3 * fine_voxel
    candidates = _candidates(epi, geometry, reach) if epi.signal_index.size else []
    candidate_ijk = [np.array(np.unravel_index(c, shape), float) for c in candidates]
    fine_signal = np.zeros(geometry.fine.shape, dtype=np.float64)
    duration = n_volumes * tr
    slow = rng.uniform(-1, 1, 3) * drift_percent / 100.0
    sigma = np.float32(scanner.sigma)
    innovation = np.float32(np.sqrt(1.0 - ar_coefficient**2)) * sigma
    noise = sigma * rng.standard_normal(shape, dtype=np.float32)
    planted_signal = np.zeros(shape, dtype=np.float32)
    for i in range(n_volumes):
        motion_matrix = rigid_matrix(motion[i])
        base = _baseline(epi, geometry, motion_matrix)
        voxel_to_fine = _voxel_to_fine(geometry, motion_matrix)
        for g, (flat, ijk) in enumerate(zip(candidates, candidate_ijk, strict=True)):
            if not flat.size:
                continue
            fine_signal.flat[epi.signal_index] = epi.operator @ signal[:, i, g]
            coords = voxel_to_fine[:3, :3] @ ijk + voxel_to_fine[:3, 3:4]
            planted_signal.flat[flat] = map_coordinates(fine_signal, coords, order=1,
                                                        mode="constant", prefilter=False)
        # Drift: a slow global trend (linear, quadratic, half cosine) plus a voxel-wise ramp.
        u = (i + 0.5) * tr / duration
        trend = slow[0] * (2 * u - 1) + slow[1] * (4 * (u - 0.5) ** 2 - 1 / 3) \
            + slow[2] * np.cos(np.pi * u)
        gain = 1.0 + np.float32(trend) + scanner.drift_field * np.float32(2 * u - 1)
        clean = scanner.coil * (base + np.float32(amplitude) * planted_signal) * gain
        if i:
            noise = np.float32(ar_coefficient) * noise + innovation * rng.standard_normal(
                shape, dtype=np.float32)
        volume = np.abs(clean + noise)
        if out.dtype == np.int16:
            volume = np.minimum(np.round(volume), 32767)
        out[..., i] = volume
    return out
