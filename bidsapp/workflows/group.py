"""Group level: the study's max-over-layers statistics across participants."""

from __future__ import annotations

from bidsapp.config import Config
from bidsapp.errors import NotAvailableError


def run_group_level(config: Config, subjects: list[str]) -> int:
    """Run the group statistics over the participants' searchlight maps.

    Parameters
    ----------
    config : Config
        The options of this run.
    subjects : list of str
        The ``sub-<label>`` folders found in the output directory.

    Returns
    -------
    int
        0 on success.

    Raises
    ------
    NotAvailableError
        Always, in this version: the group statistics are not released yet.
    """
    raise NotAvailableError(
        f"The group statistics are not available in this version of bidsapp (participant "
        f"outputs found for {', '.join(subjects)})", path=config.output_dir,
        fix="use the participant-level outputs for now; the group level comes in a later release",
    )
