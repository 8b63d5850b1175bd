"""Bundled models: a trained GrooVAE kept in the repository as float16 weights beside its config."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from helpers.config import CONFIG_FILE, GrooVAEConfig, with_overrides
from helpers.model import GrooVAE

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
WEIGHTS_FILE = "weights.npz"
MAX_BUNDLE_BYTES = 10 * 1024 * 1024
FLOAT16_MAX = float(np.finfo(np.float16).max)


class PretrainedError(Exception):
    """A bundle that is missing, unknown, damaged, or does not fit its config."""


def bundled_names(root: str | os.PathLike = PRETRAINED_DIR) -> list[str]:
    """Names of the bundles under `root` (folders holding weights and a config)."""
    folders = (p.parent for p in Path(root).glob(f"*/{WEIGHTS_FILE}"))
    return sorted(f.name for f in folders if (f / CONFIG_FILE).exists())


def bundle_dir(name: str, root: str | os.PathLike = PRETRAINED_DIR) -> Path:
    """The folder of bundle `name`.

    Raises:
      PretrainedError: no bundle of that name, listing the ones there are.
    """
    folder = Path(root) / name
    if not (folder / WEIGHTS_FILE).exists() or not (folder / CONFIG_FILE).exists():
        known = ", ".join(bundled_names(root)) or "none"
        raise PretrainedError(
            f"no bundled model {name!r} in {root} (needs {WEIGHTS_FILE} and {CONFIG_FILE}); "
            f"bundled: {known}"
        )
    return folder


def save_weights(model: GrooVAE, path: str | os.PathLike, step: int) -> Path:
    """Writes the model's trainable weights as float16, with their paths and the training step.

    Only the weights are kept: optimizer state and random-stream states are not needed to
    encode or decode, and float16 halves the size at a rounding error of about 1e-3 relative.

    Raises:
      PretrainedError: a weight too large for float16.
    """
    arrays = {}
    for i, variable in enumerate(model.trainable_variables):
        value = np.asarray(variable, np.float32)
        if np.abs(value).max() > FLOAT16_MAX:
            raise PretrainedError(f"{variable.path} exceeds float16's range; cannot bundle it")
        arrays[f"weight_{i:04d}"] = value.astype(np.float16)
    arrays["paths"] = np.array([v.path for v in model.trainable_variables])
    arrays["step"] = np.array(step, np.int64)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def load_weights(model: GrooVAE, path: str | os.PathLike) -> int:
    """Assigns float16 bundle weights to `model` as float32.

    Returns:
      The step the weights were trained to.

    Raises:
      PretrainedError: the file is missing, truncated or not a bundle, or does not fit the model.
    """
    path = Path(path)
    if not path.exists():
        raise PretrainedError(
            f"{path} is missing; restore it (git checkout -- {path}) or re-export the bundle"
        )
    try:
        with np.load(path) as saved:
            arrays = {name: saved[name] for name in saved.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise PretrainedError(
            f"{path} is damaged or truncated ({type(error).__name__}: {error}); restore it "
            f"(git checkout -- {path}; with Git LFS, git lfs pull) or re-export the bundle"
        ) from error
    variables = model.trainable_variables
    names = sorted(k for k in arrays if k.startswith("weight_"))
    if "step" not in arrays or "paths" not in arrays or len(names) != len(variables):
        raise PretrainedError(f"{path} is not a bundle of this model's weights")
    for variable, name, saved_path in zip(variables, names, arrays["paths"]):
        if tuple(arrays[name].shape) != tuple(variable.shape):
            raise PretrainedError(
                f"{path}: {saved_path} has shape {arrays[name].shape}, the config's model "
                f"{tuple(variable.shape)}; weights and config.json are from different models"
            )
        variable.assign(arrays[name].astype(np.float32))
    return int(arrays["step"])


def load_bundle(name: str, root: str | os.PathLike = PRETRAINED_DIR) -> tuple[GrooVAE, int]:
    """The bundled GrooVAE `name`, float32, and the step it was trained to.

    Raises:
      PretrainedError: unknown name, damaged weights or config.
    """
    folder = bundle_dir(name, root)
    try:
        config = GrooVAEConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
    except (ValueError, KeyError, TypeError) as error:
        raise PretrainedError(f"{folder / CONFIG_FILE} is not a GrooVAE config: {error}") from error
    # float32 compute whatever the run trained with: the weights are stored at float16 either way.
    model = GrooVAE(with_overrides(config, mixed_precision=False))
    return model, load_weights(model, folder / WEIGHTS_FILE)


def bundle_bytes(folder: str | os.PathLike) -> int:
    """Total size of the files in a bundle folder."""
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())
