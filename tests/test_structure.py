"""The package's shape: no import cycle among its modules (function-local
imports included), no module past the size limit without a note saying why,
and the library layer free of printing and argument parsing."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO

# Package name -> its folder (the CLI folder is installed as warpsdf.cli).
ROOTS = {"warpsdf": REPO / "warpsdf", "warpsdf.cli": REPO / "cli"}
MAX_LINES = 450
# A module longer than MAX_LINES says why in its docstring, with these words.
SIZE_NOTE = "longer than 450 lines because"


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in ROOTS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(name: str) -> set[str]:
    """The project modules ``name`` imports anywhere in its body (a ``from P
    import x`` counts as importing P.x when that is a module, else P)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node.level, node.module)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle():
    graph = {name: imports_of(name) for name in MODULES}
    assert graph["warpsdf.fit.fitter"], "the import walk found nothing: is it broken?"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# The layers of docs/ARCHITECTURE.md: a module imports only from its own
# package or from a lower layer.
LAYERS = {
    "errors": 0, "limits": 0,
    "io": 1, "device": 1, "sampling": 1,
    "scene": 2,
    "camera": 3, "fields": 3, "templates": 3,
    "march": 4,
    "render": 5, "losses": 5, "export": 5, "unrolled": 5,
    "targets": 6,
    "metrics": 7, "viewing": 7, "carve": 7,
    "fit": 8,
    "sweep": 9, "bench": 9,
    "report": 10,
    "cli": 11,
}  # fmt: skip


def _unit(name: str) -> str | None:
    """The top-level module or package of ``name`` inside warpsdf (None: the root)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_package_is_installed():
    """pyproject.toml lists the packages by hand: every folder of modules is there."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    packages = {name for name in MODULES if _is_package(name)} | {"warpsdf.scenes"}
    assert packages == listed


def test_every_module_has_a_layer():
    units = {_unit(name) for name in MODULES} - {None, "scenes"}
    assert units <= set(LAYERS), f"no layer for {sorted(units - set(LAYERS))}"


def test_imports_go_down_the_layers():
    wrong = []
    for name in MODULES:
        unit = _unit(name)
        if unit is None:  # warpsdf/__init__.py re-exports lazily from every layer
            continue
        for target in imports_of(name):
            other = _unit(target)
            if other is None or other == unit:
                continue
            if LAYERS[other] >= LAYERS[unit]:
                wrong.append(f"{name} (layer {LAYERS[unit]}) imports {target} ({LAYERS[other]})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name):
    text = MODULES[name].read_text(encoding="utf-8")
    lines = text.count("\n")
    if lines > MAX_LINES:
        doc = ast.get_docstring(ast.parse(text)) or ""
        assert SIZE_NOTE in doc.lower(), (
            f"{MODULES[name]} has {lines} lines (> {MAX_LINES}) and no note "
            f"('{SIZE_NOTE} ...') in its docstring"
        )


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.startswith("warpsdf.cli")))
def test_the_library_does_not_print_or_parse_arguments(name):
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "print", f"{name}:{node.lineno} prints"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            assert not {"argparse", "typer", "click", "rich"} & {n.split(".")[0] for n in names}, (
                f"{name}:{node.lineno} imports a CLI library"
            )
