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
    """chat/ may import the standard library (no I/O modules), itself, protocol/ and the package's version."""
    forbidden = {"asyncio", "socket", "sqlite3", "asyncpg", "ssl", "selectors", "subprocess", "threading"}
    allowed = ("bleeper.chat", "bleeper.protocol")
    for path in (SRC / "bleeper" / "chat").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.relative_to(SRC)}: a relative import; write the module's full name"
                module = node.module or ""
                names = [module] if module != "bleeper" else [f"bleeper.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                where = path.relative_to(SRC)
                assert name.split(".")[0] not in forbidden, f"{where} imports {name}: the domain does no I/O"
                if name.startswith("bleeper"):
                    assert name.startswith(allowed) or name == "bleeper.__version__", (
                        f"{where} imports {name}: chat/ depends on protocol/ only, and reaches the rest through seams"
                    )


def test_the_protocols_depend_on_nothing_but_themselves() -> None:
    """protocol/ (the line protocol and IRC) is sans-I/O and below chat/: it imports no I/O module and nothing
    of the project outside protocol/ (what it needs of the chat's rules is passed in)."""
    forbidden = {"asyncio", "socket", "sqlite3", "asyncpg", "ssl", "selectors", "subprocess", "threading"}
    for path in (SRC / "bleeper" / "protocol").rglob("*.py"):
        where = path.relative_to(SRC)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                names = [module] if module != "bleeper" else [f"bleeper.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{where} imports {name}: protocol/ does no I/O"
                if name.startswith("bleeper"):
                    assert name.startswith("bleeper.protocol") or name == "bleeper.__version__", (
                        f"{where} imports {name}: protocol/ depends on nothing above it"
                    )
