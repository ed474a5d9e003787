"""Preprocessing reportlets grouped by run, with headings and captions from their names.

The participant workflow names each reportlet by BIDS entities
(``sub-01_ses-1_task-music_run-2_desc-coreg_bold.svg``), so the report can tell which run
a figure shows and what it is without being told.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_ENTITY = re.compile(r"(?:^|_)([a-zA-Z]+)-([a-zA-Z0-9+.]+)")
RUN_ENTITIES = ("ses", "task", "acq", "run")
"""Entities that tell one run's figures from another's, in heading order."""

CAPTIONS = {
    "coreg": "Coregistration: the run's BOLD reference volume and the T1w, shown in "
             "alternation (move the pointer over the figure); edges should line up.",
    "motion": "Head motion estimated for this run: translations, rotations and framewise "
              "displacement (FD; the dashed line marks 0.5 mm).",
    "carpetplot": "Carpet plot of the preprocessed series in template space: each row is a "
                  "voxel (grey matter, then the rest of the brain), detrended and z-scored; "
                  "FD above it. Voxels outside the field of view are not drawn.",
    "T1w": "Spatial normalization: the T1w and the template, shown in alternation (move "
           "the pointer over the figure), with the template's brain mask outlined.",
}
"""Caption per ``desc`` (or suffix when there is no ``desc``) of the workflow's reportlets."""

ORDER = ("T1w", "coreg", "motion", "carpetplot")
"""Display order of the reportlets of one group."""


def name_entities(name: str) -> dict[str, str]:
    """Return the ``key-value`` entities of a BIDS file name, suffix and extension left out.

    Parameters
    ----------
    name : str
        A file name such as ``sub-01_task-music_run-1_desc-coreg_bold.svg``.

    Returns
    -------
    dict of str to str
        E.g. ``{"sub": "01", "task": "music", "run": "1", "desc": "coreg"}``.
    """
    stem = name.split(".")[0]
    return dict(_ENTITY.findall(stem))


def _kind(name: str) -> str:
    entities = name_entities(name)
    if "desc" in entities:
        return entities["desc"]
    return name.split(".")[0].rsplit("_", 1)[-1]


@dataclass
class ReportletGroup:
    """The reportlets of one run (or of the anatomy), with the run's confounds file."""

    key: tuple[tuple[str, str], ...]
    reportlets: list[Path] = field(default_factory=list)
    confounds: Path | None = None

    @property
    def heading(self) -> str:
        """``Anatomical`` or e.g. ``ses-1, task-music, run-2``."""
        if not self.key:
            return "Anatomical"
        return ", ".join(f"{k}-{v}" for k, v in self.key)

    @property
    def anchor(self) -> str:
        """An id for in-page links."""
        return "prep-" + ("anat" if not self.key else "-".join(f"{k}-{v}" for k, v in self.key))

    def caption(self, path: Path) -> str:
        """Return the caption of one of this group's reportlets: the run, then what it shows."""
        what = CAPTIONS.get(_kind(path.name), "Preprocessing figure.")
        return f"{self.heading}: {what} ({path.name})"


def _run_key(name: str) -> tuple[tuple[str, str], ...]:
    entities = name_entities(name)
    if "task" not in entities:
        # The anatomical reportlets: a session of its own only when the T1w had one.
        return ()
    return tuple((k, entities[k]) for k in RUN_ENTITIES if k in entities)


def _natural(value: str) -> tuple:
    # run-10 after run-2.
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", value))


def group_reportlets(reportlets: Sequence[str | Path],
                     confounds: Sequence[str | Path] = ()) -> list[ReportletGroup]:
    """Group reportlets and confounds files by run, anatomy first, runs in natural order.

    Parameters
    ----------
    reportlets : sequence of str or Path
        SVG files named by BIDS entities.
    confounds : sequence of str or Path, optional
        ``desc-confounds_timeseries.tsv`` files, attached to the group of their run.

    Returns
    -------
    list of ReportletGroup
        One per anatomy and per run; within a group the reportlets are in :data:`ORDER`.
    """
    groups: dict[tuple, ReportletGroup] = {}
    for path in map(Path, reportlets):
        key = _run_key(path.name)
        groups.setdefault(key, ReportletGroup(key)).reportlets.append(path)
    for path in map(Path, confounds):
        key = _run_key(path.name)
        groups.setdefault(key, ReportletGroup(key)).confounds = path
    rank = {kind: k for k, kind in enumerate(ORDER)}
    for group in groups.values():
        group.reportlets.sort(key=lambda p: (rank.get(_kind(p.name), len(ORDER)), p.name))
    return [groups[k] for k in sorted(groups, key=lambda key: [(e, _natural(v))
                                                                for e, v in key])]
