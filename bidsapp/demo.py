"""``make demo``: simulate the tiny preset and run the app on it end to end.

:func:`write_tiny_dataset` also writes a smaller dataset of random images and pure tones,
which the tests use to exercise collection and the command line in seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

import nibabel as nb
import numpy as np
import soundfile as sf

from bidsapp.audio import LAYER_NAMES
from bidsapp.cli.run import main as bidsapp_main
from bidsapp.labels import strip_prefix
from bidsapp.simulate.truth import group_layer_agreement, sphere_layer_profiles

LOGGER = logging.getLogger("bidsapp.demo")
#: The space the demo writes in: nilearn ships it, so the demo runs offline.
DEMO_SPACE = "MNI152NLin2009aSym"


def _nifti(path: Path, shape, zooms, rng) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nb.Nifti1Image((rng.random(shape) * 1000).astype(np.int16),
                         np.diag([*zooms[:3], 1.0]))
    img.header.set_zooms(zooms)
    img.header.set_xyzt_units("mm", "sec")
    img.to_filename(path)


def write_tiny_dataset(root: Path, *, subjects=("01", "02"), n_runs: int = 2, tr: float = 2.0,
                       n_vols: int = 24, clips=("clip-a.wav", "clip-b.wav"),
                       clip_seconds: float = 14.0, seed: int = 0) -> Path:
    """Write a small, valid BIDS dataset of music-listening runs.

    Parameters
    ----------
    root : Path
        The dataset root to create.
    subjects : sequence of str
        Participant labels.
    n_runs : int
        BOLD runs per participant; the clip order alternates between runs.
    tr : float
        Repetition time in seconds.
    n_vols : int
        Volumes per run.
    clips : sequence of str
        Stimulus file names under ``stimuli/`` (pure tones, 16 kHz).
    clip_seconds : float
        Duration of each clip.
    seed : int
        Seed of the random image content.

    Returns
    -------
    Path
        ``root``.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "bidsapp tiny demo", "BIDSVersion": "1.9.0", "DatasetType": "raw",
         "Authors": ["bidsapp developers", "bidsapp demo"]}, indent=2))
    (root / "README").write_text(
        "A tiny synthetic dataset written by bidsapp's demo and tests: random T1w and BOLD\n"
        "images, and pure-tone stimuli, for checking the app's plumbing, not its method.\n")
    (root / "participants.tsv").write_text(
        "participant_id\n" + "".join(f"sub-{s}\n" for s in subjects))
    (root / "task-music_bold.json").write_text(json.dumps(
        {"TaskName": "music", "RepetitionTime": tr,
         "SliceTiming": [i * tr / 8 for i in (0, 2, 4, 6, 1, 3, 5, 7)]}, indent=2))
    stim = root / "stimuli"
    stim.mkdir(exist_ok=True)
    for i, clip in enumerate(clips):
        t = np.arange(int(clip_seconds * 16000)) / 16000
        sf.write(stim / clip, 0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t), 16000)
    for sub in subjects:
        _nifti(root / f"sub-{sub}/anat/sub-{sub}_T1w.nii.gz", (12, 12, 12), (2.0, 2.0, 2.0), rng)
        for run in range(1, n_runs + 1):
            base = root / f"sub-{sub}/func/sub-{sub}_task-music_run-{run}"
            _nifti(Path(f"{base}_bold.nii.gz"), (8, 8, 8, n_vols), (3.0, 3.0, 3.0, tr), rng)
            order = list(clips) if run % 2 else list(reversed(clips))
            rows = ["onset\tduration\tstim_file\ttrial_type"]
            rows += [f"{4 + k * 22:.1f}\t{clip_seconds:.1f}\t{clip}\tmusic"
                     for k, clip in enumerate(order)]
            Path(f"{base}_events.tsv").write_text("\n".join(rows) + "\n")
    return root


def main(argv: list[str] | None = None) -> int:
    """Simulate the ``tiny`` preset into ``DIR/bids`` and run participant, then group, level.

    Parameters
    ----------
    argv : list of str, optional
        ``[DIR] [--dataset-only]``; the default DIR is ``demo/`` in the current folder.

    Returns
    -------
    int
        0 when every step completed.
    """
    parser = argparse.ArgumentParser(prog="bidsapp-demo", description=main.__doc__)
    parser.add_argument("dir", nargs="?", type=Path, default=Path("demo"))
    parser.add_argument("--dataset-only", action="store_true",
                        help="simulate DIR/bids and stop (used by the container CI)")
    opts = parser.parse_args(argv)
    root = opts.dir.absolute()
    bids, out, work = root / "bids", root / "out", root / "work"
    if not (bids / "dataset_description.json").exists():
        print(f"demo: simulating the tiny preset into {bids}")
        # In a child process: the simulation runs the network with torch's thread pool,
        # and nipype's MultiProc forks its workers from this process afterwards; a forked
        # worker that runs torch again can then wait forever on the parent's pool.
        code = subprocess.run([sys.executable, "-c", "import sys; from bidsapp.cli.run "
                               "import main; sys.exit(main(sys.argv[1:]))", "simulate",
                               str(bids), "--preset", "tiny", "--seed", "0"]).returncode
        if code:
            return code
    print(f"demo: tiny simulated BIDS dataset in {bids}")
    if opts.dataset_only:
        return 0
    # The tiny preset has 4 trials (24 orders): 20 permutations keep the demo short.
    common = ["-w", str(work), "--nprocs", "2", "--output-space", DEMO_SPACE,
              "--normalization-quality", "fast", "--n-permutations", "20"]
    for sub in sorted(strip_prefix(p.name) for p in bids.glob("sub-*")):
        print(f"demo: participant level for sub-{sub}")
        code = bidsapp_main([str(bids), str(out), "participant", "--participant-label", sub,
                             *common])
        if code:
            print(f"demo: participant level failed with exit code {code}", file=sys.stderr)
            return code
    print("demo: group level")
    code = bidsapp_main([str(bids), str(out), "group", *common])
    if code:
        return code
    report = out / "group.html"
    print(f"demo: group report: {report if report.exists() else 'not written'}")
    _print_agreement(bids, out)
    return 0


def _print_agreement(bids: Path, out: Path) -> None:
    """Print how far the maps agree with the planted layers, per sphere and at the group."""
    profiles = sphere_layer_profiles(bids, out)
    for p in profiles:
        best, planted = p["best_layer"], p["planted_layer"]
        if best is None:
            print(f"demo: sphere {p['index']} has no searchlight values in the maps")
            continue
        print(f"demo: sphere {p['index']} at {tuple(round(c) for c in p['center_mni'])} mm, "
              f"planted {LAYER_NAMES[planted - 1]}: highest mean r {LAYER_NAMES[best - 1]} "
              f"({p['mean_r'][best - 1]:.3f}; planted layer {p['mean_r'][planted - 1]:.3f}; "
              f"{p['n_participants']} participants)")
    if not sorted((out / "group").glob("*desc-bestlayer_dseg.nii.gz")):
        print("demo: no group layer map to compare with the planted layers")
        return
    agreement = group_layer_agreement(bids, out)
    for test, name in (("study", "the study's test"), ("permutation", "the permutation test")):
        if test not in agreement:
            continue
        found, match = agreement[test]["significant_planted"], agreement[test]["layer_match"]
        print(f"demo: {found} of the {agreement['planted_voxels_in_mask']} planted voxels in "
              f"the group mask are significant in {name}"
              + (f"; the layer map names the planted layer in {100 * match:.0f}% of them"
                 if match is not None else ""))
    if profiles and profiles[0]["n_participants"] < 3:
        print(f"demo: with {profiles[0]['n_participants']} participants the group tests have "
              "almost no power (a t-test with one degree of freedom; a permutation null of "
              "few combinations), so few or no significant voxels are expected here; the "
              "per-sphere means above show what the maps hold (docs/statistics.md)")

if __name__ == "__main__":
    sys.exit(main())
