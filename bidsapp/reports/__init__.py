"""Figures (nilearn, matplotlib) and self-contained HTML reports; no computation.

- :func:`write_participant_report`: ``sub-<label>.html``;
- :func:`write_group_report`: ``group.html``;
- :func:`write_citation`: ``logs/CITATION.md``.
"""

from .citation import read_methods, write_citation
from .group import (
    GroupSection,
    InferenceMaps,
    UnthresholdedMaps,
    cluster_table,
    write_group_report,
)
from .participant import TaskMaps, read_sidecar, write_participant_report

__all__ = [
    "GroupSection",
    "InferenceMaps",
    "TaskMaps",
    "UnthresholdedMaps",
    "cluster_table",
    "read_methods",
    "read_sidecar",
    "write_citation",
    "write_group_report",
    "write_participant_report",
]
