"""Running the analysis levels: checks, the workflow run, crash handling and reports.

The command line calls :func:`run`; each level then goes down the parts in one
direction: ``levels`` -> ``workflows`` (the ``init_*_wf`` factories) -> ``interfaces``
(nipype wrappers) -> the library parts (``bids``, ``design``, ``preproc``, ``audio``,
``rsa``, ``stats``, ``reports``).  See ``docs/architecture.md``.
"""

from __future__ import annotations

from bidsapp.config import Config
from bidsapp.errors import UsageError

from .group import run_group
from .participant import run_participant

__all__ = ["run", "run_group", "run_participant"]


def run(config: Config) -> int:
    """Run one analysis level as configured and return the exit code.

    Parameters
    ----------
    config : Config
        The frozen options of this run.

    Returns
    -------
    int
        0 when the run completed.

    Raises
    ------
    BidsAppError
        For every user error, with its documented exit code.
    """
    if config.analysis_level == "participant":
        return run_participant(config)
    if config.analysis_level == "group":
        return run_group(config)
    raise UsageError(f"Unknown analysis level {config.analysis_level!r}",
                     fix="use participant or group")
