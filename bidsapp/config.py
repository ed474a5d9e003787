"""One frozen dataclass holding every option of a run, saved as TOML beside the outputs."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from bidsapp.errors import MissingInputError, UsageError
from bidsapp.io import write_text

DEFAULT_SPACE = "MNI152NLin2009cAsym"
DEFAULT_RES = 2.4  # mm, the study's voxel size
_PATH_FIELDS = {"bids_dir", "output_dir", "work_dir", "bids_filter_file", "use_plugin"}


@dataclass(frozen=True)
class Config:
    """Every option of one bidsapp run.

    Built once by the command line (or read back from a TOML file) and passed down
    explicitly; there is no global configuration module.  Paths are absolute.
    """

    bids_dir: Path
    output_dir: Path
    analysis_level: str
    participant_label: tuple[str, ...] = ()
    session_label: tuple[str, ...] = ()
    task: tuple[str, ...] = ()
    bids_filter_file: Path | None = None
    bids_filters: dict[str, Any] = field(default_factory=dict)
    work_dir: Path | None = None
    nprocs: int | None = None
    omp_nthreads: int | None = None
    mem_gb: float | None = None
    use_plugin: Path | None = None
    skip_bids_validation: bool = False
    stop_on_first_crash: bool = False
    boilerplate_only: bool = False
    reports_only: bool = False
    write_graph: bool = False
    resource_monitor: bool = False
    clean_workdir: bool = False
    random_seed: int = 0
    device: str = "auto"
    derivatives: dict[str, Path] = field(default_factory=dict)
    output_space: str = DEFAULT_SPACE
    output_res: float = DEFAULT_RES
    searchlight_size: int = 100
    #: ``--searchlight-jobs``: nodes (cluster jobs under a graph plugin) that share each
    #: participant's searchlight centres.
    searchlight_jobs: int = 1
    drop_seconds: float = 6.0
    fdr_q: float = 0.05
    n_permutations: int = 100
    slice_time_ref: float = 0.5
    #: ``--repetition-time``: the TR of every selected run, replacing the sidecars'.
    repetition_time: float | None = None
    normalization_quality: str = "default"
    interpolation: str = "cubic"
    verbose: int = 0

    @property
    def resolved_work_dir(self) -> Path:
        """The work directory, defaulting to ``<output_dir>/../work`` like other BIDS-Apps."""
        if self.work_dir is not None:
            return self.work_dir
        return self.output_dir.parent / "work"

    @property
    def threads(self) -> int:
        """Threads each multi-threaded step uses: ``--omp-nthreads``, else min(nprocs, 8).

        As in fMRIPrep, a step may use every process slot up to 8, so that a step that runs
        alone (the searchlight, normalisation) does not leave cores idle; beyond 8 threads
        ITK and BLAS gain little, and more steps run side by side instead.
        """
        if self.omp_nthreads:
            return max(1, self.omp_nthreads)
        return max(1, min(self.nprocs or os.cpu_count() or 1, 8))

    @property
    def jobs_at_once(self) -> int:
        """How many multi-threaded jobs run at the same time: processes over threads each."""
        return max(1, (self.nprocs or os.cpu_count() or 1) // self.threads)

    @property
    def job_memory_gb(self) -> float:
        """GB each job that runs at once may hold: ``--mem`` shared out among them.

        Without ``--mem``, 90% of this machine's memory, as nipype's MultiProc assumes.
        """
        total = self.mem_gb or 0.9 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") \
            / 2**30
        return total / self.jobs_at_once

    def to_dict(self) -> dict[str, Any]:
        """Return the options as TOML-ready plain types (paths as strings, ``None`` omitted)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif f.name == "derivatives":
                value = {k: str(v) for k, v in value.items()}
            out[f.name] = value
        return out

    def to_toml(self) -> str:
        """Serialise the configuration as TOML text."""
        return tomli_w.dumps({"bidsapp": self.to_dict()})

    def save(self, path: str | Path) -> Path:
        """Atomically write the configuration as TOML to ``path``."""
        return write_text(path, self.to_toml())

    def replace(self, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build a configuration from plain types, as read from TOML.

        Raises
        ------
        UsageError
            If a key is unknown or a required key is missing.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(
                f"Unknown configuration option(s): {', '.join(unknown)}",
                fix=f"use only these keys under [bidsapp]: {', '.join(sorted(known))}",
            )
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in _PATH_FIELDS:
                value = Path(value)
            elif key in {"participant_label", "session_label", "task"}:
                value = tuple(str(v) for v in value)
            elif key == "derivatives":
                value = {str(k): Path(v) for k, v in value.items()}
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise UsageError(f"Incomplete configuration: {exc}") from exc


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read the ``[bidsapp]`` table of a TOML configuration file.

    Parameters
    ----------
    path : str or Path
        A file written by :meth:`Config.save` or by hand.

    Returns
    -------
    dict
        The options; command-line arguments override them.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    UsageError
        If it is not valid TOML.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(
            "The configuration file does not exist", path=path, fix="check the --config-file path"
        )
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"The configuration file is not valid TOML ({exc})",
            path=path,
            fix="fix the syntax, or regenerate it from output_dir/logs/config-*.toml",
        ) from exc
    return data.get("bidsapp", data)
