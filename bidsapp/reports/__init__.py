"""Figures (nilearn, matplotlib) and self-contained HTML reports; no computation.

- :func:`write_participant_report`: ``sub-<label>.html``;
- :func:`write_group_report`: ``group.html``;
- :func:`write_citation`: ``logs/CITATION.md``.
"""

from .citation import write_citation
from .group import GroupSection, InferenceMaps, cluster_table, write_group_report
from .participant import write_participant_report

__all__ = [
    "GroupSection",
    "InferenceMaps",
    "cluster_table",
    "write_citation",
    "write_group_report",
    "write_participant_report",
]
