"""What an answer file may contain, read from its syntax tree before it runs.

Two layers, both checked on the file's text (``ast``), never by running it:

- **The house rules**, for every answer file of every set (:func:`file_problems`): the top
  level holds only imports, function definitions and constants (no call runs on import: not
  in a constant, a default value, a decorator or an annotation; the only ``if`` is
  ``if __name__ == "__main__":``); imports come from the set's ``ALLOWED_IMPORTS``; no
  ``exec``/``eval``/``open``/``getattr``/``exit`` and friends, no string annotations or
  ``get_type_hints`` (which runs them), no ``functools.update_wrapper``/``wraps``, no
  ``sympify`` (which evaluates text), no dunder or private attributes (``x.__class__``,
  ``torch._C``), no names that reach the interpreter or the disk (``os``, ``sys``,
  ``torch.save``, ``torch.from_file``, ``torch.utils`` ...), no ``class`` or ``type(name,
  bases, dict)`` (unless the set sets ``ALLOW_CLASSES = True``), no ``global``, no assignment
  to a module's attributes (``torch.allclose = ...``).

  These rules are a first line with friendly messages, not the defence: a file that breaks
  one is not run, but a determined student can write code they do not see. The defence is
  that the grader runs answers in a sandbox and computes every score itself from their
  outputs (:mod:`exercises.runner`, :mod:`exercises.sandbox`).
- **What an exercise must not use**, declared per check with ``@exercise(forbid=[...])``
  (:class:`Rule`): e.g. :data:`NO_LOOPS`, :data:`NO_NUMPY`, :data:`NO_LIBRARY`,
  :func:`forbid_names`, :data:`ARITHMETIC_ONLY`. A rule sees the exercise's function *and
  the helper functions it calls* in the same file, and the file's imports.

Every problem is one sentence that names the line.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

DEFAULT_IMPORTS = ("__future__", "math", "torch", "typing", "functools", "itertools",
                   "collections")
BANNED_CALLS = frozenset({
    "__import__", "eval", "exec", "compile", "open", "globals", "locals", "vars", "getattr",
    "setattr", "delattr", "breakpoint", "input", "exit", "quit", "help", "memoryview",
    "get_type_hints", "update_wrapper", "wraps", "sympify", "parse_expr", "lambdify",
})
# Attribute or variable names that lead to the interpreter, the process or the disk.
BANNED_ATTRIBUTES = frozenset({
    "os", "sys", "subprocess", "builtins", "importlib", "ctypes", "gc", "inspect", "shutil",
    "signal", "socket", "threading", "multiprocessing", "pickle", "marshal", "pathlib", "io",
    "hub", "cpp_extension", "environ", "system", "popen", "spawn", "fork", "kill",
    "save", "load", "savetxt", "savez", "tofile", "fromfile", "loadtxt", "memmap",
    "exercises", "checker", "checks", "solutions",
    "from_file", "collect_env", "get_type_hints", "update_wrapper", "wraps", "library",
    "load_library", "sympify", "parse_expr", "lambdify", "utils", "fx", "jit", "compile",
    "package", "distributed", "benchmark",
})
LOOP_NODES = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp,
              ast.GeneratorExp)


def parse(source: str, filename: str = "<answers>") -> ast.Module:
    return ast.parse(source, filename=filename)


def imported_modules(tree: ast.Module) -> list[tuple[str, int]]:
    """Every ``(dotted module, line)`` the file imports, anywhere in it."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names
                      if not node.level]
    return found


def _allowed(module: str, allowed: Iterable[str]) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` exactly (no else): its body never runs on import."""
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and not node.orelse and isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def _constant(node: ast.AST | None) -> bool:
    """A value computed without calling anything: literals, names, ``torch.float64``, and
    arithmetic, tuples, lists, sets and dicts of those."""
    if node is None or isinstance(node, ast.Constant | ast.Name):
        return True
    if isinstance(node, ast.Attribute):
        return _constant(node.value)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return all(_constant(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(_constant(k) and _constant(v) for k, v in zip(node.keys, node.values,
                                                                  strict=True))
    if isinstance(node, ast.UnaryOp):
        return _constant(node.operand)
    if isinstance(node, ast.BinOp):
        return _constant(node.left) and _constant(node.right)
    return False


def _plain_annotation(node: ast.AST | None) -> bool:
    """A type written as itself: names, ``torch.Tensor``, ``list[int]``, ``int | None``."""
    if node is None or isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.Constant):
        return node.value is None or node.value is Ellipsis
    if isinstance(node, ast.Attribute):
        return _plain_annotation(node.value)
    if isinstance(node, ast.Subscript):
        return _plain_annotation(node.value) and _plain_annotation(node.slice)
    if isinstance(node, ast.Tuple | ast.List):
        return all(_plain_annotation(e) for e in node.elts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _plain_annotation(node.left) and _plain_annotation(node.right)
    return False


def _import_time_problems(tree: ast.Module) -> list[str]:
    """What would run when the file is imported: top-level statements other than imports,
    definitions and constants; calls in a constant, a default value, a decorator or an
    annotation; string annotations (``typing.get_type_hints`` runs them as code)."""
    problems = []
    for node in tree.body:
        line = node.lineno
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if docstring or _is_main_guard(node) or isinstance(
                node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.ClassDef):
            continue
        if isinstance(node, ast.Assign | ast.AnnAssign):
            if not _constant(node.value):
                problems.append(f"line {line} computes a module constant with a call when the "
                                "file is imported: give it a plain value, or compute it "
                                "inside the function")
            continue
        problems.append(f"line {line} runs code when the file is imported: keep the top "
                        "level to imports, functions and constants")
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            arguments = node.args
            for default in [*arguments.defaults, *arguments.kw_defaults]:
                if default is not None and not _constant(default):
                    problems.append(f"line {default.lineno} computes a default value with a "
                                    "call when the file is imported: use None and compute it "
                                    "inside the function")
            if isinstance(node, ast.Lambda):
                continue
            for decorator in node.decorator_list:
                call = decorator if isinstance(decorator, ast.Call) else None
                target = call.func if call else decorator
                if not (_constant(target) and (call is None or all(
                        _constant(a) for a in [*call.args, *(k.value for k in call.keywords)]))):
                    problems.append(f"line {decorator.lineno} has a decorator that computes "
                                    "something when the file is imported")
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                     arguments.vararg, arguments.kwarg]
            notes = [a.annotation for a in every if a is not None] + [node.returns]
            for note in notes:
                if not _plain_annotation(note):
                    problems.append(f"line {note.lineno} has an annotation that is not a plain "
                                    "type (a string or a call): write the type itself")
        elif isinstance(node, ast.AnnAssign) and not _plain_annotation(node.annotation):
            problems.append(f"line {node.lineno} has an annotation that is not a plain type "
                            "(a string or a call): write the type itself")
    return problems


def _module_aliases(tree: ast.Module) -> set[str]:
    """Local names bound to imported modules or their members (``torch``, ``F``, ``sp``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _attribute_root(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def file_problems(tree: ast.Module, allowed_imports: Iterable[str] = DEFAULT_IMPORTS,
                  allow_classes: bool = False) -> list[str]:
    """The house rules (module docstring); an empty list when the file may be imported."""
    allowed = tuple(allowed_imports) + ("__future__",)
    problems = _import_time_problems(tree)
    for module, line in imported_modules(tree):
        if module.startswith(".") or not _allowed(module, allowed):
            problems.append(f"line {line} imports {module}, which this set does not allow "
                            f"(allowed: {', '.join(a for a in allowed if a != '__future__')})")
        elif any(part in BANNED_ATTRIBUTES or part in BANNED_CALLS or part.startswith("_")
                 for part in module.split(".")[1:]):
            problems.append(f"line {line} imports {module}, which answers may not use")
    aliases = _module_aliases(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Name):
            if node.id in BANNED_CALLS or (node.id.startswith("__") and node.id != "__name__"):
                problems.append(f"line {line} uses {node.id}, which answers may not use")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_") and not (allow_classes and node.attr == "__init__"):
                problems.append(f"line {line} reaches into the private attribute "
                                f".{node.attr}; use the public API")
            elif node.attr in BANNED_ATTRIBUTES:
                problems.append(f"line {line} uses .{node.attr}, which answers may not use")
        elif isinstance(node, ast.ClassDef) and not allow_classes:
            problems.append(f"line {line} defines a class; answers in this set are functions")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "type" and len(node.args) > 1):
            problems.append(f"line {line} makes a class with type(); answers are functions")
        elif isinstance(node, ast.Global | ast.Nonlocal):
            problems.append(f"line {line} uses a global statement; return values instead")
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and _attribute_root(target) in aliases:
                    problems.append(f"line {line} changes the module attribute "
                                    f"{ast.unparse(target)}; leave libraries as they are")
    return sorted(dict.fromkeys(problems), key=_line_of)  # stable: first found first


def _line_of(problem: str) -> int:
    word = problem.split()[1] if problem.startswith("line ") else ""
    return int(word) if word.isdigit() else 0


# ---------------------------------------------------------------------------------------
# Per-exercise rules


@dataclass(frozen=True)
class Scope:
    """What a rule looks at: the exercise's function, its helpers, and the whole file."""

    tree: ast.Module
    function: str
    nodes: list[ast.AST] = field(default_factory=list)  # the function and helpers, walked

    @classmethod
    def of(cls, tree: ast.Module, function: str) -> Scope:
        defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        todo, seen = [function], set()
        while todo:
            name = todo.pop()
            if name in seen or name not in defs:
                continue
            seen.add(name)
            for node in ast.walk(defs[name]):
                if isinstance(node, ast.Name) and node.id in defs:
                    todo.append(node.id)
        nodes = [node for name in sorted(seen) for node in ast.walk(defs[name])]
        return cls(tree, function, nodes)


@dataclass(frozen=True)
class Rule:
    """A thing an answer must not use: ``find(scope)`` returns ``(line, what)`` or None.

    The failure reads ``"<function> <what> (line N): <why>"``, one sentence.
    """

    name: str
    why: str
    find: Callable[[Scope], tuple[int, str] | None]

    def problem(self, tree: ast.Module, function: str) -> str | None:
        hit = self.find(Scope.of(tree, function))
        if hit is None:
            return None
        line, what = hit
        return f"{function} {what} (line {line}): {self.why}"


def _first(nodes: Iterable[ast.AST], test: Callable[[ast.AST], str | None]):
    for node in nodes:
        what = test(node)
        if what:
            return node.lineno, what
    return None


def _fixed_count(iterable: ast.AST) -> bool:
    """A loop over a handful of things written in the code: ``range(3)``, ``(a, b)``."""
    if isinstance(iterable, ast.Tuple | ast.List | ast.Set):
        return True
    return (isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name)
            and iterable.func.id == "range"
            and all(isinstance(a, ast.Constant) for a in iterable.args))


def _find_loop(scope: Scope):
    def test(node):
        if isinstance(node, ast.For | ast.AsyncFor) and _fixed_count(node.iter):
            return None
        if (isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp)
                and all(_fixed_count(g.iter) for g in node.generators)):
            return None
        if isinstance(node, LOOP_NODES):
            kind = {ast.For: "for", ast.AsyncFor: "for", ast.While: "while"}.get(type(node))
            return f"uses a Python {kind} loop" if kind else "uses a comprehension (a loop)"
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("map", "filter")):
            return f"uses {node.func.id}() (a loop)"
        return None
    return _first(scope.nodes, test)


def _find_numpy(scope: Scope):
    for module, line in imported_modules(scope.tree):
        if module == "numpy" or module.startswith("numpy."):
            return line, "imports numpy"

    def test(node):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("numpy", "tolist", "item")):
            return f"calls .{node.func.attr}(), which leaves torch"
        return None
    return _first(scope.nodes, test)


def _find_library(scope: Scope):
    for module, line in imported_modules(scope.tree):
        if module == "cooc_minimal" or module.startswith("cooc_minimal."):
            return line, f"imports {module}"
    return None


NO_LOOPS = Rule(
    "loops over rows", "the task asks for whole-tensor operations, so write it without a Python "
    "loop over rows (a loop over a fixed few, range(3), is fine)", _find_loop)
NO_NUMPY = Rule(
    "numpy, .item()", "the task asks for torch (differentiable, on the caller's device), so "
    "stay in torch", _find_numpy)
NO_LIBRARY = Rule(
    "cooc_minimal", "the exercise is to write it yourself, so answers may not import the course "
    "library cooc_minimal", _find_library)


def forbid_names(*names: str, why: str) -> Rule:
    """Forbid a name, as a variable, an attribute (``torch.logdet``) or an import."""
    wanted = set(names)

    def find(scope: Scope):
        for module, line in imported_modules(scope.tree):
            if module.split(".")[-1] in wanted:
                return line, f"imports {module}"

        def test(node):
            if isinstance(node, ast.Name) and node.id in wanted:
                return f"uses {node.id}"
            if isinstance(node, ast.Attribute) and node.attr in wanted:
                return f"uses {ast.unparse(node)}"
            return None
        return _first(scope.nodes, test)

    return Rule(", ".join(names), why, find)


def _find_module_use(scope: Scope):
    aliases = _module_aliases(scope.tree)

    def test(node):
        if isinstance(node, ast.Name) and node.id in aliases:
            return f"uses {node.id}"
        return None
    return _first(scope.nodes, test)


ARITHMETIC_ONLY = Rule(
    "any module (arithmetic only)", "this answer is a formula you derive, so write it with "
    "arithmetic on the arguments only (no torch, sympy, numpy or math calls)", _find_module_use)
