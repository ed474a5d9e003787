"""Every parameter of a simulation in one frozen dataclass, and the named presets.

``tiny`` is what the tests, the demo and continuous integration run: small enough to be
written in seconds and analysed end to end in minutes on two cores.  ``study`` reproduces
the acquisition of the study (6 participants kept, 8 test runs of the same 16 clips of
29 s in a Latin-square order, TR 0.735 s, 2.4 mm, 64 slices, multiband 8).
``naturalistic`` has the shape of a public whole-song dataset (OpenNeuro ds004007): 25
participants, 2 runs of the same 16 pieces of 89 to 225 s in different orders, TR 1.0 s,
2 mm, 72 slices, multiband 8, 44.1 kHz stereo WAV, ``RepetitionTime`` in a task-level
sidecar at the root; ``duration_scale`` shortens its pieces for tests.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from bidsapp.errors import UsageError

N_LAYERS = 10
"""Layers of the network a sphere can carry, numbered 1 (conv1) to 10 (fc)."""

MIN_CLIP_SECONDS = 3.136
"""The network's window (50,176 samples at 16 kHz): shorter clips have no fc features."""

DEFAULT_CENTERS = ((-44.0, -22.0, 8.0), (48.0, -20.0, 6.0), (10.0, -86.0, 4.0))
"""Sphere centres in MNI mm: left STG, right STG, right calcarine/occipital cortex."""

SIGNAL_MODELS = ("geometry", "mixture")
"""How spheres carry their layer: its RSA geometry (default) or random unit mixtures."""

DEFAULT_LAYERS = (3, 7, 10)
"""The layer planted in each default sphere (conv2_2, conv4_2, fc)."""


@dataclass(frozen=True)
class SimulationParams:
    """Every choice a simulation makes besides the seed.

    Times are in seconds, lengths in mm, angles in degrees.  Build one with
    :func:`make_params`, which also validates it.
    """

    subjects: int
    runs: int
    clips: int
    clip_seconds: float
    tr: float
    voxel_size: float
    t1w_voxel_size: float
    fov_mm: float
    slices: int
    multiband: int = 1
    slice_order: str = "interleaved"
    snr: float = 1.0
    tsnr: float = 50.0
    ar_coefficient: float = 0.3
    drift_percent: float = 1.0
    layers: tuple[int, ...] = DEFAULT_LAYERS
    centers: tuple[tuple[float, float, float], ...] = DEFAULT_CENTERS
    radius_mm: float = 10.0
    signal_model: str = "geometry"
    max_motion_mm: float = 2.0
    max_rotation_deg: float = 2.0
    max_warp_mm: float = 4.0
    head_rotation_deg: float = 6.0
    head_shift_mm: float = 6.0
    head_scale: float = 0.06
    bias_percent: float = 20.0
    dropout: float = 0.75
    gap_seconds: tuple[float, float] = (6.0, 10.0)
    lead_in_seconds: float = 4.0
    rest_seconds: float = 10.0
    echo_time: float = 0.039
    dtype: str = "int16"
    weights: str | None = None
    device: str = "cpu"
    clip_durations: tuple[float, ...] = ()
    duration_scale: float = 1.0
    audio_rate: int = 16000
    audio_channels: int = 1
    task_sidecar: bool = False

    @property
    def durations(self) -> tuple[float, ...]:
        """Seconds of each clip: ``clip_durations`` (else ``clip_seconds``) times the scale."""
        base = self.clip_durations or (self.clip_seconds,) * self.clips
        return tuple(round(float(d) * self.duration_scale, 6) for d in base)

    @property
    def matrix(self) -> int:
        """In-plane voxels of the BOLD images: the field of view over the voxel size."""
        return int(math.floor(self.fov_mm / self.voxel_size + 0.5))

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as JSON-ready plain types (tuples become lists)."""

        def plain(value: Any) -> Any:
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            return value

        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}


PRESETS: dict[str, dict[str, Any]] = {
    # 22 s clips at TR 2 s give 11 TRs per trial; after the study's 6 s (3 TRs) are dropped,
    # 4 clips stack to 32 TRs, enough for a 32 x 32 RDM whose upper triangle (496 pairs)
    # makes the layer correlations stable.  10 s clips would leave only 8 TRs in total.
    "tiny": dict(
        subjects=2, runs=2, clips=4, clip_seconds=22.0, tr=2.0, voxel_size=4.0,
        t1w_voxel_size=2.0, fov_mm=200.0, slices=38, multiband=1, snr=2.0, tsnr=50.0,
        ar_coefficient=0.2, radius_mm=12.0, gap_seconds=(4.0, 6.0), rest_seconds=8.0,
    ),
    "study": dict(
        subjects=6, runs=8, clips=16, clip_seconds=29.0, tr=0.735, voxel_size=2.4,
        t1w_voxel_size=1.0, fov_mm=210.0, slices=64, multiband=8, snr=0.5, tsnr=50.0,
        ar_coefficient=0.5, radius_mm=10.0, gap_seconds=(6.0, 10.0), rest_seconds=12.0,
    ),
    # Whole songs as in OpenNeuro ds004007: eight lengths, two pieces of each.
    "naturalistic": dict(
        subjects=25, runs=2, clips=16, clip_seconds=180.0,
        clip_durations=tuple(float(d) for d in (89, 89, 90, 90, 134, 134, 135, 135,
                                                179, 179, 180, 180, 224, 224, 225, 225)),
        tr=1.0, voxel_size=2.0, t1w_voxel_size=1.0, fov_mm=208.0, slices=72, multiband=8,
        snr=0.5, tsnr=50.0, ar_coefficient=0.5, radius_mm=10.0, gap_seconds=(2.0, 4.0),
        rest_seconds=10.0, audio_rate=44100, audio_channels=2, task_sidecar=True,
    ),
}
"""Named parameter sets; any field can be overridden."""


def _check(condition: bool, message: str, fix: str) -> None:
    if not condition:
        raise UsageError(message, fix=fix)


def make_params(preset: str = "tiny", **overrides: Any) -> SimulationParams:
    """Return a preset's parameters with ``overrides`` applied, validated.

    Parameters
    ----------
    preset : {'tiny', 'study'}
        The starting parameter set.
    **overrides
        Any field of :class:`SimulationParams`; ``None`` values are ignored, so a command
        line can pass every option.  When only ``layers`` is given with fewer entries than
        the default centres, the first centres are used, and the other way round.

    Returns
    -------
    SimulationParams
        The validated parameters.

    Raises
    ------
    UsageError
        For an unknown preset or field, or a value out of range.
    """
    if preset not in PRESETS:
        raise UsageError(f"Unknown preset {preset!r}", fix=f"use one of {', '.join(PRESETS)}")
    known = {f.name for f in fields(SimulationParams)}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - known)
    _check(not unknown, f"Unknown simulation parameter(s): {', '.join(unknown)}",
           f"use only {', '.join(sorted(known))}")
    values = {**PRESETS[preset], **overrides}
    if "layers" in values:
        values["layers"] = tuple(int(k) for k in values["layers"])
    if "centers" in values:
        values["centers"] = tuple(tuple(float(c) for c in xyz) for xyz in values["centers"])
    # Giving only layers (or only centres) takes the first defaults of the other.
    if "centers" not in values and len(values.get("layers", ())) <= len(DEFAULT_CENTERS):
        values["centers"] = DEFAULT_CENTERS[: len(values.get("layers", DEFAULT_LAYERS))]
    if "layers" not in values and len(values.get("centers", ())) <= len(DEFAULT_LAYERS):
        values["layers"] = DEFAULT_LAYERS[: len(values.get("centers", DEFAULT_CENTERS))]
    if "gap_seconds" in values:
        values["gap_seconds"] = tuple(float(g) for g in values["gap_seconds"])
    if values.get("clip_durations"):
        values["clip_durations"] = tuple(float(d) for d in values["clip_durations"])
        if "clips" not in overrides:
            values["clips"] = len(values["clip_durations"])
        elif len(values["clip_durations"]) != values["clips"]:
            # Fewer clips than the preset's pieces: the first ones.
            values["clip_durations"] = values["clip_durations"][: values["clips"]]
    params = SimulationParams(**values)
    validate(params)
    return params


def validate(params: SimulationParams) -> None:
    """Raise :class:`UsageError` if a parameter is out of range or inconsistent.

    Parameters
    ----------
    params : SimulationParams
        The parameters to check.
    """
    p = params
    for name in ("subjects", "runs", "clips", "slices", "multiband"):
        _check(getattr(p, name) >= 1, f"--{name.replace('_', '-')} must be at least 1",
               "give a positive whole number")
    _check(p.subjects <= 99, "At most 99 subjects are supported", "use --subjects 99 or fewer")
    _check(p.duration_scale > 0, "--duration-scale must be positive", "give e.g. 0.1")
    _check(not p.clip_durations or len(p.clip_durations) == p.clips,
           f"{len(p.clip_durations)} clip durations were given for {p.clips} clips",
           "give one --clip-durations entry per clip")
    _check(min(p.durations) >= MIN_CLIP_SECONDS,
           f"Clips of {min(p.durations)} s are shorter than the network's "
           f"{MIN_CLIP_SECONDS} s window",
           f"use clips of {MIN_CLIP_SECONDS} s or more (--clip-seconds, --duration-scale)")
    _check(p.audio_rate >= 16000 and p.audio_channels in (1, 2),
           "Stimuli are written at 16 kHz or more, mono or stereo",
           "give --audio-rate 16000 or more and --audio-channels 1 or 2")
    _check(p.tr >= 0.064, f"TR {p.tr} s is below the network's 0.064 s frame grid",
           "give --tr in seconds")
    _check(p.voxel_size >= 1.0 and p.t1w_voxel_size >= 0.5,
           "Voxel sizes must be at least 1 mm (BOLD) and 0.5 mm (T1w)",
           "check --voxel-size and --t1w-voxel-size (mm)")
    _check(p.matrix >= 8, f"A {p.fov_mm} mm field of view holds fewer than 8 voxels",
           "increase --fov or decrease --voxel-size")
    _check(p.slices % p.multiband == 0,
           f"{p.slices} slices cannot be split into {p.multiband} simultaneous bands",
           "choose --slices as a multiple of --multiband")
    _check(p.slice_order in ("interleaved", "ascending"),
           f"Unknown slice order {p.slice_order!r}", "use 'interleaved' or 'ascending'")
    _check(len(p.layers) == len(p.centers) and len(p.layers) >= 1,
           f"{len(p.layers)} layers were given for {len(p.centers)} sphere centres",
           "give one --layers entry per --center")
    _check(all(1 <= k <= N_LAYERS for k in p.layers),
           f"Layers must be between 1 and {N_LAYERS}, not {list(p.layers)}",
           "number layers 1 (conv1) to 10 (fc)")
    _check(all(len(c) == 3 for c in p.centers), "Every centre needs x, y and z",
           "write centres as X,Y,Z in MNI mm")
    _check(p.radius_mm > 0, "The sphere radius must be positive", "give --radius in mm")
    for i, a in enumerate(p.centers):
        for b in p.centers[i + 1:]:
            _check(math.dist(a, b) >= 2 * p.radius_mm,
                   f"Spheres at {a} and {b} overlap with radius {p.radius_mm} mm",
                   "move the centres apart or reduce --radius")
    _check(p.snr >= 0 and p.tsnr > 0, "SNR must be non-negative and tSNR positive",
           "use --snr 0 for a dataset without signal")
    _check(0 <= p.ar_coefficient < 1, "The AR(1) coefficient must be in [0, 1)",
           "give --ar-coefficient such as 0.3")
    for name in ("max_motion_mm", "max_rotation_deg", "max_warp_mm", "head_rotation_deg",
                 "head_shift_mm", "drift_percent", "bias_percent", "lead_in_seconds",
                 "rest_seconds"):
        _check(getattr(p, name) >= 0, f"--{name.replace('_', '-')} must not be negative",
               "give zero or a positive number")
    _check(p.max_rotation_deg <= 20 and p.head_rotation_deg <= 30 and p.max_warp_mm <= 10,
           "Rotations above 20 degrees (motion) or 30 (head) or warps above 10 mm "
           "are not supported", "use smaller values")
    _check(0 <= p.head_scale < 0.3 and 0 <= p.dropout <= 1,
           "--head-scale must be in [0, 0.3) and --dropout in [0, 1]", "use smaller values")
    _check(len(p.gap_seconds) == 2 and 0 <= p.gap_seconds[0] <= p.gap_seconds[1],
           f"Invalid gap between trials {p.gap_seconds}", "give MIN MAX seconds, MIN <= MAX")
    _check(p.signal_model in SIGNAL_MODELS, f"Unknown signal model {p.signal_model!r}",
           "use " + " or ".join(SIGNAL_MODELS))
    _check(p.dtype in ("int16", "float32"), f"Unknown data type {p.dtype!r}",
           "use int16 or float32")
    _check(p.device in ("auto", "cpu", "cuda"), f"Unknown device {p.device!r}",
           "use auto, cpu or cuda")


def replace(params: SimulationParams, **changes: Any) -> SimulationParams:
    """Return a validated copy of ``params`` with ``changes`` applied.

    Parameters
    ----------
    params : SimulationParams
        The parameters to start from.
    **changes
        Fields to change.

    Returns
    -------
    SimulationParams
        The new parameters.
    """
    new = dataclasses.replace(params, **changes)
    validate(new)
    return new
