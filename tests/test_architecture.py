"""The shape of the code, checked: no import circles between modules, and the chat domain free of I/O."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project's modules that *name* imports, anywhere in the file (function-level imports count: they
    still make a circle, only a later one). ``from package import module`` counts as the module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module in known:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    found.discard(name)
    return {other for other in found if not name.startswith(other + ".")}  # a package's __init__ runs first


def test_no_module_imports_one_that_imports_it_back() -> None:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    circles = []
    for start in graph:
        stack = [(start, [start])]
        seen = {start}
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    circles.append(" -> ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert not circles, "import circles:\n" + "\n".join(sorted(circles))


def test_the_chat_domain_does_no_io() -> None:
    forbidden = {"asyncio", "socket", "sqlite3", "asyncpg", "ssl", "selectors", "subprocess", "threading"}
    for path in (SRC / "bleeper" / "chat").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            used = {name.split(".")[0] for name in names} & forbidden
            assert not used, f"{path.relative_to(SRC)} imports {used}: the domain reaches I/O only through seams"
            assert not any(n.startswith(("bleeper.store", "bleeper.framework", "bleeper.web")) for n in names), (
                f"{path.relative_to(SRC)} imports {names}: chat/ depends on protocol/ only"
            )
