"""The architecture of DESIGN.md as tests: read from the source with ``ast``, never imported.

Every ``.py`` file of ``cooc_minimal/`` and of ``exercises/`` (not ``exercises/checks/``,
``exercises/solutions/`` nor the students' answer files ``exercises/exNN_*.py``) is parsed;
an import anywhere in a module counts (at module level or inside a function: a lazy import
still is a dependency), except inside an ``if __name__ == "__main__":`` block (an entry point).

- no import cycle, in ``cooc_minimal`` nor in ``exercises``;
- the dependency rules (``RULES``), followed through the graph: a path through other modules
  counts, and the failure prints it;
- only ``cli`` imports ``cli``;
- functions of ``cooc_minimal`` at most 60 lines (docstring excluded), ``train.py`` under
  300 lines, no call with more than 5 positional arguments;
- no module edits ``sys.path`` when it is imported.

The last tests build a small package with a cycle and forbidden imports, and check that the
functions above find them.
"""

from __future__ import annotations

import ast
import fnmatch
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LIBRARY = REPO / "cooc_minimal"
EXERCISES = REPO / "exercises"
MAX_FUNCTION_LINES = 60  # def line to end, docstring excluded
MAX_TRAIN_LINES = 300    # cooc_minimal/train.py has fewer lines than this
MAX_POSITIONAL = 5       # positional arguments of one call (a *args counts as one)
# Tensor methods whose positional arguments are one dimension each (x.permute(0, 2, 1, ...)):
# naming them would not make the call clearer.
DIMENSION_METHODS = frozenset({"permute", "view", "reshape", "expand", "repeat", "new_zeros",
                               "new_ones", "new_empty", "zeros", "ones", "empty"})
LOOP = ("train", "step", "runs", "views", "cli")

# (module of cooc_minimal, what it must not import directly or through other modules, why).
# A plain name is a module of cooc_minimal; a name with "*" is a pattern for any module.
RULES = [
    ("evaluate", LOOP, "evaluation never imports the training loop"),
    ("bags", LOOP, "bags serve evaluation too: they never import the training loop"),
    ("config", ("losses", "models", "torch*"), "the config is data: no loss, no model, no torch"),
    ("data", ("models", "losses"), "data imports no model and no loss"),
    ("models", ("losses",), "a model imports no loss"),
    ("losses", ("train", "step", "runs"), "a loss imports no training loop"),
    ("evaluate", ("viz",), "numbers never draw: evaluate imports no viz"),
]
ENTRY_POINTS = ("cli", "__main__")  # the only modules that may import cli


# --- reading a package ---------------------------------------------------------------------

@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``line`` (``where``: the function, "" at top level)."""

    source: str
    target: str
    line: int
    where: str = ""

    def __str__(self) -> str:
        inside = f", in {self.where}()" if self.where else ""
        return f"{self.target} ({self.source} line {self.line}{inside})"


def module_name(path: Path, package: Path) -> str:
    """``cooc_minimal/losses.py`` -> ``cooc_minimal.losses``; ``__init__.py`` -> the package."""
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_student_file(path: Path, package: Path) -> bool:
    """Checks, solutions and answer stubs of ``exercises/``: content, not architecture."""
    relative = path.relative_to(package)
    return (relative.parts[0] in ("checks", "solutions")
            or (len(relative.parts) == 1 and fnmatch.fnmatch(relative.name, "ex[0-9][0-9]_*.py")))


def no_file(path: Path, package: Path) -> bool:
    return False


Skip = Callable[[Path, Path], bool]


def package_files(package: Path, skip: Skip = no_file) -> dict[str, Path]:
    """``{module name: path}`` for every ``.py`` file of ``package`` but those ``skip``
    accepts (and those in hidden folders, ``.ipynb_checkpoints``)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if any(part.startswith(".") for part in relative.parts) or skip(path, package):
            continue
        found[module_name(path, package)] = path
    return found


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def is_main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":``, either way round."""
    if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and len(node.test.ops) == 1 and isinstance(node.test.ops[0], ast.Eq)):
        return False
    sides = [node.test.left, *node.test.comparators]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    texts = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and texts == ["__main__"]


def imports_with_scope(node: ast.AST, scope: str = "") -> Iterator[tuple[ast.AST, str]]:
    """Every import statement under ``node`` with the function it is in ("" at top level);
    the body of a ``__main__`` guard is skipped (its ``else`` is not)."""
    for child in ast.iter_child_nodes(node):
        if is_main_guard(child):
            for statement in child.orelse:
                yield from imports_with_scope(ast.Module(body=[statement], type_ignores=[]),
                                              scope)
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, scope
        inner = scope
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            inner = f"{scope}.{child.name}" if scope else child.name
        yield from imports_with_scope(child, inner)


def known_or_dotted(name: str, known: set[str]) -> str:
    """The longest known module that ``name`` is or lies in, else ``name`` itself."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return name


def relative_base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` starts from (``from . import x`` too)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[:len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def from_target(base: str, name: str, known: set[str]) -> str:
    """``from base import name``: the module ``base.name`` when the package has it, else the
    module ``name`` lies in (outside modules: ``base`` itself, ``from torch import nn`` is
    ``torch``, since a name there may not be a module)."""
    if f"{base}.{name}" in known:
        return f"{base}.{name}"
    inside = known_or_dotted(base, known)
    return inside if inside in known else base


def import_targets(node: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The modules one import statement names: ``from cooc_minimal import losses`` is
    ``cooc_minimal.losses``; a name that is not a module is its module (``cooc_minimal``)."""
    if isinstance(node, ast.Import):
        return [known_or_dotted(alias.name, known) for alias in node.names]
    base = relative_base(node, module, is_package)
    if base == "__future__":
        return []
    return [from_target(base, alias.name, known) for alias in node.names]


def module_edges(module: str, path: Path, known: set[str]) -> list[Edge]:
    """Every import of one module, as edges (outside modules keep their dotted names)."""
    is_package = path.name == "__init__.py"
    return [Edge(module, target, node.lineno, scope)
            for node, scope in imports_with_scope(parse(path))
            for target in import_targets(node, module, is_package, known) if target != module]


def import_graph(package: Path, skip: Skip = no_file) -> dict[str, list[Edge]]:
    """``{module: [Edge, ...]}`` for every module of ``package``."""
    files = package_files(package, skip)
    known = set(files)
    return {module: module_edges(module, path, known) for module, path in files.items()}


# --- questions about the graph -------------------------------------------------------------

def internal_edges(graph: dict[str, list[Edge]]) -> dict[str, list[Edge]]:
    """Only the edges between modules of the graph, the first one per pair."""
    inside: dict[str, list[Edge]] = {}
    for module, edges in graph.items():
        seen = {}
        for edge in edges:
            if edge.target in graph:
                seen.setdefault(edge.target, edge)
        inside[module] = list(seen.values())
    return inside


def shortest_path(graph: dict[str, list[Edge]], start: str,
                  is_goal: Callable[[str], bool]) -> list[Edge] | None:
    """The fewest edges from ``start`` to a target ``is_goal`` accepts, through modules of
    the graph (a goal outside the graph, ``torch``, ends a path too)."""
    inside = internal_edges(graph)
    queue: deque[tuple[str, list[Edge]]] = deque([(start, [])])
    visited = {start}
    while queue:
        module, path = queue.popleft()
        for edge in sorted(graph.get(module, ()), key=lambda e: (e.line, e.target)):
            if is_goal(edge.target):
                return [*path, edge]
        for edge in inside.get(module, ()):
            if edge.target not in visited:
                visited.add(edge.target)
                queue.append((edge.target, [*path, edge]))
    return None


def find_cycles(graph: dict[str, list[Edge]]) -> list[list[Edge]]:
    """One shortest cycle through each module that lies on a cycle, duplicates removed."""
    cycles, seen = [], set()
    for module in sorted(graph):
        cycle = shortest_path(graph, module, lambda target, m=module: target == m)
        if cycle and frozenset(e.source for e in cycle) not in seen:
            seen.add(frozenset(e.source for e in cycle))
            cycles.append(cycle)
    return cycles


def show_path(path: list[Edge]) -> str:
    """``a -> b (a line 3) -> c (b line 7, in f())``."""
    return " -> ".join([path[0].source, *map(str, path)])


def forbidden_matcher(package: str, names: tuple[str, ...]) -> Callable[[str], bool]:
    """``"train"`` is the module ``package.train``; ``"torch*"`` any module named so."""
    patterns = [name if "*" in name else f"{package}.{name}" for name in names]
    return lambda target: any(fnmatch.fnmatchcase(target, p) for p in patterns)


# --- questions about one file --------------------------------------------------------------

def docstring_lines(node: ast.AST) -> int:
    body = getattr(node, "body", [])
    if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        return body[0].end_lineno - body[0].lineno + 1
    return 0


def functions_with_names(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    """Every function and method, with its qualified name (``Class.method``, ``outer.inner``)."""
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield from functions_with_names(child, prefix)
            continue
        name = f"{prefix}.{child.name}" if prefix else child.name
        if not isinstance(child, ast.ClassDef):
            yield name, child
        yield from functions_with_names(child, name)


def long_functions(tree: ast.Module, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int, int]]:
    """``(name, def line, length)`` of each function longer than ``limit`` lines."""
    found = []
    for name, node in functions_with_names(tree):
        length = node.end_lineno - node.lineno + 1 - docstring_lines(node)
        if length > limit:
            found.append((name, node.lineno, length))
    return found


def calls_with_scope(tree: ast.Module) -> Iterator[tuple[ast.Call, str]]:
    """Every call, with the function it is in ("" at top level)."""
    functions = [(node.lineno, node.end_lineno, name) for name, node in functions_with_names(tree)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            inside = [f for f in functions if f[0] <= node.lineno <= f[1]]
            yield node, max(inside, key=lambda f: f[0])[2] if inside else ""


def callee(func: ast.expr) -> str:
    """``f``, ``torch.cat``, or ``....permute`` for a method of a long expression."""
    text = ast.unparse(func)
    if len(text) <= 40 or not isinstance(func, ast.Attribute):
        return text[:40]
    return f"....{func.attr}"


def crowded_calls(tree: ast.Module, limit: int = MAX_POSITIONAL) -> list[tuple[str, int, str, int]]:
    """``(function, line, callee, count)`` of each call with more than ``limit`` positional
    arguments (a ``*args`` counts as one), in line order."""
    return sorted(((scope, call.lineno, callee(call.func), len(call.args))
                   for call, scope in calls_with_scope(tree) if len(call.args) > limit
                   and not (isinstance(call.func, ast.Attribute)
                            and call.func.attr in DIMENSION_METHODS)),
                  key=lambda found: (found[1], found[2]))


def runs_at_import(tree: ast.Module) -> Iterator[ast.AST]:
    """Every node that runs when the module is imported: module level, class bodies,
    decorators and defaults; not function bodies, not a ``__main__`` guard's body."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if is_main_guard(node):
            pending += node.orelse
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            arguments = node.args
            pending += [*getattr(node, "decorator_list", []), *arguments.defaults,
                        *[d for d in arguments.kw_defaults if d is not None]]
            continue
        yield node
        pending += list(ast.iter_child_nodes(node))


def sys_path_uses(tree: ast.Module) -> list[int]:
    """Lines that touch ``sys.path`` when the module is imported."""
    sys_names = {"sys"} | {alias.asname for node in ast.walk(tree) if isinstance(node, ast.Import)
                           for alias in node.names if alias.name == "sys" and alias.asname}
    lines = set()
    for node in runs_at_import(tree):
        if (isinstance(node, ast.Attribute) and node.attr == "path"
                and isinstance(node.value, ast.Name) and node.value.id in sys_names):
            lines.add(node.lineno)
        if (isinstance(node, ast.ImportFrom) and node.module == "sys"
                and any(alias.name == "path" for alias in node.names)):
            lines.add(node.lineno)
    return sorted(lines)


def relative(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


# --- the rules -----------------------------------------------------------------------------

PACKAGES: dict[str, tuple[Path, Skip]] = {"cooc_minimal": (LIBRARY, no_file),
                                          "exercises": (EXERCISES, is_student_file)}


def fail_if(found: list[str], header: str) -> None:
    """Fail with the header and one line per finding, when there is any."""
    if found:
        pytest.fail(header + "\n  " + "\n  ".join(found), pytrace=False)


@pytest.fixture(scope="module")
def library_graph() -> dict[str, list[Edge]]:
    return import_graph(LIBRARY)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package):
    cycles = find_cycles(import_graph(*PACKAGES[package]))
    fail_if([show_path(c) for c in cycles],
            f"{package} imports in a circle (a lazy import counts too):")


@pytest.mark.parametrize("module,forbidden,why", RULES,
                         ids=[f"{m}-not-{'-'.join(f)}".replace("*", "") for m, f, _ in RULES])
def test_dependency_rule(library_graph, module, forbidden, why):
    source = f"cooc_minimal.{module}"
    if source not in library_graph:
        pytest.skip(f"{source} does not exist")
    path = shortest_path(library_graph, source, forbidden_matcher("cooc_minimal", forbidden))
    if path is not None:
        pytest.fail(f"{why}, but {show_path(path)}", pytrace=False)


def test_only_cli_imports_cli(library_graph):
    entry = {f"cooc_minimal.{name}" for name in ENTRY_POINTS}
    found = [f"{edge.source} line {edge.line}" for module, edges in library_graph.items()
             if module not in entry for edge in edges if edge.target == "cooc_minimal.cli"]
    fail_if(found, "only cli (and `if __name__ == \"__main__\":` blocks) may import "
                   "cooc_minimal.cli:")


def test_functions_are_short():
    found = [f"{relative(path)}:{line} {name}() is {length} lines"
             for path in package_files(LIBRARY).values()
             for name, line, length in long_functions(parse(path))]
    fail_if(found, f"functions of cooc_minimal longer than {MAX_FUNCTION_LINES} lines "
                   "(docstring excluded):")


def test_train_module_is_short():
    lines = len((LIBRARY / "train.py").read_text(encoding="utf-8").splitlines())
    assert lines < MAX_TRAIN_LINES, (f"cooc_minimal/train.py has {lines} lines; keep it under "
                                     f"{MAX_TRAIN_LINES} (the loop, top to bottom)")


def test_calls_take_few_positional_arguments():
    found = [f"{relative(path)}:{line} in {scope or '<module>'}(): {callee}(...) with {count} "
             "positional arguments"
             for path in package_files(LIBRARY).values()
             for scope, line, callee, count in crowded_calls(parse(path))]
    fail_if(found, f"calls with more than {MAX_POSITIONAL} positional arguments (name them):")


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_edits_sys_path_at_import(package):
    found = [f"{relative(path)} line {line}" for path in package_files(*PACKAGES[package]).values()
             for line in sys_path_uses(parse(path))]
    fail_if(found, f"{package}: a module touches sys.path when it is imported (set the path "
                   "where the process starts instead):")


# --- the checker itself, on a small package with known faults ------------------------------

FAKE = {
    "__init__.py": '"""A package with faults."""\n',
    "a.py": "from fake import b\n",
    "b.py": "import os\n\n\ndef helper():\n    from . import a\n    return a\n",
    "c.py": ("from .d import thing\n\nif __name__ == '__main__':\n    from fake import a\n"
             "else:\n    import json\n"),
    "d.py": "import torch.nn\nfrom torch import nn\n\nthing = 1\n",
    "e.py": ("import sys as system\n\nsystem.path.insert(0, 'x')\n\n\n"
             "def g(*f):\n    import sys\n    sys.path.append('fine: at call time')\n"
             "    return g(1, 2, 3, 4, 5, *f)\n\n\n"
             "class C:\n    def method(self):\n        return g(1, 2, 3, 4, 5)\n\n\n"
             "if __name__ == '__main__':\n    system.path.clear()  # fine: an entry point\n"),
    "checks/ex01_x.py": "from fake import a\n",
}


@pytest.fixture
def fake(tmp_path) -> Path:
    package = tmp_path / "fake"
    for name, text in FAKE.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    return package


def test_the_graph_reads_every_form_of_import(fake):
    assert "fake.checks.ex01_x" in import_graph(fake)
    graph = import_graph(fake, is_student_file)
    assert set(graph) == {"fake", "fake.a", "fake.b", "fake.c", "fake.d", "fake.e"}
    targets = {module: {e.target for e in edges} for module, edges in graph.items()}
    assert targets["fake.a"] == {"fake.b"}                 # from fake import b
    assert targets["fake.b"] == {"os", "fake.a"}           # lazy, relative: from . import a
    assert targets["fake.c"] == {"fake.d", "json"}         # the __main__ guard is no dependency
    assert targets["fake.d"] == {"torch.nn", "torch"}    # import torch.nn; from torch import nn
    (lazy,) = [e for e in graph["fake.b"] if e.target == "fake.a"]
    assert (lazy.line, lazy.where) == (5, "helper")


def test_the_checker_finds_a_cycle_and_a_forbidden_path(fake):
    graph = import_graph(fake, is_student_file)
    (cycle,) = find_cycles(graph)
    assert show_path(cycle) == ("fake.a -> fake.b (fake.a line 1) -> "
                                "fake.a (fake.b line 5, in helper())")
    path = shortest_path(graph, "fake.c", forbidden_matcher("fake", ("torch*",)))
    assert show_path(path) == "fake.c -> fake.d (fake.c line 1) -> torch.nn (fake.d line 1)"
    assert shortest_path(graph, "fake.c", forbidden_matcher("fake", ("a", "b"))) is None
    assert shortest_path(graph, "fake.a", forbidden_matcher("fake", ("os",))) is None
    assert shortest_path(graph, "fake.a", forbidden_matcher("fake", ("os*",))) is not None
    del graph["fake.b"]
    assert find_cycles(graph) == []


def test_the_checker_finds_file_faults(fake):
    tree = parse(fake / "e.py")
    assert sys_path_uses(tree) == [3]
    assert crowded_calls(tree) == [("g", 9, "g", 6)]  # C.method's call has 5: allowed
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    long = parse_text(f'def f():\n    """Two\n    lines."""\n{body}\n\n\n'
                      f"def ok():\n    '''doc'''\n{body[: body.rindex(chr(10))]}\n")
    assert long_functions(long) == [("f", 1, MAX_FUNCTION_LINES + 1)]


def parse_text(text: str) -> ast.Module:
    return ast.parse(text)


def test_the_module_map_lists_every_module_once():
    import cooc_minimal

    listed = [name for name, _, _ in cooc_minimal.MODULES]
    present = sorted(path.stem for path in LIBRARY.glob("*.py") if path.stem != "__init__")
    assert len(listed) == len(set(listed)), f"listed twice: {sorted(listed)}"
    missing, absent = sorted(set(present) - set(listed)), sorted(set(listed) - set(present))
    assert not missing and not absent, (
        f"cooc_minimal.MODULES and the package differ: not listed {missing}, listed but "
        f"absent {absent}")
