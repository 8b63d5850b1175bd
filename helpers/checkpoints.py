"""A run folder's checkpoints: every variable and the optimizer state, saved at a step, found
newest first, and restored into a model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from helpers import paths
from helpers.config import CONFIG_FILE, GrooVAEConfig
from helpers.constants import OUTPUTS_DIR
from helpers.history import write_atomic
from helpers.model import GrooVAE

CHECKPOINT_DIR = "checkpoints"
KEEP_CHECKPOINTS = 3  # older checkpoints are deleted as new ones land


class TrainError(Exception):
    """A run directory or checkpoint that training cannot use as asked."""


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint file of a run (highest step), or None before the first one."""
    paths = sorted((Path(run_dir) / CHECKPOINT_DIR).glob("ckpt-*.npz"))
    return paths[-1] if paths else None


def find_run(outputs_dir: str | os.PathLike = OUTPUTS_DIR) -> Path:
    """The run under `outputs_dir/runs/` whose newest checkpoint is the most recent.

    Raises:
      TrainError: no run with a checkpoint there.
    """
    runs = []
    for config_path in paths.runs_dir(outputs_dir).glob(f"*/{CONFIG_FILE}"):
        checkpoint = latest_checkpoint(config_path.parent)
        if checkpoint is not None:
            runs.append((Path(checkpoint).stat().st_mtime, config_path.parent))
    if not runs:
        raise TrainError(
            f"no trained run under {paths.runs_dir(outputs_dir)}; train one with notebook 02 "
            "or pass run_dir= the folder holding config.json and the checkpoints"
        )
    return max(runs)[1]


def checkpoint_step(path: str | os.PathLike) -> int:
    """The training step in a checkpoint's name, ckpt-<step>.npz."""
    return int(Path(path).stem.removeprefix("ckpt-"))


def save_checkpoint(model: GrooVAE, run_dir: Path) -> Path:
    """Saves model variables (random-stream states included) and optimizer state at its step.

    Returns:
      The checkpoint path, run_dir/checkpoints/ckpt-<step>.npz; only the newest few are kept.
    """
    step = int(np.asarray(model.optimizer.iterations))
    folder = run_dir / CHECKPOINT_DIR
    folder.mkdir(exist_ok=True)
    arrays = {f"model/{i:04d}": np.asarray(v) for i, v in enumerate(model.variables)}
    optimizer = model.optimizer.variables
    arrays.update({f"optimizer/{i:04d}": np.asarray(v) for i, v in enumerate(optimizer)})
    path = folder / f"ckpt-{step:09d}.npz"
    write_atomic(path, lambda p: np.savez(p, **arrays))
    for old in sorted(folder.glob("ckpt-*.npz"))[:-KEEP_CHECKPOINTS]:
        old.unlink()
    return path


def _assign(variables: list, saved, prefix: str, path: Path) -> None:
    names = sorted(k for k in saved.files if k.startswith(prefix))
    shapes = [tuple(saved[n].shape) for n in names]
    if shapes != [tuple(v.shape) for v in variables]:
        raise TrainError(f"{path} does not fit this model's config; is it from another run?")
    for variable, name in zip(variables, names):
        variable.assign(saved[name])


def load_checkpoint(model: GrooVAE, path: Path, with_optimizer: bool) -> None:
    with np.load(path) as saved:
        _assign(model.variables, saved, "model/", path)
        if with_optimizer:
            _assign(model.optimizer.variables, saved, "optimizer/", path)


def restore_model(
    run_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None
) -> GrooVAE:
    """Rebuilds a trained GrooVAE from a run directory: config.json plus the newest weights.

    Args:
      run_dir: a directory `train` wrote.
      checkpoint: a specific checkpoint file; default the newest.

    Raises:
      TrainError: no config.json or no checkpoint.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.exists():
        raise TrainError(f"{run_dir} has no {CONFIG_FILE}; point at a directory `train` wrote")
    checkpoint = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir)
    if checkpoint is None:
        raise TrainError(f"{run_dir} has no checkpoint yet; train it for a few steps first")
    model = GrooVAE(GrooVAEConfig.from_dict(json.loads(config_path.read_text())))
    load_checkpoint(model, checkpoint, with_optimizer=False)
    return model
