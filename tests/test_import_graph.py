"""The package's import graph: no circle between modules, and dependencies pointing one way between apps.

Read from the source (every import statement, those inside functions included, but not `if TYPE_CHECKING:`
blocks, which never run), so an import deferred into a function cannot hide a circle.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "lookout"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts}


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, skipping the bodies of `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (child for branch in node.orelse for child in [branch, *_runtime_nodes(branch)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The lookout modules `name` imports: `from a.b import c` is a.b.c when that is a module, else a.b."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in modules and target != name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for neighbour in sorted(graph[node]):
            if neighbour not in index:
                visit(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in on_stack:
                low[node] = min(low[node], index[neighbour])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def _layer(module: str) -> str:
    """The part of the package a module belongs to: lookout.<app>, with the probe engine and the apps' API
    layers (lookout.<app>.api, which may compose several apps) as parts of their own."""
    parts = module.split(".")
    if module.startswith("lookout.probes.engine"):
        return "lookout.probes.engine"
    if len(parts) > 2 and parts[2] == "api":
        return ".".join(parts[:3])
    return ".".join(parts[:2])


# What each part may import besides itself. The rule: config <- monitors <- probes / alerting <- stats, with the
# Django-free probe engine and core (encryption, rate counters, target policy, domain errors) beneath everything,
# and accounts (users' API tokens) beside core: every app's API authenticates through it, it imports no domain app.
ALLOWED: dict[str, set[str]] = {
    "lookout": set(),
    # Django-free building blocks that the region agent shares with the Django side.
    "lookout.environment": set(),
    "lookout.batching": set(),
    "lookout.probes.engine": {"lookout"},
    # The database-less region agent: no Django, nothing of the home side.
    "lookout.agent": {"lookout", "lookout.environment", "lookout.batching", "lookout.probes.engine",
                      "lookout.observability"},
    "lookout.config": {"lookout.environment"},
    "lookout.core": {"lookout.probes.engine", "lookout.agent"},
    "lookout.api": {"lookout.core"},
    "lookout.accounts": {"lookout.core"},
    "lookout.observability": {"lookout.config", "lookout.probes.engine", "lookout.monitors"},
    "lookout.scheduling": {"lookout.config", "lookout.core", "lookout.observability"},
    "lookout.monitors": {"lookout.core", "lookout.probes.engine", "lookout.scheduling", "lookout.agent"},
    "lookout.alerting": {"lookout", "lookout.config", "lookout.core", "lookout.probes.engine", "lookout.monitors",
                         "lookout.observability"},
    # Regions decide from the results of several places: above alerting (the state machine), beneath recording.
    "lookout.regions": {"lookout.config", "lookout.core", "lookout.probes.engine", "lookout.monitors",
                        "lookout.alerting", "lookout.observability", "lookout.scheduling"},
    "lookout.probes": {"lookout.config", "lookout.core", "lookout.probes.engine", "lookout.monitors",
                       "lookout.scheduling", "lookout.alerting", "lookout.observability", "lookout.batching",
                       "lookout.agent", "lookout.regions"},
    "lookout.stats": {"lookout.core", "lookout.monitors", "lookout.alerting", "lookout.probes", "lookout.regions"},
}
# The API layers compose the apps beneath them and the shared plumbing; the entry points may import anything.
API_ALLOWED = {"lookout.api", "lookout.config", "lookout.core", "lookout.accounts", "lookout.monitors",
               "lookout.probes", "lookout.alerting", "lookout.alerting.api", "lookout.scheduling", "lookout.stats",
               "lookout.regions"}
ENTRY_POINTS = {"lookout.cli", "lookout.dev", "lookout.process_signals"}


def test_no_module_of_the_package_imports_itself_through_a_circle():
    circles = _circles(import_graph())

    assert circles == [], "import circles:\n" + "\n".join(" <-> ".join(circle) for circle in circles)


def test_dependencies_between_apps_point_one_way():
    wrong = []
    for module, imported in sorted(import_graph().items()):
        layer = _layer(module)
        if layer in ENTRY_POINTS:
            continue
        allowed = API_ALLOWED if layer.endswith(".api") and layer != "lookout.api" else ALLOWED[layer]
        wrong += [f"{module} -> {target}" for target in sorted(imported)
                  if _layer(target) != layer and _layer(target) not in allowed]

    assert wrong == [], "imports against the dependency rule:\n" + "\n".join(wrong)


def test_monitors_never_import_probes_alerting_or_stats():
    """The issue's rule in its own words: monitors is imported by probes and alerting, never the reverse."""
    imported = {target for module, targets in import_graph().items() if _layer(module) == "lookout.monitors"
                for target in targets}

    assert {_layer(target) for target in imported} & {"lookout.probes", "lookout.alerting", "lookout.stats"} == set()


@pytest.mark.parametrize("source, expected", [
    ("import lookout.a\nfrom lookout import b\n", {"lookout.a", "lookout.b"}),
    ("def f():\n    from lookout.a import thing\n", {"lookout.a"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lookout.b import X\n", set()),
])
def test_the_graph_sees_imports_in_functions_but_not_type_checking_blocks(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    modules = {"lookout.a": path, "lookout.b": path, "lookout.m": path}

    assert _imports("lookout.m", path, modules) == expected


def test_a_circle_is_found_however_long():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

    assert _circles(graph) == [["a", "b", "c"]]
