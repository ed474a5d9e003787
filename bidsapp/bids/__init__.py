"""BIDS input collection (pybids), derivative naming and the dataset description."""

from bidsapp.bids.collect import (
    BoldRun,
    SubjectData,
    Trial,
    collect_participants,
    collect_subject,
    open_layout,
)

__all__ = [
    "BoldRun",
    "SubjectData",
    "Trial",
    "collect_participants",
    "collect_subject",
    "open_layout",
]
