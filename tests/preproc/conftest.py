"""Small synthetic images shared by the preprocessing tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def epi_like():
    """The MNI152 template at 4 mm with EPI-like contrast (CSF bright), centred at 0."""
    import nibabel as nb
    from nilearn.datasets import load_mni152_gm_template, load_mni152_template

    from bidsapp.preproc.resample import template_grid

    t1 = template_grid(load_mni152_template(resolution=1), 4.0)
    gm = template_grid(load_mni152_gm_template(resolution=1), 4.0)
    brain = np.asarray(t1.dataobj) > 0.1
    data = np.where(brain, 600 + 400 * np.asarray(gm.dataobj) + 300 * (
        1 - np.asarray(t1.dataobj)), 20).astype(np.float32)
    return nb.Nifti1Image(data, t1.affine)


@pytest.fixture(scope="session")
def planted_motion() -> np.ndarray:
    """Six volumes of motion up to 1.5 mm and 1.5 degrees."""
    rng = np.random.default_rng(42)
    params = np.c_[rng.uniform(-1.5, 1.5, (6, 3)), np.deg2rad(rng.uniform(-1.5, 1.5, (6, 3)))]
    params[0] = 0.0
    return params


@pytest.fixture(scope="session")
def seeded_templateflow(tmp_path_factory):
    """A TemplateFlow cache of this test session, holding nilearn's MNI152NLin2009aSym."""
    from preproc_synthetic import seed_templateflow

    return seed_templateflow(tmp_path_factory)


@pytest.fixture
def templateflow_env(seeded_templateflow, monkeypatch):
    """Point TEMPLATEFLOW_HOME at the session's seeded cache for one test."""
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(seeded_templateflow))
    return seeded_templateflow
