"""The derivatives skeleton: dataset description, .bidsignore and the entity-named sink."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np

from bidsapp import __version__
from bidsapp.bids.derivatives import container_info, write_dataset_description
from bidsapp.interfaces.bids import DerivativesDataSink


def test_dataset_description(bids_root, tmp_path, monkeypatch):
    monkeypatch.delenv("BIDSAPP_CONTAINER", raising=False)
    out = tmp_path / "out"
    path = write_dataset_description(out, bids_root)
    desc = json.loads(path.read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "bidsapp"
    assert desc["GeneratedBy"][0]["Version"] == __version__
    assert desc["SourceDatasets"][0]["URL"] == bids_root.absolute().as_uri()
    assert "statmap" in (out / ".bidsignore").read_text()


def test_dataset_description_in_container(bids_root, tmp_path, monkeypatch):
    monkeypatch.setenv("BIDSAPP_CONTAINER", "bidsapp:9.9")
    desc = json.loads(write_dataset_description(tmp_path / "o", bids_root).read_text())
    assert desc["GeneratedBy"][0]["Container"] == {"Type": "docker", "Tag": "bidsapp:9.9"}


def test_container_only_from_the_image_marker(monkeypatch):
    # Another container (a CI sandbox's /.dockerenv, someone's Singularity image) is not ours.
    for name in ("BIDSAPP_CONTAINER", "SINGULARITY_NAME", "APPTAINER_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SINGULARITY_NAME", "labtools.sif")
    assert container_info() is None
    monkeypatch.setenv("BIDSAPP_CONTAINER", "bidsapp")
    assert container_info() == {"Type": "singularity", "Tag": f"bidsapp:{__version__}"}
    monkeypatch.delenv("SINGULARITY_NAME")
    assert container_info() == {"Type": "docker", "Tag": f"bidsapp:{__version__}"}


def _sink(tmp_path, bids_root, **entities):
    in_file = tmp_path / "map.nii.gz"
    nb.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)).to_filename(in_file)
    sink = DerivativesDataSink(base_directory=str(tmp_path / "out"),
                               allowed_entities=("stat",), check_hdr=False)
    sink.inputs.in_file = str(in_file)
    sink.inputs.source_file = str(bids_root / "sub-01/func/sub-01_task-music_run-1_bold.nii.gz")
    for key, value in entities.items():
        setattr(sink.inputs, key, value)
    return sink.run()


def test_sink_names_by_entities(bids_root, tmp_path):
    result = _sink(tmp_path, bids_root, space="MNI152NLin2009cAsym", desc="layer03", stat="r",
                   suffix="statmap")
    out = tmp_path / "out"
    expected = out / ("sub-01/func/sub-01_task-music_run-1_space-MNI152NLin2009cAsym_"
                      "desc-layer03_stat-r_statmap.nii.gz")
    assert result.outputs.out_file == str(expected)
    assert expected.is_file()
    # Nothing but the final file is left: no staging folder, no temporary names.
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_sink_mask(bids_root, tmp_path):
    result = _sink(tmp_path, bids_root, space="MNI152NLin2009cAsym", desc="brain",
                   suffix="mask")
    assert result.outputs.out_file.endswith(
        "sub-01_task-music_run-1_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz")


def test_sink_keeps_the_resolution_it_is_given(bids_root, tmp_path):
    in_file = tmp_path / "map.nii.gz"
    nb.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)).to_filename(in_file)
    text = "2.4 mm isotropic: the MNI152NLin2009cAsym template's 1 mm bounding box"
    sink = DerivativesDataSink(base_directory=str(tmp_path / "out"), check_hdr=False,
                               space="MNI152NLin2009cAsym", resolution="2p4", desc="brain",
                               suffix="mask", Resolution=text)
    sink.inputs.in_file = str(in_file)
    sink.inputs.source_file = str(bids_root / "sub-01/func/sub-01_task-music_run-1_bold.nii.gz")
    result = sink.run()
    meta_path = Path(result.outputs.out_file.replace(".nii.gz", ".json"))
    assert json.loads(meta_path.read_text())["Resolution"] == text
