"""A run folder: claimed for one config, its history.csv, checkpoints saved, found newest first and
restored, and the weights a new run starts from."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
import zipfile
from pathlib import Path

import keras
import numpy as np

from helpers import constants
from helpers.bundles import bundle_dir, load_bundle
from helpers.config import CONFIG_FILE, GrooVAEConfig, get_config
from helpers.constants import OUTPUTS_DIR
from helpers.device import resolve_precision
from helpers.model import GrooVAE

CHECKPOINT_DIR = "checkpoints"
KEEP_CHECKPOINTS = 3  # older checkpoints are deleted as new ones land
# Each ckpt-<step>.npz has a record beside it, ckpt-<step>.json, written after it: its size and
# SHA-256. A checkpoint cut short (a full disk, a Drive copy still syncing) or damaged does not
# match its record and is passed over for the newest one that does.
RECORD_SUFFIX = ".json"


class RunError(Exception):
    """A run directory or checkpoint that training cannot use as asked."""


def checkpoint_paths(run_dir: str | os.PathLike) -> list[Path]:
    """Every checkpoint file of a run, whole or not, oldest first."""
    return sorted((Path(run_dir) / CHECKPOINT_DIR).glob("ckpt-*.npz"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """Why a checkpoint cannot be used, or None when it is whole.

    A checkpoint must match its record (size, then SHA-256). One without a record (saved before
    records were kept, or whose record never arrived) must read back whole instead: every array
    through the zip's own CRC check.
    """
    path = Path(path)
    record_path = path.with_suffix(RECORD_SUFFIX)
    if not record_path.exists():
        try:
            with np.load(path) as saved:
                for name in saved.files:
                    saved[name]
        except Exception as error:  # zipfile and numpy raise many types on a broken file
            return f"no {record_path.name} and it does not read back ({type(error).__name__})"
        return None
    try:
        record = json.loads(record_path.read_text())
        size, sha256 = int(record["bytes"]), str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"its record {record_path.name} is damaged"
    if path.stat().st_size != size:
        return f"{path.stat().st_size:,} of its {size:,} bytes (cut short, or still syncing)"
    if _sha256(path) != sha256:
        return "damaged (its bytes do not match the SHA-256 saved with it)"
    return None


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest whole checkpoint of a run (highest step), or None before the first one.

    Newer ones that are not whole (checkpoint_problem) are passed over, one line each saying why.
    """
    for path in reversed(checkpoint_paths(run_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        print(f"skipping checkpoint {path}: {problem}")
    return None


def find_run(outputs_dir: str | os.PathLike = OUTPUTS_DIR, unconditioned: bool = False) -> Path:
    """The run under `outputs_dir/runs/` whose newest checkpoint is the most recent; with
    `unconditioned`, of a config that samples without controls.

    Raises:
      RunError: no run with a checkpoint there.
    """
    runs = []
    for config_path in constants.runs_dir(outputs_dir).glob(f"*/{CONFIG_FILE}"):
        checkpoint = latest_checkpoint(config_path.parent)
        if unconditioned and '"hits_as_controls": true' in config_path.read_text():
            continue
        if checkpoint is not None:
            runs.append((Path(checkpoint).stat().st_mtime, config_path.parent))
    if not runs:
        raise RunError(
            f"no trained run under {constants.runs_dir(outputs_dir)}; train one with notebook 02 "
            "or pass run_dir= the folder holding config.json and the checkpoints"
        )
    return max(runs)[1]


def checkpoint_step(path: str | os.PathLike) -> int:
    """The training step in a checkpoint's name, ckpt-<step>.npz."""
    return int(Path(path).stem.removeprefix("ckpt-"))


def save_checkpoint(model: GrooVAE, run_dir: Path) -> Path:
    """Saves model variables (random-stream states included) and optimizer state at its step:
    Adam's, and a float16 run's loss scale (its LossScaleOptimizer's variables).

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
    record = {"step": step, "bytes": path.stat().st_size, "sha256": _sha256(path)}
    write_atomic(path.with_suffix(RECORD_SUFFIX), lambda p: p.write_text(json.dumps(record)))
    _prune(folder, path)
    return path


def _prune(folder: Path, saved: Path) -> None:
    """Keeps `saved` and the newest older checkpoints, KEEP_CHECKPOINTS in all. Deleted too:
    checkpoints of higher steps (left by a run resumed before them: its history no longer leads
    to them), records without their checkpoint and the partial files of saves cut short."""
    paths = checkpoint_paths(folder.parent)
    keep = [p for p in paths if p <= saved][-KEEP_CHECKPOINTS:]
    for path in set(paths) - set(keep):
        path.with_suffix(RECORD_SUFFIX).unlink(missing_ok=True)
        path.unlink(missing_ok=True)
    for record in folder.glob(f"ckpt-*{RECORD_SUFFIX}"):
        if not record.with_suffix(".npz").exists():
            record.unlink(missing_ok=True)
    for partial in folder.glob(".ckpt-*"):
        partial.unlink(missing_ok=True)


def _assign(variables: list, saved, prefix: str, path: Path) -> None:
    names = sorted(k for k in saved.files if k.startswith(prefix))
    if [tuple(saved[n].shape) for n in names] != [tuple(v.shape) for v in variables]:
        raise RunError(f"{path} does not fit this model's config; is it from another run?")
    for variable, name in zip(variables, names):
        variable.assign(saved[name])


def load_checkpoint(model: GrooVAE, path: Path, with_optimizer: bool) -> None:
    """Assigns a checkpoint's model (and optimizer) variables.

    Raises:
      RunError: the file does not read back whole, or is of another config's model.
    """
    try:
        with np.load(path) as saved:
            _assign(model.variables, saved, "model/", path)
            if with_optimizer:
                _assign(model.optimizer.variables, saved, "optimizer/", path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise RunError(
            f"{path} is damaged or cut short ({type(error).__name__}: {error}); pick another"
        ) from error


def restore_model(
    run_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None
) -> GrooVAE:
    """Rebuilds a trained GrooVAE from a run directory: config.json plus the newest weights.

    Args:
      run_dir: a directory `train` wrote.
      checkpoint: a specific checkpoint file; default the newest.

    Raises:
      RunError: no config.json, no whole checkpoint, or a given checkpoint that is not whole.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.exists():
        raise RunError(f"{run_dir} has no {CONFIG_FILE}; point at a directory `train` wrote")
    if checkpoint:
        problem = checkpoint_problem(checkpoint)
        if problem:
            raise RunError(f"checkpoint {checkpoint} cannot be used: {problem}")
    checkpoint = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir)
    if checkpoint is None and checkpoint_paths(run_dir):
        raise RunError(f"none of the checkpoints in {run_dir / CHECKPOINT_DIR} is whole")
    if checkpoint is None:
        raise RunError(f"{run_dir} has no checkpoint yet; train it for a few steps first")
    model = GrooVAE(GrooVAEConfig.read(config_path))
    load_checkpoint(model, checkpoint, with_optimizer=False)
    return model


HISTORY_FILE = "history.csv"
# Its columns, under Magenta's summary names (spec §4); a row leaves blank what it lacks.
LOGGED = {
    "loss": "loss",
    "r_loss": "losses/r_loss",
    "kl_loss": "losses/kl_loss",
    "kl_bits": "losses/kl_bits",
    "kl_beta": "losses/kl_beta",
    "global_norm": "global_norm",
    "hits_loss": "metrics/hits_loss",
    "velocities_loss": "metrics/velocities_loss",
    "offsets_loss": "metrics/offsets_loss",
    "hit_accuracy": "metrics/hit_accuracy",
    "hit_f1": "metrics/hit_f1",
}
HISTORY_COLUMNS = ["step", "split", "learning_rate", *LOGGED.values(), "seconds"]
HISTORY_SPLITS = ("train", "validation")
SCHEDULED = {"kl_beta"}  # set by the step number, not measured: a row keeps its last step's


def write_atomic(path: Path, write) -> None:
    """Writes through `write(temp_path)` then renames, so a killed run never leaves half a file."""
    temp = path.with_name(f".{path.name}.partial{path.suffix}")
    write(temp)
    os.replace(temp, path)


class History:
    """history.csv: training rows and validation rows; a resumed run drops rows past its step.

    With no path (a process other than 0 of several) it keeps the interval means but writes
    nothing.
    """

    def __init__(self, path: Path | None, start_step: int):
        self.path = path
        self.started = time.monotonic()
        self._sums: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._steps = 0
        self.file = self.writer = None
        if path is None:
            return
        kept = []
        if path.exists():
            with path.open(newline="") as f:  # a line cut short by a full disk has no split
                rows = [row for row in csv.DictReader(f) if row["split"] in HISTORY_SPLITS]
                kept = [row for row in rows if int(row["step"]) <= start_step]

        def rewrite(temp: Path) -> None:
            with temp.open("w", newline="") as f:
                writer = csv.DictWriter(f, HISTORY_COLUMNS, restval="")
                writer.writeheader()
                writer.writerows(kept)

        write_atomic(path, rewrite)
        self.file = path.open("a", newline="")
        self.writer = csv.DictWriter(self.file, HISTORY_COLUMNS, restval="")

    def add_step(self, logs: dict) -> None:
        """Counts one training step's logs (single-step values) into the current interval."""
        for key, value in logs.items():
            if key in LOGGED:
                self._sums[key] = self._sums.get(key, 0.0) + float(value)
                self._last[key] = float(value)
        self._steps += 1

    def interval_means(self) -> dict[str, float]:
        """Means over the steps added since the last train row (schedule values: the last)."""
        means = {k: total / self._steps for k, total in self._sums.items()}
        return {**means, **{k: self._last[k] for k in SCHEDULED if k in self._last}}

    def write_train(self, step: int, learning_rate: float) -> None:
        """The train row of the interval ending at `step`; the next interval starts empty."""
        self.write(step, "train", self.interval_means(), learning_rate)
        self._sums, self._last, self._steps = {}, {}, 0

    def write(self, step: int, split: str, logs: dict, learning_rate: float | None = None) -> None:
        """One row as it is: `logs` under their summary names (unknown keys left out)."""
        if self.writer is None:
            return
        row = {LOGGED[k]: float(v) for k, v in logs.items() if k in LOGGED}
        row.update(step=step, split=split, seconds=round(time.monotonic() - self.started, 3))
        if learning_rate is not None:
            row["learning_rate"] = learning_rate
        self.writer.writerow(row)
        self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _flat(config: GrooVAEConfig) -> dict:
    values = config.to_dict()
    parts = ("converter", "model", "train")
    return {f"{part}.{k}": v for part in parts for k, v in values[part].items()}


def config_changes(config: GrooVAEConfig, saved: GrooVAEConfig) -> list[str]:
    """The settings two configs differ in; --steps is the total to reach, so it does not count."""
    ours, theirs = _flat(config), _flat(saved)
    ours["train.num_steps"] = theirs["train.num_steps"]
    changed = sorted(k for k in ours if ours[k] != theirs[k])
    return changed + (["name"] if config.name != saved.name else [])


def prepare_run_dir(out_dir: Path, config: GrooVAEConfig, claim: bool = True) -> None:
    """Claims `out_dir` for this run, or continues the run of the same config found there.

    Args:
      claim: write config.json; without, only check (a process other than 0 of several, after
        process 0 claimed the folder).

    Raises:
      RunError: the directory holds files but no run config, or a run of another config.
    """
    config_path = out_dir / CONFIG_FILE
    if config_path.exists():
        try:
            saved = GrooVAEConfig.read(config_path)
        except (ValueError, KeyError, TypeError) as error:
            raise RunError(
                f"{config_path} is not a GrooVAE run config; pick another out dir"
            ) from error
        changed = config_changes(config, saved)
        if changed:
            raise RunError(
                f"{out_dir} holds a run whose config differs in {changed}; continue it with the "
                "same settings or pick another out dir"
            )
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise RunError(
            f"{out_dir} has files but no {CONFIG_FILE} of a GrooVAE run; "
            "pick an empty or new out dir"
        )
    if claim:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(config_path, lambda p: p.write_text(config.to_json()))


def run_config(
    name: str, run_dir: str | os.PathLike, precision: str = "auto", hardware=None, **overrides
) -> GrooVAEConfig:
    """The config `name` as this run trains it, in `precision` (one of helpers.config PRECISIONS),
    with other fields replaced by keyword (e.g. velocity_offset_loss="hit_cells").
    For 'auto', a run being continued keeps its own precision (its config must match), a new one
    takes what the hardware deserves (helpers.device)."""
    saved = Path(run_dir) / CONFIG_FILE
    if precision == "auto" and saved.exists():
        try:
            saved_config = GrooVAEConfig.read(saved)
            return get_config(name, precision=saved_config.train.precision, **overrides)
        except (ValueError, KeyError, TypeError):
            pass  # not a run config: prepare_run_dir says so
    return get_config(name, precision=resolve_precision(precision, hardware), **overrides)


def start_from(model: GrooVAE, init_from: str | os.PathLike) -> tuple[int, Path]:
    """Fine-tuning: the bundled model's ("pretrained[:NAME]") or a run's weights, into `model`.

    Returns:
      (the step the weights were trained to, the folder holding their history.csv).

    Raises:
      RunError, BundleError: no such run or bundle, or one of other sizes than `model`.
    """
    kind, _, name = str(init_from).partition(":")
    if kind == "pretrained":
        folder = bundle_dir(name or "groovae_4bar")
        source, step = load_bundle(folder.name, folder.parent)
    else:
        folder, source = Path(init_from), restore_model(init_from)
        step = checkpoint_step(latest_checkpoint(folder))
    theirs, ours = source.trainable_variables, model.trainable_variables
    values = [_widened(keras.ops.convert_to_numpy(v), tuple(o.shape)) for v, o in zip(theirs, ours)]
    if len(theirs) != len(ours) or any(v is None for v in values):
        raise RunError(
            f"{init_from} holds a {source.config.name} model of other sizes than "
            f"{model.config.name!r}; fine-tune it with a config of its sizes"
        )
    for variable, value in zip(ours, values):
        variable.assign(value)
    return step, folder


def _widened(value: np.ndarray, shape: tuple) -> np.ndarray | None:
    """`value` in `shape`: the same, or an input kernel grown by zero rows for the controls a
    hits-conditioned model adds at the end of its inputs (so it starts as the model it grows
    from and learns to use them); None when the shapes do not fit that way."""
    if value.shape == shape:
        return value
    if value.ndim == 2 and value.shape[1] == shape[1] and value.shape[0] < shape[0]:
        return np.concatenate([value, np.zeros((shape[0] - value.shape[0], shape[1]), value.dtype)])
    return None
