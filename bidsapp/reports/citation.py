"""``logs/CITATION.md``: a methods text generated from the workflows, with versions and references.

Each workflow factory carries a ``__desc__`` sentence (the fMRIPrep convention); the
participant level passes its sentences, the group level its own.  The file is rebuilt
from ``logs/CITATION.json``, which keeps each level's sentences, so that running the
group level does not erase the participant level's text and a rerun does not repeat it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from bidsapp import __version__
from bidsapp.io import write_json, write_text

SECTIONS = ("participant", "group")
"""The levels, in the order their methods appear."""

TOOLS = (
    ("nipype", "nipype"),
    ("niworkflows", "niworkflows"),
    ("pybids", "pybids"),
    ("ANTsPy", "antspyx"),
    ("TemplateFlow", "templateflow"),
    ("PyTorch", "torch"),
    ("NumPy", "numpy"),
    ("SciPy", "scipy"),
    ("nibabel", "nibabel"),
    ("nilearn", "nilearn"),
    ("matplotlib", "matplotlib"),
)
"""(name shown, distribution name) of the tools whose versions the text reports."""

REFERENCES = (
    "Abraham, A., et al. (2014). Machine learning for neuroimaging with scikit-learn. "
    "Frontiers in Neuroinformatics 8, 14. https://doi.org/10.3389/fninf.2014.00014",
    "Avants, B. B., Epstein, C. L., Grossman, M., Gee, J. C. (2008). Symmetric "
    "diffeomorphic image registration with cross-correlation. Medical Image Analysis "
    "12(1), 26-41. https://doi.org/10.1016/j.media.2007.06.004",
    "Benjamini, Y., Hochberg, Y. (1995). Controlling the false discovery rate: a practical "
    "and powerful approach to multiple testing. Journal of the Royal Statistical Society B "
    "57(1), 289-300. https://doi.org/10.1111/j.2517-6161.1995.tb02031.x",
    "Glover, G. H. (1999). Deconvolution of impulse response in event-related BOLD fMRI. "
    "NeuroImage 9(4), 416-429. https://doi.org/10.1006/nimg.1998.0419",
    "Gorgolewski, K., et al. (2011). Nipype: a flexible, lightweight and extensible "
    "neuroimaging data processing framework in Python. Frontiers in Neuroinformatics 5, "
    "13. https://doi.org/10.3389/fninf.2011.00013",
    "Gorgolewski, K. J., et al. (2016). The brain imaging data structure. Scientific Data "
    "3, 160044. https://doi.org/10.1038/sdata.2016.44",
    "Gorgolewski, K. J., et al. (2017). BIDS apps. PLoS Computational Biology 13(3), "
    "e1005209. https://doi.org/10.1371/journal.pcbi.1005209",
    "He, K., Zhang, X., Ren, S., Sun, J. (2016). Deep residual learning for image "
    "recognition. CVPR, 770-778. https://doi.org/10.1109/CVPR.2016.90",
    "Kriegeskorte, N., Goebel, R., Bandettini, P. (2006). Information-based functional "
    "brain mapping. PNAS 103(10), 3863-3868. https://doi.org/10.1073/pnas.0600244103",
    "Kriegeskorte, N., Mur, M., Bandettini, P. (2008). Representational similarity "
    "analysis - connecting the branches of systems neuroscience. Frontiers in Systems "
    "Neuroscience 2, 4. https://doi.org/10.3389/neuro.06.004.2008",
    "Nichols, T. E., Holmes, A. P. (2002). Nonparametric permutation tests for functional "
    "neuroimaging: a primer with examples. Human Brain Mapping 15(1), 1-25. "
    "https://doi.org/10.1002/hbm.1058",
    "Phipson, B., Smyth, G. K. (2010). Permutation p-values should never be zero. "
    "Statistical Applications in Genetics and Molecular Biology 9(1), 39. "
    "https://doi.org/10.2202/1544-6115.1585",
    "Stelzer, J., Chen, Y., Turner, R. (2013). Statistical inference and multiple testing "
    "correction in classification-based multi-voxel pattern analysis (MVPA): random "
    "permutations and cluster size control. NeuroImage 65, 69-82. "
    "https://doi.org/10.1016/j.neuroimage.2012.09.063",
    "Winkler, A. M., Ridgway, G. R., Webster, M. A., Smith, S. M., Nichols, T. E. (2014). "
    "Permutation inference for the general linear model. NeuroImage 92, 381-397. "
    "https://doi.org/10.1016/j.neuroimage.2014.01.060",
    "Yarkoni, T., et al. (2019). PyBIDS: Python tools for BIDS datasets. Journal of Open "
    "Source Software 4(40), 1294. https://doi.org/10.21105/joss.01294",
)
"""The works the methods rely on, in alphabetical order."""


def tool_versions() -> dict[str, str]:
    """Return the installed version of each tool in :data:`TOOLS` (absent ones skipped)."""
    versions = {"bidsapp": __version__}
    for name, dist in TOOLS:
        try:
            versions[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def citation_text(sections: dict[str, list[str]], versions: dict[str, str]) -> str:
    """Return the Markdown of ``CITATION.md``.

    Parameters
    ----------
    sections : dict of str to list of str
        Methods paragraphs per level (keys from :data:`SECTIONS`).
    versions : dict of str to str
        Tool name to version.

    Returns
    -------
    str
        Markdown: the methods, the software versions and the references.
    """
    lines = [
        "# Methods",
        "",
        "The text below was generated from the workflows that produced these outputs, "
        "with the versions of the tools they used. Use it to describe the processing in "
        "a manuscript, and keep its references.",
        "",
        f"Results included in this manuscript come from bidsapp {__version__}, a BIDS App "
        "(Gorgolewski et al., 2017) based on Nipype (Gorgolewski et al., 2011) and "
        "pybids (Yarkoni et al., 2019).",
        "",
    ]
    for section in [*SECTIONS, *sorted(set(sections) - set(SECTIONS))]:
        paragraphs = sections.get(section) or []
        if not paragraphs:
            continue
        lines += [f"## {section.capitalize()} level", ""]
        for paragraph in paragraphs:
            lines += [" ".join(paragraph.split()), ""]
    lines += ["## Software versions", ""]
    lines += [f"- {name} {version}" for name, version in versions.items()]
    lines += ["", "## References", ""]
    lines += [f"- {ref}" for ref in REFERENCES]
    return "\n".join(lines) + "\n"


def write_citation(output_dir: str | Path, descs: Sequence[str], *,
                   section: str = "participant") -> Path:
    """Write ``<output_dir>/logs/CITATION.md`` from the workflows' ``__desc__`` texts.

    Parameters
    ----------
    output_dir : str or Path
        The derivatives root.
    descs : sequence of str
        The methods paragraphs of this level, in workflow order.  Duplicates are dropped.
    section : str, optional
        Which level they describe (``"participant"`` or ``"group"``).  They replace that
        level's earlier paragraphs and leave the other level's, kept in
        ``logs/CITATION.json``.

    Returns
    -------
    Path
        The path of ``CITATION.md``.
    """
    logs = Path(output_dir) / "logs"
    store = logs / "CITATION.json"
    sections: dict[str, list[str]] = {}
    if store.is_file():
        try:
            sections = {str(k): [str(p) for p in v]
                        for k, v in json.loads(store.read_text()).get("sections", {}).items()}
        except (json.JSONDecodeError, AttributeError):
            sections = {}
    unique = list(dict.fromkeys(d.strip() for d in descs if d and d.strip()))
    sections[section] = unique
    versions = tool_versions()
    write_json(store, {"sections": sections, "versions": versions})
    return write_text(logs / "CITATION.md", citation_text(sections, versions))


def read_methods(output_dir: str | Path, section: str = "participant") -> list[str]:
    """Return one level's methods paragraphs as :func:`write_citation` last recorded them.

    Parameters
    ----------
    output_dir : str or Path
        The derivatives root.
    section : str, optional
        ``"participant"`` or ``"group"``.

    Returns
    -------
    list of str
        The paragraphs, or an empty list when ``logs/CITATION.json`` is absent or
        unreadable.
    """
    store = Path(output_dir) / "logs" / "CITATION.json"
    try:
        sections = json.loads(store.read_text()).get("sections", {})
    except (OSError, json.JSONDecodeError, AttributeError):
        return []
    return [str(p) for p in sections.get(section) or []]
