"""End to end on the naturalistic preset at reduced length: whole songs of unequal length.

Slow: two participants of 2 runs of 16 pieces of 13 to 35.5 s, all of different lengths
(the preset's 89-225 s songs, shortened; at 15 % the preset's pairs would round to equal
lengths in TRs), about 450 volumes a run at TR 1 s, 4 mm voxels, through the participant
and group levels.  As in ``test_end_to_end.py`` the simulation and the app use the untrained
weights, whose layers are told apart at short lengths.  Checked: the design reaches the
analysis (unequal trials, the fitted null recorded in the sidecar), every planted sphere
peaks at its planted layer, and far from the spheres the maximum minus its permutation null
is not above 0 (the fitted null is, if anything, conservative), while the raw maximum is.
"""

from __future__ import annotations

import json

import pytest
from planted_truth import check_planted_truth

SPACE = "MNI152NLin2009aSym"
PREFIX = f"task-music_space-{SPACE}_res-4"
DURATIONS = [f"{13 + 1.5 * k:g}" for k in range(16)]
SHORT = ["--subjects", "2", "--clip-durations", *DURATIONS, "--voxel-size", "4", "--fov", "200",
         "--slices", "38", "--multiband", "2", "--t1w-voxel-size", "2", "--snr", "2",
         "--radius", "12", "--rest", "8"]
APP = ["--output-space", SPACE, "--output-res", "4", "--normalization-quality", "fast",
       "--nprocs", "2", "--omp-nthreads", "1", "--n-permutations", "20",
       "--skip-bids-validation"]


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_naturalistic_preset_end_to_end(run_app, tmp_path, monkeypatch):
    from bidsapp.audio.weights import init_untrained

    init_untrained(tmp_path / "models")
    monkeypatch.setenv("BIDSAPP_MODELS_DIR", str(tmp_path / "models"))
    bids, out = tmp_path / "bids", tmp_path / "out"
    proc = run_app("simulate", bids, "--preset", "naturalistic", "--seed", "1", *SHORT,
                   timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_app(bids, out, "participant", "-w", tmp_path / "work", *APP, timeout=3000)
    assert proc.returncode == 0, proc.stderr[-5000:]
    proc = run_app(bids, out, "group", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-5000:]

    func = [out / f"sub-{label}" / "func" for label in ("01", "02")]
    null_meta = json.loads(next(func[0].glob(f"*_{PREFIX}_desc-maxnull_stat-r_statmap.json"))
                           .read_text())
    assert null_meta["PermutationScheme"] == "fitted-trial-blocks"
    lengths = null_meta["TrialLengths"]
    assert len(lengths) == 16 and len(set(lengths)) > 2
    assert (out / "group.html").is_file()

    # Within 6 mm of each planted centre (the 4 mm grid): the center voxel and its neighbours.
    check_planted_truth(bids, func, PREFIX, near_mm=6.0, min_null_voxels=300,
                        conservative_null=True)
