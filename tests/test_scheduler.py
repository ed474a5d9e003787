"""The cluster plugins' scheduler check (bidsapp/levels/scheduler.py), where no scheduler is.

The checks against a real SLURM whose controller or munge is down are in
``tests/test_slurm_cluster.py`` (slow, needs root).
"""

from __future__ import annotations

import pytest

from bidsapp.errors import NotAvailableError
from bidsapp.levels.scheduler import check_scheduler


@pytest.mark.parametrize(("plugin", "command"), [("SLURMGraph", "sbatch"), ("SLURM", "sbatch"),
                                                 ("SGEGraph", "qsub"), ("SGE", "qsub")])
def test_missing_submit_command_names_it_and_the_fix(tmp_path, monkeypatch, plugin, command):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no scheduler commands
    with pytest.raises(NotAvailableError) as raised:
        check_scheduler(plugin)
    assert raised.value.exit_code == 69
    assert command in raised.value.message and "without --use-plugin" in raised.value.fix


@pytest.mark.parametrize("plugin", ["MultiProc", "Linear", "bidsapp"])
def test_local_plugins_need_no_scheduler(tmp_path, monkeypatch, plugin):
    monkeypatch.setenv("PATH", str(tmp_path))
    check_scheduler(plugin)
