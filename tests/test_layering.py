"""The tree's rules, checked on the source: who may import whom, no import circles, one home per concept.

Imports are read with `ast` (module-level and inside functions), so a lazy import counts too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("osmnet", "backend", "blender_addon")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            yield _module_name(path), path


SOURCES = dict(_sources())


def _imports(name: str, path: Path) -> set[str]:
    """Absolute names of every module `name` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in SOURCES]
            out.update(subs)  # `from pkg import module` imports the module ...
            if len(subs) < len(node.names):  # ... and the package itself only for its own names
                out.add(mod)
    return out


IMPORTS = {name: _imports(name, path) for name, path in SOURCES.items()}


def _top(mod: str) -> str:
    return mod.split(".")[0]


def _violations(pred, forbidden):
    return sorted(f"{m} imports {i}" for m, imps in IMPORTS.items() if pred(m)
                  for i in imps if any(i == f or i.startswith(f + ".") for f in forbidden))


def test_the_addon_core_needs_neither_blender_nor_torch_nor_the_rest():
    in_core = lambda m: m.startswith("blender_addon.core")  # noqa: E731
    rest = [m for m in SOURCES if m.startswith("blender_addon") and not m.startswith("blender_addon.core")
            and m != "blender_addon"]
    assert _violations(in_core, ["bpy", "mathutils", "torch", "osmnet", "backend", *rest]) == []


def test_the_addon_never_imports_torch_osmnet_or_backend():
    assert _violations(lambda m: m.startswith("blender_addon"), ["torch", "osmnet", "backend"]) == []


def test_osmnet_imports_neither_zmq_nor_bpy_nor_the_backend():
    assert _violations(lambda m: _top(m) == "osmnet", ["zmq", "bpy", "backend"]) == []
    # osmnet may use the add-on's core formats, never its Blender side
    blender_side = {m for m in SOURCES if m.startswith("blender_addon") and not m.startswith("blender_addon.core")}
    assert sorted(f"{m} imports {i}" for m, imps in IMPORTS.items() if _top(m) == "osmnet"
                  for i in imps & blender_side if i != "blender_addon") == []


def test_nothing_outside_the_backend_imports_it():
    assert _violations(lambda m: _top(m) != "backend", ["backend"]) == []


def test_there_are_no_import_circles():
    graph = {m: {i for i in imps if i in SOURCES and i != m} for m, imps in IMPORTS.items()}
    # a package's __init__ is not a circle with its own submodules importing a sibling through it
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def strong(v, counter=[0]):  # Tarjan
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    assert cycles == []


def _definitions(kind, name):
    """Modules defining a top-level class/function/assignment called `name`."""
    found = []
    for mod, path in SOURCES.items():
        for node in ast.parse(path.read_text()).body:
            if kind == "class" and isinstance(node, ast.ClassDef) and node.name == name:
                found.append(mod)
            elif kind == "def" and isinstance(node, ast.FunctionDef) and node.name == name:
                found.append(mod)
            elif kind == "value" and isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    found.append(mod)
    return found


@pytest.mark.parametrize("kind,name,home", [
    ("class", "Take", "blender_addon.core.take"),
    ("value", "ARKIT_NAMES", "blender_addon.core.channels"),
    ("value", "HEAD_CHANNELS", "blender_addon.core.channels"),
    ("value", "PROTOCOL_VERSION", "blender_addon.core.protocol"),
    ("def", "encode", "blender_addon.core.protocol"),
    ("def", "atomic_path", "blender_addon.core.files"),
    ("def", "atomic_write", "blender_addon.core.files"),
    ("value", "SAMPLE_RATE", "osmnet.audio"),
    ("value", "FEATURE_LAYOUT", "osmnet.audio"),
    ("def", "utterance_offset", "osmnet.audio"),
    ("class", "UserInputError", "blender_addon.core.errors"),
    ("class", "EnvironmentProblem", "blender_addon.core.errors"),
    ("class", "InternalError", "blender_addon.core.errors"),
    ("def", "pearson", "osmnet.metrics"),
    ("def", "is_loopback", "blender_addon.core.endpoints"),
])
def test_each_concept_is_defined_once(kind, name, home):
    assert _definitions(kind, name) == [home]


def test_the_sample_rate_is_written_once():
    """16000 appears as a literal only where SAMPLE_RATE is defined."""
    where = sorted(m for m, p in SOURCES.items()
                   for node in ast.walk(ast.parse(p.read_text()))
                   if isinstance(node, ast.Constant) and node.value == 16000 and type(node.value) is int)
    assert where == ["osmnet.audio"]


def test_every_exception_class_is_one_of_the_three_kinds():
    """Deliberate errors derive from the taxonomy, so the CLI, backend and add-on can classify them."""
    from blender_addon.core.errors import OsmnetError

    import importlib
    bad = []
    for mod, path in SOURCES.items():
        if mod.startswith("blender_addon") and not mod.startswith("blender_addon.core"):
            continue  # needs bpy; checked by name below
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error") and node.name != "OsmnetError":
                cls = getattr(importlib.import_module(mod), node.name)
                if not issubclass(cls, OsmnetError) and mod != "blender_addon.core.protocol":
                    bad.append(f"{mod}.{node.name}")
    assert bad == []
