"""Across modules: the notebooks in Colab: the setup cell (clone, then pull on a rerun),
outputs/ on a stand-in Google Drive shared by 02 and 03, and the constraints file that stands in
for Colab's image."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, _missing_shared
from nbclient import NotebookClient

from helpers import data, notebook
from helpers.constants import OUTPUTS_DIR

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
COLAB_FREEZE = REPO.parent / "shared" / "colab" / "pip-freeze.txt"
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]


@pytest.fixture
def stand_in_colab(tmp_path) -> Path:
    """A folder holding a `google.colab` package whose drive.mount makes <mountpoint>/MyDrive.

    `google` stays a namespace package (no __init__.py) so google.protobuf still imports.
    """
    package = tmp_path / "stand-in" / "google" / "colab"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""Stand-in for Colab\'s google.colab."""\n')
    (package / "drive.py").write_text(
        "from pathlib import Path\n\n\n"
        "def mount(mountpoint, force_remount=False):\n"
        "    Path(mountpoint, 'MyDrive').mkdir(parents=True, exist_ok=True)\n"
    )
    # Colab's files.download sends a file to the browser; here it only says which.
    (package / "files.py").write_text("def download(path):\n    print(f'download {path}')\n")
    return package.parents[1]


def _code(source: str, *tags: str):
    return nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})


def _in_colab(stand_in: Path, drive: Path | None = None) -> list:
    """First cells of a kernel that looks like Colab's: google.colab imported, Drive mounted at
    `drive` instead of /content/drive."""
    cells = [_code(f"import sys\nsys.path.insert(0, {str(stand_in)!r})\nimport google.colab")]
    if drive is not None:
        cells.append(
            _code(
                f"from pathlib import Path\nfrom helpers import notebook\n"
                f"notebook.DRIVE_MOUNT = Path({str(drive)!r})"
            )
        )
    return cells


def _execute(cells: list, timeout: int = 600) -> nbformat.NotebookNode:
    executed = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(
        executed,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(REPO / "notebooks")}},
    ).execute()
    return executed


def _first_code_cell(path: Path):
    return next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_the_setup_cell(path):
    assert _first_code_cell(path).source == notebook.SETUP_CELL, (
        f"{path.name}: make its first code cell helpers.notebook.SETUP_CELL:\n{notebook.SETUP_CELL}"
    )
    badge = nbformat.read(path, as_version=4).cells[0].source
    assert f"colab.research.google.com/github/{notebook.github_path()}/" in badge


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_clones_then_updates(path, stand_in_colab, tmp_path):
    """Run in a Colab-like kernel with the URL pointed at a local repository: the first run clones
    it, installs (nothing new here) and puts it on sys.path; a rerun pulls what arrived since."""
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(origin)], check=True)
    subprocess.run(["git", "-C", str(origin), "checkout", "-q", "-B", "main"], check=True)
    setup = _first_code_cell(path).source
    setup = setup.replace(notebook.REPO_URL, str(origin)).replace(notebook.CLONE_DIR, str(clone))
    commit = GIT + ["-C", str(origin), "commit", "-q", "--allow-empty", "-m", "upstream moved"]
    upstream_moves = _code(f"import subprocess\nsubprocess.run({commit!r}, check=True)")
    check = _code(
        "import helpers, subprocess\n"
        "heads = [subprocess.run(['git', '-C', repo, 'rev-parse', 'HEAD'], capture_output=True,\n"
        "                        text=True, check=True).stdout for repo in "
        f"({str(origin)!r}, {str(clone)!r})]\n"
        "print(helpers.__file__, heads[0] == heads[1], sys.path.count(REPO_DIR))"
    )
    executed = _execute(
        _in_colab(stand_in_colab) + [_code(setup), upstream_moves, _code(setup), check]
    )
    printed = executed.cells[-1].outputs[0]["text"].split()
    assert printed == [str(clone / "helpers" / "__init__.py"), "True", "1"]


def _cells_until(path: Path, marker: str) -> list:
    """The notebook's code cells that run outside Colab's setup, up to the one holding `marker`."""
    cells = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code" and "skip-execution" not in cell.metadata.get("tags", []):
            cells.append(_code(cell.source))
            if marker in cell.source:
                return cells
    raise AssertionError(f"no cell of {path.name} holds {marker!r}")


@pytest.mark.notebooks
def test_03_samples_the_run_02_wrote_to_drive(stand_in_colab, gmd_subset, tmp_path, monkeypatch):
    """Each notebook on its own machine, sharing only Drive: 02 trains (tiny) into the Drive
    folder, then a fresh kernel running 03 finds that run there and writes its samples beside it."""
    monkeypatch.setenv("GROOVAE_SMOKE", "1")
    monkeypatch.setenv("GROOVE_DATA_DIR", str(gmd_subset))
    mount = tmp_path / "drive"
    drive_outputs = mount / "MyDrive" / notebook.DRIVE_FOLDER / "outputs"
    in_colab = _in_colab(stand_in_colab, mount)
    _execute(
        in_colab + _cells_until(REPO / "notebooks" / "02_train.ipynb", 'history["step"].max()')
    )
    run_dir = drive_outputs / "smoke" / "runs" / "tiny"
    assert sorted((run_dir / "checkpoints").iterdir())
    assert sorted((drive_outputs / "cache").glob(f"*/{data.MANIFEST_FILE}"))  # whole splits
    check = _code("print(groovae.run_dir)\nprint(midi_paths[0])")
    executed = _execute(
        in_colab + _cells_until(REPO / "notebooks" / "03_sample.ipynb", "write_samples(") + [check]
    )
    printed = executed.cells[-1].outputs[0]["text"].split()
    assert printed[0] == str(run_dir)
    assert Path(printed[1]).is_relative_to(drive_outputs / "smoke" / "samples")


def test_outputs_dir_without_drive(tmp_path):
    assert notebook.outputs_dir(tmp_path, use_drive=True) == tmp_path  # an explicit folder wins
    assert notebook.outputs_dir(None, use_drive=False) == OUTPUTS_DIR


def test_constraints_are_colabs_pip_freeze(tmp_path):
    if not COLAB_FREEZE.exists():
        _missing_shared(f"Colab's package list not found at {COLAB_FREEZE}")
    written = tmp_path / "constraints.txt"
    subprocess.run(
        [
            sys.executable,
            str(REPO / ".ci" / "colab_pins.py"),
            "write",
            str(COLAB_FREEZE),
            str(written),
        ],
        check=True,
    )
    committed = REPO / ".ci" / "colab-constraints.txt"
    assert committed.read_text() == written.read_text(), "regenerate .ci/colab-constraints.txt"
    assert "ipywidgets==7.7.1" in written.read_text().splitlines()


def test_progress_bar_is_a_widget_on_this_ipywidgets():
    """The notebooks' progress bars (tqdm.auto in a kernel) on the installed ipywidgets: Colab's
    7.7.1 in the Colab runtime job, 8.x elsewhere. The Generate panel's test runs in both too."""
    import ipywidgets
    from tqdm.notebook import tqdm

    bar = tqdm(total=4, display=False, mininterval=0)
    bar.update(3)
    bar.refresh()
    progress = bar.container.children[1]
    assert isinstance(progress, ipywidgets.FloatProgress)
    assert (progress.value, progress.max) == (3, 4)
    bar.update(1)
    bar.close()
    assert progress.bar_style == "success"
