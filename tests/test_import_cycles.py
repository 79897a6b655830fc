"""No import cycles anywhere in the code we ship or run: the graph of every ``import`` statement — at module level
AND inside functions (a lazy import is still a dependency) — over ``src/liquid_memory``, ``proxy/``, ``licensing/``
and ``benchmarks/`` must be acyclic. A cycle is reported by the modules on it, in import order."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# folder -> the import name its modules have (setup.py maps proxy/ and licensing/ to these packages)
PACKAGES = {
    ROOT / "src" / "liquid_memory": "liquid_memory",
    ROOT / "proxy": "liquid_memory_proxy",
    ROOT / "licensing": "liquid_memory_vendor",
    ROOT / "benchmarks": "benchmarks",
}


def _module_names() -> dict[str, Path]:
    """Every module's dotted name -> its file (a package is named by its ``__init__.py``)."""
    modules: dict[str, Path] = {}
    for folder, package in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def _imported(name: str, path: Path, tree: ast.Module, known: set[str]) -> Iterator[str]:
    """The known modules one file imports; ``from pkg import name`` counts as ``pkg.name`` when that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a non-module attribute: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def import_graph() -> dict[str, set[str]]:
    modules = _module_names()
    known = set(modules)
    return {
        name: set(_imported(name, path, ast.parse(path.read_text(encoding="utf-8"), str(path)), known))
        for name, path in modules.items()
    }


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One concrete cycle per strongly connected component with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(_cycle_in(graph, set(component)))
    return components


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself (breadth-first inside the component)."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    return paths[node] + [start]
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    following.append(child)
        frontier = following
    raise AssertionError(f"not a strongly connected component: {sorted(component)}")


def test_the_checker_finds_a_cycle_through_a_lazy_import() -> None:
    source = {
        "pkg.a": "import pkg.b\n",
        "pkg.b": "def f():\n    from pkg.c import thing\n",
        "pkg.c": "from pkg import a\n",
        "pkg": "",
    }
    known = set(source)
    graph = {name: set(_imported(name, Path(f"{name}.py"), ast.parse(text), known)) for name, text in source.items()}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


def test_the_graph_covers_every_package() -> None:
    graph = import_graph()
    for package in PACKAGES.values():
        assert any(name.startswith(package + ".") for name in graph), f"no module of {package} was parsed"
    assert "liquid_memory.ops.dispatch" in graph["liquid_memory.nn.liquid_memory"]


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)
