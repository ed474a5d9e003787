"""The BIDS-Apps command line: ``bidsapp bids_dir output_dir {participant,group} [options]``.

Built in one :func:`build_parser`, with argument groups as in fMRIPrep.  Tools that are not
an analysis level (``simulate``, ``train``, ...) are separate sub-programs registered in
:data:`bidsapp.cli.run.TOOLS`, so the positional BIDS-Apps form never changes.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import yaml

from bidsapp import __version__
from bidsapp.config import DEFAULT_RES, DEFAULT_SPACE, Config, load_config_file
from bidsapp.errors import MissingInputError, UsageError
from bidsapp.labels import strip_prefix


class _ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become :class:`UsageError` (exit 64), not exit 2."""

    def error(self, message: str):  # noqa: D102 - argparse's own contract
        raise UsageError(
            f"Invalid command line: {message}", fix=f"run '{self.prog} --help' for the options"
        )


def _int_at_least(minimum: int):
    """Return an argparse type: an integer no smaller than ``minimum``."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"{value!r} must be at least {minimum}")
        return number

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be positive")
    return number


def _non_negative_float(value: str) -> float:
    number = _positive_float(value) if value.strip() not in {"0", "0.0"} else 0.0
    return number


def _fraction(value: str) -> float:
    number = _positive_float(value) if value.strip() not in {"0", "0.0"} else 0.0
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be between 0 and 1")
    return number


#: GB per unit of ``--mem``; a bare number is MB, as fMRIPrep's ``--mem`` (``--mem-mb``).
_MEM_UNITS = {"": 1 / 1024, "g": 1.0, "gb": 1.0, "m": 1 / 1024, "mb": 1 / 1024, "t": 1024,
              "tb": 1024}


def parse_memory(value: str) -> float:
    """Parse a memory amount such as ``16000`` (MB), ``8G``, ``8GB`` or ``8000MB`` into GB.

    Parameters
    ----------
    value : str
        A number with an optional unit; no unit means MB, as in fMRIPrep.

    Returns
    -------
    float
        The amount in GB.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", value)
    if not match or match.group(2).lower() not in _MEM_UNITS:
        raise argparse.ArgumentTypeError(f"{value!r} is not a memory amount such as 8GB")
    amount = float(match.group(1)) * _MEM_UNITS[match.group(2).lower()]
    if amount <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be positive")
    return amount


def _derivative(value: str) -> tuple[str, str]:
    name, sep, path = value.partition("=")
    if not sep:
        # fMRIPrep also accepts a bare path and names it after its folder.
        name, path = Path(value).name, value
    if not name or not path:
        raise argparse.ArgumentTypeError(f"{value!r} is not of the form name=path")
    return name, path


class _DefaultsOnceFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Add "(default: X)" only where the help does not say it and there is a real default.

    Options default to ``None`` so that a config file can fill them; argparse's own
    formatter would print "(default: None)" after the help's own "(default: all cores)".
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def build_parser(prog: str = "bidsapp") -> argparse.ArgumentParser:
    """Build the BIDS-Apps argument parser.

    Parameters
    ----------
    prog : str
        The program name shown in help and error messages.

    Returns
    -------
    argparse.ArgumentParser
        A parser whose errors raise :class:`~bidsapp.errors.UsageError`.
    """
    parser = _ArgumentParser(
        prog=prog,
        description=(
            "Searchlight RSA of a 1D ResNet-18's layers against fMRI of music listening. "
            "Other tools: 'bidsapp simulate|train|evaluate|templates --help'."
        ),
        formatter_class=_DefaultsOnceFormatter,
    )
    parser.add_argument("bids_dir", type=Path, help="the root folder of a BIDS dataset")
    parser.add_argument("output_dir", type=Path, help="where the derivatives are written")
    parser.add_argument(
        "analysis_level", choices=["participant", "group"], help="processing stage to run"
    )
    parser.add_argument("--version", action="version", version=f"bidsapp {__version__}")

    g_bids = parser.add_argument_group("Options for filtering BIDS queries")
    g_bids.add_argument(
        "--participant-label", "--participant_label", dest="participant_label", nargs="+",
        metavar="LABEL", help="participants to analyse, with or without 'sub-' (default: all)",
    )
    g_bids.add_argument(
        "--session-label", "--session_label", dest="session_label", nargs="+", metavar="LABEL",
        help="sessions to analyse, with or without 'ses-' (default: all)",
    )
    g_bids.add_argument(
        "--task", "-t", nargs="+", metavar="TASK",
        help="tasks to analyse (default: every task whose events carry stim_file)",
    )
    g_bids.add_argument(
        "--bids-filter-file", dest="bids_filter_file", type=Path, metavar="FILE",
        help="a JSON file of pybids queries per data type ('t1w', 'bold'), as in fMRIPrep",
    )
    g_bids.add_argument(
        "-d", "--derivatives", type=_derivative, nargs="+", metavar="NAME=PATH",
        help="precomputed derivatives, e.g. fmriprep=/path (skips our preprocessing)",
    )
    g_bids.add_argument(
        "--skip-bids-validation", "--skip_bids_validation", dest="skip_bids_validation",
        action="store_true", default=None, help="do not run the BIDS validator on the input",
    )

    g_perf = parser.add_argument_group("Options to handle performance")
    g_perf.add_argument("--nprocs", "--n-cpus", type=_positive_int, metavar="N",
                        help="processes nipype may run at once (default: all cores)")
    g_perf.add_argument("--omp-nthreads", type=_positive_int, metavar="N",
                        help="threads each step may use (default: min(nprocs, 8))")
    g_perf.add_argument("--mem", "--mem-mb", "--mem_mb", dest="mem_gb", type=parse_memory,
                        metavar="MEM", help="memory limit for all processes: a number of MB "
                        "as in fMRIPrep (16000), or with a unit (16GB)")
    g_perf.add_argument("--use-plugin", type=Path, metavar="YAML",
                        help="a nipype plugin file (e.g. SLURMGraph) to run the workflow with")
    g_perf.add_argument("--searchlight-jobs", type=_positive_int, metavar="N",
                        help="split each participant's searchlight (and its permutation "
                             "null) into N jobs that share the centres; with a graph plugin "
                             "(--use-plugin, e.g. SLURMGraph) each is its own cluster job, "
                             "so they run side by side on as many nodes; same outputs for "
                             "any N (default: 1)")
    g_perf.add_argument("--device", choices=["auto", "cpu", "cuda"],
                        help="where the network and the searchlight run (default: auto)")

    g_wf = parser.add_argument_group("Workflow configuration")
    g_wf.add_argument("--output-spaces", "--output-space", dest="output_space", metavar="SPACE",
                      help=f"TemplateFlow template of the outputs (default: {DEFAULT_SPACE})")
    g_wf.add_argument("--output-res", type=_positive_float, metavar="MM",
                      help=f"voxel size of the outputs in mm (default: {DEFAULT_RES})")
    g_wf.add_argument("--searchlight-size", type=_positive_int, metavar="N",
                      help="voxels in each searchlight neighbourhood (default: 100)")
    g_wf.add_argument("--slice-time-ref", type=_fraction, metavar="FRACTION",
                      help="slice-timing reference as a fraction of the TR (default: 0.5)")
    g_wf.add_argument("--repetition-time", type=_positive_float, metavar="SECONDS",
                      help="the true TR of every selected BOLD run, used instead of "
                           "RepetitionTime, VolumeTiming and the NIfTI header when these "
                           "are known to be wrong (e.g. dcm2niix's Philips TR); a warning "
                           "names every value it replaces (default: the sidecar's)")
    g_wf.add_argument("--normalization-quality", choices=["default", "fast"],
                      help="T1w-to-template SyN at 1 mm (default) or 2 mm (fast, for tests "
                           "and demos)")
    g_wf.add_argument("--interpolation", choices=["cubic", "trilinear"],
                      help="resampling of the BOLD series to the template: cubic B-splines "
                           "(default) or trilinear (about half the time, slightly smoother)")
    g_wf.add_argument("--fdr-q", type=_fraction, metavar="Q",
                      help="FDR level, divided by the number of layers (default: 0.05)")
    g_wf.add_argument("--n-permutations", type=_non_negative_int, metavar="K",
                      help="trial-block permutations per participant for the group level's "
                           "unbiased test of the maximum; at the study's size each costs "
                           "about 0.28 of the searchlight's time, 0 skips them (default: 100)")
    g_wf.add_argument("--drop-seconds", type=_non_negative_float, metavar="S",
                      help="seconds dropped at the start of every trial, in the BOLD patterns "
                           "and the candidate RDMs alike: the study's 6 s let the "
                           "haemodynamic response to sound onset pass (default: 6)")

    g_other = parser.add_argument_group("Other options")
    g_other.add_argument("-w", "--work-dir", type=Path, metavar="DIR",
                         help="where intermediate results are kept; a rerun resumes from it")
    g_other.add_argument("--stop-on-first-crash", action="store_true", default=None,
                         help="stop at the first failing node instead of running the rest")
    g_other.add_argument("--boilerplate-only", "--boilerplate_only", action="store_true",
                         default=None, help="check the inputs, build the workflow and write "
                         "logs/CITATION.md, without running it")
    g_other.add_argument("--reports-only", action="store_true", default=None,
                         help="write the participants' HTML reports from the outputs of an "
                              "earlier run, without running anything")
    g_other.add_argument("--write-graph", action="store_true", default=None,
                         help="write the workflow graph (Graphviz .dot) into the work folder")
    g_other.add_argument("--resource-monitor", action="store_true", default=None,
                         help="record each step's memory and CPU use (nipype's resource "
                              "monitor) in its result in the work folder")
    g_other.add_argument("--clean-workdir", action="store_true", default=None,
                         help="empty the work folder before running (no resuming)")
    g_other.add_argument("--random-seed", type=int, metavar="SEED",
                         help="seed for every random choice (default: 0)")
    g_other.add_argument("--config-file", type=Path, metavar="TOML",
                         help="options saved by an earlier run (logs/config-*.toml); "
                              "command-line options override it")
    g_other.add_argument("-v", "--verbose", action="count", default=0,
                         help="more output; -v also shows tracebacks")
    return parser


def _read_filter_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MissingInputError(
            "The BIDS filter file does not exist", path=path, fix="check --bids-filter-file"
        )
    try:
        filters = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"The BIDS filter file is not valid JSON ({exc})", path=path,
                         fix="write a JSON object such as {\"bold\": {\"acquisition\": \"mb\"}}"
                         ) from exc
    if not isinstance(filters, dict) or not all(isinstance(v, dict) for v in filters.values()):
        raise UsageError("The BIDS filter file must map data types to query objects", path=path,
                         fix="write a JSON object such as {\"bold\": {\"acquisition\": \"mb\"}}")
    return filters


def _check_plugin(path: Path) -> None:
    if not path.is_file():
        raise MissingInputError("The nipype plugin file does not exist", path=path,
                                fix="check --use-plugin")
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UsageError(f"The nipype plugin file is not valid YAML ({exc})", path=path,
                         fix="see docs/hpc.md for an example") from exc
    if not isinstance(content, dict) or "plugin" not in content:
        raise UsageError("The nipype plugin file has no 'plugin' key", path=path,
                         fix="write e.g. 'plugin: SLURMGraph' and 'plugin_args: {...}'")


def _check_dirs(bids_dir: Path, output_dir: Path, work_dir: Path | None) -> None:
    if not bids_dir.exists():
        raise MissingInputError(
            "The BIDS dataset folder does not exist", path=bids_dir,
            fix="give the path of a BIDS dataset as the first argument (in a container, "
                "check the -v/--bind mount)",
        )
    if not bids_dir.is_dir():
        raise UsageError("The BIDS dataset path is not a folder", path=bids_dir,
                         fix="give the dataset's root folder as the first argument")
    if output_dir == bids_dir:
        raise UsageError(
            "The output folder is the BIDS dataset folder; derivatives would overwrite raw data",
            path=output_dir,
            fix="choose another output folder, e.g. <bids_dir>/derivatives/bidsapp",
        )
    derivatives = bids_dir / "derivatives"
    if bids_dir in output_dir.parents and derivatives not in output_dir.parents:
        # The validator would read the derivatives as raw data on the next run (exit 16).
        raise UsageError(
            "The output folder is inside the BIDS dataset folder but not under its "
            "derivatives/ folder, where BIDS keeps processed data", path=output_dir,
            fix=f"write to {derivatives / 'bidsapp'} or to a folder outside the dataset")
    if work_dir is not None and (work_dir == bids_dir or bids_dir in work_dir.parents):
        raise UsageError(
            "The work folder is inside the BIDS dataset folder", path=work_dir,
            fix="choose a work folder outside the dataset, e.g. /tmp/work",
        )


def parse_args(argv: list[str] | None = None, prog: str = "bidsapp") -> Config:
    """Parse the command line into a :class:`~bidsapp.config.Config`.

    Options from ``--config-file`` are read first; the command line overrides them.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).
    prog : str
        The program name for messages.

    Returns
    -------
    Config
        The frozen configuration of this run, with absolute paths.

    Raises
    ------
    UsageError, MissingInputError
        With exit codes 64 and 66.
    """
    opts = build_parser(prog).parse_args(argv)
    values: dict[str, Any] = load_config_file(opts.config_file) if opts.config_file else {}
    # A saved config describes another run's paths and level; the positionals always win.
    values.update(
        bids_dir=opts.bids_dir.expanduser().absolute(),
        output_dir=opts.output_dir.expanduser().absolute(),
        analysis_level=opts.analysis_level,
    )
    for key in ("nprocs", "omp_nthreads", "mem_gb", "skip_bids_validation",
                "stop_on_first_crash", "boilerplate_only", "reports_only", "write_graph",
                "resource_monitor", "clean_workdir", "random_seed", "device", "output_space",
                "output_res", "searchlight_size", "searchlight_jobs", "slice_time_ref", "fdr_q",
                "normalization_quality",
                "interpolation", "n_permutations", "drop_seconds", "repetition_time"):
        value = getattr(opts, key)
        if value is not None:
            values[key] = value
    if opts.verbose:
        values["verbose"] = opts.verbose
    if opts.participant_label:
        values["participant_label"] = [strip_prefix(lbl) for lbl in opts.participant_label]
    if opts.session_label:
        values["session_label"] = [strip_prefix(lbl, "ses") for lbl in opts.session_label]
    if opts.task:
        values["task"] = [strip_prefix(t, "task") for t in opts.task]
    if opts.work_dir is not None:
        values["work_dir"] = opts.work_dir.expanduser().absolute()
    if opts.use_plugin is not None:
        values["use_plugin"] = opts.use_plugin.expanduser().absolute()
    if opts.bids_filter_file is not None:
        values["bids_filter_file"] = opts.bids_filter_file.expanduser().absolute()
    if opts.derivatives:
        values["derivatives"] = {name: path for name, path in opts.derivatives}
    config = Config.from_dict(values)

    _check_dirs(config.bids_dir, config.output_dir, config.work_dir)
    if config.bids_filter_file is not None:
        config = config.replace(bids_filters=_read_filter_file(config.bids_filter_file))
    if config.use_plugin is not None:
        _check_plugin(config.use_plugin)
    for name, path in config.derivatives.items():
        if not Path(path).is_dir():
            raise MissingInputError(f"The '{name}' derivatives folder does not exist", path=path,
                                    fix="check the -d/--derivatives name=path argument")
    if config.searchlight_jobs < 1:  # a config file's value; the command line checks its own
        raise UsageError(f"searchlight_jobs = {config.searchlight_jobs}: the searchlight needs "
                         "at least one job", fix="give --searchlight-jobs 1 or more")
    if config.mem_gb is not None and config.mem_gb < 1:
        raise UsageError(f"--mem {config.mem_gb:.2f} GB is too little to run anything",
                         fix="give at least 1GB")
    return config
