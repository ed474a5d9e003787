"""Layering rules for the ``bidsapp`` package, checked on its import graph.

The package is built in layers; a module may import from its own layer and the layers
below it, never from a layer above::

    top (cli, demo, __main__)          command line and demo; may import anything
      -> levels                        running the participant and group levels
        -> workflows                   the ``init_*_wf`` nipype workflow factories
          -> interfaces                nipype interfaces wrapping library calls
            -> library parts           everything else: bids, audio, rsa, stats, preproc,
                                       reports, simulate, training, io, errors, config, ...

Library parts are plain Python: they import neither nipype nor niworkflows, so they can be
used (and tested) without a workflow engine.  Two more rules: collecting BIDS inputs
(``bidsapp.bids``) does not depend on the audio network (``bidsapp.audio``), and
``import bidsapp`` loads nothing heavy (nipype, niworkflows, torch, pybids, nilearn).

The graph is read from the source with :mod:`ast`; nothing of ``bidsapp`` is imported, so
these tests are fast and still run while the package is half refactored.  Every ``import``
and ``from ... import`` statement counts, at module level or inside a function, except those
under ``if TYPE_CHECKING:``, which never run.  Dynamic imports (``importlib.import_module``)
are not seen.
"""

import ast
import functools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "bidsapp"
PACKAGE_ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: Parts (first component under ``bidsapp.``) that may import anything.
TOP = frozenset({"cli", "demo", "__main__"})
#: Layers between the top and the library parts, from the top down.
MIDDLE = ("levels", "workflows", "interfaces")
#: Layers each layer must not import.  Library parts are every part not named above.
FORBIDDEN_LAYERS = {
    "levels": frozenset({"top"}),
    "workflows": frozenset({"top", "levels"}),
    "interfaces": frozenset({"top", "levels", "workflows"}),
    "library": frozenset({"top", "levels", "workflows", "interfaces"}),
}
#: Workflow-engine packages that library parts must not import.
ENGINE = frozenset({"nipype", "niworkflows"})
#: Third-party packages that ``import bidsapp`` must not load (``bids`` is pybids).
HEAVY = frozenset({"nipype", "niworkflows", "torch", "bids", "nilearn"})
# Allowed exception: ``simulate`` and ``training`` have their own command-line modules.  They
# are library parts like the rest of their packages (their layer comes from the first
# component, not from the name ``cli``), so the library rules apply to them in full; in
# particular they must not import the app's command line, ``bidsapp.cli``.
LIBRARY_CLI_MODULES = frozenset({f"{PACKAGE}.simulate.cli", f"{PACKAGE}.training.cli"})


@dataclass(frozen=True)
class Import:
    """One import statement's edge in the import graph.

    Attributes
    ----------
    importer : str
        Dotted name of the module holding the statement (``bidsapp.levels.group``); a
        package's ``__init__.py`` is named after the package.
    imported : str
        Dotted absolute name of the module imported (``bidsapp.stats``, ``nipype.pipeline``).
    lineno : int
        Line of the statement in the importer's file.
    in_function : bool
        Whether the statement is inside a function (so runs only when that is called).
    """

    importer: str
    imported: str
    lineno: int
    in_function: bool

    def __str__(self) -> str:
        where = ", inside a function" if self.in_function else ""
        return f"{self.importer} -> {self.imported} (line {self.lineno}{where})"


def module_name(path: Path, package_root: Path) -> str:
    """Dotted module name of a source file of the package.

    Parameters
    ----------
    path : Path
        A ``.py`` file under ``package_root``.
    package_root : Path
        The package's directory; its name is the package's name.

    Returns
    -------
    str
        E.g. ``bidsapp.rsa.rdm`` for ``bidsapp/rsa/rdm.py`` and ``bidsapp.rsa`` for
        ``bidsapp/rsa/__init__.py``.
    """
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    """Whether an ``if`` test is ``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``.

    Parameters
    ----------
    test : ast.expr
        The test of an ``if`` statement.

    Returns
    -------
    bool
        True when the ``if`` body runs only under a static type checker.
    """
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


class _ImportCollector(ast.NodeVisitor):
    """Collect the imports of one module, resolving relative ones.

    Parameters
    ----------
    importer : str
        Dotted name of the module being read.
    is_package : bool
        Whether the module is a package's ``__init__.py`` (relative imports then start from
        the package itself rather than from its parent).
    known : set of str
        Dotted names of every module and package of the package being read, so that
        ``from bidsapp import stats`` is recorded as importing ``bidsapp.stats``.
    """

    def __init__(self, importer: str, is_package: bool, known: set[str]) -> None:
        self.importer = importer
        self.package = importer if is_package else importer.rpartition(".")[0]
        self.known = known
        self.depth = 0
        self.imports: list[Import] = []

    def _add(self, imported: str, node: ast.stmt) -> None:
        self.imports.append(Import(self.importer, imported, node.lineno, self.depth > 0))

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".") if self.package else []
            if node.level - 1 > len(base) - 1:
                raise ValueError(f"{self.importer}, line {node.lineno}: relative import "
                                 "beyond the top-level package")
            base = base[: len(base) - (node.level - 1)]
            module = ".".join([*base, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        for alias in node.names:
            candidate = f"{module}.{alias.name}"
            self._add(candidate if candidate in self.known else module, node)


def import_graph(package_root: Path) -> list[Import]:
    """Every import made by the modules of a package, read from source with :mod:`ast`.

    Parameters
    ----------
    package_root : Path
        The package's directory (``.../bidsapp``); every ``**/*.py`` under it is read.

    Returns
    -------
    list of Import
        One entry per module imported per statement, in file and line order.  Relative
        imports are resolved to absolute names; ``from pkg import name`` counts as importing
        ``pkg.name`` when that is a module of the package, else ``pkg``.  Imports under
        ``if TYPE_CHECKING:`` are left out.
    """
    files = sorted(package_root.rglob("*.py"))
    names = {path: module_name(path, package_root) for path in files}
    known: set[str] = set()
    for name in names.values():  # modules, and packages, namespace packages included
        parts = name.split(".")
        known.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    graph: list[Import] = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        collector = _ImportCollector(names[path], path.name == "__init__.py", known)
        collector.visit(tree)
        graph.extend(dict.fromkeys(collector.imports))  # one entry for `from m import a, b`
    return graph


def part(module: str) -> str:
    """First component of a module's name under the package.

    Parameters
    ----------
    module : str
        Dotted name of a module of the package.

    Returns
    -------
    str
        ``"rsa"`` for ``bidsapp.rsa.rdm``; ``"__init__"`` for the package root itself.
    """
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(module: str) -> str:
    """Layer of a module of the package.

    Parameters
    ----------
    module : str
        Dotted name of a module of the package.

    Returns
    -------
    str
        ``"top"``, one of :data:`MIDDLE`, or ``"library"``.
    """
    name = part(module)
    if name in TOP:
        return "top"
    return name if name in MIDDLE else "library"


def is_internal(module: str) -> bool:
    """Whether a module name belongs to the package.

    Parameters
    ----------
    module : str
        Dotted absolute module name.

    Returns
    -------
    bool
        True for ``bidsapp`` and its submodules.
    """
    return module == PACKAGE or module.startswith(f"{PACKAGE}.")


def top_level(module: str) -> str:
    """First component of a dotted module name (``nipype`` for ``nipype.pipeline.engine``).

    Parameters
    ----------
    module : str
        Dotted absolute module name.

    Returns
    -------
    str
        The distribution-level package name.
    """
    return module.partition(".")[0]


def layer_violations(graph: Iterable[Import], importer_layer: str) -> list[Import]:
    """Imports by modules of one layer of modules in a layer it must not import.

    Parameters
    ----------
    graph : iterable of Import
        The package's import graph.
    importer_layer : str
        A key of :data:`FORBIDDEN_LAYERS`.

    Returns
    -------
    list of Import
        The offending imports.
    """
    forbidden = FORBIDDEN_LAYERS[importer_layer]
    return [imp for imp in graph
            if layer(imp.importer) == importer_layer and is_internal(imp.imported)
            and layer(imp.imported) in forbidden]


def engine_violations(graph: Iterable[Import]) -> list[Import]:
    """Imports of nipype or niworkflows (any submodule) by library parts.

    Parameters
    ----------
    graph : iterable of Import
        The package's import graph.

    Returns
    -------
    list of Import
        The offending imports.
    """
    return [imp for imp in graph
            if layer(imp.importer) == "library" and top_level(imp.imported) in ENGINE]


def library_cli_violations(graph: Iterable[Import]) -> list[Import]:
    """Imports of ``bidsapp.cli`` by the library's own command-line modules.

    Parameters
    ----------
    graph : iterable of Import
        The package's import graph.

    Returns
    -------
    list of Import
        The offending imports.
    """
    return [imp for imp in graph
            if imp.importer in LIBRARY_CLI_MODULES and part(imp.imported) == "cli"
            and is_internal(imp.imported)]


def bids_audio_violations(graph: Iterable[Import]) -> list[Import]:
    """Imports of ``bidsapp.audio`` (or a submodule) by ``bidsapp.bids`` (or a submodule).

    Parameters
    ----------
    graph : iterable of Import
        The package's import graph.

    Returns
    -------
    list of Import
        The offending imports.
    """
    return [imp for imp in graph
            if is_internal(imp.importer) and part(imp.importer) == "bids"
            and is_internal(imp.imported) and part(imp.imported) == "audio"]


def heavy_root_imports(graph: Iterable[Import]) -> list[str]:
    """Heavy packages loaded by ``import bidsapp``, with the chain of imports that loads each.

    Follows the module-level imports (those not inside a function) from the package root
    through the package's own modules; importing ``bidsapp.a.b`` also runs ``bidsapp.a``.

    Parameters
    ----------
    graph : iterable of Import
        The package's import graph.

    Returns
    -------
    list of str
        One line per heavy import reached: the chain of modules from ``bidsapp`` and the
        statement that imports the heavy package.
    """
    edges: dict[str, list[Import]] = {}
    for imp in graph:
        if not imp.in_function:
            edges.setdefault(imp.importer, []).append(imp)
    chain = {PACKAGE: (PACKAGE,)}
    queue = deque([PACKAGE])
    found = []
    while queue:
        module = queue.popleft()
        for imp in edges.get(module, []):
            if top_level(imp.imported) in HEAVY:
                found.append(f"{' -> '.join(chain[module])}: {imp}")
            elif is_internal(imp.imported):
                parts = imp.imported.split(".")
                for i in range(2, len(parts) + 1):  # parent packages run first
                    target = ".".join(parts[:i])
                    if target not in chain:
                        chain[target] = (*chain[module], target)
                        queue.append(target)
    return found


def explain(rule: str, violations: Iterable[object]) -> str:
    """Assertion message listing every violation of a rule.

    Parameters
    ----------
    rule : str
        The rule, in words.
    violations : iterable
        The offending imports (or descriptions of them).

    Returns
    -------
    str
        The rule followed by one indented line per violation.
    """
    lines = sorted(str(v) for v in violations)
    return f"{rule}; {len(lines)} violation(s):\n" + "\n".join(f"  {line}" for line in lines)


@functools.cache
def package_graph() -> tuple[Import, ...]:
    """The import graph of ``bidsapp`` itself, read once per session.

    Returns
    -------
    tuple of Import
        See :func:`import_graph`.
    """
    return tuple(import_graph(PACKAGE_ROOT))


def test_graph_reads_the_package():
    graph = package_graph()
    importers = {imp.importer for imp in graph}
    assert PACKAGE in importers, "bidsapp/__init__.py was not read"
    assert any(layer(m) == "library" for m in importers)


#: Each rule: how to find its violations in a graph, and the rule in words.
RULES = {
    "levels": (lambda g: layer_violations(g, "levels"),
               "bidsapp.levels must not import cli, demo or __main__"),
    "workflows": (lambda g: layer_violations(g, "workflows"),
                  "bidsapp.workflows must not import levels, cli, demo or __main__"),
    "interfaces": (lambda g: layer_violations(g, "interfaces"),
                   "bidsapp.interfaces must not import workflows, levels, cli, demo or "
                   "__main__"),
    "library": (lambda g: layer_violations(g, "library"),
                "library parts must not import interfaces, workflows, levels, cli, demo or "
                "__main__"),
    "engine": (engine_violations, "library parts must not import nipype or niworkflows"),
    # The one exception to "library parts have no command line", stated explicitly.
    "library_cli": (library_cli_violations, "bidsapp.simulate.cli and bidsapp.training.cli "
                                            "must not import bidsapp.cli"),
    "bids_audio": (bids_audio_violations, "bidsapp.bids must not import bidsapp.audio"),
    "heavy_root": (heavy_root_imports, "`import bidsapp` must not load nipype, niworkflows, "
                                       "torch, pybids or nilearn at module level"),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_package_follows_rule(rule):
    find, words = RULES[rule]
    bad = find(package_graph())
    assert not bad, explain(words, bad)


def _write(root: Path, files: dict[str, str]) -> Path:
    """Write a fake package's files.

    Parameters
    ----------
    root : Path
        Directory to hold the package.
    files : dict
        Source text by path relative to ``root``.

    Returns
    -------
    Path
        The package's directory, ``root / "bidsapp"``.
    """
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / PACKAGE


def test_graph_resolves_imports(tmp_path):
    root = _write(tmp_path, {
        "bidsapp/__init__.py": "from ._version import v\n",
        "bidsapp/_version.py": "",
        "bidsapp/stats/__init__.py": "from .fdr import q\nfrom . import fdr\n",
        "bidsapp/stats/fdr.py": "from .. import stats\nfrom ..io import w\n",
        "bidsapp/io.py": "",
        "bidsapp/levels/group.py": (  # a namespace package: no __init__.py
            "import typing\n"
            "from typing import TYPE_CHECKING\n"
            "from bidsapp import stats, errors\n"
            "from . import common\n"
            "if TYPE_CHECKING:\n"
            "    from bids import BIDSLayout\n"
            "if typing.TYPE_CHECKING:\n"
            "    import torch\n"
            "else:\n"
            "    import numpy\n"
            "def f():\n"
            "    from nipype.pipeline import engine as pe\n"),
        "bidsapp/levels/common.py": "",
    })
    edges = {(imp.importer, imp.imported, imp.lineno, imp.in_function)
             for imp in import_graph(root)}
    assert edges == {
        ("bidsapp", "bidsapp._version", 1, False),
        ("bidsapp.stats", "bidsapp.stats.fdr", 1, False),
        ("bidsapp.stats", "bidsapp.stats.fdr", 2, False),
        ("bidsapp.stats.fdr", "bidsapp.stats", 1, False),
        ("bidsapp.stats.fdr", "bidsapp.io", 2, False),
        ("bidsapp.levels.group", "typing", 1, False),
        ("bidsapp.levels.group", "typing", 2, False),
        ("bidsapp.levels.group", "bidsapp.stats", 3, False),
        ("bidsapp.levels.group", "bidsapp", 3, False),  # `errors` is not a module here
        ("bidsapp.levels.group", "bidsapp.levels.common", 4, False),
        ("bidsapp.levels.group", "numpy", 10, False),
        ("bidsapp.levels.group", "nipype.pipeline", 12, True),
    }


def test_rules_catch_known_violations(tmp_path):
    root = _write(tmp_path, {
        "bidsapp/__init__.py": "from bidsapp.rsa import x\n",
        "bidsapp/rsa/__init__.py": "import numpy\nfrom .engine import y\n",
        "bidsapp/rsa/engine.py": "import torch\ndef f():\n    import nilearn\n",
        "bidsapp/stats/ttest.py": "import numpy\nfrom nipype.interfaces.base import B\n",
        "bidsapp/bids/collect.py": "def f():\n    from bidsapp.audio import features\n",
        "bidsapp/audio/features.py": "",
        "bidsapp/simulate/cli.py": "from bidsapp.cli.parser import p\nimport argparse\n",
        "bidsapp/cli/parser.py": "from bidsapp.levels import group\n",
        "bidsapp/levels/group.py": (
            "from bidsapp.workflows import bold\nfrom bidsapp import demo\n"),
        "bidsapp/demo.py": "",
        "bidsapp/workflows/bold.py": (
            "import nipype\nfrom ..interfaces import rsa\nfrom bidsapp.levels.group import g\n"),
        "bidsapp/interfaces/rsa.py": (
            "from bidsapp import rsa\nfrom bidsapp.workflows import bold\n"),
    })
    fake = import_graph(root)

    def found(rule: Callable[[list[Import]], list[Import]]) -> set[tuple[str, str, int]]:
        return {(imp.importer, imp.imported, imp.lineno) for imp in rule(fake)}

    assert found(engine_violations) == {("bidsapp.stats.ttest", "nipype.interfaces.base", 2)}
    assert found(lambda g: layer_violations(g, "workflows")) == {
        ("bidsapp.workflows.bold", "bidsapp.levels.group", 3)}
    assert found(lambda g: layer_violations(g, "levels")) == {
        ("bidsapp.levels.group", "bidsapp.demo", 2)}
    assert found(lambda g: layer_violations(g, "interfaces")) == {
        ("bidsapp.interfaces.rsa", "bidsapp.workflows.bold", 2)}
    assert found(lambda g: layer_violations(g, "library")) == {
        ("bidsapp.simulate.cli", "bidsapp.cli.parser", 1)}
    assert found(library_cli_violations) == {("bidsapp.simulate.cli", "bidsapp.cli.parser", 1)}
    assert found(bids_audio_violations) == {("bidsapp.bids.collect", "bidsapp.audio.features", 2)}
    assert heavy_root_imports(fake) == [
        "bidsapp -> bidsapp.rsa -> bidsapp.rsa.engine: "
        "bidsapp.rsa.engine -> torch (line 1)"]


def _says_why(lines: list[str], lineno: int) -> bool:
    """Whether an import line, or the comment above its block of imports, gives a reason."""
    if "#" in lines[lineno - 1]:
        return True
    above = lineno - 2
    while above >= 0 and lines[above].strip().startswith(("import ", "from ")):
        above -= 1
    return above >= 0 and lines[above].strip().startswith("#")


def test_imports_inside_functions_say_why():
    sources: dict[str, list[str]] = {}
    for path in PACKAGE_ROOT.rglob("*.py"):
        sources[module_name(path, PACKAGE_ROOT)] = path.read_text(encoding="utf-8").splitlines()
    lazy = [imp for imp in package_graph() if imp.in_function]
    bad = [imp for imp in lazy if not _says_why(sources[imp.importer], imp.lineno)]
    assert not bad, explain("an import inside a function needs a comment saying why it is "
                            "not at the module's top", bad)
