import math

import pytest

from bidsapp.errors import UsageError
from bidsapp.rsa.stacking import n_dropped
from bidsapp.simulate.presets import DEFAULT_CENTERS, DEFAULT_LAYERS, PRESETS, make_params


def test_study_preset_follows_the_methods():
    p = make_params("study")
    assert (p.subjects, p.runs, p.clips, p.clip_seconds) == (6, 8, 16, 29.0)
    assert (p.tr, p.voxel_size, p.multiband, p.slices, p.fov_mm) == (0.735, 2.4, 8, 64, 210.0)


def test_tiny_preset_stacks_at_least_30_trs():
    p = make_params("tiny")
    per_trial = math.ceil(round(p.clip_seconds / p.tr, 9)) - n_dropped(p.tr)
    assert p.clips * per_trial >= 30


def test_overrides_apply_and_none_is_ignored():
    p = make_params("tiny", snr=0.5, runs=None)
    assert p.snr == 0.5 and p.runs == PRESETS["tiny"]["runs"]


def test_fewer_layers_take_the_first_centres_and_the_other_way_round():
    p = make_params("tiny", layers=[5])
    assert p.layers == (5,) and p.centers == DEFAULT_CENTERS[:1]
    p = make_params("tiny", centers=[(0, -80, 10), (40, 20, 30)])
    assert p.layers == DEFAULT_LAYERS[:2] and p.centers == ((0, -80, 10), (40, 20, 30))


@pytest.mark.parametrize("overrides", [
    dict(layers=[0]), dict(layers=[11]), dict(clip_seconds=2.0), dict(tr=0.01),
    dict(slices=30, multiband=4), dict(snr=-1), dict(ar_coefficient=1.0),
    dict(centers=[(0, 0, 0), (5, 0, 0)], layers=[1, 2]), dict(layers=[1, 2, 3, 4]),
    dict(bogus=1), dict(max_motion_mm=-1), dict(gap_seconds=(5, 1)),
])
def test_invalid_parameters_are_usage_errors(overrides):
    with pytest.raises(UsageError):
        make_params("tiny", **overrides)


def test_unknown_preset():
    with pytest.raises(UsageError, match="preset"):
        make_params("huge")


@pytest.mark.parametrize("seed", [-1, 1.5, "3"])
def test_invalid_seed_is_a_usage_error(tmp_path, seed):
    from bidsapp.simulate import simulate

    with pytest.raises(UsageError, match="seed"):
        simulate(tmp_path / "out", seed=seed)
    assert not (tmp_path / "out").exists()
