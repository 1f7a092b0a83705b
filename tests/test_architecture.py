"""The layout docs/architecture.md describes: which layer imports which, and no import circles.

Imports are read from the source (``ast``), lazy ones inside functions included; imports made
only for type checkers (under ``if TYPE_CHECKING:``) are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "safesteer"

# layer -> the layers it may import at run time ("core": errors, atomic writes, provenance,
# input validation, version). The pipeline's order: data → models → maths → build → pack →
# targets → evaluation → jobs → commands.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "data": {"core"},
    "maths": {"core"},
    "models": {"core", "data", "maths"},
    "pack": {"core", "maths"},
    "build": {"core", "data", "maths", "pack"},
    "targets": {"core", "maths", "pack", "models"},
    "evaluation": {"core", "data", "maths", "pack", "models", "targets"},
    "jobs": {"core", "data", "maths", "pack", "models", "targets", "evaluation", "build"},
    "commands": {
        "core",
        "data",
        "maths",
        "pack",
        "models",
        "targets",
        "evaluation",
        "build",
        "jobs",
    },
    "cli": {"core", "commands"},
}
CORE = {
    "safesteer",
    "safesteer._version",
    "safesteer.errors",
    "safesteer.atomic",
    "safesteer.provenance",
    "safesteer.hub",
    "safesteer.templating",
    "safesteer.logs",
    "safesteer.validation",
    "safesteer.user_cache",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _layer(module: str) -> str:
    if module in CORE:
        return "core"
    top = module.split(".")[1]
    return top.removesuffix(".py")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, *, type_only: bool = False) -> set[str]:
    """safesteer modules ``module`` imports at run time (with ``type_only``: also those imported
    for type checkers only). A name imported from a package counts as that package, or as the
    submodule when it is one."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node) and not type_only:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("safesteer"))
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").startswith("safesteer")
        ):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else str(node.module))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return found


GRAPH = {m: _imports(m) for m in MODULES}
TYPED_GRAPH = {m: _imports(m, type_only=True) for m in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_the_layers_below_it(module: str) -> None:
    layer = _layer(module)
    wrong = sorted(
        imported
        for imported in GRAPH[module]
        if _layer(imported) != layer and _layer(imported) not in ALLOWED[layer]
    )
    assert not wrong, f"{module} ({layer}) imports {wrong}"


def test_no_import_circles() -> None:
    # depth-first search over explicit imports, type-only ones included (a package's __init__
    # importing its own submodules is a re-export, not a circle, and is left out)
    def edges(m: str) -> set[str]:
        return {
            i
            for i in TYPED_GRAPH[m]
            if not (MODULES[m].name == "__init__.py" and i.startswith(m + "."))
        }

    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(edges(m)):
            if state.get(n) == 1:
                cycles.append([*stack[stack.index(n) :], n])
            elif n not in state:
                walk(n, [*stack, n])
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            walk(m, [m])
    assert not cycles, "import circles: " + "; ".join(" → ".join(c) for c in cycles)


def test_every_layer_is_known() -> None:
    assert {_layer(m) for m in MODULES} <= set(ALLOWED)


def test_no_hidden_imports_of_our_own_modules() -> None:
    # importlib.import_module("safesteer....") hides an edge from readers and from this test;
    # the lazy export tables of safesteer/__init__.py and safesteer/targets/__init__.py are
    # the only indirection (their names are checked by test_public_api)
    hidden = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).startswith("safesteer")
            ):
                hidden.append(f"{module}: {node.args[0].value}")
    assert not hidden


def test_public_api() -> None:
    # every lazily exported name resolves, to an object defined where the table says
    import safesteer
    import safesteer.targets

    for package, table in (
        (safesteer, safesteer._EXPORTS),
        (safesteer.targets, safesteer.targets._LAZY),
    ):
        for name, module in table.items():
            value = getattr(package, name)
            defined_in = getattr(value, "__module__", None)
            assert defined_in in (None, "builtins") or defined_in.startswith(module), name
    assert set(safesteer._EXPORTS) <= set(safesteer.__all__)
    assert set(safesteer.targets._LAZY) <= set(safesteer.targets.__all__)
