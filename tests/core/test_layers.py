"""The house: every import points down a floor (or stays on its own), and no module imports
another that imports it back, directly or around a circle.

The floors are read from the table in docs/architecture.md (between ``<!-- layers -->``
and ``<!-- /layers -->``), the one place the order is written. Every ``import`` in
``src/`` and ``plugins/`` is followed, those inside functions too; only the imports of
an ``if TYPE_CHECKING:`` block are left out. A package's ``__init__`` importing its own
modules (so their routes register on its blueprint) is the package's face, not an arrow.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


def floors() -> dict[str, int]:
    text = DOC.read_text()
    table = text.split("<!-- layers -->", 1)[1].split("<!-- /layers -->", 1)[0]
    out: dict[str, int] = {}
    for line in table.splitlines():
        m = re.match(r"^\| (\d+) [^|]*\| ([^|]*)\|", line)
        if not m:
            continue
        for name in re.findall(r"`([\w.]+)`", m.group(2)):
            full = name if name == "personalize" or name.startswith("personalize_") else f"personalize.{name}"
            assert full not in out, f"{name} is on two floors of the table"
            out[full] = int(m.group(1))
    return out


def modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for base in (ROOT / "src", ROOT / "plugins"):
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if "scaffold_template" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports (a name imported from a package counts as its
    module when it is one, else as the package)."""
    package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".") if package else name.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                for alias in child.names:
                    full = f"{target}.{alias.name}"
                    found.add(full if full in known else target)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    out = set()
    for target in found:
        parts = target.split(".")
        while parts and ".".join(parts) not in known:
            parts.pop()
        module = ".".join(parts)
        if not module or module == name:
            continue
        if package and module.startswith(name + "."):
            continue  # the package's face registering its own modules
        out.add(module)
    return out


def floor_of(module: str, table: dict[str, int]) -> int | None:
    parts = module.split(".")
    while parts:
        prefix = ".".join(parts)
        if prefix in table and (prefix != "personalize" or module == "personalize"):
            return table[prefix]
        parts.pop()
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_every_module_has_a_floor(graph):
    table = floors()
    assert len(set(table.values())) >= 10, "the table in docs/architecture.md was not read"
    missing = sorted(m for m in graph if floor_of(m, table) is None)
    assert not missing, f"modules on no floor of docs/architecture.md's layer table: {missing}"
    unused = sorted(name for name in table if not any(m == name or m.startswith(name + ".") for m in graph))
    assert not unused, f"the layer table names modules that do not exist: {unused}"


def test_no_import_climbs_a_floor(graph):
    table = floors()
    up = [
        f"{m} (floor {floor_of(m, table)}) imports {t} (floor {floor_of(t, table)})"
        for m, targets in sorted(graph.items()) for t in sorted(targets)
        if (floor_of(t, table) or 0) > (floor_of(m, table) or 0)
    ]
    assert not up, "imports that point up (turn them into a notification, or hand the function down):\n" + "\n".join(up)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
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
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_no_import_circle(graph):
    found = circles(graph)
    assert not found, "modules that import each other (move the shared piece down, or notify):\n" + "\n".join(
        " <-> ".join(group) for group in found)


PLUGIN_FACE = {"personalize", "personalize.records"}  # what a plugin may import of the server: hookimpl and the records


def test_plugins_see_only_hookimpl_and_records(graph):
    """The house rule for plugins: the server's face to them is ``personalize.hookimpl`` and
    ``personalize.records`` (which re-exports the connector contract); nothing else of the package."""
    beyond = [
        f"{m} imports {t}" for m, targets in sorted(graph.items()) if m != "personalize" and not m.startswith("personalize.")
        for t in sorted(targets) if (t == "personalize" or t.startswith("personalize.")) and t not in PLUGIN_FACE
    ]
    assert not beyond, "plugins that reach past hookimpl and records:\n" + "\n".join(beyond)
    import personalize.connectors as contract
    import personalize.records as records

    # one contract, not a copy: a connector's errors are the ones the sync engine catches
    for name in ("Connector", "Setting", "Stream", "AuthError", "HttpStatusError", "RetryLater", "parse_time"):
        assert name in records.__all__ and getattr(records, name) is getattr(contract, name)


def test_the_checks_catch_what_they_are_for():
    """The detectors themselves: a circle of three and an upward arrow are found."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    table = {"personalize": 1, "personalize.low": 2, "personalize.high": 3}
    assert floor_of("personalize.high.x", table) == 3 and floor_of("personalize", table) == 1
    assert floor_of("personalize.elsewhere", table) is None
