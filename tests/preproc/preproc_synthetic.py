"""Synthetic images for the preprocessing tests (imported by name: tests have no package)."""

from __future__ import annotations

import numpy as np


def moved_series(reference, parameters: np.ndarray, noise: float = 0.0, seed: int = 0):
    """Return a 4D series whose volume k is ``reference`` moved by ``parameters[k]``.

    Volume k records at world point p the tissue the reference holds at ``M_k^-1 p``
    (the simulator's and the motion module's convention).
    """
    import nibabel as nb
    from scipy.ndimage import affine_transform

    from bidsapp.preproc.motion import parameters_to_matrices

    data = np.asarray(reference.dataobj, dtype=np.float32)
    rng = np.random.default_rng(seed)
    volumes = []
    for matrix in parameters_to_matrices(parameters):
        to_input = np.linalg.inv(reference.affine) @ np.linalg.inv(matrix) @ reference.affine
        moved = affine_transform(data, to_input[:3, :3], to_input[:3, 3], order=3,
                                 mode="constant")
        volumes.append(moved + noise * rng.standard_normal(data.shape).astype(np.float32))
    img = nb.Nifti1Image(np.stack(volumes, -1).astype(np.float32), reference.affine)
    img.header.set_zooms((*reference.header.get_zooms()[:3], 2.0))
    return img


def seed_templateflow(tmp_path_factory):
    """Seed (once per session) a TemplateFlow cache in the session's temporary folder.

    Workflow tests call this too; the folder is the same for the whole session, so the
    cache is built once.
    """
    from tree_helpers import seed_templateflow_home

    home = tmp_path_factory.getbasetemp() / "templateflow"
    seed_templateflow_home(home)
    return home


def write_fmriprep_folder(root, *, space: str = "MNI152NLin2009aSym", n_volumes: int = 12,
                          start_time: float | None = 0.95, extra_space: str | None = None):
    """Write a small fMRIPrep-shaped derivatives folder for sub-01, task music, run 1.

    Returns the folder and a :class:`bidsapp.bids.collect.BoldRun` of the raw run it
    belongs to (the raw file itself is not needed).
    """
    import json
    from pathlib import Path

    import nibabel as nb

    from bidsapp.bids.collect import BoldRun, Trial

    root = Path(root)
    func = root / "sub-01" / "func"
    func.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({
        "Name": "fMRIPrep outputs", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "fMRIPrep", "Version": "24.1.0"}]}))
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-98.0, -134.0, -72.0]
    rng = np.random.default_rng(0)
    for tpl in filter(None, (space, extra_space)):
        stem = f"sub-01_task-music_run-1_space-{tpl}_res-2"
        bold = nb.Nifti1Image(rng.random((50, 59, 48, n_volumes)).astype(np.float32) * 100,
                              affine)
        bold.header.set_zooms((4.0, 4.0, 4.0, 2.0))
        bold.to_filename(func / f"{stem}_desc-preproc_bold.nii.gz")
        meta = {"RepetitionTime": 2.0, "SliceTimingCorrected": start_time is not None}
        if start_time is not None:
            meta["StartTime"] = start_time
        (func / f"{stem}_desc-preproc_bold.json").write_text(json.dumps(meta))
        mask = np.zeros((50, 59, 48), np.uint8)
        mask[10:40, 10:50, 10:40] = 1
        nb.Nifti1Image(mask, affine).to_filename(func / f"{stem}_desc-brain_mask.nii.gz")
    columns = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
               "framewise_displacement", "global_signal"]
    rows = ["\t".join(columns)] + ["\t".join(["0.1"] * 6 + ["n/a" if i == 0 else "0.2", "1"])
                                   for i in range(n_volumes)]
    (func / "sub-01_task-music_run-1_desc-confounds_timeseries.tsv").write_text(
        "\n".join(rows) + "\n")
    run = BoldRun(path=Path("/raw/sub-01/func/sub-01_task-music_run-1_bold.nii.gz"),
                  events=Path("/raw/sub-01/func/sub-01_task-music_run-1_events.tsv"),
                  repetition_time=2.0, n_volumes=n_volumes,
                  trials=(Trial(2.0, 8.0, "a.wav"), Trial(12.0, 8.0, "b.wav")),
                  metadata={"RepetitionTime": 2.0},
                  entities={"subject": "01", "task": "music", "run": 1, "suffix": "bold",
                            "datatype": "func", "extension": ".nii.gz"})
    return root, run


def _pack(**fields):
    return fields


def run_and_collect(workflow, fields, base_dir):
    """Run ``workflow`` (Linear) and return the values of some of its node outputs.

    nipype drops identity nodes from the graph it executes, so outputnode values are
    gathered by a small function node connected to them.

    Parameters
    ----------
    workflow : nipype Workflow
        Ready to run.
    fields : dict or sequence
        ``{key: "outputnode.field"}`` (dotted paths within ``workflow``, e.g.
        ``"anat_wf.outputnode.t1w_preproc"``); a sequence of names means
        ``{name: "outputnode.name"}``.
    base_dir : Path
        The work directory.

    Returns
    -------
    dict
        ``{key: value}``.
    """
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe

    if not isinstance(fields, dict):
        fields = {name: f"outputnode.{name}" for name in fields}
    outer = pe.Workflow(name=f"{workflow.name}_outer", base_dir=str(base_dir))
    pack = pe.Node(niu.Function(input_names=list(fields), output_names=["fields"],
                                function=_pack), name="collect")
    outer.connect([(workflow, pack, [(path, key) for key, path in fields.items()])])
    graph = outer.run(plugin="Linear")
    node = next(n for n in graph.nodes() if n.name == "collect")
    return node.result.outputs.fields
