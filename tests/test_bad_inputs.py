"""Bad inputs through the real command line: documented exit code, one message, no trace left.

Every case changes the demo's tiny dataset (:func:`bidsapp.demo.write_tiny_dataset`) in one
way, makes the dataset read-only, runs ``run.py`` in a subprocess as a user would, and checks

1. the exit code of the table in ``docs/usage.md``;
2. one paragraph on stderr, the last line, without a traceback, that names the offending
   file or option and says the fix (``Fix: ...``);
3. that nothing was left behind: the BIDS folder is byte for byte as before, the output
   folder holds exactly what the case allows (absent, empty, or unchanged; the app creates
   the output and work folders before it collects the inputs, and writes nothing into them
   until every check has passed; a run interrupted after the checks may hold the dataset
   description and its saved options), and no folder holds a hidden staging or temporary
   file.

Every bad input must be caught by the checks that run before any workflow, so each case
costs only the app's start-up and input collection (one to a few seconds).  The cases run
concurrently, one subprocess per core, in the module fixture :func:`outcomes`; each test
then only inspects its case's result.  Only the selected cases run (``-k`` works).

Every subprocess gets ``PYTHONDONTWRITEBYTECODE=1`` (see the file-size case) and, where the
app's default weights are missing, a ``BIDSAPP_MODELS_DIR`` with generated untrained weights.
A full disk is staged twice: as a real ENOSPC on a filled 64 KiB tmpfs (needs root and
permission to mount; skipped otherwise) and, anywhere, as EFBIG under RLIMIT_FSIZE.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
from tree_helpers import seed_templateflow_home, set_read_only

from bidsapp.demo import write_tiny_dataset

REPO = Path(__file__).resolve().parents[1]
RUN_PY = REPO / "run.py"
TIMEOUT = 300
#: Names the app gives files while it writes them (bidsapp.io, the data sink, the probe).
HIDDEN_PARTIALS = (".tmp-", ".staging-", ".write-test-")
UNTRAINED = "resnet18_mtt50_untrained.safetensors"


class Unsupported(Exception):
    """This machine cannot stage the case (e.g. no permission to mount a filesystem)."""


@dataclass
class Ctx:
    """One case's folders, and how its subprocess is started."""

    root: Path
    bids: Path
    out: Path
    work: Path
    env: dict[str, str] = field(default_factory=dict)
    #: RLIMIT_FSIZE of the subprocess, in bytes.
    file_size_limit: int | None = None
    #: Send SIGINT once this text appears on stderr (the run is otherwise long).
    interrupt_after: str | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def participant(self, *extra) -> list:
        """The participant-level command line, validator off (its own test is elsewhere).

        The template is the one bidsapp seeds from nilearn, so that the cases that get
        past the input checks fail where they are meant to, not on an uncached default.
        """
        return [self.bids, self.out, "participant", "--skip-bids-validation", "-w",
                self.work, "--output-space", "MNI152NLin2009aSym", *extra]

    def fmt(self, text: str) -> str:
        """Fill ``{bids}``, ``{out}``, ``{root}`` and ``{work}`` in an expected text."""
        return text.format(bids=self.bids, out=self.out, root=self.root, work=self.work)


@dataclass(frozen=True)
class Case:
    """A bad input and what the app must answer."""

    code: int
    prepare: Callable[[Ctx], list]
    #: Texts the error paragraph must contain: the offending file or option, the problem.
    names: tuple[str, ...]
    #: Text the ``Fix:`` part must contain.
    fix: str
    #: What the output folder may hold afterwards: absent, empty, unchanged or started.
    output: str = "empty"


# ----------------------------------------------------------------------------- helpers

def _bold(ctx: Ctx, sub: str = "01", run: int = 1) -> Path:
    return ctx.bids / f"sub-{sub}/func/sub-{sub}_task-music_run-{run}_bold.nii.gz"


def _events(ctx: Ctx, sub: str = "01", run: int = 1) -> Path:
    return ctx.bids / f"sub-{sub}/func/sub-{sub}_task-music_run-{run}_events.tsv"


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def _mount_tmpfs(ctx: Ctx, folder: Path, options: str) -> None:
    """Mount a small tmpfs (root only), unmounted when the case is done."""
    folder.mkdir(parents=True)
    if os.geteuid() != 0:
        raise Unsupported("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise Unsupported(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    ctx.cleanups.append(lambda: subprocess.run(["umount", "-l", str(folder)], check=False))


def _weights_dir(ctx: Ctx, content: bytes, *, sidecar_of: bytes | None = None,
                 sidecar: bool = True) -> Path:
    """A models folder whose untrained weights file holds ``content``.

    The sidecar records the sha256 of ``sidecar_of`` (default: ``content``), as a real
    download's sidecar would record the complete file's.
    """
    models = ctx.root / "models"
    models.mkdir()
    (models / UNTRAINED).write_bytes(content)
    if sidecar:
        digest = hashlib.sha256(content if sidecar_of is None else sidecar_of).hexdigest()
        (models / UNTRAINED).with_suffix(".json").write_text(
            json.dumps({"status": "untrained", "sha256": digest}))
    ctx.env["BIDSAPP_MODELS_DIR"] = str(models)
    return models


def _safetensors(shapes: dict[str, tuple[int, ...]]) -> bytes:
    from safetensors.numpy import save

    return save({name: np.zeros(shape, np.float32) for name, shape in shapes.items()})


# ----------------------------------------------------------------------------- cases

def _missing_t1w(ctx):
    (ctx.bids / "sub-01/anat/sub-01_T1w.nii.gz").unlink()
    return ctx.participant()


def _corrupt_t1w(ctx):
    (ctx.bids / "sub-01/anat/sub-01_T1w.nii.gz").write_bytes(b"\x1f\x8bnot a NIfTI image")
    return ctx.participant()


def _missing_stimulus(ctx):
    (ctx.bids / "stimuli/clip-b.wav").unlink()
    return ctx.participant()


def _corrupt_stimulus(ctx):
    (ctx.bids / "stimuli/clip-a.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    return ctx.participant()


def _stim_file_outside(ctx):
    _replace(_events(ctx), "clip-a.wav", "../participants.tsv")
    return ctx.participant()


def _truncated_bold(ctx):
    bold = _bold(ctx)
    data = bold.read_bytes()
    bold.write_bytes(data[: len(data) * 3 // 5])  # the header survives, the data do not
    return ctx.participant()


def _bold_3d(ctx):
    nb.Nifti1Image(np.zeros((8, 8, 8), np.int16), np.eye(4)).to_filename(_bold(ctx))
    return ctx.participant()


def _bold_5_volumes(ctx):
    img = nb.load(_bold(ctx))
    nb.Nifti1Image(np.asanyarray(img.dataobj)[..., :5], img.affine, img.header).to_filename(
        _bold(ctx))
    return ctx.participant()


def _duration_too_short(ctx):
    events = _events(ctx)
    lines = events.read_text().splitlines()
    header = lines[0].split("\t")
    col = header.index("duration")
    rows = [line.split("\t") for line in lines[1:]]
    for row in rows:
        row[col] = "6.0"
    events.write_text("\n".join(["\t".join(header)] + ["\t".join(r) for r in rows]) + "\n")
    return ctx.participant()


def _tr_mismatch(ctx):
    img = nb.load(_bold(ctx, run=2))
    img.header.set_zooms((3.0, 3.0, 3.0, 1.5))  # the sidecar says 2.0 s
    nb.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header).to_filename(
        _bold(ctx, run=2))
    return ctx.participant()


def _philips_run(ctx, sidecar: dict, header_tr: float) -> None:
    """Run 1 as dcm2niix writes some Philips BOLD: 156 volumes, with its own sidecar.

    The tiny run's volumes are repeated to 156; the trials end at 40 s, inside the run.
    """
    img = nb.load(_bold(ctx))
    data = np.asanyarray(img.dataobj)
    data = np.concatenate([data] * 7, axis=3)[..., :156]
    header = img.header.copy()
    header.set_zooms((3.0, 3.0, 3.0, header_tr))
    nb.Nifti1Image(data, img.affine, header).to_filename(_bold(ctx))
    _bold(ctx).with_name("sub-01_task-music_run-1_bold.json").write_text(json.dumps(sidecar))


def _philips_wrong_tr(ctx):
    # The real pattern: the true TR is 2 s, RepetitionTime and pixdim[4] say 1.79355 s.
    _philips_run(ctx, {"RepetitionTime": 1.79355, "RepetitionTimeExcitation": 2,
                       "AcquisitionDuration": 325.9}, 1.79355)
    return ctx.participant()


def _philips_consistent_tr(ctx):
    # The same scan with its true TR everywhere: collection passes, then Ctrl-C.
    _philips_run(ctx, {"RepetitionTime": 2.0, "RepetitionTimeExcitation": 2,
                       "AcquisitionDuration": 325.9}, 2.0)
    ctx.interrupt_after = "sub-01: T1w sub-01_T1w.nii.gz; 2 BOLD run(s)"
    return ctx.participant("--participant-label", "01", "--nprocs", "1")


def _philips_override_tr(ctx):
    # The wrong pattern again, with the documented override: collection passes.
    _philips_run(ctx, {"RepetitionTime": 1.79355, "RepetitionTimeExcitation": 2,
                       "AcquisitionDuration": 325.9}, 1.79355)
    ctx.interrupt_after = "sub-01: T1w sub-01_T1w.nii.gz; 2 BOLD run(s)"
    return ctx.participant("--participant-label", "01", "--nprocs", "1",
                           "--repetition-time", "2")


def _volume_timing_sidecar(ctx, **extra) -> None:
    # BIDS: VolumeTiming instead of RepetitionTime, never both (24 volumes, 2 s apart).
    (ctx.bids / "task-music_bold.json").write_text(json.dumps(
        {"TaskName": "music", "VolumeTiming": [2.0 * i for i in range(24)],
         "SliceTiming": [i * 2.0 / 8 for i in (0, 2, 4, 6, 1, 3, 5, 7)], **extra}))


def _volume_timing_continuous(ctx):
    _volume_timing_sidecar(ctx, AcquisitionDuration=2.0)
    ctx.interrupt_after = "sub-01: T1w sub-01_T1w.nii.gz; 2 BOLD run(s)"
    return ctx.participant("--participant-label", "01", "--nprocs", "1")


def _volume_timing_sparse(ctx):
    # Each volume acquired in 1.5 s, one every 2 s: a sparse acquisition.
    _volume_timing_sidecar(ctx, AcquisitionDuration=1.5)
    return ctx.participant()


def _missing_repetition_time(ctx):
    (ctx.bids / "task-music_bold.json").write_text(json.dumps({"TaskName": "music"}))
    return ctx.participant()


def _nan_bold(ctx):
    img = nb.load(_bold(ctx))
    data = np.asanyarray(img.dataobj).astype(np.float32)
    data[2, 3, 4, 5] = np.nan
    header = img.header.copy()
    header.set_data_dtype(np.float32)
    nb.Nifti1Image(data, img.affine, header).to_filename(_bold(ctx))
    return ctx.participant()


def _events_past_end(ctx):
    _replace(_events(ctx), "26.0\t", "36.0\t")  # 36 + 14 s > 24 volumes x 2 s
    return ctx.participant()


def _empty_events(ctx):
    _events(ctx).write_text("onset\tduration\tstim_file\n")
    return ctx.participant()


def _non_numeric_onset(ctx):
    _replace(_events(ctx), "26.0\t", "0:26\t")
    return ctx.participant()


def _events_not_text(ctx):
    _events(ctx).write_bytes(bytes(range(256)))
    return ctx.participant()


def _missing_events(ctx):
    _events(ctx).unlink()
    return ctx.participant()


def _stim_file_column_missing(ctx):
    _replace(_events(ctx), "stim_file", "sound")  # the other runs still have it
    return ctx.participant()


def _no_stim_file_anywhere(ctx):
    for events in ctx.bids.rglob("*_events.tsv"):
        _replace(events, "stim_file", "sound")
    return ctx.participant()


def _unknown_participant(ctx):
    return ctx.participant("--participant-label", "sub-07")


def _unknown_task(ctx):
    return ctx.participant("--task", "rest")


def _missing_dataset_description(ctx):
    (ctx.bids / "dataset_description.json").unlink()
    return ctx.participant()


def _nonexistent_bids_dir(ctx):
    return [ctx.root / "no-such-dataset", ctx.out, "participant"]


def _output_is_bids_dir(ctx):
    ctx.out = ctx.bids
    return [ctx.bids, ctx.bids, "participant"]


def _output_inside_bids(ctx):
    ctx.out = ctx.bids / "results"
    return ctx.participant()


def _work_dir_inside_bids(ctx):
    return [ctx.bids, ctx.out, "participant", "-w", ctx.bids / "work"]


def _output_under_a_file(ctx):
    (ctx.root / "a-file").write_text("")
    ctx.out = ctx.root / "a-file" / "out"
    return ctx.participant()


def _output_read_only(ctx):
    # As root, permissions do not stop a write; a read-only filesystem does.
    parent = ctx.root / "read-only"
    if os.geteuid() == 0:
        _mount_tmpfs(ctx, parent, "ro,size=64k")
    else:
        parent.mkdir()
        parent.chmod(0o555)
        ctx.cleanups.append(lambda: parent.chmod(0o755))
    ctx.out = parent / "out"
    return ctx.participant()


def _disk_full(ctx):
    # A real full disk (ENOSPC): a 64 KiB tmpfs, filled before the run.
    disk = ctx.root / "disk"
    _mount_tmpfs(ctx, disk, "size=64k")
    try:
        with open(disk / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
    except OSError:
        pass
    ctx.out = disk / "out"
    return ctx.participant()


def _file_size_limit(ctx):
    # Without root, a full disk is staged with RLIMIT_FSIZE: every write past 0 bytes fails
    # with EFBIG (the app ignores SIGXFSZ itself; PYTHONDONTWRITEBYTECODE keeps Python from
    # writing .pyc files before it does).
    ctx.file_size_limit = 0
    return ctx.participant()


def _bad_filter_json(ctx):
    (ctx.root / "filter.json").write_text('{"bold": {"acquisition": "mb"')
    return ctx.participant("--bids-filter-file", ctx.root / "filter.json")


def _filter_unknown_entity(ctx):
    (ctx.root / "filter.json").write_text(json.dumps({"bold": {"acqusition": "mb"}}))
    return ctx.participant("--bids-filter-file", ctx.root / "filter.json")


def _weights_truncated(ctx):
    full = _safetensors({"conv1.weight": (64, 1, 7)})
    _weights_dir(ctx, full[: len(full) // 2], sidecar_of=full)
    return ctx.participant()


def _weights_not_safetensors(ctx):
    _weights_dir(ctx, b"PK\x03\x04 a torch .pt zip archive, not safetensors" * 8)
    return ctx.participant()


def _weights_wrong_shapes(ctx):
    _weights_dir(ctx, _safetensors({"conv1.weight": (3, 3), "fc.bias": (10,)}))
    return ctx.participant()


def _weights_without_sidecar(ctx):
    _weights_dir(ctx, _safetensors({"conv1.weight": (3, 3)}), sidecar=False)
    return ctx.participant()


def _group_one_participant(ctx):
    ctx.out.mkdir()
    (ctx.out / "dataset_description.json").write_text(json.dumps(
        {"Name": "bidsapp derivatives", "BIDSVersion": "1.9.0", "DatasetType": "derivative"}))
    statmap = ctx.out / ("sub-01/func/sub-01_task-music_space-MNI152NLin2009cAsym_"
                         "desc-max_stat-r_statmap.nii.gz")
    statmap.parent.mkdir(parents=True)
    nb.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)).to_filename(statmap)
    return [ctx.bids, ctx.out, "group", "-w", ctx.work]


def _group_before_participant(ctx):
    return [ctx.bids, ctx.out, "group", "-w", ctx.work]


def _missing_slice_timing(ctx):
    (ctx.bids / "task-music_bold.json").write_text(
        json.dumps({"TaskName": "music", "RepetitionTime": 2.0}))
    # SliceTiming is optional: the run must go on.  Once collection is over, the test
    # interrupts it (Ctrl-C) instead of waiting minutes for preprocessing.
    ctx.interrupt_after = "sub-01: T1w sub-01_T1w.nii.gz; 2 BOLD run(s)"
    return ctx.participant("--participant-label", "01", "--nprocs", "1")


def _cuda_without_gpu(ctx):
    if Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia").exists():
        raise Unsupported("this machine has an NVIDIA driver: --device cuda may work here")
    return ctx.participant("--device", "cuda")


def _unknown_output_space(ctx):
    return ctx.participant("--output-space", "MNI999Unknown")


def _too_little_memory(ctx):
    # 1 GB shared by 8 single-threaded jobs (0.125 GB each); a job on the 1 mm grid needs
    # about 0.4 GB.
    return ctx.participant("--mem", "1GB", "--nprocs", "8", "--omp-nthreads", "1",
                           "--output-res", "1")


CASES: dict[str, Case] = {
    "cuda_without_gpu": Case(69, _cuda_without_gpu, ("--device cuda", "sees none"),
                             "--device auto"),
    "unknown_output_space": Case(64, _unknown_output_space, ("MNI999Unknown",),
                                 "--output-space"),
    "too_little_memory": Case(64, _too_little_memory, (
        "searchlight job of sub-01 task-music needs about", "each of the 8 job(s)"), "--mem"),
    "missing_t1w": Case(66, _missing_t1w, ("sub-01 has no T1w", "File: {bids}/sub-01/anat"),
                        "sub-01/anat/sub-01_T1w.nii.gz"),
    "corrupt_t1w": Case(65, _corrupt_t1w, ("T1w image cannot be read",
                                           "{bids}/sub-01/anat/sub-01_T1w.nii.gz"), "re-export"),
    "missing_stimulus": Case(66, _missing_stimulus, ("does not exist",
                                                     "File: {bids}/stimuli/clip-b.wav"),
                             "under stimuli/"),
    "corrupt_stimulus": Case(65, _corrupt_stimulus, ("Cannot decode",
                                                     "File: {bids}/stimuli/clip-a.wav"),
                             "re-export the stimulus"),
    "stim_file_outside_stimuli": Case(
        65, _stim_file_outside, ("'../participants.tsv' points outside the stimuli/ folder",
                                 "File: {bids}/sub-01/func/sub-01_task-music_run-1_events.tsv"),
        "relative to the dataset's stimuli/ folder"),
    "truncated_bold": Case(65, _truncated_bold, (
        "BOLD image", "File: {bids}/sub-01/func/sub-01_task-music_run-1_bold.nii.gz"),
        "copy or re-export the file again"),
    "bold_3d": Case(65, _bold_3d, ("not a 4D time series",
                                   "File: {bids}/sub-01/func/sub-01_task-music_run-1_bold.nii.gz"),
                    "give the 4D run"),
    "bold_5_volumes": Case(65, _bold_5_volumes, (
        "after the end of the run", "5 volumes x TR",
        "File: {bids}/sub-01/func/sub-01_task-music_run-1_events.tsv"),
        "sub-01_task-music_run-1_bold.nii.gz has 5 volumes"),
    "duration_shorter_than_audio": Case(65, _duration_too_short, (
        "a duration of 6 s, but its audio lasts",
        "File: {bids}/sub-01/func/sub-01_task-music_run-1_events.tsv"),
        "set duration to the length that was played"),
    "tr_sidecar_vs_header": Case(65, _tr_mismatch, (
        "RepetitionTime 2 s; pixdim[4] of the NIfTI header 1.5 s", "uncertain",
        "File: {bids}/sub-01/func/sub-01_task-music_run-2_bold.nii.gz"), "RepetitionTime"),
    "philips_wrong_tr": Case(65, _philips_wrong_tr, (
        "The TR of sub-01_task-music_run-1_bold.nii.gz is uncertain",
        "RepetitionTime 1.79355 s", "pixdim[4] of the NIfTI header 1.79355 s",
        "RepetitionTimeExcitation 2 s", "AcquisitionDuration / volumes 2.0891 s "
        "(325.9 s over 156 volumes)", "would have used RepetitionTime (1.79355 s)",
        "32.2 s off", "File: {bids}/sub-01/func/sub-01_task-music_run-1_bold.nii.gz"),
        "--repetition-time <seconds>"),
    "philips_consistent_tr_runs": Case(130, _philips_consistent_tr, (), "", output="started"),
    "philips_wrong_tr_overridden_runs": Case(130, _philips_override_tr, (
        "--repetition-time 2 s is used instead of RepetitionTime 1.79355 s",), "",
        output="started"),
    "volume_timing_continuous_runs": Case(130, _volume_timing_continuous, (), "",
                                          output="started"),
    "volume_timing_sparse": Case(65, _volume_timing_sparse, (
        "describe a sparse acquisition (each volume acquired in 1.5 s, one every 2 s)",
        "does not support sparse acquisitions",
        "File: {bids}/sub-01/func/sub-01_task-music_run-1_bold.nii.gz"),
        "--bids-filter-file"),
    "missing_repetition_time": Case(65, _missing_repetition_time, (
        "no valid RepetitionTime", "sub-01_task-music_run-1_bold.json"),
        "\"RepetitionTime\": <seconds>"),
    "nan_in_bold": Case(65, _nan_bold, (
        "holds 1 NaN or infinite value(s), the first in volume 5",
        "File: {bids}/sub-01/func/sub-01_task-music_run-1_bold.nii.gz"), "set them to 0"),
    "events_past_end_of_run": Case(65, _events_past_end, (
        "ends at 50.00 s, after the end of the run (48.00 s = 24 volumes x TR 2 s)",
        "File: {bids}/sub-01/func/sub-01_task-music_run-1_events.tsv"),
        "is the true TR"),
    "empty_events": Case(65, _empty_events, (
        "lists no stimulus presentations",
        "File: {bids}/sub-01/func/sub-01_task-music_run-1_events.tsv"), "add one row per trial"),
    "non_numeric_onset": Case(65, _non_numeric_onset, (
        "Invalid onset/duration (0:26, 14.0)",
        "File: {bids}/sub-01/func/sub-01_task-music_run-1_events.tsv"), "in seconds"),
    "events_not_text": Case(65, _events_not_text, (
        "events file cannot be read",
        "File: {bids}/sub-01/func/sub-01_task-music_run-1_events.tsv"), "tab-separated table"),
    "missing_events": Case(66, _missing_events, (
        "no events file", "File: {bids}/sub-01/func/sub-01_task-music_run-1_bold.nii.gz"),
        "add sub-01_task-music_run-1_events.tsv"),
    "stim_file_column_missing": Case(65, _stim_file_column_missing, (
        "lacks column(s) stim_file",
        "File: {bids}/sub-01/func/sub-01_task-music_run-1_events.tsv"), "stim_file (relative"),
    "no_stim_file_column_at_all": Case(18, _no_stim_file_anywhere, (
        "No task has events with a stim_file column", "File: {bids}."), "add a stim_file column"),
    "unknown_participant": Case(18, _unknown_participant, (
        "not found in the dataset: 07 (available: 01, 02)", "File: {bids}."),
        "labels that exist"),
    "unknown_task": Case(18, _unknown_task, ("Task(s) not found in the dataset: rest "
                                             "(available: music)", "File: {bids}."),
                         "check --task"),
    "missing_dataset_description": Case(66, _missing_dataset_description, (
        "not a BIDS dataset", "File: {bids}/dataset_description.json"), "dataset root"),
    "nonexistent_bids_dir": Case(66, _nonexistent_bids_dir, (
        "does not exist", "File: {root}/no-such-dataset"), "path of a BIDS dataset",
        output="absent"),
    "output_dir_is_bids_dir": Case(64, _output_is_bids_dir, (
        "output folder is the BIDS dataset folder", "File: {bids}."),
        "derivatives/bidsapp", output="unchanged"),
    "output_dir_inside_bids_dir": Case(64, _output_inside_bids, (
        "inside the BIDS dataset folder but not under its derivatives/",
        "File: {bids}/results"), "derivatives/bidsapp", output="absent"),
    "work_dir_inside_bids_dir": Case(64, _work_dir_inside_bids, (
        "work folder is inside the BIDS dataset", "File: {bids}/work"),
        "outside the dataset", output="absent"),
    "output_dir_under_a_file": Case(73, _output_under_a_file, (
        "output folder cannot be written", "File: {root}/a-file/out"),
        "output folder you can write to", output="absent"),
    "output_dir_read_only": Case(73, _output_read_only, (
        "output folder cannot be written", "File: {root}/read-only/out"),
        "output folder you can write to", output="absent"),
    "disk_full": Case(73, _disk_full, ("No space left on device",
                                       "File: {root}/disk/out/.bidsignore"),
                      "free disk space"),
    "file_size_limit": Case(73, _file_size_limit, ("File too large", "File: {out}/.bidsignore"),
                            "ulimit -f"),
    "bad_filter_file_json": Case(64, _bad_filter_json, (
        "not valid JSON", "File: {root}/filter.json"), "write a JSON object", output="absent"),
    "filter_file_unknown_entity": Case(64, _filter_unknown_entity, (
        "'acqusition' is not a recognized entity", "File: {root}/filter.json"),
        "BIDS entity names"),
    "weights_truncated": Case(65, _weights_truncated, (
        "corrupt, truncated or replaced", f"File: {{root}}/models/{UNTRAINED}"),
        "init-untrained"),
    "weights_not_safetensors": Case(65, _weights_not_safetensors, (
        "Cannot read the weights file", f"File: {{root}}/models/{UNTRAINED}"),
        "init-untrained"),
    "weights_wrong_shapes": Case(65, _weights_wrong_shapes, (
        "does not fit the study's ResNet-18: conv1.weight has shape (3, 3)",
        f"File: {{root}}/models/{UNTRAINED}"), "init-untrained"),
    "weights_without_sidecar": Case(66, _weights_without_sidecar, (
        "no JSON sidecar", "File: {root}/models/resnet18_mtt50_untrained.json"),
        "init-untrained"),
    "group_with_one_participant": Case(18, _group_one_participant, (
        "at least 2 participants", "found 1 (sub-01)", "File: {out}."),
        "run the participant level for more participants", output="unchanged"),
    "group_before_participant": Case(66, _group_before_participant, (
        "No participant-level outputs", "File: {out}."), "run the participant level first",
        output="absent"),
    "missing_slice_timing_warns": Case(130, _missing_slice_timing, (), "", output="started"),
}


# ----------------------------------------------------------------------------- running

@dataclass
class Outcome:
    """What one case's run did."""

    ctx: Ctx
    returncode: int | None = None
    stderr: str = ""
    bids_before: dict = field(default_factory=dict)
    bids_after: dict = field(default_factory=dict)
    out_before: dict | None = None
    out_after: dict | None = None
    work_files: list[Path] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0


def _tree(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` with its type, size, mode and content hash."""
    if not root.exists():
        return {}
    entries = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        entries[str(path.relative_to(root))] = (stat.S_IFMT(info.st_mode), info.st_size,
                                                stat.S_IMODE(info.st_mode), digest)
    return entries


def _command(ctx: Ctx, args: list) -> list[str]:
    args = [str(a) for a in args]
    if ctx.file_size_limit is None:
        return [sys.executable, str(RUN_PY), *args]
    # Set the limit in the child itself (preexec_fn is unsafe with the runner's threads).
    limit = ctx.file_size_limit
    start = ("import resource, runpy, sys; "
             f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
             "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    return [sys.executable, "-c", start, str(RUN_PY), *args]


def _run_until(command: list[str], env: dict, cwd: Path, marker: str) -> tuple[int, str]:
    """Run, send SIGINT once ``marker`` is on stderr, and return the code and stderr."""
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env=env, cwd=cwd)
    watchdog = threading.Timer(TIMEOUT, proc.kill)
    watchdog.start()
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if marker in line:
                proc.send_signal(signal.SIGINT)
                break
        lines.append(proc.stderr.read())
        return proc.wait(), "".join(lines)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _run_case(name: str, case_root: Path, base_env: dict) -> Outcome:
    bids = write_tiny_dataset(case_root / "bids")
    ctx = Ctx(root=case_root, bids=bids, out=case_root / "out", work=case_root / "work")
    outcome = Outcome(ctx)
    try:
        args = CASES[name].prepare(ctx)
    except Unsupported as exc:
        outcome.skipped = str(exc)
        for cleanup in reversed(ctx.cleanups):
            cleanup()
        return outcome
    # The app must never write into the dataset; outside root this makes sure it cannot.
    set_read_only(ctx.bids, True)
    try:
        outcome.bids_before = _tree(ctx.bids)
        outcome.out_before = _tree(ctx.out) if ctx.out.exists() else None
        env = {**base_env, **ctx.env}
        command = _command(ctx, args)
        started = time.monotonic()
        if ctx.interrupt_after:
            outcome.returncode, outcome.stderr = _run_until(command, env, case_root,
                                                            ctx.interrupt_after)
        else:
            proc = subprocess.run(command, capture_output=True, text=True, env=env,
                                  cwd=case_root, timeout=TIMEOUT, check=False)
            outcome.returncode, outcome.stderr = proc.returncode, proc.stderr
        outcome.seconds = time.monotonic() - started
        outcome.bids_after = _tree(ctx.bids)
        outcome.out_after = _tree(ctx.out) if ctx.out.exists() else None
        outcome.work_files = [p for p in ctx.work.rglob("*") if not p.is_dir()]
    finally:
        set_read_only(ctx.bids, False)
        for cleanup in reversed(ctx.cleanups):
            cleanup()
    return outcome


def _has_default_weights(env: dict) -> bool:
    folder = Path(env.get("BIDSAPP_MODELS_DIR") or REPO / "models")
    return any((folder / name).is_file() and (folder / name).with_suffix(".json").is_file()
               for name in ("resnet18_mtt50.safetensors", UNTRAINED))


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict[str, Outcome]:
    """Run every selected case concurrently and return the outcomes by case name."""
    selected = sorted({item.callspec.params["case"] for item in request.session.items
                       if getattr(item, "callspec", None) is not None
                       and item.module is sys.modules[__name__]
                       and "case" in item.callspec.params})
    base = tmp_path_factory.mktemp("bad-inputs")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if not _has_default_weights(env):
        # A checkout without scripts/install.sh: give the app the weights it would make.
        from bidsapp.audio.weights import init_untrained

        env["BIDSAPP_MODELS_DIR"] = str(init_untrained(base / "models").parent)
    # One TemplateFlow cache for every case, seeded here once: the cases run concurrently.
    env["TEMPLATEFLOW_HOME"] = str(base / "templateflow")
    seed_templateflow_home(env["TEMPLATEFLOW_HOME"])
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {name: pool.submit(_run_case, name, base / name, env) for name in selected}
        return {name: future.result() for name, future in futures.items()}


# ----------------------------------------------------------------------------- checks

def _assert_nothing_left(outcome: Outcome, expected: str) -> None:
    ctx = outcome.ctx
    assert outcome.bids_after == outcome.bids_before, "the BIDS folder was changed"
    for folder in (ctx.out, ctx.work):
        if folder.exists():
            hidden = [p for p in folder.rglob("*") if p.name.startswith(HIDDEN_PARTIALS)]
            assert hidden == [], f"partial files left behind: {hidden}"
    assert outcome.work_files == [], f"the work folder holds files: {outcome.work_files}"
    after = outcome.out_after
    if expected == "absent":
        assert after is None, f"the output folder was created: {after}"
    elif expected == "empty":
        assert after == {}, f"the output folder is not empty: {sorted(after or {})}"
    elif expected == "unchanged":
        assert after == outcome.out_before, "the output folder was changed"
    elif expected == "started":
        # Interrupted after the checks: at most the description and the saved options.
        allowed = {"dataset_description.json", ".bidsignore", "logs"}
        unexpected = [name for name in after or {} if name not in allowed
                      and not (name.startswith("logs/config-participant-")
                               and name.endswith(".toml"))]
        assert unexpected == [], f"unexpected outputs: {unexpected}"
    else:
        raise AssertionError(f"unknown expectation {expected!r}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, outcomes):
    outcome = outcomes[case]
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    expected = CASES[case]
    ctx = outcome.ctx
    stderr = outcome.stderr
    assert outcome.returncode == expected.code, stderr
    assert "Traceback" not in stderr, stderr
    if expected.code == 130:
        if case == "missing_slice_timing_warns":
            _check_missing_slice_timing(outcome)
        _check_interrupted_after_checks(outcome, expected)
        return
    # One paragraph, printed last, on one line.
    errors = [line for line in stderr.splitlines() if line.startswith("bidsapp: error:")]
    assert len(errors) == 1, stderr
    message = errors[0]
    assert stderr.rstrip().splitlines()[-1] == message, stderr
    for text in expected.names:
        assert ctx.fmt(text) in message, message
    fix = message.partition(" Fix: ")[2]
    assert fix and ctx.fmt(expected.fix) in fix, message
    _assert_nothing_left(outcome, expected.output)


def _check_missing_slice_timing(outcome: Outcome) -> None:
    """Without SliceTiming the checks warn, per run, and the participant level goes on."""
    stderr = outcome.stderr
    lines = stderr.splitlines()
    done = next(i for i, line in enumerate(lines) if "sub-01: T1w sub-01_T1w.nii.gz" in line)
    for run in (1, 2):
        warning = [line for line in lines[:done]
                   if f"sub-01_task-music_run-{run}_bold.nii.gz has no SliceTiming" in line]
        assert len(warning) == 1, stderr
        assert "WARNING" in warning[0] and "slice-timing correction will be skipped" in warning[0]


def _check_interrupted_after_checks(outcome: Outcome, expected: Case) -> None:
    """The input checks passed (no error), then Ctrl-C ended the run as documented."""
    stderr = outcome.stderr
    assert "sub-01: T1w sub-01_T1w.nii.gz; 2 BOLD run(s)" in stderr, stderr
    for text in expected.names:
        assert outcome.ctx.fmt(text) in stderr, stderr
    assert "bidsapp: error:" not in stderr, stderr
    assert stderr.rstrip().splitlines()[-1].startswith(
        "bidsapp: interrupted (SIGINT); rerun"), stderr
    _assert_nothing_left(outcome, "started")


def test_every_exercised_code_is_documented():
    """Each code the cases expect is in the exit-code table of docs/usage.md."""
    table = (REPO / "docs" / "usage.md").read_text().split("## Exit codes", 1)[1]
    documented = {int(line.split("|")[1]) for line in table.splitlines()
                  if line.startswith("| ") and line.split("|")[1].strip().isdigit()}
    assert {case.code for case in CASES.values()} <= documented
