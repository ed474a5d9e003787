"""Collect what the method needs from a BIDS dataset, and check it before any computing.

Every problem found here ends the run early with one paragraph that names the file and
the fix, so that a cluster job never fails hours in on a typo in ``events.tsv``.
"""

from __future__ import annotations

import gzip
import logging
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import nibabel as nb
import numpy as np
import pandas as pd
from bids import BIDSLayout
from bids.layout import BIDSLayoutIndexer

from bidsapp.bids.timing import HEADER_TOLERANCE, resolve_repetition_time
from bidsapp.errors import BadDataError, MissingInputError, NothingSelected, UsageError

LOGGER = logging.getLogger("bidsapp.bids")

_NIFTI = [".nii", ".nii.gz"]
_REQUIRED_EVENT_COLUMNS = ("onset", "duration", "stim_file")
#: Relative tolerance between the TRs of runs of one task.
TR_TOLERANCE = HEADER_TOLERANCE
#: Bytes of image data decompressed and checked at a time.
_SCAN_CHUNK = 1 << 23
#: Data types of the per-run filters of ``--bids-filter-file`` that collection applies.
_FILTER_TYPES = ("t1w", "bold")


@dataclass(frozen=True)
class Trial:
    """One presentation of a stimulus, from ``events.tsv``."""

    onset: float
    duration: float
    stim_file: str
    trial_type: str | None = None


@dataclass(frozen=True)
class BoldRun:
    """One BOLD run with what the method needs from its sidecar and events."""

    path: Path
    events: Path
    repetition_time: float
    n_volumes: int
    trials: tuple[Trial, ...]
    metadata: dict[str, Any] = field(hash=False, compare=False)
    entities: dict[str, Any] = field(hash=False, compare=False)

    @property
    def task(self) -> str:
        """The BIDS ``task`` label of this run."""
        return self.entities["task"]


@dataclass(frozen=True)
class SubjectData:
    """Everything collected for one participant."""

    subject: str
    t1w: Path | None
    bold: tuple[BoldRun, ...]
    stimuli: dict[str, Path] = field(hash=False, compare=False)

    @property
    def tasks(self) -> list[str]:
        """The tasks with at least one BOLD run, sorted."""
        return sorted({run.task for run in self.bold})


def open_layout(bids_dir: Path, database_path: Path | None = None):
    """Index a BIDS dataset with pybids.

    Parameters
    ----------
    bids_dir : Path
        The dataset root.
    database_path : Path, optional
        Where pybids may cache its index (e.g. in the work directory).

    Returns
    -------
    bids.BIDSLayout
        The layout, indexed without validation (the BIDS validator runs separately).

    Raises
    ------
    MissingInputError
        If ``dataset_description.json`` is missing.
    BadDataError
        If pybids cannot index the folder.
    """
    bids_dir = Path(bids_dir)
    if not (bids_dir / "dataset_description.json").is_file():
        raise MissingInputError(
            "The input folder is not a BIDS dataset: dataset_description.json is missing",
            path=bids_dir / "dataset_description.json",
            fix="point bids_dir at the dataset root, the folder holding "
                "dataset_description.json and the sub-* folders",
        )
    try:
        # derivatives/ and stimuli/ are read by us, not indexed as raw data.
        indexer = BIDSLayoutIndexer(validate=False, ignore=["code", "stimuli", "sourcedata",
                                                            "derivatives", "models"])
        return BIDSLayout(bids_dir, indexer=indexer, database_path=database_path)
    except Exception as exc:  # pybids raises many types for unreadable datasets
        raise BadDataError(f"pybids could not index the dataset ({exc})", path=bids_dir,
                           fix="run the BIDS validator on the dataset and fix what it "
                               "reports") from exc


def _events_tasks(layout) -> list[str]:
    """Return the tasks whose events files carry a ``stim_file`` column."""
    tasks = set()
    for events in layout.get(suffix="events", extension=".tsv"):
        # Only the header matters here; a file that is not text fails in _read_trials,
        # with its name, rather than here with a decoding traceback.
        header = Path(events.path).read_text(errors="replace").split("\n", 1)[0].split("\t")
        if "stim_file" in [h.strip() for h in header] and "task" in events.entities:
            tasks.add(events.entities["task"])
    return sorted(tasks)


def _select_subjects(layout, labels: tuple[str, ...]) -> list[str]:
    available = sorted(layout.get_subjects())
    if not available:
        raise NothingSelected(
            "The dataset has no sub-* folders with data", path=layout.root,
            fix="check that bids_dir is the dataset root",
        )
    if not labels:
        return available
    unknown = [lbl for lbl in labels if lbl not in available]
    if unknown:
        shown = ", ".join(available[:20]) + (" ..." if len(available) > 20 else "")
        raise NothingSelected(
            f"Participant label(s) not found in the dataset: {', '.join(unknown)} "
            f"(available: {shown})",
            path=layout.root,
            fix="give labels that exist, with or without the sub- prefix",
        )
    return list(labels)


def _check_filters(layout, filters: dict[str, dict], filter_file: Path | None) -> None:
    """Try each query of the BIDS filter file once, so a misspelt entity names the file."""
    ignored = sorted(set(filters) - set(_FILTER_TYPES))
    if ignored:
        LOGGER.warning("The BIDS filter file %s has queries for %s, which bidsapp does not "
                       "use (it reads only %s)", filter_file, ", ".join(ignored),
                       ", ".join(_FILTER_TYPES))
    for data_type in _FILTER_TYPES:
        query = filters.get(data_type)
        if not query:
            continue
        try:
            layout.get(return_type="id", target="subject", **query)
        except (ValueError, TypeError) as exc:  # pybids' errors for unknown entities/values
            raise UsageError(
                f"The {data_type!r} query of the BIDS filter file is not a valid pybids "
                f"query ({exc})", path=filter_file,
                fix="use BIDS entity names as keys, e.g. {\"bold\": {\"acquisition\": "
                    "\"mb\"}}",
            ) from exc


def collect_participants(layout, config) -> list[SubjectData]:
    """Collect and check every selected participant.

    Parameters
    ----------
    layout : bids.BIDSLayout
        The indexed dataset (see :func:`open_layout`).
    config : bidsapp.config.Config
        Provides the participant, session and task filters and the BIDS filters.

    Returns
    -------
    list of SubjectData
        One entry per selected participant, in label order.

    Raises
    ------
    NothingSelected
        If the labels, sessions or tasks select no data (exit 18).
    UsageError
        If a query of the BIDS filter file is not one pybids accepts (exit 64).
    MissingInputError, BadDataError
        For missing or unusable inputs, the network's weights included (exits 66 and 65).
    """
    subjects = _select_subjects(layout, config.participant_label)
    _check_filters(layout, config.bids_filters, config.bids_filter_file)
    tasks = list(config.task) or _events_tasks(layout)
    if not tasks:
        raise NothingSelected(
            "No task has events with a stim_file column, so there is nothing to analyse",
            path=layout.root,
            fix="add a stim_file column (paths relative to stimuli/) to the *_events.tsv files",
        )
    known_tasks = set(layout.get_tasks())
    missing_tasks = [t for t in tasks if t not in known_tasks]
    if missing_tasks:
        raise NothingSelected(
            f"Task(s) not found in the dataset: {', '.join(missing_tasks)} "
            f"(available: {', '.join(sorted(known_tasks)) or 'none'})",
            path=layout.root, fix="check --task",
        )
    collected = [
        collect_subject(layout, subject, tasks=tasks, sessions=config.session_label,
                        filters=config.bids_filters, repetition_time=config.repetition_time)
        for subject in subjects
    ]
    return collected


def collect_subject(layout, subject: str, *, tasks: list[str],
                    sessions: tuple[str, ...] = (),
                    filters: dict[str, dict] | None = None,
                    repetition_time: float | None = None) -> SubjectData:
    """Collect one participant's T1w, BOLD runs, events and stimuli, and check them.

    Parameters
    ----------
    layout : bids.BIDSLayout
        The indexed dataset.
    subject : str
        The participant label, without ``sub-``.
    tasks : list of str
        The tasks to collect.
    sessions : tuple of str
        Sessions to restrict to (all when empty).
    filters : dict, optional
        Extra pybids queries per data type, keys ``t1w`` and ``bold``.
    repetition_time : float, optional
        ``--repetition-time``: the TR of every run, instead of the sidecars' (see
        :func:`bidsapp.bids.timing.resolve_repetition_time`).

    Returns
    -------
    SubjectData
        The checked inputs.
    """
    filters = filters or {}
    base: dict[str, Any] = {"subject": subject}
    if sessions:
        base["session"] = list(sessions)

    t1w_files = layout.get(**base, datatype="anat", suffix="T1w", extension=_NIFTI,
                           **filters.get("t1w", {}))
    if not t1w_files and sessions:
        # A T1w often lives in another session (or none); search the whole subject.
        t1w_files = layout.get(subject=subject, datatype="anat", suffix="T1w",
                               extension=_NIFTI, **filters.get("t1w", {}))
    t1w = Path(sorted(f.path for f in t1w_files)[0]) if t1w_files else None
    if t1w is None:
        raise MissingInputError(
            f"sub-{subject} has no T1w image", path=Path(layout.root) / f"sub-{subject}" / "anat",
            fix=f"add sub-{subject}/anat/sub-{subject}_T1w.nii.gz, or leave this participant "
                "out with --participant-label",
        )
    if len(t1w_files) > 1:
        LOGGER.warning("sub-%s has %d T1w images; using %s", subject, len(t1w_files), t1w.name)
    _check_t1w(t1w)

    bold_files = layout.get(**base, task=tasks, datatype="func", suffix="bold",
                            extension=_NIFTI, **filters.get("bold", {}))
    if not bold_files:
        raise NothingSelected(
            f"sub-{subject} has no BOLD runs for task(s) {', '.join(tasks)}",
            path=Path(layout.root) / f"sub-{subject}",
            fix="check --task, --session-label and --bids-filter-file",
        )
    stimuli_dir = Path(layout.root) / "stimuli"
    runs = [_collect_run(layout, bold, repetition_time) for bold in
            sorted(bold_files, key=lambda f: f.path)]
    _check_consistent_tr(runs)
    stimuli: dict[str, Path] = {}
    for run in runs:
        for trial in run.trials:
            stimuli.setdefault(trial.stim_file, _check_stimulus(trial.stim_file, stimuli_dir,
                                                                 run.events))
    return SubjectData(subject=subject, t1w=t1w, bold=tuple(runs), stimuli=stimuli)


def _collect_run(layout, bold, override: float | None = None) -> BoldRun:
    path = Path(bold.path)
    metadata = layout.get_metadata(bold.path)
    events = layout.get_nearest(bold.path, suffix="events", extension=".tsv", strict=True,
                                ignore_strict_entities=["suffix", "extension", "datatype"])
    if events is None:
        raise MissingInputError(
            "The BOLD run has no events file", path=path,
            fix=f"add {path.name.split('_bold')[0]}_events.tsv with onset, duration and "
                "stim_file columns",
        )
    events = Path(events)
    try:
        img = nb.load(path)
        shape = img.shape
    except Exception as exc:  # nibabel raises several types for corrupt headers
        raise BadDataError(f"The BOLD image cannot be read ({exc})", path=path,
                           fix="re-export the image from the scanner data (dcm2niix)") from exc
    if len(shape) != 4 or shape[3] < 2:
        raise BadDataError(
            f"The BOLD image is not a 4D time series (shape {shape})", path=path,
            fix="give the 4D run, one volume per TR, not a single volume",
        )
    tr = resolve_repetition_time(path, metadata, img, shape[3], override)
    _check_image_data(path, img, "BOLD image")
    if not metadata.get("SliceTiming"):
        LOGGER.warning("%s has no SliceTiming in its sidecar: slice-timing correction will be "
                       "skipped for this run (add SliceTiming, in seconds, to correct it)",
                       path.name)
    trials = _read_trials(events, shape[3], float(tr), path.name)
    return BoldRun(path=path, events=events, repetition_time=float(tr), n_volumes=shape[3],
                   trials=trials, metadata=metadata, entities=dict(bold.get_entities()))


def _check_t1w(t1w: Path) -> None:
    try:
        img = nb.load(t1w)
    except Exception as exc:  # nibabel raises several types for corrupt headers
        raise BadDataError(f"The T1w image cannot be read ({exc})", path=t1w,
                           fix="re-export the image from the scanner data (dcm2niix)") from exc
    if len(img.shape) != 3 and not (len(img.shape) == 4 and img.shape[3] == 1):
        raise BadDataError(f"The T1w image is not a 3D volume (shape {img.shape})", path=t1w,
                           fix="give one 3D T1-weighted volume per file")
    _check_image_data(t1w, img, "T1w image")


def _check_image_data(path: Path, img, what: str = "image") -> None:
    """Read a NIfTI file's data once, in chunks, and check that it is whole and finite.

    nibabel reads only the header when an image is loaded, so a truncated ``.nii.gz``
    (an interrupted copy) would otherwise pass every check and fail hours later, in the
    middle of preprocessing.  Non-finite values are an error rather than a warning:
    interpolation, z-scoring and Spearman correlations spread a single NaN silently into
    whole maps.  The file is decompressed once (about a second for a typical run) and
    never held in memory whole.

    Parameters
    ----------
    path : Path
        A ``.nii`` or ``.nii.gz`` file.
    img : nibabel.Nifti1Image
        The same file, loaded (header only).
    what : str
        How the message names the file (``"BOLD image"``).

    Raises
    ------
    BadDataError
        If the data are truncated or cannot be decompressed, or if a floating-point image
        holds NaN or infinite values.
    """
    dtype = np.dtype(img.header.get_data_dtype())
    expected = int(np.prod(img.shape, dtype=np.int64)) * dtype.itemsize
    volume_size = int(np.prod(img.shape[:3], dtype=np.int64))
    check_finite = dtype.kind in "fc"
    fix = "copy or re-export the file again (dcm2niix); it was probably cut off in transfer"
    opener = gzip.open if str(path).endswith(".gz") else open
    seen = checked = nonfinite = 0
    first_bad = None
    pending = b""
    try:
        with opener(path, "rb") as stream:
            # The loaded header's vox_offset reads 0; the array proxy keeps the file's.
            stream.seek(int(img.dataobj.offset))
            while seen < expected:
                chunk = stream.read(min(_SCAN_CHUNK, expected - seen))
                if not chunk:
                    break
                seen += len(chunk)
                if not check_finite:
                    continue
                pending += chunk
                usable = len(pending) - len(pending) % dtype.itemsize
                values = np.frombuffer(pending[:usable], dtype=dtype)
                bad = ~np.isfinite(values)
                if bad.any():
                    if first_bad is None:
                        first_bad = checked + int(np.argmax(bad))
                    nonfinite += int(bad.sum())
                checked += values.size
                pending = pending[usable:]
    except (OSError, EOFError, zlib.error) as exc:
        raise BadDataError(f"The {what}'s data cannot be read to the end ({exc})", path=path,
                           fix=fix) from exc
    if seen < expected:
        raise BadDataError(
            f"The {what} is truncated: its header describes {expected} bytes of data "
            f"(shape {img.shape}) but the file holds {seen}", path=path, fix=fix,
        )
    if nonfinite:
        where = f", the first in volume {first_bad // volume_size}" if len(img.shape) > 3 else ""
        raise BadDataError(
            f"The {what} holds {nonfinite} NaN or infinite value(s){where}", path=path,
            fix="re-export it from the scanner data; if the values lie outside the head, set "
                "them to 0",
        )


def _read_trials(events: Path, n_volumes: int, tr: float,
                 bold_name: str) -> tuple[Trial, ...]:
    run_length = n_volumes * tr
    try:
        table = pd.read_csv(events, sep="\t", na_values="n/a", keep_default_na=False,
                            dtype={"stim_file": str})
    except Exception as exc:  # pandas raises several types for malformed tables
        raise BadDataError(f"The events file cannot be read ({exc})", path=events,
                           fix="write a tab-separated table with a header row") from exc
    missing = [c for c in _REQUIRED_EVENT_COLUMNS if c not in table.columns]
    if missing:
        raise BadDataError(
            f"The events file lacks column(s) {', '.join(missing)}", path=events,
            fix="give onset, duration (seconds) and stim_file (relative to stimuli/)",
        )
    table = table.dropna(subset=["stim_file"])
    if table.empty:
        raise BadDataError("The events file lists no stimulus presentations", path=events,
                           fix="add one row per trial with onset, duration and stim_file")
    trials = []
    for row in table.itertuples(index=False):
        try:
            onset, duration = float(row.onset), float(row.duration)
        except (TypeError, ValueError):
            onset = duration = math.nan
        if not (math.isfinite(onset) and math.isfinite(duration)) or onset < 0 or duration <= 0:
            raise BadDataError(
                f"Invalid onset/duration ({row.onset}, {row.duration}) for {row.stim_file}",
                path=events, fix="give non-negative onsets and positive durations in seconds",
            )
        if onset + duration > run_length + 1e-6:
            raise BadDataError(
                f"The trial of {row.stim_file} ends at {onset + duration:.2f} s, after the end "
                f"of the run ({run_length:.2f} s = {n_volumes} volumes x TR {tr:g} s)",
                path=events,
                fix=f"first check the TR: the run lasts {run_length:.2f} s only if {tr:g} s "
                    "is the true TR (a converter's wrong RepetitionTime shortens it); if the "
                    "protocol's TR differs, correct RepetitionTime and pixdim[4] or pass "
                    f"--repetition-time; then check that the BOLD run is complete ({bold_name} "
                    f"has {n_volumes} volumes) and the onsets (seconds from the first volume)",
            )
        trial_type = getattr(row, "trial_type", None)
        trials.append(Trial(onset, duration, str(row.stim_file),
                            None if trial_type is None or trial_type != trial_type
                            else str(trial_type)))
    return tuple(trials)


def _check_stimulus(stim_file: str, stimuli_dir: Path, events: Path) -> Path:
    rel = PurePosixPath(stim_file)
    if rel.is_absolute() or ".." in rel.parts:
        raise BadDataError(
            f"stim_file {stim_file!r} points outside the stimuli/ folder", path=events,
            fix="give stim_file relative to the dataset's stimuli/ folder, without '..'",
        )
    # Some datasets include the folder name itself ("stimuli/clip.wav"); both are BIDS.
    if rel.parts and rel.parts[0] == "stimuli" and not (stimuli_dir / rel).exists():
        rel = PurePosixPath(*rel.parts[1:])
    path = stimuli_dir / rel
    if not path.is_file():
        raise MissingInputError(
            f"The stimulus {stim_file!r} named in the events file does not exist", path=path,
            fix="put the audio that was played under stimuli/, or correct stim_file",
        )
    # The audio itself is decoded, and so checked, when the trial design is built
    # (bidsapp.design.subject_designs), still before any computing.
    return path


def _check_consistent_tr(runs: list[BoldRun]) -> None:
    by_task: dict[str, BoldRun] = {}
    for run in runs:
        first = by_task.setdefault(run.task, run)
        if abs(first.repetition_time - run.repetition_time) > TR_TOLERANCE * first.repetition_time:
            raise BadDataError(
                f"Runs of task {run.task!r} have different TRs ({first.repetition_time} s in "
                f"{first.path.name}, {run.repetition_time} s here); repeated trials cannot be "
                "averaged across them", path=run.path,
                fix="analyse runs with one TR at a time, using --bids-filter-file",
            )
