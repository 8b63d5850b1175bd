"""The layout of outputs/: where the cache, runs and samples go, and how their files are named.

Every folder and file name the project writes under outputs/ is spelled here once, so the
notebooks, the command lines and the library agree on where a run or a groove lives.
"""

from __future__ import annotations

import os
from pathlib import Path

from helpers.constants import OUTPUTS_DIR

CACHE = "cache"  # GMD's (and your MIDI folders') windows as .npz, per split
RUNS = "runs"  # one folder per run: config.json, history.csv, checkpoints/
SAMPLES = "samples"  # one folder per set of written grooves
GROOVE_PREFIX = "groove"  # groove_01.mid, groove_02.mid, ...


def cache_dir(outputs_dir: str | os.PathLike = OUTPUTS_DIR) -> Path:
    """outputs_dir/cache: the window cache."""
    return Path(outputs_dir) / CACHE


def runs_dir(outputs_dir: str | os.PathLike = OUTPUTS_DIR) -> Path:
    """outputs_dir/runs: the folder holding every run."""
    return Path(outputs_dir) / RUNS


def run_dir(outputs_dir: str | os.PathLike, name: str) -> Path:
    """outputs_dir/runs/<name>: the run folder of a config name (or any run name)."""
    return runs_dir(outputs_dir) / name


def samples_dir(outputs_dir: str | os.PathLike = OUTPUTS_DIR) -> Path:
    """outputs_dir/samples: the folder holding every set of written grooves."""
    return Path(outputs_dir) / SAMPLES


def settings_stem(temperature: float, qpm: float, seed: int | None = None) -> str:
    """'T0.5-seed0-120bpm' ('T0.5-120bpm' unseeded): sampling settings in a folder name."""
    seeded = "" if seed is None else f"-seed{seed}"
    return f"T{temperature:g}{seeded}-{qpm:g}bpm"


def seeded_samples_dir(
    outputs_dir: str | os.PathLike, label: str, temperature: float, seed: int, qpm: float
) -> Path:
    """outputs_dir/samples/<model label>-T<temperature>-seed<seed>-<qpm>bpm.

    The same model and settings give the same grooves, so they always land in the same folder.
    """
    return samples_dir(outputs_dir) / f"{label}-{settings_stem(temperature, qpm, seed)}"


def next_free(folder: str | os.PathLike, stem: str) -> Path:
    """folder/stem-001, -002, ...: the first that does not exist, so nothing is overwritten."""
    index = 1
    while (Path(folder) / f"{stem}-{index:03d}").exists():
        index += 1
    return Path(folder) / f"{stem}-{index:03d}"


def groove_paths(out_dir: str | os.PathLike, n: int, prefix: str = GROOVE_PREFIX) -> list[Path]:
    """out_dir/{prefix}_01.mid, _02.mid, ...: the names grooves are written under (wider past 99)."""
    width = max(2, len(str(n)))
    return [Path(out_dir) / f"{prefix}_{i:0{width}d}.mid" for i in range(1, n + 1)]
