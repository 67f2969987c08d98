"""The package's shape: no import cycle among kl_rl's modules (counting imports inside functions),
the library never imports the CLI, and experiments and benchmarks call the library, not commands."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (never imported at run time)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(path: Path) -> set[str]:
    """Every kl_rl module ``path`` imports at run time, at any depth of the file (``from kl_rl.x
    import y`` counts kl_rl.x.y when that is a module)."""
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kl_rl")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kl_rl") and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in (ROOT / "kl_rl").rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_import_cycle_among_kl_rl_modules():
    graph = _graph()
    # A package importing its own submodules (kl_rl.priors -> kl_rl.priors.gp) while they import
    # siblings through the package is how registries work; a cycle through modules is not.
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges[node]):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(dep):] + [node, dep])
                                     if dep in trail else f"import cycle: {node} -> {dep}")
            if dep not in state:
                visit(dep, trail + [node])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])


def test_library_experiments_and_benchmarks_import_no_cli_module():
    offenders = []
    for path in [*(ROOT / "kl_rl").rglob("*.py"), *(ROOT / "experiments").glob("*.py"),
                 *(ROOT / "benchmarks").glob("*.py")]:
        if path.is_relative_to(ROOT / "kl_rl" / "cli"):
            continue
        if any(m == "kl_rl.cli" or m.startswith("kl_rl.cli.") for m in _imports(path)):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"these import the CLI: {offenders}"
