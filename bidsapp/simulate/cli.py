"""``bidsapp simulate OUTPUT_DIR --preset {tiny,study,naturalistic} --seed N [overrides]``.

Registered in :data:`bidsapp.cli.run.TOOLS`; errors are :class:`~bidsapp.errors.BidsAppError`
subclasses, which ``bidsapp`` turns into one paragraph and the exit code (64 usage, 66
missing weights, 73 cannot write).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from bidsapp.errors import UsageError

from .presets import PRESETS, make_params

LOGGER = logging.getLogger("bidsapp.simulate")


class _ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become :class:`UsageError` (exit 64), not exit 2."""

    def error(self, message: str):  # noqa: D102 - argparse's own contract
        raise UsageError(f"Invalid command line: {message}",
                         fix=f"run '{self.prog} --help' for the options")


def _number(kind, minimum: float | None = None):
    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a valid {kind.__name__}") from None
        if minimum is not None and number < minimum:
            raise argparse.ArgumentTypeError(f"{value!r} must be at least {minimum}")
        return number

    parse.__name__ = kind.__name__
    return parse


def _center(value: str) -> tuple[float, float, float]:
    parts = value.replace(" ", ",").split(",")
    parts = [p for p in parts if p]
    try:
        xyz = tuple(float(p) for p in parts)
    except ValueError:
        xyz = ()
    if len(xyz) != 3:
        raise argparse.ArgumentTypeError(f"{value!r} is not X,Y,Z in mm (e.g. -44,-22,8)")
    return xyz


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``bidsapp simulate``; every option defaults to the preset."""
    tiny, study = PRESETS["tiny"], PRESETS["study"]
    parser = _ArgumentParser(
        prog="bidsapp simulate",
        description="Write a BIDS dataset of music-listening fMRI with planted motion, warps, "
                    "slice timing and network-layer signals, and its ground truth in "
                    "derivatives/truth. Options left out take the preset's value.",
        epilog=f"Presets: tiny = {tiny['subjects']} subjects x {tiny['runs']} runs of "
               f"{tiny['clips']} clips x {tiny['clip_seconds']} s, TR {tiny['tr']} s, "
               f"{tiny['voxel_size']} mm; study = {study['subjects']} x {study['runs']} runs of "
               f"{study['clips']} clips x {study['clip_seconds']} s, TR {study['tr']} s, "
               f"{study['voxel_size']} mm, multiband {study['multiband']}; naturalistic = "
               "25 x 2 runs of 16 whole songs of 89-225 s, TR 1 s, 2 mm, 44.1 kHz stereo. "
               "See docs/simulate.md.")
    parser.add_argument("output_dir", type=Path, help="the dataset folder to write")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny",
                        help="starting parameters (default: tiny)")
    parser.add_argument("--seed", metavar="N", type=_number(int, 0), default=0,
                        help="fixes every random choice; same seed, same bytes (default: 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty folder that is not an earlier simulation")
    parser.add_argument("--print-params", action="store_true",
                        help="print the resolved parameters as JSON and exit")
    parser.add_argument("--nprocs", metavar="N", type=_number(int, 1), default=1,
                        help="subjects simulated at once, one process each; the files do not "
                             "depend on it (default: 1)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more output, and tracebacks for errors")

    design = parser.add_argument_group("design and acquisition")
    design.add_argument("--subjects", metavar="N", type=_number(int, 1))
    design.add_argument("--runs", metavar="N", type=_number(int, 1), help="runs per subject")
    design.add_argument("--clips", metavar="N", type=_number(int, 1),
                        help="clips, all played in every run")
    design.add_argument("--clip-seconds", metavar="S", type=_number(float),
                        help="duration of each clip")
    design.add_argument("--clip-durations", metavar="S", type=_number(float), nargs="+",
                        help="duration of each clip, one per clip (pieces of unequal length)")
    design.add_argument("--duration-scale", metavar="F", type=_number(float),
                        help="multiply every clip's duration, e.g. 0.1 to shorten the "
                             "naturalistic preset's songs for a quick run")
    design.add_argument("--audio-rate", metavar="HZ", type=_number(int, 16000),
                        help="sample rate of the stimulus files (made at 16 kHz, resampled)")
    design.add_argument("--audio-channels", metavar="N", type=int, choices=(1, 2),
                        help="1 (mono) or 2 (stereo)")
    design.add_argument("--gap-seconds", type=_number(float, 0), nargs=2, metavar=("MIN", "MAX"),
                        help="random pause after each clip (the ratings)")
    design.add_argument("--lead-in", metavar="S", dest="lead_in_seconds", type=_number(float, 0),
                        help="seconds before the first clip")
    design.add_argument("--rest", metavar="S", dest="rest_seconds", type=_number(float, 0),
                        help="seconds after the last clip")
    design.add_argument("--tr", metavar="S", type=_number(float),
                        help="repetition time in seconds")
    design.add_argument("--voxel-size", metavar="MM", type=_number(float),
                        help="BOLD voxel size in mm")
    design.add_argument("--t1w-voxel-size", metavar="MM", type=_number(float),
                        help="T1w voxel size in mm")
    design.add_argument("--fov", metavar="MM", dest="fov_mm", type=_number(float),
                        help="in-plane BOLD field of view in mm")
    design.add_argument("--slices", metavar="N", type=_number(int, 1), help="BOLD slices")
    design.add_argument("--multiband", metavar="N", type=_number(int, 1),
                        help="simultaneous-multislice factor (divides --slices)")
    design.add_argument("--slice-order", choices=("interleaved", "ascending"))
    design.add_argument("--echo-time", metavar="S", type=_number(float),
                        help="seconds (metadata only)")
    design.add_argument("--dtype", choices=("int16", "float32"), help="BOLD storage type")

    signal = parser.add_argument_group("planted signal and noise")
    signal.add_argument("--snr", metavar="F", type=_number(float, 0),
                        help="signal sd over noise sd in the spheres (0: no signal)")
    signal.add_argument("--tsnr", metavar="F", type=_number(float),
                        help="mean brain intensity over noise sd")
    signal.add_argument("--layers", type=_number(int), nargs="+", metavar="K",
                        help="layer (1 = conv1 ... 10 = fc) of each sphere")
    signal.add_argument("--center", dest="centers", type=_center, action="append",
                        metavar="X,Y,Z", help="a sphere centre in MNI mm; repeat per sphere; "
                        "write --center=-44,-22,8 when X is negative")
    signal.add_argument("--radius", metavar="MM", dest="radius_mm", type=_number(float),
                        help="sphere radius in mm")
    signal.add_argument("--signal-model", choices=("geometry", "mixture"),
                        help="geometry (default): voxel patterns carry the layer's RDM as "
                        "the analysis measures it; mixture: random mixtures of its units")
    signal.add_argument("--ar-coefficient", metavar="F", type=_number(float, 0),
                        help="lag-one autocorrelation of the noise")
    signal.add_argument("--drift-percent", metavar="P", type=_number(float, 0),
                        help="slow drift size")

    head = parser.add_argument_group("anatomy and motion")
    head.add_argument("--max-motion-mm", metavar="MM", type=_number(float, 0),
                      help="largest translation per axis during a run")
    head.add_argument("--max-rotation-deg", metavar="DEG", type=_number(float, 0),
                      help="largest rotation per axis during a run")
    head.add_argument("--max-warp-mm", metavar="MM", type=_number(float, 0),
                      help="largest nonlinear displacement of the anatomy")
    head.add_argument("--head-rotation-deg", metavar="DEG", type=_number(float, 0),
                      help="head pose: rotation per axis of the subject affine")
    head.add_argument("--head-shift-mm", metavar="MM", type=_number(float, 0),
                      help="head pose: translation per axis of the subject affine")
    head.add_argument("--head-scale", metavar="F", type=_number(float, 0),
                      help="relative head size change per axis (0.06 = up to 6%%)")
    head.add_argument("--bias-percent", metavar="P", type=_number(float, 0),
                      help="intensity bias field (T1w) and coil sensitivity (BOLD) size")
    head.add_argument("--dropout", metavar="F", type=_number(float, 0),
                      help="susceptibility dropout depth, 0-1")

    network = parser.add_argument_group("network")
    network.add_argument("--weights", metavar="PATH",
                         help="the network's .safetensors (default: models/)")
    network.add_argument("--device", choices=("auto", "cpu", "cuda"),
                         help="where the network runs (default: cpu, for identical bytes)")
    return parser


_NOT_PARAMS = {"output_dir", "preset", "seed", "overwrite", "print_params", "verbose", "nprocs"}


def main(argv: list[str] | None = None) -> int:
    """Run ``bidsapp simulate`` and return its exit code.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after ``simulate``.

    Returns
    -------
    int
        0 on success.

    Raises
    ------
    BidsAppError
        For every user error; ``bidsapp`` maps it to its exit code.
    """
    opts = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(opts).items() if k not in _NOT_PARAMS and v is not None}
    if opts.print_params:
        params = make_params(opts.preset, **overrides)
        print(json.dumps({"preset": opts.preset, "seed": opts.seed, **params.to_dict()},
                         indent=2, sort_keys=True))
        return 0
    # the simulator's modules load torch and nilearn: not for --help or --print-params
    from .core import simulate

    root = simulate(opts.output_dir, opts.preset, opts.seed, overwrite=opts.overwrite,
                    n_procs=opts.nprocs, **overrides)
    print(f"simulate: wrote {root}")
    return 0
