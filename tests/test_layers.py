"""The layers import downwards only, with no import cycle: read from the source, so a new
module is checked the day it is added."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rag_splade", "api", "pipelines")
# what store/ may not import: everything that sits above it
ABOVE_STORE = (
    "rag_splade.search",
    "rag_splade.index",
    "rag_splade.explain",
    "rag_splade.context",
    "rag_splade.encoders",
    "rag_splade.factories",
    "rag_splade.llama_index",
    "rag_splade.training",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, *, top_level_only: bool, typing_only: bool = True) -> set[str]:
    """Modules `path` imports (`api.x` and `pipelines.x` named as in the checkout); with
    `top_level_only`, those run at import time (not in a function or under TYPE_CHECKING);
    without `typing_only`, those under TYPE_CHECKING are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    found: set[str] = set()

    def visit(node: ast.AST, runtime: bool) -> None:
        for child in ast.iter_child_nodes(node):
            child_runtime = runtime
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                child_runtime = False
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                if not typing_only:
                    continue
                child_runtime = False
            if isinstance(child, ast.Import) and (runtime or not top_level_only):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and (runtime or not top_level_only):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child, child_runtime)

    visit(tree, True)
    ours = {
        name.replace("rag_splade.api", "api").replace("rag_splade.pipelines", "pipelines")
        for name in found
    }
    return {name for name in ours if name.split(".")[0] in PACKAGES}


def sources() -> dict[str, Path]:
    return {
        module_name(p): p
        for package in PACKAGES
        for p in sorted((ROOT / package).rglob("*.py"))
        if "data" not in p.parts
    }


def test_the_library_never_imports_the_service_or_the_jobs() -> None:
    for name, path in sources().items():
        if name.startswith("rag_splade"):
            wrong = {
                m for m in imports(path, top_level_only=False) if m.split(".")[0] != "rag_splade"
            }
            assert not wrong, f"{name} imports {sorted(wrong)}"


def test_the_service_never_imports_the_jobs() -> None:
    for name, path in sources().items():
        if name.startswith("api"):
            wrong = {m for m in imports(path, top_level_only=False) if m.startswith("pipelines")}
            assert not wrong, f"{name} imports {sorted(wrong)}"


def test_store_imports_nothing_above_it() -> None:
    for name, path in sources().items():
        if name.startswith("rag_splade.store"):
            wrong = {
                m
                for m in imports(path, top_level_only=False)
                if any(m == a or m.startswith(a + ".") for a in ABOVE_STORE)
            }
            assert not wrong, f"{name} imports {sorted(wrong)}"


def test_no_import_cycle() -> None:
    """Counting the imports inside functions too: a lazy import that goes back up (as
    formats.py once imported a private helper of readers.py) is a cycle all the same."""
    modules = sources()
    graph = {
        name: {
            m
            for m in imports(path, top_level_only=False, typing_only=False)
            if m in modules and m != name
        }
        for name, path in modules.items()
    }
    # a package's __init__ re-exporting its submodules is not a cycle of the submodules
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    assert find_cycle(graph) is None, "import cycle: " + " -> ".join(find_cycle(graph) or [])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` (module -> modules it imports), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state and (found := walk(name)):
            return found
    return None


def test_the_checker_sees_a_cycle() -> None:
    """The reader finds a function-level import and a relative one, and a cycle is found
    (else the tests above could pass by reading nothing)."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    path = ROOT / "pipelines" / "ingest" / "formats.py"
    assert "pipelines.ingest.decoding" in imports(path, top_level_only=True)
    snapshot = ROOT / "rag_splade" / "store" / "backends.py"
    assert "rag_splade.store.edge" in imports(snapshot, top_level_only=False)
    assert "rag_splade.store.edge" not in imports(snapshot, top_level_only=True)
