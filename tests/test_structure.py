"""The package's shape, kept true: small modules, small functions, no import circle.

Read with the standard library's ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

GUARD = Path(__file__).resolve().parent.parent / "guard"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
# Modules allowed over the limits, and import edges allowed to close a circle: none. Add an
# entry only with the issue that removes it.
EXEMPT: frozenset[str] = frozenset()
KNOWN_EDGES: frozenset[tuple[str, str]] = frozenset()


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module under guard/."""
    found = {}
    for path in sorted(GUARD.rglob("*.py")):
        parts = path.relative_to(GUARD.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def relative(path: Path) -> str:
    return path.relative_to(GUARD.parent).as_posix()


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: at module level and inside functions (a lazy
    import closes a circle as surely as an eager one, only later). Imports under
    ``if TYPE_CHECKING:`` are left out: they never run, they only name types."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking_only(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    """Module -> the guard modules it imports (``from guard.x import y`` is an edge to
    guard.x.y when that is a module, else to guard.x)."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                           for alias in node.names]
            graph[name].update(t for t in targets if t in known and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_no_import_circle_in_guard() -> None:
    graph = import_graph()
    for source, target in KNOWN_EDGES:
        graph[source].discard(target)
    assert graph["guard.cli"], "the graph must see imports (guard.cli imports guard modules)"
    assert "guard.plugins" in graph["guard.config.load"]  # from-imports resolve to modules
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_circles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    lazy = ast.parse("def f():\n    import guard.cli\nif TYPE_CHECKING:\n    import guard.run\n")
    assert [n.names[0].name for n in runtime_imports(lazy) if isinstance(n, ast.Import)] == ["guard.cli"]


def test_no_module_over_500_lines() -> None:
    too_long = {
        relative(path): n
        for path in modules().values()
        if relative(path) not in EXEMPT and (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}


def test_no_function_over_80_lines() -> None:
    too_long = {}
    for path in modules().values():
        if relative(path) in EXEMPT:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long[f"{relative(path)}:{node.lineno} {node.name}"] = lines
    assert too_long == {}


def test_exempt_files_still_exist() -> None:
    """An exemption outlives its reason only until the file is split: then drop it here."""
    assert all((GUARD.parent / name).is_file() for name in EXEMPT)


def test_readme_maps_every_module() -> None:
    """README.md's "Development" map lists every module, and no module that is gone."""
    readme = (GUARD.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Development"):]
    listed = set(re.findall(r"^\| `(guard/[\w/]+\.py)` \|", section, flags=re.MULTILINE))
    actual = {relative(path) for path in modules().values()}
    assert actual - listed == set(), "add these to the README map"
    assert listed - actual == set(), "these are gone: drop them from the README map"
