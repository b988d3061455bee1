"""The repository's import graph, read from the source: every import statement at any depth (inside
functions too), so a deferred import counts like one at the top of a module.

Used by tests/test_structure.py (which package may import which) and benchmarks/gpu_bundle.py (which
third-party packages a run can reach)."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def module_name(path: Path, root: Path = REPO) -> str:
    """uniavgen_core/model/dit.py -> uniavgen_core.model.dit; a package's __init__.py -> the package."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = REPO) -> set[str]:
    """Absolute names of the modules (or module members) `path` imports."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return found


def graph(folder: Path, root: Path = REPO) -> dict[str, set[str]]:
    return {module_name(p, root): imports(p, root) for p in sorted(folder.rglob("*.py"))}


def source_file(name: str, search: list[Path]) -> Path | None:
    """The file that defines module `name` (or the module holding member `name`) under one of the
    `search` folders, as Python would find it on a path holding them; None for a module from elsewhere."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        for folder in search:
            base = folder.joinpath(*parts[:n])
            if base.with_suffix(".py").is_file():
                return base.with_suffix(".py")
            if (base / "__init__.py").is_file():
                return base / "__init__.py"
    return None


def third_party_reach(entries: list[Path], search: list[Path]) -> dict[str, set[str]]:
    """Top-level names of the packages outside the repository and the standard library that running
    `entries` can import, each with the repository files that import it. Follows every import of a
    repository module (found on `search`, the way sys.path would) and the packages above it."""
    todo, seen, found = list(entries), set(), {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        root = next(folder for folder in search if path.is_relative_to(folder))
        for name in imports(path, root):
            local = source_file(name, search)
            if local is not None:
                todo.append(local)
                parent = local.parent
                while (parent / "__init__.py").is_file() and parent not in search:
                    todo.append(parent / "__init__.py")
                    parent = parent.parent
                continue
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, set()).add(str(path.relative_to(root)))
    return found
