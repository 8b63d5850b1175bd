"""Training: Magenta's optimizer and decay, a resumable loop with checkpoints and CSV history."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from helpers.backends import (
    MagentaDecay,
    device_scope,
    estimate_adam_moments,
    make_optimizer,
    refresh_evaluation,
    train_on_batch,
)
from helpers.config import (
    CONFIG_FILE,
    GrooVAEConfig,
    add_data_dir,
    add_run_dir,
    add_training,
    command_parser,
    get_config,
    with_overrides,
)
from helpers.converter import GrooveConverter, encoder_inputs
from helpers.data import load_groove_4bar
from helpers.dataset import eval_windows, train_batches
from helpers.device import describe_precision, detect, resolve_precision
from helpers.midi_folder import folder_windows
from helpers.model import GrooVAE
from helpers.runs import (
    CHECKPOINT_DIR,
    HISTORY_FILE,
    History,
    bundle_dir,
    checkpoint_paths,
    checkpoint_step,
    latest_checkpoint,
    load_bundle,
    load_checkpoint,
    restore_model,
    save_checkpoint,
    write_atomic,
)

MOMENT_BATCHES = 16  # batches whose gradients stand in for Adam's lost moments when continuing
ETA_STEPS = 3  # steps timed after the first (which traces and compiles) for the ETA line


class TrainError(Exception):
    """A run folder, starting point or setting that training cannot use as asked."""


def _flat(config: GrooVAEConfig) -> dict:
    values = config.to_dict()
    parts = ("converter", "model", "train")
    return {f"{part}.{k}": v for part in parts for k, v in values[part].items()}


def _config_changes(config: GrooVAEConfig, saved: GrooVAEConfig) -> list[str]:
    """The settings two configs differ in; --steps is the total to reach, so it does not count."""
    ours, theirs = _flat(config), _flat(saved)
    ours["train.num_steps"] = theirs["train.num_steps"]
    changed = sorted(k for k in ours if ours[k] != theirs[k])
    return changed + (["name"] if config.name != saved.name else [])


def _prepare_run_dir(out_dir: Path, config: GrooVAEConfig) -> None:
    """Claims `out_dir` for this run, or continues the run of the same config found there.

    Raises:
      TrainError: the directory holds files but no run config, or a run of another config.
    """
    config_path = out_dir / CONFIG_FILE
    if config_path.exists():
        try:
            saved = GrooVAEConfig.from_dict(json.loads(config_path.read_text()))
        except (ValueError, KeyError, TypeError) as error:
            raise TrainError(
                f"{config_path} is not a GrooVAE run config; pick another out dir"
            ) from error
        changed = _config_changes(config, saved)
        if changed:
            raise TrainError(
                f"{out_dir} holds a run whose config differs in {changed}; continue it with the "
                "same settings or pick another out dir"
            )
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise TrainError(
            f"{out_dir} has files but no {CONFIG_FILE} of a GrooVAE run; "
            "pick an empty or new out dir"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(config_path, lambda p: p.write_text(config.to_json()))


def start_from(model: GrooVAE, init_from: str | os.PathLike) -> tuple[int, Path]:
    """Fine-tuning: the bundled model's ("pretrained[:NAME]") or a run's weights, into `model`.

    Returns:
      (the step the weights were trained to, the folder holding their history.csv).

    Raises:
      TrainError, PretrainedError: no such run or bundle, or one of other sizes than `model`.
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
        raise TrainError(
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


def eta_line(seconds_per_step: float, remaining: int, now: float | None = None) -> str:
    """'6.1 s/step: the remaining 2,996 steps take about 5 h 05 min (until 18:10 UTC)'."""
    seconds = seconds_per_step * remaining
    hours, minutes = divmod(round(seconds / 60), 60)
    duration = f"{hours} h {minutes:02d} min" if hours else f"{max(minutes, 1)} min"
    until = time.strftime("%H:%M UTC", time.gmtime((time.time() if now is None else now) + seconds))
    return (
        f"{seconds_per_step:.2g} s/step: the remaining {remaining:,} steps take about "
        f"{duration} (until {until})"
    )


def _pairs(outputs: np.ndarray, config: GrooVAEConfig) -> tuple[np.ndarray, np.ndarray]:
    """(encoder inputs, decoder targets): the config's converter options shape the inputs."""
    outputs = np.asarray(outputs, np.float32)
    return encoder_inputs(outputs, config.converter, config.train.seed), outputs


def _continue_at(model: GrooVAE, step: int, source: Path, run_dir: Path, pairs: tuple) -> None:
    """Carries a run on from weights alone: its step (and with it the learning rate, beta and
    batch order), its history, and Adam's moments re-estimated on the batches before `step`.

    Raises:
      TrainError: the source trained another config; continuing it as this one would mix two.
    """
    saved = GrooVAEConfig.from_dict(json.loads((source / CONFIG_FILE).read_text()))
    changed = _config_changes(model.config, saved)
    if changed:
        raise TrainError(f"{source} trained a config that differs in {changed}; cannot continue it")
    t = model.config.train
    seen = min(MOMENT_BATCHES, step)
    recent = train_batches(*pairs, t.batch_size, t.seed, step - seen)
    estimate_adam_moments(model, (next(recent) for _ in range(seen)), step)
    if (source / HISTORY_FILE).exists():
        shutil.copyfile(source / HISTORY_FILE, run_dir / HISTORY_FILE)
    print(f"continuing {source} at step {step:,}: Adam's moments re-estimated on {seen} batches")


def _train_loop(
    config: GrooVAEConfig,
    run_dir: Path,
    train_windows: np.ndarray,
    validation_windows: np.ndarray,
    options: TrainOptions,
) -> None:
    """Builds the model (inside any device scope), resumes its newest checkpoint, trains on."""
    t = config.train
    model = GrooVAE(config)
    model.compile(optimizer=make_optimizer(t))
    model.optimizer.build(model.trainable_variables)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None and checkpoint_paths(run_dir):
        raise TrainError(
            f"no checkpoint in {run_dir / CHECKPOINT_DIR} is whole (each is named above); wait "
            "for a copy still syncing, or move that folder away to start the run again"
        )
    pairs = _pairs(train_windows, config)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, with_optimizer=True)
    elif options.init_from is not None:
        step, folder = start_from(model, options.init_from)
        if options.continue_step:
            _continue_at(model, step, folder, run_dir, pairs)
    start = int(np.asarray(model.optimizer.iterations))

    batches = train_batches(*pairs, t.batch_size, t.seed, start)
    # A small MIDI folder may give no validation windows (evaluation is skipped) or fewer than
    # a batch (they are evaluated as one smaller batch).
    eval_batch = min(t.batch_size, len(validation_windows))
    validation = None
    if eval_batch:
        validation = eval_windows(*_pairs(validation_windows, config), eval_batch, t.eval_batches)
    else:
        print("no validation windows: this run trains without validation rows")
    learning_rate = MagentaDecay(t.learning_rate, t.decay_rate, t.min_learning_rate)
    history = History(run_dir / HISTORY_FILE, start)
    print(
        f"{config.name}: {describe_precision(t.precision, detect())}, batch {t.batch_size}, "
        f"step {start:,} of {t.num_steps:,}; an ETA follows the first {ETA_STEPS + 1} steps"
    )
    bar = tqdm(total=t.num_steps, initial=start, unit="step", disable=not options.progress)
    last_save = time.monotonic()
    try:
        for step in range(start + 1, t.num_steps + 1):
            inputs, targets = next(batches)
            logs = train_on_batch(model, inputs, targets)  # this step's values only
            history.add_step(logs)
            if step == start + 1:
                timed_from = time.monotonic()
            elif step == start + 1 + ETA_STEPS:
                per_step = (time.monotonic() - timed_from) / ETA_STEPS
                tqdm.write(eta_line(per_step, t.num_steps - step))
            evaluate = validation is not None and (
                step % t.eval_every_steps == 0 or step == t.num_steps
            )
            save = (
                step % t.checkpoint_every_steps == 0
                or time.monotonic() - last_save >= 60 * t.checkpoint_every_minutes
                or step == t.num_steps
            )
            if step % options.log_every_steps == 0 or evaluate or save:
                # The rate of this row's last update, taken at the step before it (spec §4).
                history.write_train(step, float(learning_rate(step - 1)))
                shown = ("loss", "r_loss", "kl_bits")
                bar.set_postfix({k: f"{float(logs[k]):.4g}" for k in shown})
            if evaluate:
                model.reset_eval_noise()  # rows differ by the model only, not by the z draws
                refresh_evaluation(model)
                results = model.evaluate(
                    *validation, batch_size=eval_batch, verbose=0, return_dict=True
                )
                history.write(step, "validation", results)
            if save:
                save_checkpoint(model, run_dir)
                last_save = time.monotonic()
            bar.update(1)
    finally:
        bar.close()
        history.close()


@dataclass(frozen=True)
class TrainOptions:
    """How a run trains beyond its config and the steps it reaches; every field is optional.

    Attributes:
      batch_size: overrides config.train.batch_size.
      data_dir, cache_dir: where GMD is (helpers.gmd.find_gmd) and where its windows are cached
        (helpers.data); unused when train() is given windows.
      log_every_steps: a training row is the mean over this many steps (an interval also ends
        at every evaluation and checkpoint, so a resumed run logs the rows an unbroken one does).
      progress: show a tqdm progress bar.
      devices: local devices sharing each global batch (data parallel on the jax and
        tensorflow backends); the batches stay those of a one-device run.
      init_from: a new run's first weights (start_from); its optimizer and learning-rate
        schedule start afresh. A resumed run continues from its own checkpoint instead.
      continue_step: with `init_from`, carry that training on at its step instead (a lost run
        folder continued from its bundle; _continue_at). Same config only.
    """

    batch_size: int | None = None
    data_dir: str | os.PathLike | None = None
    cache_dir: str | os.PathLike | None = None
    log_every_steps: int = 10
    progress: bool = True
    devices: int = 1
    init_from: str | os.PathLike | None = None
    continue_step: bool = False


def train(
    config: GrooVAEConfig,
    out_dir: str | os.PathLike,
    steps: int | None = None,
    windows: tuple[np.ndarray, np.ndarray] | None = None,
    options: TrainOptions | None = None,
) -> pd.DataFrame:
    """Trains (or continues) a GrooVAE run in `out_dir` up to `steps` steps in total.

    The run writes out_dir/config.json, out_dir/history.csv and out_dir/checkpoints/. Called again
    on the same directory it resumes from the newest checkpoint with the same step, optimizer
    state, learning rate, random streams and batch order.

    Args:
      config: the experiment, e.g. get_config('groovae_4bar').
      out_dir: the run directory; new, empty, or one this function wrote for the same config.
      steps: total steps to reach; default config.train.num_steps.
      windows: (train, validation) decoder targets, (n, steps, 27) float32 each, to train on
        instead of GMD's splits (helpers.midi_folder.folder_windows makes them from a folder);
        encoder inputs come from the config's converter. Without validation windows the run
        skips evaluation.
      options: batch size, data location, logging, devices and starting point; default
        TrainOptions().

    Returns:
      The run's whole history.csv as a DataFrame.

    Raises:
      TrainError: `out_dir` holds something else, or its checkpoint does not fit.
      ParallelError: `devices` cannot be used on this machine or backend.
    """
    options = options or TrainOptions()
    overrides = {"num_steps": steps, "batch_size": options.batch_size}
    config = with_overrides(config, **{k: v for k, v in overrides.items() if v is not None})
    t = config.train
    scope = device_scope(options.devices, t.batch_size)  # a bad count fails before any write
    run_dir = Path(out_dir)
    _prepare_run_dir(run_dir, config)
    keras.utils.set_random_seed(t.seed)

    if windows is None:
        converter = GrooveConverter.from_config(config.converter)  # its split_bars picks the cut
        windows = tuple(
            load_groove_4bar(split, options.data_dir, converter, options.cache_dir)
            for split in ("train", "validation")
        )
    with scope:
        _train_loop(config, run_dir, *windows, options)
    return pd.read_csv(run_dir / HISTORY_FILE)


def run_config(
    name: str, run_dir: str | os.PathLike, precision: str = "auto", hardware=None
) -> GrooVAEConfig:
    """The config `name` as this run trains it, in `precision` (one of helpers.config PRECISIONS).
    For 'auto', a run being continued keeps its own precision (its config must match), a new one
    takes what the hardware deserves (helpers.device)."""
    saved = Path(run_dir) / CONFIG_FILE
    if precision == "auto" and saved.exists():
        try:
            saved_config = GrooVAEConfig.from_dict(json.loads(saved.read_text()))
            return get_config(name, precision=saved_config.train.precision)
        except (ValueError, KeyError, TypeError):
            pass  # not a run config: _prepare_run_dir says so
    return get_config(name, precision=resolve_precision(precision, hardware))


def main(argv: list[str] | None = None) -> None:
    """`python -m helpers.train`: trains or continues a run; prints its last history rows."""
    parser = command_parser("train", __doc__)
    add_training(parser, required=True)
    add_run_dir(parser, "--out", required=True)
    add_data_dir(parser)
    parser.add_argument("--midi-dir", help="train on the .mid/.midi files under this folder")
    parser.add_argument("--init-from", help="fine-tune from 'pretrained' (bundled) or a run folder")
    parser.add_argument(
        "--continue-step",
        action="store_true",
        help="with --init-from: continue its training at its step (same config) instead of anew",
    )
    parser.add_argument(
        "--devices", type=int, default=1, help="local devices sharing each batch (jax, tensorflow)"
    )
    args = parser.parse_args(argv)
    config = run_config(args.config, args.run_dir, args.precision)
    options = TrainOptions(
        batch_size=args.batch_size,
        data_dir=args.data_dir,
        devices=args.devices,
        init_from=args.init_from,
        continue_step=args.continue_step,
    )
    windows = None  # GMD's splits
    if args.midi_dir:  # the folder's, and a batch lowered to fit them when they are few
        windows, batch_size = folder_windows(args.midi_dir, config, args.batch_size)
        options = replace(options, batch_size=batch_size)
    history = train(config, args.run_dir, args.steps, windows, options)
    print(history.tail(3).to_string(index=False))


if __name__ == "__main__":
    from helpers.config import run_command

    run_command(main)
