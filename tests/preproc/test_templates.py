"""Templates (bidsapp/templates.py): offline TemplateFlow cache, nilearn seed, exit codes.

These live with the preprocessing tests because preprocessing is their only user.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import nibabel as nb
import numpy as np
import pytest

from bidsapp.errors import MissingInputError, UsageError
from bidsapp.templates import (
    NILEARN_SPACE,
    configure_templateflow_home,
    get_template,
    main,
    templateflow_home,
)


def test_configure_keeps_the_users_home_and_switches_off_updates(monkeypatch, tmp_path):
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "mine"))
    monkeypatch.delenv("TEMPLATEFLOW_AUTOUPDATE", raising=False)
    monkeypatch.setenv("TEMPLATEFLOW_USE_DATALAD", "1")
    assert configure_templateflow_home() == tmp_path / "mine"
    assert templateflow_home() == tmp_path / "mine"
    import os

    assert os.environ["TEMPLATEFLOW_AUTOUPDATE"] == "0"
    assert os.environ["TEMPLATEFLOW_USE_DATALAD"] == "1"  # the user's choice stays


def test_configure_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("TEMPLATEFLOW_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert configure_templateflow_home() == tmp_path / "templateflow"
    explicit = configure_templateflow_home(tmp_path / "other")
    assert explicit == tmp_path / "other"


def test_nilearn_template_is_seeded_under_its_true_name(templateflow_env):
    template = get_template(NILEARN_SPACE)
    folder = templateflow_env / f"tpl-{NILEARN_SPACE}"
    assert template.t1w == folder / f"tpl-{NILEARN_SPACE}_res-1_T1w.nii.gz"
    assert template.brain_mask.name == f"tpl-{NILEARN_SPACE}_res-1_desc-brain_mask.nii.gz"
    assert template.gm_probseg.name == f"tpl-{NILEARN_SPACE}_res-1_label-GM_probseg.nii.gz"
    assert template.wm_probseg is not None
    t1w = nb.load(template.t1w)
    assert t1w.header.get_zooms() == (1.0, 1.0, 1.0)
    assert 0.99 <= float(np.asarray(t1w.dataobj).max()) <= 1.0
    assert set(np.unique(np.asarray(nb.load(template.brain_mask).dataobj))) == {0, 1}
    description = json.loads((folder / "template_description.json").read_text())
    assert description["Identifier"] == NILEARN_SPACE
    assert description["res"]["1"]["shape"] == list(t1w.shape)


def test_missing_template_is_exit_66_with_the_fix(templateflow_env):
    start = time.monotonic()
    with pytest.raises(MissingInputError) as info:
        get_template("MNI152NLin2009cAsym")
    assert time.monotonic() - start < 5  # never waits on a download
    assert info.value.exit_code == 66
    assert "bidsapp templates fetch MNI152NLin2009cAsym" in info.value.paragraph()
    assert NILEARN_SPACE in info.value.paragraph()


def test_unknown_template_is_a_usage_error(templateflow_env):
    with pytest.raises(UsageError):
        get_template("NoSuchTemplate")


def test_cli_lists_and_seeds(templateflow_env, capsys):
    assert main(["home"]) == 0
    assert capsys.readouterr().out.strip() == str(templateflow_env)
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert f"{NILEARN_SPACE}" in listing and "ready" in listing
    assert "MNI152NLin2009cAsym      not fetched" in listing
    assert main(["seed-nilearn"]) == 0
    assert main(["frobnicate"]) == 64
    with pytest.raises(UsageError):
        main(["fetch", "NoSuchTemplate"])


def test_offline_seed_makes_no_network_attempt(tmp_path):
    """A fresh cache is built and seeded with every socket connection refused and logged."""
    script = textwrap.dedent(f"""
        import socket, sys
        attempts = []
        def refuse(self, address, *args, **kwargs):
            attempts.append(address)
            raise OSError("network disabled by the test")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        from bidsapp.cli.run import main
        code = main(["templates", "seed-nilearn"])
        from bidsapp.templates import get_template
        get_template("{NILEARN_SPACE}")
        try:
            get_template("MNI152NLin2009cAsym")
        except Exception as exc:
            print("missing", getattr(exc, "exit_code", None))
        print("attempts", len(attempts))
        sys.exit(code)
    """)
    env = {"TEMPLATEFLOW_HOME": str(tmp_path / "tf"), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "missing 66" in done.stdout
    assert "attempts 0" in done.stdout
    assert (tmp_path / "tf" / f"tpl-{NILEARN_SPACE}" /
            f"tpl-{NILEARN_SPACE}_res-1_T1w.nii.gz").stat().st_size > 0
