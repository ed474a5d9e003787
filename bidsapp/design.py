"""The trial design of one participant's task: the one object every analysis step reads.

A :class:`TrialDesign` is built once per participant and task, when the inputs are
checked (:func:`build_trial_design`, called by :mod:`bidsapp.levels.participant`), and
carries what the features, the fMRI patterns, the searchlight and the permutation null
must agree on: the stimuli and their audio, their order in every stacked array, each
trial's length in TRs, the TRs dropped at each trial's start and, per run, the trials'
onsets and the time within a TR that a volume stands for.  It travels between the
workflow's nodes as a plain dictionary (:meth:`TrialDesign.to_dict`,
:meth:`TrialDesign.from_dict`), so that nipype can hash it into each node's inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nb

from bidsapp.audio.decode import load_audio
from bidsapp.audio.resnet import SAMPLE_RATE
from bidsapp.audio.timing import trial_trs as count_trial_trs
from bidsapp.bids.collect import BoldRun, SubjectData
from bidsapp.config import Config
from bidsapp.errors import BadDataError
from bidsapp.preproc.fmriprep import find_fmriprep_run, open_fmriprep_layout
from bidsapp.preproc.slice_timing import plan_slice_timing, volume_time
from bidsapp.rsa.stacking import canonical_stimulus_order, n_dropped
from bidsapp.rsa.timeseries import first_volume


@dataclass(frozen=True)
class RunDesign:
    """The trials of one BOLD run.

    Attributes
    ----------
    name : str
        The BOLD file's name, for messages.
    onsets : tuple of float
        Trial onsets in seconds from the first volume, in the events' order.
    stimuli : tuple of str
        The ``stim_file`` of each trial.
    start_time : float
        Time within each TR that a preprocessed volume represents, in seconds
        (:func:`bidsapp.preproc.slice_timing.volume_time`).
    """

    name: str
    onsets: tuple[float, ...]
    stimuli: tuple[str, ...]
    start_time: float


@dataclass(frozen=True)
class TrialDesign:
    """What one participant's task presented, and how its trials are stacked.

    Attributes
    ----------
    task : str
        The BIDS ``task`` label.
    repetition_time : float
        TR in seconds, shared by the task's runs.
    drop_seconds : float
        Seconds dropped from the start of every trial (6 in the study).
    order : tuple of str
        Each stimulus once, in the order of every stacked array
        (:func:`bidsapp.rsa.stacking.canonical_stimulus_order`).
    audio : tuple of str
        The audio file of each stimulus of ``order``.
    trial_trs : tuple of int
        TRs spanned by each stimulus of ``order`` (partial TRs counted), before dropping.
    runs : tuple of RunDesign
        The task's runs, in the order their preprocessed series reach the analysis.
    """

    task: str
    repetition_time: float
    drop_seconds: float
    order: tuple[str, ...]
    audio: tuple[str, ...]
    trial_trs: tuple[int, ...]
    runs: tuple[RunDesign, ...]

    @property
    def n_dropped(self) -> int:
        """TRs dropped from the start of each trial."""
        return n_dropped(self.repetition_time, self.drop_seconds)

    @property
    def trial_lengths(self) -> list[int]:
        """TRs each stacked trial keeps after the dropped ones, in ``order``."""
        return [n - self.n_dropped for n in self.trial_trs]

    @property
    def n_trs(self) -> int:
        """Length T of the stacked time axis (the size of every RDM)."""
        return sum(self.trial_lengths)

    @property
    def trs_by_stimulus(self) -> dict[str, int]:
        """``trial_trs`` keyed by stimulus."""
        return dict(zip(self.order, self.trial_trs, strict=True))

    @property
    def audio_by_stimulus(self) -> dict[str, Path]:
        """The audio file of each stimulus."""
        return {stim: Path(path) for stim, path in zip(self.order, self.audio, strict=True)}

    def to_dict(self) -> dict:
        """Return the design as JSON-compatible values (the form nodes receive).

        Returns
        -------
        dict
            Read back by :meth:`from_dict`.
        """
        return {
            "Task": self.task, "RepetitionTime": self.repetition_time,
            "DropSeconds": self.drop_seconds, "StimulusOrder": list(self.order),
            "Audio": list(self.audio), "TrialTRs": list(self.trial_trs),
            "Runs": [{"Name": run.name, "Onsets": list(run.onsets),
                      "Stimuli": list(run.stimuli), "StartTime": run.start_time}
                     for run in self.runs],
        }

    @classmethod
    def from_dict(cls, values: Mapping) -> TrialDesign:
        """Rebuild a design from :meth:`to_dict`'s output.

        Parameters
        ----------
        values : mapping
            As written by :meth:`to_dict`.

        Returns
        -------
        TrialDesign
            Equal to the one that wrote ``values``.
        """
        runs = tuple(RunDesign(str(run["Name"]), tuple(float(t) for t in run["Onsets"]),
                               tuple(str(s) for s in run["Stimuli"]), float(run["StartTime"]))
                     for run in values["Runs"])
        return cls(task=str(values["Task"]), repetition_time=float(values["RepetitionTime"]),
                   drop_seconds=float(values["DropSeconds"]),
                   order=tuple(str(s) for s in values["StimulusOrder"]),
                   audio=tuple(str(p) for p in values["Audio"]),
                   trial_trs=tuple(int(n) for n in values["TrialTRs"]), runs=runs)


def build_trial_design(task: str, repetition_time: float, runs: Sequence[RunDesign],
                       audio: Mapping[str, str | Path], trial_trs: Mapping[str, int],
                       drop_seconds: float) -> TrialDesign:
    """Build and check the design of one task.

    Parameters
    ----------
    task : str
        The task label.
    repetition_time : float
        TR in seconds.
    runs : sequence of RunDesign
        The task's runs.
    audio : mapping of str to path
        Audio file of each stimulus named in the runs (others are ignored).
    trial_trs : mapping of str to int
        TRs each stimulus spans (:func:`bidsapp.audio.timing.trial_trs` of its length).
    drop_seconds : float
        Seconds dropped at each trial's start.

    Returns
    -------
    TrialDesign
        The checked design.

    Raises
    ------
    BadDataError
        If a stimulus has no audio or length, or is not longer than the dropped part.
    """
    order = tuple(canonical_stimulus_order(s for run in runs for s in run.stimuli))
    missing = [stim for stim in order if stim not in audio or stim not in trial_trs]
    if missing:
        raise BadDataError(f"No audio for stimulus {missing[0]!r} of task {task}",
                           fix="put the audio that was played under stimuli/")
    design = TrialDesign(task=task, repetition_time=float(repetition_time),
                         drop_seconds=float(drop_seconds), order=order,
                         audio=tuple(str(audio[s]) for s in order),
                         trial_trs=tuple(int(trial_trs[s]) for s in order), runs=tuple(runs))
    for stim, n_tr in zip(order, design.trial_trs, strict=True):
        if n_tr <= design.n_dropped:
            raise BadDataError(
                f"Trial {stim!r} has {n_tr} TRs of {repetition_time} s; nothing is left after "
                f"dropping the first {drop_seconds} s ({design.n_dropped} TRs)",
                path=design.audio_by_stimulus[stim],
                fix="use stimuli longer than the dropped part",
            )
    return design


def run_volume_time(run: BoldRun, config: Config, fmriprep_layout=None) -> float:
    """Return the time within each TR that the run's preprocessed volumes stand for.

    Parameters
    ----------
    run : BoldRun
        The raw run.
    config : Config
        ``slice_time_ref`` (the app's own slice-timing correction) and ``output_space``.
    fmriprep_layout : bids.BIDSLayout, optional
        fMRIPrep's derivatives, when the run's preprocessing is taken from them.

    Returns
    -------
    float
        :func:`bidsapp.preproc.slice_timing.volume_time` of the series the analysis reads.
    """
    if fmriprep_layout is not None:
        found = find_fmriprep_run(fmriprep_layout, run, config.output_space)
        tr = float(found.metadata.get("RepetitionTime", run.repetition_time))
        corrected = bool(found.metadata.get("SliceTimingCorrected", False))
        return volume_time(found.start_time if corrected else None, tr)
    # The bold workflow plans the same correction and logs why it is skipped, once.
    plan = plan_slice_timing(run.metadata, nb.load(run.path).shape, run.repetition_time,
                             config.slice_time_ref, log=False)
    return volume_time(plan.start_time, run.repetition_time)


#: How far an events file's ``duration`` may be from its audio's length (the larger of
#: this and one TR) before the run stops: the analysis reads what the audio lasts.
DURATION_TOLERANCE_SECONDS = 1.0


def _check_trials_fit(run: BoldRun, design: RunDesign, lengths: Mapping[str, int],
                      trial_trs: Mapping[str, int], audio: Mapping[str, Path]) -> None:
    """Stop unless every trial's audio fits in its run and matches its events' duration."""
    tr = run.repetition_time
    for trial in run.trials:
        seconds = lengths[trial.stim_file] / SAMPLE_RATE
        if abs(trial.duration - seconds) > max(DURATION_TOLERANCE_SECONDS, tr):
            raise BadDataError(
                f"The events give {trial.stim_file} at {trial.onset:g} s a duration of "
                f"{trial.duration:g} s, but its audio lasts {seconds:.2f} s; the analysis "
                "reads the trial for as long as the audio plays", path=run.events,
                fix="set duration to the length that was played, or cut the audio file to "
                    f"what was played ({audio[trial.stim_file].name})")
        stop = first_volume(trial.onset, tr, design.start_time) + trial_trs[trial.stim_file]
        if stop > run.n_volumes:
            raise BadDataError(
                f"The trial of {trial.stim_file} at {trial.onset:g} s plays {seconds:.2f} s of "
                f"audio and needs volumes up to {stop - 1}, but the run has {run.n_volumes} "
                f"volumes ({run.n_volumes} x TR {tr:g} s = {run.n_volumes * tr:.1f} s)",
                path=run.path,
                fix=f"first check the TR: the run lasts {run.n_volumes * tr:.1f} s only if "
                    f"{tr:g} s is the true TR (a converter's wrong RepetitionTime shortens "
                    "it); if the protocol's TR differs, correct RepetitionTime and pixdim[4] "
                    "or pass --repetition-time; then check that the BOLD run is complete and "
                    f"the onsets in {run.events.name}")


def subject_designs(subject: SubjectData, config: Config) -> dict[str, TrialDesign]:
    """Build the trial design of each of a participant's tasks.

    Every stimulus is decoded here, once, so that corrupt, empty or too-short audio stops
    the run before any computing, and its length in TRs is counted.

    Parameters
    ----------
    subject : SubjectData
        The participant's checked inputs (:func:`bidsapp.bids.collect_participants`).
    config : Config
        ``drop_seconds``, ``slice_time_ref``, ``output_space`` and
        ``derivatives['fmriprep']``.

    Returns
    -------
    dict of str to TrialDesign
        One design per task, in ``subject.tasks`` order.

    Raises
    ------
    MissingInputError, BadDataError
        If a stimulus is missing or cannot be decoded, a trial is too short, its audio
        runs past the end of its run, or its events' duration is not its audio's length
        (within the larger of :data:`DURATION_TOLERANCE_SECONDS` and one TR).
    """
    fmriprep = config.derivatives.get("fmriprep")
    layout = open_fmriprep_layout(fmriprep) if fmriprep else None
    lengths = {stim: len(load_audio(path)) for stim, path in subject.stimuli.items()}
    designs = {}
    for task in subject.tasks:
        runs = [run for run in subject.bold if run.task == task]
        tr = runs[0].repetition_time
        trial_trs = {stim: count_trial_trs(n, tr) for stim, n in lengths.items()}
        run_designs = [RunDesign(run.path.name, tuple(t.onset for t in run.trials),
                                 tuple(t.stim_file for t in run.trials),
                                 run_volume_time(run, config, layout)) for run in runs]
        for run, run_design in zip(runs, run_designs, strict=True):
            _check_trials_fit(run, run_design, lengths, trial_trs, subject.stimuli)
        designs[task] = build_trial_design(task, tr, run_designs, audio=subject.stimuli,
                                           trial_trs=trial_trs,
                                           drop_seconds=config.drop_seconds)
    return designs
