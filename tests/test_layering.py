"""Across modules: imports in helpers/ go one way (constants -> config -> ... -> export), and each
test file is named for the module it tests or says that it tests across modules."""

import ast
import re
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
TESTS = Path(__file__).resolve().parent

# A module may import only modules listed before it, in its command line (`if __name__ ==
# "__main__":`) too. The command lines (`verbs`, `pipeline`, `export`) and the notebook-only code
# (`notebook`) come last: they compose the library.
CHAIN = (
    "quiet",
    "constants",
    "config",
    "cli",
    "device",
    "processes",
    "audio",
    "metrics",
    "converter",
    "windowing",
    "gmd",
    "data",
    "midi_folder",
    "backends",
    "losses",
    "model",
    "magenta_js",
    "magenta",
    "bundles",
    "runs",
    "train",
    "sample",
    "render",
    "tools",
    "evaluate",
    "verbs",
    "notebook",
    "pipeline",
    "web_page",
    "export",
)


def _helpers_imports(tree: ast.Module) -> set[str]:
    """Names of helpers modules imported anywhere in the module, its main guard included, or run
    by name (runpy)."""
    found = set()
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("helpers."):
                found.add(node.module.split(".")[1])
            elif node.module == "helpers":
                found.update(a.name for a in node.names)
            elif node.level:  # relative import: `from .model import X` or `from . import model`
                found.update([node.module] if node.module else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("helpers."))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            named = node.args[0].value  # runpy.run_module("helpers.verbs"), import_module(...)
            if isinstance(named, str) and named.startswith("helpers."):
                found.add(named.split(".")[1])
        todo.extend(ast.iter_child_nodes(node))
    return found


def test_a_main_guard_and_a_module_run_by_name_count_as_imports():
    guarded = """
if __name__ == "__main__":
    import runpy
    from helpers.cli import run_command

    runpy.run_module("helpers.verbs", run_name="__main__")
"""
    assert _helpers_imports(ast.parse(guarded)) == {"cli", "verbs"}


def test_every_module_is_in_the_chain():
    modules = {p.stem for p in HELPERS.glob("*.py")} - {"__init__", "__main__"}
    assert modules <= set(CHAIN), f"place {sorted(modules - set(CHAIN))} in CHAIN"


@pytest.mark.parametrize("module", CHAIN)
def test_imports_point_backwards(module):
    path = HELPERS / f"{module}.py"
    if not path.exists():
        pytest.skip(f"{module}.py not written yet")
    imported = _helpers_imports(ast.parse(path.read_text()))
    allowed = set(CHAIN[: CHAIN.index(module)])
    assert imported <= allowed, f"{module} imports later modules {sorted(imported - allowed)}"


@pytest.mark.parametrize("path", sorted(TESTS.glob("test_*.py")), ids=lambda path: path.name)
def test_each_test_file_is_named_for_its_module_or_says_it_tests_across_modules(path):
    first = path.read_text().splitlines()[0]
    name = path.stem.removeprefix("test_")
    if first.startswith('"""Across modules:'):
        return
    if name.startswith("bench_"):
        module = path.parents[1] / "bench" / f"{name.removeprefix('bench_')}.py"
    else:
        module = HELPERS / f"{name}.py"
    module_name = module.relative_to(path.parents[1]).as_posix()
    assert module.exists(), f"{path.name} is named for {module_name}, which does not exist"
    assert first.startswith(f'"""Tests for {module_name}'), (
        f'{path.name} starts """Tests for {module_name}: ... or """Across modules: ...'
    )


def test_the_package_map_follows_the_chain():
    page = (HELPERS.parent / "docs" / "package.md").read_text()
    mapped = re.findall(r"^\| `(\w+)\.py` \|", page, flags=re.MULTILINE)
    assert mapped == list(CHAIN), "docs/package.md's map lists helpers/ in CHAIN's order"
