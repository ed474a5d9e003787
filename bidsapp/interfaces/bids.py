"""The data sinks: every derivative the participant level writes goes through this module.

Named by BIDS entities with niworkflows' sink and path patterns (as fMRIPrep's
``niworkflows.interfaces.bids``), written atomically.  Importing niworkflows indexes
TemplateFlow's cache, so only the workflows import this module; the library parts
(the group level's outputs, the reports) name files with
:func:`bidsapp.bids.derivatives.derivative_name`.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import niworkflows.interfaces.bids as niw_bids
from nipype.pipeline import engine as pe
from niworkflows.interfaces.bids import BIDS_DERIV_PATTERNS
from niworkflows.interfaces.bids import DerivativesDataSink as _NiwDerivativesDataSink

#: niworkflows' path patterns plus ours: statistical maps (BEP012 draft) and RDMs.
PATH_PATTERNS = (
    "sub-{subject}[/ses-{session}]/{datatype<func>|func}/sub-{subject}[_ses-{session}]"
    "[_task-{task}][_acq-{acquisition}][_run-{run}][_space-{space}][_res-{resolution}]"
    "[_desc-{desc}]_{suffix<statmap|rdm|dseg>}{extension<.nii|.nii.gz|.json|.tsv|.npy|.png|.svg>"
    "|.nii.gz}",
    "sub-{subject}[/ses-{session}]/{datatype<figures>}/sub-{subject}[_ses-{session}]"
    "[_task-{task}][_desc-{desc}]_{suffix<rdm>}{extension<.svg|.png>|.svg}",
    *BIDS_DERIV_PATTERNS,
)


class _EverySpace:
    """Stands for niworkflows' standard spaces when the sink knows its own ``Resolution``."""

    def __contains__(self, space: object) -> bool:
        return True


class DerivativesDataSink(_NiwDerivativesDataSink):
    """niworkflows' data sink, naming files by BIDS entities, writing them atomically.

    Files are first written into a hidden staging folder beside the outputs and then
    renamed into place one by one, so an interrupted run never leaves a truncated file
    under a final derivative name.  Outputs go straight under ``base_directory`` (no
    pipeline sub-folder), as the output directory is already the derivatives root.
    """

    out_path_base = ""
    _file_patterns = PATH_PATTERNS
    # niworkflows describes the ``res`` entity of a standard space by asking TemplateFlow,
    # which indexes (or downloads) its cache in every sink; our sidecars carry their own
    # ``Resolution`` text instead.
    _standard_spaces = ()

    def _run_interface(self, runtime):
        # niworkflows overwrites the sidecar's Resolution with "Unknown" for every space
        # it does not look up in TemplateFlow; a Resolution given to the sink is kept by
        # answering its lookup with that text, for the length of this sink's run.
        resolution = self._metadata.get("Resolution")
        lookup = niw_bids._get_tf_resolution
        if resolution is not None:
            self._standard_spaces = _EverySpace()
            niw_bids._get_tf_resolution = lambda space, res: resolution
        try:
            return self._write_atomically(runtime)
        finally:
            niw_bids._get_tf_resolution = lookup

    def _write_atomically(self, runtime):
        final_base = Path(self.inputs.base_directory).absolute()
        staging = final_base / f".staging-{os.getpid()}-{secrets.token_hex(4)}"
        self.inputs.base_directory = str(staging)
        try:
            try:
                runtime = super()._run_interface(runtime)
            except OSError as exc:
                if exc.filename is None:
                    # A copy that fills the disk names no file; the run's exit-73 message
                    # must name the output folder, not the work folder.
                    exc.filename = str(final_base)
                raise
            moved = []
            for key in ("out_file", "out_meta"):
                files = self._results.get(key)
                if not files:
                    continue
                single = isinstance(files, str)
                finals = []
                for staged in [files] if single else files:
                    final = final_base / Path(staged).relative_to(staging)
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staged, final)
                    moved.append(final)
                    finals.append(str(final))
                self._results[key] = finals[0] if single else finals
        finally:
            self.inputs.base_directory = str(final_base)
            shutil.rmtree(staging, ignore_errors=True)
        return runtime


#: Derivative names our sink adds to the app's: masks with a ``label`` and no ``desc``.
EXTRA_PATTERNS = (
    "sub-{subject}[/ses-{session}]/{datatype<anat>|anat}/sub-{subject}[_ses-{session}]"
    "[_acq-{acquisition}][_rec-{reconstruction}][_run-{run}][_space-{space}]"
    "[_res-{resolution}][_label-{label}][_desc-{desc}]_{suffix<mask>|mask}"
    "{extension<.nii|.nii.gz|.json>|.nii.gz}",
)


def _copy_keeping_gzip(src, dst, fallback):
    """Copy a gzip file as it is; anything else as niworkflows would."""
    if str(src).endswith(".gz") and str(dst).endswith(".gz"):
        shutil.copyfile(src, dst)
        return True
    return fallback(src, dst)


class PreprocDataSink(DerivativesDataSink):
    """The app's atomic data sink, with our extra patterns and no TemplateFlow lookups.

    niworkflows describes a ``res`` entity of a standard space by asking TemplateFlow,
    which would index the whole cache in every sink; our sidecars carry their own
    ``Resolution`` instead (set it as an input).  Headers are written right by the
    producing interfaces, so the sinks copy files as they are: niworkflows would also
    decompress and recompress every ``.nii.gz`` at level 9, 90 s per run of the study.
    """

    _file_patterns = (*EXTRA_PATTERNS, *PATH_PATTERNS)
    _standard_spaces = ()

    def _run_interface(self, runtime):
        # niworkflows' DerivativesDataSink copies each file with its module-level
        # ``_copy_any``, which decompresses and recompresses every ``.nii.gz`` at level 9,
        # and offers no option to copy as it is; the function is swapped for the length of
        # this sink's run (each sink runs in one process, one at a time).
        original = niw_bids._copy_any
        niw_bids._copy_any = lambda src, dst: _copy_keeping_gzip(src, dst, original)
        try:
            return super()._run_interface(runtime)
        finally:
            niw_bids._copy_any = original


def datasink(name: str, output_dir: Path, *, resolution_text: str | None = None,
             **entities) -> pe.Node:
    """Return a data-sink node writing under ``output_dir`` with fixed ``entities``.

    Parameters
    ----------
    name : str
        Node name.
    output_dir : Path
        The derivatives root.
    resolution_text : str, optional
        Value of the sidecar's ``Resolution`` field (required by BIDS with ``res-``).
    **entities
        BIDS entities and ``suffix``, ``datatype``, ``compress``, ``dismiss_entities``.

    Returns
    -------
    nipype.pipeline.engine.Node
        Runs in the main process: it only copies files.
    """
    if resolution_text is not None:
        # Only keyword arguments of the constructor reach niworkflows' sidecar metadata.
        entities["Resolution"] = resolution_text
    return pe.Node(PreprocDataSink(base_directory=str(output_dir), check_hdr=False,
                                   **entities),
                   name=name, run_without_submitting=True)
