"""The package's layout: who imports whom, and how big a module may grow.

The import graph is read from the source with ``ast`` (nothing is imported):
``import x``, ``from x import y``, relative imports and
``importlib.import_module("literal")``, each marked as made at module level or
inside a function. The rules:

- no cycles among npnet's modules, neither at module level nor counting the
  imports made inside functions (cli modules share helpers through a module
  below both, never through each other);
- npnet's library modules (all but ``npnet.cli*`` and ``npnet.studies*``) never
  import ``reference``, except the one named shim below; the cli and the
  studies import it only inside functions (the torch comparisons), by name;
- ``reference`` imports only npnet's public names (no ``_private`` module or name);
- no module is loaded from a file path;
- no npnet module is over 550 lines.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("npnet", "reference")
MAX_LINES = 550


def _module_name(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] == "__init__":
        rel = rel[:-1]
    return ".".join(rel)


def _sources():
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for f in sorted(files):
                if f.endswith(".py"):
                    path = os.path.join(folder, f)
                    yield _module_name(path), path


SOURCES = dict(_sources())


def _is_package(name):
    return os.path.isfile(os.path.join(ROOT, *name.split("."), "__init__.py"))


def _resolve(importer, level, module):
    """The absolute name of a (possibly relative) import in ``importer``."""
    if level == 0:
        return module
    parts = importer.split(".")
    base = parts if _is_package(importer) else parts[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _target(name, member=None):
    """``name.member`` when that is a module of ours, else ``name`` (a name imported from a module)."""
    if member is not None and f"{name}.{member}" in SOURCES:
        return f"{name}.{member}"
    return name


class _Imports(ast.NodeVisitor):
    def __init__(self, module):
        self.module = module
        self.depth = 0
        self.found = []   # (target module, imported name or None, in_function, line)

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _add(self, target, member, node):
        self.found.append((target, member, self.depth > 0, node.lineno))

    def visit_Import(self, node):
        for alias in node.names:
            self._add(alias.name, None, node)

    def visit_ImportFrom(self, node):
        base = _resolve(self.module, node.level, node.module)
        for alias in node.names:
            self._add(_target(base, alias.name), alias.name, node)

    def visit_Call(self, node):
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
        if name == "import_module" and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            self._add(node.args[0].value, None, node)
        self.generic_visit(node)


def _tree(path):
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), path)


IMPORTS = {}
for _name, _path in SOURCES.items():
    _visitor = _Imports(_name)
    _visitor.visit(_tree(_path))
    IMPORTS[_name] = _visitor.found


def _ours(target):
    """The module of ours that ``target`` names (or lies in), or None."""
    while target and target not in SOURCES:
        target = target.rpartition(".")[0]
    return target or None


def _ancestors(module):
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _graph(*, functions):
    """npnet module -> the npnet modules it imports. An import of an ancestor package
    (``from . import __version__``) is left out: Python has run it before the module's
    first line anyway."""
    graph = {m: set() for m in SOURCES if m.split(".")[0] == "npnet"}
    for m in graph:
        for target, _, in_function, _ in IMPORTS[m]:
            t = _ours(target)
            if t in graph and t != m and t not in _ancestors(m) and (functions or not in_function):
                graph[m].add(t)
    return graph


def _cycles(graph):
    """Every strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_front_end(module):
    return module == "npnet.__main__" or module.startswith(("npnet.cli", "npnet.studies"))


def test_the_graph_sees_every_kind_of_import():
    # the reader itself: relative, absolute, from-imports of modules and of names, import_module
    imports = {(t, f) for t, _, f, _ in IMPORTS["npnet.cli"] + IMPORTS["npnet.__main__"]}
    assert any(t.startswith("npnet") for t, _ in imports)
    assert _resolve("npnet.studies.cli", 2, "errors") == "npnet.errors"
    assert _resolve("npnet.studies", 1, "_common") == "npnet.studies._common"
    assert _resolve("npnet.train", 1, None) == "npnet"
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_npnet_modules_at_module_level():
    assert _cycles(_graph(functions=False)) == []


def test_no_import_cycles_among_npnet_modules_counting_imports_inside_functions():
    assert _cycles(_graph(functions=True)) == []


def test_npnet_library_modules_never_import_reference():
    bad = [(m, t, line) for m, found in IMPORTS.items() if m.startswith("npnet") and not _is_front_end(m)
           for t, _, _, line in found
           if t.split(".")[0] == "reference"]
    assert bad == []


def test_cli_and_studies_import_reference_only_inside_functions():
    bad = [(m, t, line) for m, found in IMPORTS.items() if _is_front_end(m)
           for t, _, in_function, line in found if t.split(".")[0] == "reference" and not in_function]
    assert bad == []


def test_reference_imports_only_public_npnet_names():
    bad = []
    for m, found in IMPORTS.items():
        if not m.startswith("reference"):
            continue
        for t, member, _, line in found:
            if t.split(".")[0] != "npnet":
                continue
            private_module = any(part.startswith("_") for part in t.split(".")[1:])
            if private_module or (member or "").startswith("_"):
                bad.append((m, t, member, line))
    assert bad == []


def test_reference_uses_no_private_attribute_of_npnet_modules():
    bad = []
    for m, path in SOURCES.items():
        if not m.startswith("reference"):
            continue
        aliases = set()
        tree = _tree(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("npnet"):
                aliases |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Import):
                aliases |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("npnet")}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases \
                    and node.attr.startswith("_") and not node.attr.startswith("__"):
                bad.append((m, f"{node.value.id}.{node.attr}", node.lineno))
    assert bad == []


def test_no_module_is_loaded_from_a_file_path():
    bad = []
    for m, path in SOURCES.items():
        for node in ast.walk(_tree(path)):
            name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
            if name in ("spec_from_file_location", "SourceFileLoader", "exec_module", "run_path"):
                bad.append((m, name, node.lineno))
    assert bad == []


@pytest.mark.parametrize("module", sorted(m for m in SOURCES if m.startswith("npnet")))
def test_no_npnet_module_is_over_550_lines(module):
    with open(SOURCES[module], encoding="utf-8") as f:
        lines = sum(1 for _ in f)
    assert lines <= MAX_LINES, f"{SOURCES[module]} has {lines} lines; split it (one room per concept)"
