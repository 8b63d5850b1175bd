"""Colab: where the repository comes from, the setup cell that fetches it, and outputs/ on Drive.

A Colab notebook runs on a fresh machine, so its first cell must fetch this repository before it
can import anything from it. That cell's text is defined here, once, and tests/test_colab.py checks
that every notebook carries exactly this text, and runs it.
"""

from __future__ import annotations

from pathlib import Path

from helpers.constants import OUTPUTS_DIR

REPO_URL = "https://github.com/groovae-lab/groovae-drum-lab.git"
CLONE_DIR = "/content/groovae-drum-lab"  # Colab's working folder is /content
DRIVE_MOUNT = Path("/content/drive")  # where google.colab.drive mounts My Drive's parent
DRIVE_FOLDER = "groovae-drum-lab"  # MyDrive/groovae-drum-lab/outputs/ holds cache, runs, samples

SETUP_CELL = f"""\
# Colab only: fetch the repository (or update it on a rerun) and install what Colab lacks.
import os, subprocess, sys
REPO_URL = "{REPO_URL}"
REPO_DIR = "{CLONE_DIR}"
if "google.colab" in sys.modules:
    if os.path.isdir(os.path.join(REPO_DIR, ".git")):
        subprocess.run(["git", "-C", REPO_DIR, "pull", "-q", "--ff-only"], check=True)
    else:
        subprocess.run(["git", "clone", "-q", REPO_URL, REPO_DIR], check=True)
    subprocess.run(["bash", os.path.join(REPO_DIR, "scripts", "install_audio.sh")], check=True)
    requirements = os.path.join(REPO_DIR, "requirements.txt")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", requirements], check=True)
    if REPO_DIR not in sys.path:
        sys.path.insert(0, REPO_DIR)"""


def github_path() -> str:
    """owner/name of the repository, as the notebooks' Open-in-Colab badges spell it."""
    return REPO_URL.removeprefix("https://github.com/").removesuffix(".git")


def outputs_dir(outputs: str | Path | None = None, use_drive: bool = False) -> Path:
    """The folder that holds cache/, runs/ and samples/.

    Args:
      outputs: an explicit folder; it wins over Drive.
      use_drive: mount Google Drive (Colab asks for permission once) and keep everything under
        MyDrive/groovae-drum-lab/outputs/, so the three notebooks, each on its own Colab machine,
        share one run, and a training run survives a disconnect.

    Returns:
      `outputs`, else the Drive folder when use_drive, else the repository's outputs/.
    """
    if outputs:
        return Path(outputs)
    if not use_drive:
        return OUTPUTS_DIR
    from google.colab import drive  # only importable in Colab

    drive.mount(str(DRIVE_MOUNT))
    folder = DRIVE_MOUNT / "MyDrive" / DRIVE_FOLDER / "outputs"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"outputs on Google Drive: {folder}")
    return folder
