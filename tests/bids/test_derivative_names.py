"""Our derivative file names against the BIDS schema, the way the BIDS validator 2.x reads them.

The installed validator (legacy 1.x) has no derivatives support, so the names are checked here
with the schema's own package, ``bidsschematools``: a path of the output tree passes when our
``.bidsignore`` hides it (gitignore rules, as the validator applies them) or when one of the
schema's file rules (common, raw and derivative: preprocessed data, masks, segmentations) matches
the whole path, folders included.  ``.bidsignore`` may only hide drafts and non-BIDS folders:
no standard output, and no datatype folder, may disappear behind it.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path, PurePosixPath

import bidsschematools.rules
import bidsschematools.schema
import pathspec
import pytest

from bidsapp.bids.derivatives import BIDSIGNORE

#: The exact output tree of the participant and group levels on the simulated tiny preset.
EXPECTED_OUTPUTS = Path(__file__).resolve().parents[1] / "data" / "expected_outputs.txt"
#: The validator's own configuration, which it reads and never names against the schema.
VALIDATOR_FILES = {".bidsignore"}


@cache
def _schema_rules() -> tuple[re.Pattern, ...]:
    """Compile the schema's file rules for a derivative dataset (raw rules apply there too)."""
    schema = bidsschematools.schema.load_schema()
    files = schema.rules.files
    rules = []
    for group in (files.common, files.raw, files.deriv):
        rules += bidsschematools.rules.regexify_filename_rules(group, schema, level=2)
    return tuple(re.compile(rule["regex"]) for rule in rules)


def _is_valid(path: str) -> bool:
    """Whether a file rule of the schema matches the whole dataset-relative path."""
    return any(rule.match(path) for rule in _schema_rules())


def _ignore_spec(bidsignore: str) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(bidsignore.splitlines())


def _output_paths() -> list[str]:
    return [line.strip() for line in EXPECTED_OUTPUTS.read_text().splitlines() if line.strip()]


def _datatype_folders(paths: list[str]) -> set[str]:
    """``sub-XX[/ses-YY]/<datatype>/`` folders of the output tree, by the schema's datatypes."""
    datatypes = set(bidsschematools.schema.load_schema().objects.datatypes)
    folders = set()
    for path in paths:
        parts = PurePosixPath(path).parts
        for depth in (1, 2):
            if (len(parts) > depth + 1 and parts[0].startswith("sub-")
                    and (depth == 1 or parts[1].startswith("ses-"))
                    and parts[depth] in datatypes):
                folders.add("/".join(parts[:depth + 1]) + "/")
    return folders


def _hidden_standard_outputs(bidsignore: str, paths: list[str]) -> list[str]:
    """Standard outputs, and whole datatype folders, that ``bidsignore`` keeps from the validator.

    A path the schema accepts is a standard output and must be validated, not ignored; a
    datatype folder must neither match a pattern itself nor have every file in it ignored.
    """
    spec = _ignore_spec(bidsignore)
    hidden = [path for path in paths if spec.match_file(path) and _is_valid(path)]
    for folder in sorted(_datatype_folders(paths)):
        inside = [path for path in paths if path.startswith(folder)]
        if spec.match_file(folder) or all(spec.match_file(path) for path in inside):
            hidden.append(folder)
    return hidden


def test_every_output_not_ignored_is_a_valid_derivative_name():
    paths = _output_paths()
    spec = _ignore_spec(BIDSIGNORE)
    checked = [p for p in paths if p not in VALIDATOR_FILES and not spec.match_file(p)]
    invalid = [p for p in checked if not _is_valid(p)]
    assert not invalid, (f"{len(invalid)} of {len(checked)} outputs match no file rule of BIDS "
                         f"{bidsschematools.schema.load_schema().bids_version} and are not in "
                         "the .bidsignore: " + ", ".join(invalid))
    # The standard outputs of both levels are among the checked names, not ignored.
    for standard in ("_desc-preproc_T1w.nii.gz", "_desc-preproc_bold.nii.gz", "_mask.nii.gz",
                     "_desc-bestlayer_dseg.nii.gz", "dataset_description.json"):
        assert any(p.endswith(standard) for p in checked), standard


def test_bidsignore_hides_no_standard_output_and_no_datatype_folder():
    assert _hidden_standard_outputs(BIDSIGNORE, _output_paths()) == []


def test_non_bids_folders_and_reports_are_ignored():
    spec = _ignore_spec(BIDSIGNORE)
    paths = _output_paths()
    for prefix in ("features/", "logs/", "group/"):
        assert all(spec.match_file(p) for p in paths if p.startswith(prefix)), prefix
    assert all(spec.match_file(p) for p in paths if p.endswith(".html"))


@pytest.mark.parametrize("pattern", ["anat/", "sub-*/anat/", "sub-01/func/", "*_T1w.nii.gz",
                                     "*_mask.*", "*.nii.gz", "sub-*/"])
def test_the_guard_catches_an_ignore_list_that_hides_standard_outputs(pattern):
    assert _hidden_standard_outputs(BIDSIGNORE + pattern + "\n", _output_paths())


@pytest.mark.parametrize(("path", "valid"), [
    ("sub-01/anat/sub-01_desc-preproc_T1w.nii.gz", True),
    ("sub-01/func/sub-01_task-music_run-1_space-MNI152NLin2009aSym_res-2p4_desc-preproc_bold"
     ".nii.gz", True),
    ("sub-01/func/sub-01_task-music_space-MNI152NLin2009aSym_desc-bestlayer_dseg.tsv", True),
    ("sub-01/func/sub-02_task-music_desc-preproc_bold.nii.gz", False),  # subject mismatch
    ("sub-01/func/sub-01_desc-preproc_bold.nii.gz", False),  # task is required
    ("sub-01/func/sub-01_task-music_desc-preproc_space-MNI152NLin2009aSym_bold.nii.gz",
     False),  # entity order
    ("sub-01/anat/sub-01_task-music_desc-preproc_bold.nii.gz", False),  # wrong datatype
    ("group/task-music_desc-bestlayer_dseg.nii.gz", False),  # outside a datatype folder
])
def test_schema_rules_are_strict(path, valid):
    assert _is_valid(path) is valid
