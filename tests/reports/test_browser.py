"""The reports as a browser shows them: headless Chromium, the DOM and the images it loaded.

Each page is copied with a small script that, once the page has loaded, writes every
``<img>``'s ``naturalWidth`` into the DOM; ``chromium --headless --dump-dom`` then returns
the DOM after the script ran.  An image whose data URI the browser cannot decode has
``naturalWidth`` 0, which no check on the HTML text would catch.

The outputs are written here, as the participant and group levels name them, with small
grids and pure-noise maps (so that nothing exceeds the null and nothing is significant);
the participant reports are found and written by the participant level's own
``write_participant_reports`` and the group report by ``run_group_level``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bidsapp.bids.collect import BoldRun, SubjectData
from bidsapp.config import Config
from bidsapp.levels.group import run_group_level
from bidsapp.levels.reports import write_participant_reports
from bidsapp.reports import write_citation

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; "
                             "scripts/install.sh installs it)")

AFFINE = np.array([[8.0, 0, 0, -44], [0, 8, 0, -60], [0, 0, 8, -20], [0, 0, 0, 1]])
SHAPE = (12, 15, 10)
SPACE = "MNI152NLin2009cAsym"
NAMES = [f"conv{k}" for k in range(1, 11)]
TASKS = ("music", "speech")
N_PERM = 19

_PROBE = """<script>
window.addEventListener('load', function () {
  var out = document.createElement('pre');
  out.id = 'loaded-images';
  out.textContent = JSON.stringify(Array.from(document.images).map(function (img) {
    return {alt: img.alt, width: img.naturalWidth, height: img.naturalHeight};
  }));
  document.body.appendChild(out);
});
</script>"""


class _Outline(HTMLParser):
    """The headings (tag, id, text) and the loaded-images record of a DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[tuple[str, str, str]] = []
        self.images: list[dict] = []
        self._open: tuple[str, str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if re.fullmatch(r"h[1-4]|pre", tag):
            self._open, self._text = (tag, dict(attrs).get("id") or ""), []

    def handle_data(self, data):
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag):
        if self._open and tag == self._open[0]:
            text = "".join(self._text).strip()
            if tag == "pre" and self._open[1] == "loaded-images":
                self.images = json.loads(text)
            elif tag != "pre":
                self.headings.append((tag, self._open[1], text))
            self._open = None


def render(page: Path, tmp_path: Path) -> _Outline:
    """Load a copy of ``page`` with the probe in headless Chromium; return its outline."""
    copy = tmp_path / f"rendered-{page.name}"
    copy.write_text(page.read_text().replace("</body>", _PROBE + "\n</body>"))
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=20000",
         "--dump-dom", copy.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outline = _Outline()
    outline.feed(proc.stdout)
    assert outline.images, "the probe did not run: " + proc.stdout[-500:]
    return outline


def _save(values: np.ndarray, path: Path, meta: dict | None = None) -> Path:
    nib.save(nib.Nifti1Image(values, AFFINE), path)
    if meta is not None:
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps(meta))
    return path


def _mask() -> np.ndarray:
    ijk = np.indices(SHAPE).transpose(1, 2, 3, 0)
    return np.linalg.norm((ijk - (np.array(SHAPE) - 1) / 2) / (np.array(SHAPE) / 2.4),
                          axis=-1) < 1


def write_noise_participant(out: Path, label: str, rng: np.random.Generator,
                            tasks=TASKS, runs=(1, 2)) -> SubjectData:
    """Write one participant's outputs as the participant level names them: no effect.

    The maps hold no information: every layer's r is noise, below what the permutations
    gave, so nothing exceeds the null and neither group test finds anything.
    """
    mask = _mask()
    sub = out / f"sub-{label}"
    func, figures = sub / "func", sub / "figures"
    func.mkdir(parents=True)
    figures.mkdir()
    (figures / f"sub-{label}_space-{SPACE}_T1w.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="10"><text>NORM</text></svg>')
    bold = []
    for task in tasks:
        prefix = f"sub-{label}_task-{task}_space-{SPACE}_res-8"
        _save(mask.astype(np.uint8), func / f"{prefix}_desc-searchlight_mask.nii.gz")
        draws = rng.normal(0.1, 0.03, (N_PERM + 1, len(NAMES), int(mask.sum())))
        draws[0] -= 0.25
        for k, name in enumerate(NAMES):
            volume = np.full(SHAPE, np.nan, np.float32)
            volume[mask] = draws[0, k]
            _save(volume, func / f"{prefix}_desc-layer{k + 1:02d}_stat-r_statmap.nii.gz",
                  {"Layer": name, "LayerIndex": k + 1, "SearchlightSize": 19,
                   "NumberOfTRs": 40, "WeightsSHA256": "ab" * 32, "WeightsStatus": "trained"})
        best = np.zeros(SHAPE, np.int16)
        best[mask] = draws[0].argmax(axis=0) + 1
        top = np.zeros(SHAPE, np.float32)
        top[mask] = draws[0].max(axis=0)
        _save(best, func / f"{prefix}_desc-bestlayer_dseg.nii.gz")
        _save(top, func / f"{prefix}_desc-maxcorr_stat-r_statmap.nii.gz", {})
        null = np.zeros((*SHAPE, N_PERM), np.float32)
        null[mask] = draws[1:].max(axis=1).T
        _save(null, func / f"{prefix}_desc-maxnull_stat-r_statmap.nii.gz",
              {"NumberOfPermutations": N_PERM})
        (figures / f"sub-{label}_task-{task}_desc-candidates_rdm.svg").write_text(
            '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="10"><text>RDM</text>'
            "</svg>")
        for run in runs:
            stem = f"sub-{label}_task-{task}_run-{run}"
            for desc in ("coreg", "motion", "carpetplot"):
                (figures / f"{stem}_desc-{desc}_bold.svg").write_text(
                    f'<svg xmlns="http://www.w3.org/2000/svg" width="60" height="10"><text>'
                    f"{desc.upper()} {task} {run}</text></svg>")
            confounds = func / f"{stem}_desc-confounds_timeseries.tsv"
            pd.DataFrame({"framewise_displacement": [np.nan, *rng.uniform(0, 0.6, 29)]}
                         ).to_csv(confounds, sep="\t", index=False, na_rep="n/a")
            bold.append(BoldRun(path=Path(f"{stem}_bold.nii.gz"), events=Path("events.tsv"),
                                repetition_time=2.0, n_volumes=30, trials=(), metadata={},
                                entities={"task": task, "run": run}))
    return SubjectData(subject=label, t1w=None, bold=tuple(bold), stimuli={})


def _output_dir(root: Path) -> Path:
    out = root / "out"
    out.mkdir()
    (out / "dataset_description.json").write_text(json.dumps({
        "Name": "test", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "bidsapp"}]}))
    return out


def _reports(root: Path, tasks: tuple[str, ...], n_subjects: int) -> tuple[Path, Path]:
    out = _output_dir(root)
    rng = np.random.default_rng(7)
    subjects = [write_noise_participant(out, f"{s:02d}", rng, tasks)
                for s in range(1, n_subjects + 1)]
    write_citation(out, ["PARTICIPANT METHODS PARAGRAPH."])
    config = Config(bids_dir=out.parent / "bids", output_dir=out,
                    analysis_level="participant", n_permutations=N_PERM)
    report = write_participant_reports(config, subjects[:1], ["a run warning"])[0]
    if n_subjects > 1:
        assert run_group_level(Config(bids_dir=out.parent / "bids", output_dir=out,
                                      analysis_level="group"),
                               [f"sub-{s.subject}" for s in subjects]) == 0
    return out, report


@pytest.fixture(scope="module")
def no_effect(tmp_path_factory):
    """Three participants without any effect, one task of two runs, and their reports."""
    return _reports(tmp_path_factory.mktemp("browser"), TASKS[:1], 3)


def _check_participant_page(report: Path, tasks: tuple[str, ...], tmp_path: Path) -> None:
    page = render(report, tmp_path)
    runs = [text for tag, _, text in page.headings if tag == "h3" and "run-" in text]
    assert runs == [f"task-{t}, run-{r}" for t in tasks for r in (1, 2)]
    h2 = [text for tag, _, text in page.headings if tag == "h2"]
    assert [h for h in h2 if h.startswith("Results")] == [f"Results: task-{t}" for t in tasks]
    assert "Methods" in h2
    assert [text for tag, _, text in page.headings
            if text.startswith("Best layer")] == [f"Best layer (task-{t})" for t in tasks]
    # Every image the page holds was decoded by the browser.
    assert all(img["width"] > 0 and img["height"] > 0 for img in page.images), page.images
    alts = [img["alt"] for img in page.images]
    for task in tasks:
        assert sum(a.startswith(f"task-{task}: the layer whose") for a in alts) == 1
    assert sum(a.startswith("Top: maximum r over the layers") for a in alts) == len(tasks)
    html = " ".join(report.read_text().split())
    # No effect: the report says, in words, that nothing exceeds the null.
    assert html.count("Nothing in these maps exceeds this participant&#x27;s permutation "
                      "null") == len(tasks)
    assert "PARTICIPANT METHODS PARAGRAPH." in html
    # The motion figure appears once per run: the reportlet, not a second drawing.
    assert html.count(f"MOTION {tasks[0]} 1") == 1 and "head motion (" not in html


def test_participant_report_in_chromium(no_effect, tmp_path):
    _check_participant_page(no_effect[1], TASKS[:1], tmp_path)


@pytest.mark.slow
def test_participant_report_with_two_tasks_in_chromium(tmp_path):
    _, report = _reports(tmp_path, TASKS, 1)
    _check_participant_page(report, TASKS, tmp_path)


def test_group_report_shows_maps_when_nothing_is_significant(no_effect, tmp_path):
    out, _ = no_effect
    html = " ".join((out / "group.html").read_text().split())
    assert html.count("<b>0</b> significant voxels") == 2  # the study's and the permutation
    page = render(out / "group.html", tmp_path)
    assert all(img["width"] > 0 and img["height"] > 0 for img in page.images), page.images
    alts = [img["alt"] for img in page.images]
    assert sum(a.startswith("Glass brains, unthresholded: the mean over participants")
               and "debiased" in a for a in alts) == 1
    assert sum(a.startswith("Layer map, unthresholded") for a in alts) == 1
    assert [text for tag, _, text in page.headings
            if text == "Unthresholded maps"] == ["Unthresholded maps"]
    assert '<ul class="files"><li>task-music_' in html
