"""The package's shape: imports flow one way, from the commands down to the settings.

Every ``import`` in ``helpers`` is read from the source (also those inside functions and
under ``if TYPE_CHECKING:``), so a circle cannot hide from this test behind a late import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parents[1] / "helpers"

#: Bottom to top. A module may import from its own layer or a lower one, never a higher one.
LAYERS = [
    ["helpers.errors", "helpers.paths"],
    ["helpers.system"],
    ["helpers.config"],
    ["helpers.data", "helpers.decode", "helpers.synthetic", "helpers.isic2016"],
    ["helpers.batches", "helpers.metrics"],
    ["helpers.model"],
    ["helpers.runs"],
    ["helpers.train"],
    ["helpers.evaluate", "helpers.predict", "helpers.zoomout"],
    ["helpers.plots", "helpers.outputs"],
    ["helpers.commands", "helpers.report", "helpers.__main__"],
    ["helpers.assignment"],
]
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(HELPERS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(HELPERS.rglob("*.py"))}


def layer_of(name: str) -> int:
    for index, layer in enumerate(LAYERS):
        if any(name == top or name.startswith(top + ".") for top in layer):
            return index
    if name == "helpers":  # the package's __init__: the code map, and the CPU kernel cap
        return 1
    raise AssertionError(f"{name} is in no layer of tests/test_layers.py: place it there")


def helpers_imports(path: Path) -> set[str]:
    """Every helpers module ``path`` imports, wherever the import statement stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("helpers")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("helpers"):
            known = modules()
            for alias in node.names:  # `from helpers.runs import folder` imports a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer_of(name)


def test_imports_only_go_down_the_layers() -> None:
    upward = []
    for name, path in modules().items():
        for imported in helpers_imports(path):
            if layer_of(imported) > layer_of(name):
                upward.append(f"{name} (layer {layer_of(name)}) imports {imported} "
                              f"(layer {layer_of(imported)})")
    assert not upward, "imports that run back up:\n" + "\n".join(sorted(upward))


def test_no_import_circle() -> None:
    graph = {name: {i for i in helpers_imports(path) if i != name}
             for name, path in modules().items()}
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError("import circle: " + " -> ".join(trail[trail.index(name):]
                                                                   + [name]))
        if name in done or name not in graph:
            return
        for imported in sorted(graph[name]):
            visit(imported, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_no_hidden_imports() -> None:
    """No ``TYPE_CHECKING`` guard, no helpers import inside a function."""
    hidden = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        if "TYPE_CHECKING" in path.read_text():
            hidden.append(f"{name}: TYPE_CHECKING")
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                hidden += [f"{name}.{function.name}: imports inside a function"
                           for node in ast.walk(function)
                           if isinstance(node, ast.Import | ast.ImportFrom)]
    assert not hidden, "\n".join(hidden)


def test_no_module_is_too_long_to_read() -> None:
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_reading_a_preset_does_not_import_torch() -> None:
    code = ("import sys; from helpers.config import load_config; load_config('report_b'); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=HELPERS.parent)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("name", sorted(modules()))
def test_the_code_map_lists_every_module(name: str) -> None:
    code_map = (HELPERS / "__init__.py").read_text()
    short = name.removeprefix("helpers.")
    if name == "helpers" or short.split(".")[-1] == "__main__":
        return
    assert f"``{short.split('.')[-1]}``" in code_map or f"``{short}``" in code_map, \
        f"helpers/__init__.py's code map does not list {short}"
