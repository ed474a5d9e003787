"""``simulate()``: write a BIDS dataset with planted motion, warps, slice timing and signals."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from bidsapp._pool import starmap
from bidsapp.audio import LAYER_NAMES, compute_features_many, weights_info
from bidsapp.errors import UsageError
from bidsapp.logs import setup_logging

from . import writer
from .acquisition import run_schedule
from .anatomy import (
    TEMPLATE_SPACE,
    BiasField,
    epi_template,
    load_template,
    native_t1w,
    random_transform,
    template_grid,
)
from .bold import bold_geometry, native_epi, scanner_properties, simulate_run
from .geometry import balance_outside, geometry_responses
from .grid import Grid
from .motion import MOTION_COLUMNS, random_motion
from .presets import SimulationParams, make_params
from .seeds import rng_for
from .signal import GRID_PERIOD, Sphere, sample_timeline, truth_maps, voxel_responses
from .stimuli import clip_name, write_stimuli

LOGGER = logging.getLogger("bidsapp.simulate")

TASK = "music"
T1W_EXTENT_MM = (192.0, 240.0, 208.0)
"""Field of view of the T1w images: the template brain with room for the head's pose."""


def simulate(output_dir: str | Path, preset: str = "tiny", seed: int = 0, *,
             overwrite: bool = False, n_procs: int = 1, **overrides: Any) -> Path:
    """Write a simulated BIDS dataset with its ground truth and return its root.

    Parameters
    ----------
    output_dir : str or Path
        The dataset folder; created if missing.  It must be empty or hold an earlier
        simulation (whose files not rewritten are removed) unless ``overwrite`` is true.
    preset : {'tiny', 'study'}, optional
        The starting parameters (:data:`~bidsapp.simulate.presets.PRESETS`).
    seed : int, optional
        Fixes every random choice: the same seed and parameters give byte-identical files.
    overwrite : bool, optional
        Write into a non-empty folder that is not an earlier simulation (its other files
        are left alone).
    n_procs : int, optional
        Subjects simulated at the same time, each in its own process.  Every subject draws
        from its own random streams, so the files are the same for any ``n_procs``.
    **overrides
        Any field of :class:`~bidsapp.simulate.presets.SimulationParams`.

    Returns
    -------
    Path
        The dataset root.

    Raises
    ------
    UsageError
        For invalid parameters or a non-empty output folder.
    CannotWriteError
        If the output cannot be written.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise UsageError(f"The seed must be a non-negative integer, not {seed!r}",
                         fix="give --seed 0 or another whole number")
    seed = int(seed)
    started = time.monotonic()
    params = make_params(preset, **overrides)
    # The weights are checked before anything is written, so a wrong path leaves no trace.
    info = weights_info(params.weights)
    weights = {"name": info["name"], "sha256": info["sha256"], "status": info["status"]}
    # Spheres outside the brain are found before anything is written, too.
    template = load_template()
    truth_grid = template_grid(template, params.voxel_size)
    spheres = [Sphere(tuple(c), params.radius_mm, k)
               for c, k in zip(params.centers, params.layers, strict=True)]
    layer_map, masks, planted = truth_maps(spheres, template, truth_grid)
    root = Path(output_dir).absolute()
    old_files = writer.prepare_output(root, overwrite)
    written: list[Path] = []
    truth = root / writer.TRUTH_DIR
    # The truth description goes first: it marks the folder as a simulation, so an
    # interrupted run can be repeated into the same folder without --overwrite.
    written.append(writer.save_json(truth / "dataset_description.json", writer.dataset_description(
        "bidsapp simulate ground truth", "derivative")))

    LOGGER.info("simulate: %s preset, seed %d, %d subjects x %d runs -> %s",
                preset, seed, params.subjects, params.runs, root)
    stimuli = write_stimuli(root / "stimuli", seed, params.durations, params.audio_rate,
                            params.audio_channels)
    written += stimuli
    LOGGER.info("simulate: features of %d clips (%s weights)", len(stimuli), info["status"])
    features = _clip_features(stimuli, params.weights, weights["sha256"], params.device)

    written += _write_truth_maps(truth, params, spheres, layer_map, masks, truth_grid,
                                 LAYER_NAMES, weights)
    epi_mni = epi_template(template, params.voxel_size, params.dropout)

    labels = [f"{s:02d}" for s in range(1, params.subjects + 1)]
    # Spawned workers start without logging: they set it up as here when the CLI had.
    log_level = LOGGER.getEffectiveLevel() if logging.getLogger("bidsapp").handlers else None
    jobs = [(log_level, root, label, seed, params, template, epi_mni, planted,
             spheres, features, LAYER_NAMES) for label in labels]
    for files in starmap(_simulate_subject_logged, jobs, min(n_procs, len(labels))):
        written += files

    written += _write_top_level(root, params, seed, preset, labels, weights)
    relative = sorted({p.relative_to(root).as_posix() for p in written}
                      | {writer.MANIFEST.as_posix()})
    manifest_files = [p for p in relative if p != writer.MANIFEST.as_posix()]
    writer.save_json(root / writer.MANIFEST, {
        "GeneratedBy": writer.generated_by(), "Preset": preset, "Seed": seed,
        "Parameters": params.to_dict(), "Weights": weights, "Task": TASK,
        "TemplateSpace": TEMPLATE_SPACE, "Files": manifest_files,
    })
    removed = writer.remove_stale(root, old_files, relative)
    if removed:
        LOGGER.info("simulate: removed %d files of the earlier simulation", len(removed))
    LOGGER.info("simulate: done in %.1f s", time.monotonic() - started)
    return root


_FEATURE_MEMO: dict[tuple, list] = {}
_FEATURE_MEMO_SIZE = 4


def _clip_features(paths: list[Path], weights: str | None, weights_sha256: str,
                   device: str) -> list[dict[str, np.ndarray]]:
    """Return the 64 ms features of each clip, remembered for repeated simulations.

    Power analyses and tests simulate the same clips (same seed) many times with other
    SNRs or sizes; the key is the clips' bytes and the weights', so a change recomputes.
    """
    key = (tuple(hashlib.sha256(p.read_bytes()).hexdigest() for p in paths), weights_sha256,
           device)
    if key not in _FEATURE_MEMO:
        # At a "TR" of one 64 ms frame, the features are the HRF-convolved activations on
        # the network's own grid, fine enough to evaluate at every slice's acquisition time.
        by_path = compute_features_many(paths, GRID_PERIOD, weights=weights, device=device)
        while len(_FEATURE_MEMO) >= _FEATURE_MEMO_SIZE:
            _FEATURE_MEMO.pop(next(iter(_FEATURE_MEMO)))
        _FEATURE_MEMO[key] = [by_path[path] for path in paths]
    return _FEATURE_MEMO[key]


def _write_truth_maps(truth: Path, params: SimulationParams, spheres: list[Sphere],
                      layer_map: np.ndarray, masks: list[np.ndarray], grid: Grid,
                      layer_names, weights: dict) -> list[Path]:
    written = [writer.save_nifti(truth / "truth_layers.nii.gz", layer_map, grid.affine,
                                 space="mni")]
    entries = []
    for index, (sphere, mask) in enumerate(zip(spheres, masks, strict=True), start=1):
        name = f"truth_sphere-{index:02d}_mask.nii.gz"
        written.append(writer.save_nifti(truth / name, mask, grid.affine, space="mni"))
        entries.append({"index": index, "center_mni": list(sphere.center),
                        "radius_mm": sphere.radius, "layer": sphere.layer,
                        "layer_name": layer_names[sphere.layer - 1],
                        "n_voxels": int(mask.sum()), "mask": name})
    written.append(writer.save_json(truth / "truth_layers.json", writer.truth_layers_sidecar(
        entries, params.to_dict(), layer_names, weights)))
    return written


def _simulate_subject_logged(level: int | None, *args) -> list[Path]:
    """Run :func:`_simulate_subject`; in a spawned worker, log its progress as the parent."""
    if level is not None and not logging.getLogger("bidsapp").handlers:
        setup_logging(verbose=int(level <= logging.DEBUG))
    return _simulate_subject(*args)


def _simulate_subject(root: Path, label: str, seed: int, params: SimulationParams,
                      template, epi_mni: np.ndarray, planted, spheres: list[Sphere],
                      features, layer_names) -> list[Path]:
    sub = f"sub-{label}"
    tic = time.monotonic()
    written: list[Path] = []
    transform = random_transform(
        rng_for(seed, sub, "anatomy"), template, max_warp_mm=params.max_warp_mm,
        rotation_deg=params.head_rotation_deg, shift_mm=params.head_shift_mm,
        scale=params.head_scale)
    # Scanners centre the field of view on the head; round so the grids have tidy origins.
    center = np.round(transform.to_native(template.brain_center[None])[0])
    t1_grid = Grid.centered(center, T1W_EXTENT_MM, params.t1w_voxel_size)
    bias = BiasField.random(rng_for(seed, sub, "t1w-bias"), t1_grid, params.bias_percent)
    t1w = native_t1w(template, transform, t1_grid, rng_for(seed, sub, "t1w-noise"), bias)
    written.append(writer.save_nifti(root / sub / "anat" / f"{sub}_T1w.nii.gz",
                                     np.minimum(np.round(t1w), 32767).astype(np.int16),
                                     t1_grid.affine))
    written += _write_transform(root / writer.TRUTH_DIR / sub / "anat", sub, transform)
    LOGGER.info("simulate: %s anatomy done (%.1f s)", sub, time.monotonic() - tic)

    geometry = bold_geometry(center, voxel_size=params.voxel_size, matrix=params.matrix,
                             slices=params.slices, tr=params.tr, multiband=params.multiband,
                             slice_order=params.slice_order)
    epi = native_epi(epi_mni, template.affine, transform, geometry, planted, spheres)
    scanner = scanner_properties(rng_for(seed, sub, "scanner"), epi, geometry,
                                 bias_percent=params.bias_percent,
                                 drift_percent=params.drift_percent, tsnr=params.tsnr)
    responses = _responses(seed, sub, params, planted, spheres, features, layer_names)
    group_times, _ = geometry.groups
    for run in range(1, params.runs + 1):
        tic = time.monotonic()
        schedule = run_schedule(rng_for(seed, sub, "schedule", run), run - 1, params.clips,
                                params.durations, params.tr, params.gap_seconds,
                                params.lead_in_seconds, params.rest_seconds)
        motion = random_motion(rng_for(seed, sub, "motion", run), schedule.n_volumes, params.tr,
                               params.max_motion_mm, params.max_rotation_deg)
        times = (np.arange(schedule.n_volumes)[:, None] * params.tr + group_times[None, :])
        signal = sample_timeline(responses, schedule, times.ravel()).reshape(
            planted.n, schedule.n_volumes, len(group_times))
        if params.signal_model == "geometry":
            signal = _balance(signal, schedule, times)
        data = simulate_run(rng_for(seed, sub, "noise", run), epi, geometry, scanner, motion,
                            signal, tr=params.tr, amplitude=params.snr * scanner.sigma,
                            ar_coefficient=params.ar_coefficient,
                            drift_percent=params.drift_percent, dtype=params.dtype)
        written += _write_run(root, sub, run, params, geometry, schedule, motion, data)
        LOGGER.info("simulate: %s run-%d: %d volumes (%.1f s)", sub, run, schedule.n_volumes,
                    time.monotonic() - tic)
    return written


def _responses(seed: int, sub: str, params: SimulationParams, planted, spheres: list[Sphere],
               features, layer_names) -> list[np.ndarray]:
    if params.signal_model == "mixture":
        return voxel_responses(planted, spheres, features, layer_names, params.durations,
                               lambda index: rng_for(seed, sub, "mixing", index))
    # The expected share of a run spent in clips sets how much variance the balancing
    # values outside the clips add; the runs' random gaps make it differ slightly per run.
    run_seconds = (params.lead_in_seconds + params.rest_seconds + sum(params.durations)
                   + params.clips * float(np.mean(params.gap_seconds)))
    inside = sum(params.durations) / run_seconds
    return geometry_responses(planted, spheres, features, layer_names, params.durations,
                              lambda index: rng_for(seed, sub, "geometry", index), inside)


def _balance(signal: np.ndarray, schedule, times: np.ndarray) -> np.ndarray:
    """Zero the mean and linear trend of every voxel and slice time (see balance_outside)."""
    onsets = np.asarray(schedule.onsets)[:, None, None]
    rel = times[None] - onsets
    inside = np.any((rel >= 0) & (rel < np.asarray(schedule.durations)[:, None, None]), axis=0)
    out = np.empty_like(signal)
    for group in range(times.shape[1]):
        out[:, :, group] = balance_outside(signal[:, :, group], inside[:, group],
                                           times[:, group])
    return out


def _write_transform(folder: Path, sub: str, transform) -> list[Path]:
    stem = f"{sub}_from-{TEMPLATE_SPACE}_to-T1w"
    field = writer.save_nifti(folder / f"{stem}_desc-warp_xfm.nii.gz", transform.field,
                              transform.field_affine, space="mni", intent="vector")
    affine = writer.save_json(folder / f"{stem}_desc-affine_xfm.json", {
        "Description": "y = A @ (x + u(x)): x a template point (MNI152NLin2009aSym, RAS mm), "
                       "u the displacement field in the desc-warp file (RAS mm, trilinear, "
                       "clamped at its edges), y the same tissue point in the subject's "
                       "native scanner space (RAS mm) where the T1w and the unmoved head lie.",
        "FromSpace": TEMPLATE_SPACE, "ToSpace": "T1w",
        "TemplateToNative": transform.affine,
        "NativeToTemplate": np.linalg.inv(transform.affine),
        "DisplacementField": field.name,
    })
    return [field, affine]


def _write_run(root: Path, sub: str, run: int, params: SimulationParams, geometry, schedule,
               motion: np.ndarray, data: np.ndarray) -> list[Path]:
    stem = f"{sub}_task-{TASK}_run-{run}"
    func = root / sub / "func"
    sidecar: dict[str, Any] = {
        **({} if params.task_sidecar else task_sidecar(params)),
        "SliceTiming": [float(t) for t in geometry.slice_times],
        "SliceEncodingDirection": "k",
        "PhaseEncodingDirection": "j-",
        "EchoTime": params.echo_time,
    }
    if params.multiband > 1:
        sidecar["MultibandAccelerationFactor"] = params.multiband
    rows = [(round(onset, 6), seconds, clip_name(clip), "music") for clip, onset, seconds
            in zip(schedule.clip_order, schedule.onsets, schedule.durations, strict=True)]
    truth = root / writer.TRUTH_DIR / sub / "func"
    return [
        writer.save_nifti(func / f"{stem}_bold.nii.gz", data, geometry.grid.affine,
                          tr=params.tr),
        writer.save_json(func / f"{stem}_bold.json", sidecar),
        writer.save_tsv(func / f"{stem}_events.tsv",
                        ("onset", "duration", "stim_file", "trial_type"), rows),
        writer.save_tsv(truth / f"{stem}_motion.tsv", MOTION_COLUMNS,
                        [tuple(float(v) for v in row) for row in np.round(motion, 8)]),
    ]


def task_sidecar(params: SimulationParams) -> dict[str, Any]:
    """Return the BOLD metadata shared by every run of the task.

    Parameters
    ----------
    params : SimulationParams
        ``tr`` is used.

    Returns
    -------
    dict
        ``TaskName``, ``TaskDescription`` and ``RepetitionTime``: in each run's sidecar, or
        once in ``task-<task>_bold.json`` at the root with ``task_sidecar`` (BIDS
        inheritance, as in OpenNeuro ds004007).
    """
    return {
        "TaskName": TASK,
        "TaskDescription": "Passive listening to music clips, each followed by two ratings.",
        "RepetitionTime": params.tr,
    }


def _write_top_level(root: Path, params: SimulationParams, seed: int, preset: str,
                     labels: list[str], weights: dict) -> list[Path]:
    truth = root / writer.TRUTH_DIR
    shared = ([writer.save_json(root / f"task-{TASK}_bold.json", task_sidecar(params))]
              if params.task_sidecar else [])
    return [*shared,
        writer.save_json(root / "dataset_description.json", writer.dataset_description(
            f"bidsapp simulated music listening ({preset}, seed {seed})")),
        writer.write_text(root / "README", writer.readme_text(params.to_dict(), seed, preset,
                                                              weights)),
        writer.save_tsv(root / "participants.tsv", ("participant_id",),
                        [(f"sub-{label}",) for label in labels]),
        writer.save_json(root / "participants.json", {
            "participant_id": {"Description": "Simulated participant label"}}),
        writer.save_json(root / f"task-{TASK}_events.json", {
            "stim_file": {"Description": "The clip played, relative to stimuli/"},
            "trial_type": {"Description": "Always 'music': one clip presentation"},
            "onset": {"Description": "Clip start from the first volume", "Units": "s"},
            "duration": {"Description": "Clip length", "Units": "s"},
        }),
        writer.save_json(truth / "motion.json", {
            "Description": "Rigid motion of each volume: M = T(trans) @ Rz @ Ry @ Rx maps a "
                           "native-space tissue point to its scanner position during the "
                           "volume; rotations about the scanner origin (0, 0, 0).",
            **{c: {"Units": "mm" if c.startswith("trans") else "rad"} for c in MOTION_COLUMNS},
        }),
    ]
