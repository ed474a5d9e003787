import numpy as np
import pytest

from bidsapp.errors import BadDataError
from bidsapp.rsa.stacking import canonical_stimulus_order, n_dropped, stack_trials


def test_order_is_sorted_unique():
    events = ["stimuli/b.wav", "stimuli/a.wav", "stimuli/b.wav", "stimuli/c.wav"]
    assert canonical_stimulus_order(events) == ["stimuli/a.wav", "stimuli/b.wav", "stimuli/c.wav"]


@pytest.mark.parametrize(
    ("tr", "expected"), [(0.735, 9), (2.0, 3), (1.0, 6), (0.6, 10), (0.7, 9), (6.5, 1)]
)
def test_n_dropped_is_ceil_of_6_s(tr, expected):
    assert n_dropped(tr) == expected


def test_n_dropped_other_durations_and_bad_tr():
    assert n_dropped(0.5, drop_seconds=0.0) == 0
    assert n_dropped(0.3, drop_seconds=0.9) == 3
    with pytest.raises(ValueError):
        n_dropped(0.0)


def test_stack_trials_drops_then_concatenates_in_order():
    tr = 2.0  # drops 3 TRs
    per_trial = {
        "b": np.arange(10).reshape(2, 5) + 100,
        "a": np.arange(12).reshape(2, 6),
        "unused": np.zeros((2, 9)),
    }
    stacked = stack_trials(per_trial, ["a", "b"], tr)
    np.testing.assert_array_equal(
        stacked, np.concatenate([per_trial["a"][:, 3:], per_trial["b"][:, 3:]], axis=1)
    )
    assert stacked.shape == (2, 3 + 2)


def test_stack_trials_errors():
    good = np.zeros((3, 10))
    with pytest.raises(BadDataError, match="'missing'"):
        stack_trials({"a": good}, ["a", "missing"], 1.0)
    with pytest.raises(BadDataError, match="nothing is left"):
        stack_trials({"a": good, "b": np.zeros((3, 6))}, ["a", "b"], 1.0)
    with pytest.raises(BadDataError, match="numbers of features"):
        stack_trials({"a": good, "b": np.zeros((4, 10))}, ["a", "b"], 1.0)
    with pytest.raises(BadDataError, match="no trials"):
        stack_trials({"a": good}, [], 1.0)
