"""Standard-space templates through TemplateFlow, offline by default.

Every template file the app reads comes from TemplateFlow's cache (``TEMPLATEFLOW_HOME``).
The container fills that cache at build time (``bidsapp templates fetch SPACE``).  On a
machine without network access, ``--output-space MNI152NLin2009aSym`` still works: the
ICBM 2009a nonlinear symmetric template that nilearn ships is copied into the cache under
its true TemplateFlow name (``bidsapp templates seed-nilearn``, or automatically when that
space is asked for).

TemplateFlow reads its settings when it is first imported, so
:func:`configure_templateflow_home` must run before anything imports ``templateflow`` or
``niworkflows``; the command line calls it first thing.  A template that is not in the
cache ends the run with :class:`~bidsapp.errors.MissingInputError` (exit 66) and the fix;
this module never asks TemplateFlow to download during a run, so nothing hangs on a
network timeout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np

from bidsapp.errors import BidsAppError, CannotWriteError, MissingInputError, UsageError
from bidsapp.io import atomic_write, write_json

LOGGER = logging.getLogger("bidsapp.templates")

NILEARN_SPACE = "MNI152NLin2009aSym"
"""The true TemplateFlow name of the MNI152 template bundled with nilearn."""

_ENV_DEFAULTS = {
    # Never refresh the skeleton from GitHub when the cache is first created.
    "TEMPLATEFLOW_AUTOUPDATE": "0",
    # DataLad would try to clone from GitHub; plain files are what the container holds.
    "TEMPLATEFLOW_USE_DATALAD": "0",
}

_NILEARN_FILES = {
    "T1w": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "label-GM_probseg": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "label-WM_probseg": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


def configure_templateflow_home(home: str | Path | None = None) -> Path:
    """Point TemplateFlow at its cache and switch off its network updates.

    Call this before anything imports ``templateflow`` or ``niworkflows``: they read the
    environment once, at import.  (This module's own lookups read it at each call.)

    Parameters
    ----------
    home : str or Path, optional
        The cache folder.  By default the user's ``TEMPLATEFLOW_HOME`` is kept, and when it
        is unset ``$XDG_CACHE_HOME/templateflow`` (``~/.cache/templateflow``) is used.

    Returns
    -------
    Path
        The cache folder now in ``TEMPLATEFLOW_HOME``.
    """
    if home is not None:
        os.environ["TEMPLATEFLOW_HOME"] = str(Path(home).expanduser().absolute())
    path = templateflow_home()
    os.environ["TEMPLATEFLOW_HOME"] = str(path)
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    loaded = sys.modules.get("templateflow.conf")
    if loaded is not None and Path(loaded.TF_HOME) != path:
        LOGGER.warning("templateflow was imported before configure_templateflow_home(); it "
                       "keeps using %s instead of %s", loaded.TF_HOME, path)
    return path


def templateflow_home() -> Path:
    """Return the TemplateFlow cache folder: ``TEMPLATEFLOW_HOME``, or its default."""
    home = os.environ.get("TEMPLATEFLOW_HOME")
    if home:
        return Path(home).expanduser().absolute()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "templateflow"


_CLIENTS: dict[Path, object] = {}


def _client():
    """Return a TemplateFlow client of the current cache folder (one per folder).

    A client reads ``TEMPLATEFLOW_HOME`` now rather than when ``templateflow`` was first
    imported, so the folder can be chosen at any time (tests use a temporary one).
    Indexing the cache takes seconds, hence one client per folder and process.
    """
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    home = templateflow_home()
    if home not in _CLIENTS:
        # templateflow reads TEMPLATEFLOW_HOME at import: after configure_templateflow_home
        from templateflow.client import TemplateFlowClient

        _CLIENTS[home] = TemplateFlowClient(root=home, use_datalad=False, autoupdate=False)
    return _CLIENTS[home]


@dataclass(frozen=True)
class TemplateFiles:
    """The files of one template that preprocessing needs, at 1 mm.

    Attributes
    ----------
    space : str
        TemplateFlow identifier, e.g. ``MNI152NLin2009cAsym``.
    t1w : Path
        The T1-weighted template (the registration target).
    brain_mask : Path
        Its brain mask.
    gm_probseg : Path
        Its grey-matter probability map.
    wm_probseg : Path or None
        Its white-matter probability map, for the report's carpet plot.
    """

    space: str
    t1w: Path
    brain_mask: Path
    gm_probseg: Path
    wm_probseg: Path | None = None


_QUERIES = {
    "t1w": {"suffix": "T1w", "desc": None},
    "brain_mask": {"suffix": "mask", "desc": "brain"},
    "gm_probseg": {"suffix": "probseg", "label": "GM", "desc": None},
    "wm_probseg": {"suffix": "probseg", "label": "WM", "desc": None},
}


def _is_fetched(path: Path) -> bool:
    # The TemplateFlow skeleton holds every file with size 0 until it is downloaded.
    return path.is_file() and path.stat().st_size > 0


def _missing_template(space: str, what: str) -> MissingInputError:
    offline = (f"or run offline with --output-space {NILEARN_SPACE}, which bidsapp seeds "
               "from nilearn")
    return MissingInputError(
        f"The template {space} is not in the TemplateFlow cache ({what})",
        path=templateflow_home() / f"tpl-{space}",
        fix=f"run 'bidsapp templates fetch {space}' on a machine with internet access and "
            f"the same TEMPLATEFLOW_HOME, use the container (it holds the default template), "
            f"{offline}",
    )


def _query(space: str, key: str) -> Path | None:
    found = _client().ls(space, resolution=1, extension=".nii.gz", **_QUERIES[key])
    return Path(sorted(found)[0]) if found else None


def known_templates() -> list[str]:
    """Return every template identifier in the cache's skeleton (fetched or not)."""
    home = _ensure_skeleton()
    return sorted(p.name.removeprefix("tpl-") for p in home.glob("tpl-*") if p.is_dir())


def _ensure_skeleton() -> Path:
    # Building the client's index installs TemplateFlow's bundled skeleton (no network)
    # into an empty cache; a folder per template then tells known from unknown names.
    _client().ls(NILEARN_SPACE, suffix="T1w")
    return templateflow_home()


def get_template(space: str, *, seed_nilearn: bool = True) -> TemplateFiles:
    """Return the 1 mm files of ``space`` from the TemplateFlow cache, without downloading.

    Parameters
    ----------
    space : str
        TemplateFlow identifier.
    seed_nilearn : bool, optional
        When ``space`` is :data:`NILEARN_SPACE` and the cache lacks it, copy it from nilearn
        first (the user asked for that template by its name).

    Returns
    -------
    TemplateFiles
        Paths of the T1w template, brain mask and tissue probability maps.

    Raises
    ------
    UsageError
        If TemplateFlow knows no template of that name (exit 64).
    MissingInputError
        If a needed file is not in the cache (exit 66), with the fix.
    """
    if space not in known_templates():
        raise UsageError(
            f"TemplateFlow knows no template named {space!r}",
            fix="give --output-space a TemplateFlow identifier such as MNI152NLin2009cAsym "
                "(default) or "
                f"{NILEARN_SPACE}; 'bidsapp templates list' shows those in the cache",
        )
    paths = {key: _query(space, key) for key in _QUERIES}
    required = ("t1w", "brain_mask", "gm_probseg")
    if seed_nilearn and space == NILEARN_SPACE and not all(
            paths[k] is not None and _is_fetched(paths[k]) for k in required):
        seed_from_nilearn()
        paths = {key: _query(space, key) for key in _QUERIES}
    for key in required:
        if paths[key] is None:
            raise _missing_template(space, f"TemplateFlow lists no 1 mm {key} file")
        if not _is_fetched(paths[key]):
            raise _missing_template(space, f"{paths[key].name} was never downloaded")
    wm = paths["wm_probseg"] if paths["wm_probseg"] and _is_fetched(paths["wm_probseg"]) \
        else None
    return TemplateFiles(space, paths["t1w"], paths["brain_mask"], paths["gm_probseg"], wm)


def _nilearn_data_dir() -> Path:
    # nilearn costs a second at start-up, where this module is imported; only seeding needs it
    import nilearn

    return Path(nilearn.__file__).parent / "datasets" / "data"


def seed_from_nilearn() -> Path:
    """Copy nilearn's MNI152NLin2009aSym files into the cache under TemplateFlow names.

    The T1w and the tissue maps are nilearn's files rescaled to 0-1 (float32); the brain
    mask is nilearn's (T1 above 0.2 of its maximum).  Files already present are replaced,
    so a partial seed is repaired.  The cache is ``TEMPLATEFLOW_HOME`` (see
    :func:`templateflow_home`); TemplateFlow's skeleton is installed there first.

    Returns
    -------
    Path
        The template folder ``<home>/tpl-MNI152NLin2009aSym``.

    Raises
    ------
    CannotWriteError
        If the cache folder cannot be written (exit 73).
    """
    # nilearn costs a second at start-up, where this module is imported; only seeding needs it
    from nilearn import datasets

    home = _ensure_skeleton()
    folder = home / f"tpl-{NILEARN_SPACE}"
    prefix = f"tpl-{NILEARN_SPACE}_res-1_"
    data_dir = _nilearn_data_dir()
    images = {f"{prefix}{name}.nii.gz": nb.load(data_dir / source)
              for name, source in _NILEARN_FILES.items()}
    images[f"{prefix}desc-brain_mask.nii.gz"] = datasets.load_mni152_brain_mask(resolution=1)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, img in images.items():
            data = np.asanyarray(img.dataobj)
            if name.endswith("_mask.nii.gz"):
                out = nb.Nifti1Image((data > 0).astype(np.uint8), img.affine)
            else:
                scaled = data.astype(np.float32) / max(float(data.max()), 1e-6)
                out = nb.Nifti1Image(scaled, img.affine)
            out.header.set_xyzt_units("mm")
            out.set_qform(img.affine, 4)
            out.set_sform(img.affine, 4)
            with atomic_write(folder / name) as tmp:
                out.to_filename(tmp)
        description = folder / "template_description.json"
        meta = json.loads(description.read_text()) if _is_fetched(description) else {}
        shape = list(images[f"{prefix}T1w.nii.gz"].shape)
        affine = images[f"{prefix}T1w.nii.gz"].affine
        meta.update({
            "Identifier": NILEARN_SPACE,
            "Name": "ICBM 152 Nonlinear Symmetrical template version 2009a",
            "res": {"1": {"origin": [float(v) for v in affine[:3, 3]], "shape": shape,
                          "zooms": [1.0, 1.0, 1.0]}},
            "bidsappSeededFrom": "nilearn (skull-stripped T1w and tissue maps, rescaled 0-1)",
        })
        write_json(description, meta)
    except OSError as exc:
        raise CannotWriteError(
            f"Cannot write the template into the TemplateFlow cache ({exc.strerror})",
            path=folder, fix="set TEMPLATEFLOW_HOME to a folder you can write to",
        ) from exc
    LOGGER.info("Seeded %s from nilearn into %s", NILEARN_SPACE, folder)
    return folder


def fetch_templates(spaces: list[str]) -> list[Path]:
    """Download the files preprocessing needs for ``spaces`` (needs internet access).

    Parameters
    ----------
    spaces : list of str
        TemplateFlow identifiers.

    Returns
    -------
    list of Path
        The files now in the cache.

    Raises
    ------
    MissingInputError
        If a download fails (no network, unknown file).
    """
    client = _client()
    fetched = []
    for space in spaces:
        if space not in known_templates():
            raise UsageError(f"TemplateFlow knows no template named {space!r}",
                             fix="check the spelling; 'bidsapp templates list' shows names")
        for key, query in _QUERIES.items():
            try:
                got = client.get(space, resolution=1, extension=".nii.gz", **query)
            except Exception as exc:  # templateflow raises RuntimeError, requests errors...
                if key == "wm_probseg":
                    continue
                raise MissingInputError(
                    f"Could not download {key} of {space} ({exc})",
                    path=templateflow_home() / f"tpl-{space}",
                    fix="check the network connection, or copy a filled TemplateFlow cache "
                        "and point TEMPLATEFLOW_HOME at it",
                ) from exc
            fetched += [Path(p) for p in (got if isinstance(got, list) else [got])]
    return fetched


def _status(space: str) -> str:
    try:
        get_template(space, seed_nilearn=False)
    except BidsAppError:
        return "not fetched"
    return "ready"


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bidsapp templates",
        description="Manage the TemplateFlow cache (TEMPLATEFLOW_HOME) bidsapp reads.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="list templates and whether they are ready offline")
    p_list.add_argument("--all", action="store_true",
                        help="list every template TemplateFlow knows, not only MNI152 ones")
    sub.add_parser("seed-nilearn",
                   help=f"copy nilearn's {NILEARN_SPACE} into the cache (works offline)")
    p_fetch = sub.add_parser("fetch", help="download templates (needs internet access)")
    p_fetch.add_argument("spaces", nargs="+", metavar="SPACE")
    sub.add_parser("home", help="print the TemplateFlow cache folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``bidsapp templates {list,seed-nilearn,fetch,home}`` and return the exit code.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after ``templates``.

    Returns
    -------
    int
        0 on success; errors raise :class:`~bidsapp.errors.BidsAppError`.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage; the app's code for it is 64
        return 0 if exc.code == 0 else UsageError.exit_code
    configure_templateflow_home()
    if args.command == "home":
        print(templateflow_home())
    elif args.command == "seed-nilearn":
        print(seed_from_nilearn())
    elif args.command == "fetch":
        for path in fetch_templates(args.spaces):
            print(path)
    else:
        names = known_templates()
        if not args.all:
            names = [n for n in names if n.startswith("MNI152")]
        print(f"TEMPLATEFLOW_HOME={templateflow_home()}")
        for name in names:
            print(f"{name:24s} {_status(name)}")
    return 0

