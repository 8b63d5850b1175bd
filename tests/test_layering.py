"""Across modules: imports in helpers/ go one way (constants -> config -> ... -> export), and each
test file is named for the module it tests or says that it tests across modules."""

import ast
import re
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
TESTS = Path(__file__).resolve().parent

# A module may import only modules listed before it; entry points (`if __name__ == "__main__":`)
# may import anything. The command lines (`verbs`, `pipeline`, `export`) and the notebook-only
# code (`notebook`) come last: they compose the library.
CHAIN = (
    "constants",
    "config",
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
    "evaluate",
    "verbs",
    "notebook",
    "pipeline",
    "export",
)


def _is_main_guard(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def _helpers_imports(tree: ast.Module) -> set[str]:
    """Names of helpers modules imported anywhere outside a __main__ guard."""
    found = set()
    todo = [n for n in tree.body if not _is_main_guard(n)]
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
        todo.extend(ast.iter_child_nodes(node))
    return found


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


def test_readme_package_map_follows_the_chain():
    readme = (HELPERS.parent / "README.md").read_text()
    mapped = re.findall(r"^\| `(\w+)\.py` \|", readme, flags=re.MULTILINE)
    assert mapped == list(CHAIN), "README's package map lists helpers/ in CHAIN's order"


@pytest.mark.parametrize(
    "old, new",
    [
        ("magenta_weights", "magenta"),
        ("pretrained", "bundles"),
        ("card", "bundles"),
        ("dataset", "train"),
    ],
)
def test_last_releases_module_paths_still_import_with_a_warning(old, new):
    import importlib

    module = importlib.import_module(f"helpers.{old}")
    name = {
        "magenta_weights": "load_magenta_weights",
        "pretrained": "bundled_names",
        "card": "model_card",
        "dataset": "train_batches",
    }[old]
    with pytest.warns(DeprecationWarning, match=f"helpers.{old} is now helpers.{new}"):
        moved = getattr(module, name)
    assert moved is getattr(importlib.import_module(f"helpers.{new}"), name)
    assert not (HELPERS / f"{old}.py").exists()  # no module file: the fold stays folded
