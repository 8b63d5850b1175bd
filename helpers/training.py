"""Training: Magenta's optimizer and decay, shuffled batches replayable from any step, a resumable
loop with checkpoints and CSV history."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
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
    replicas_in_sync,
    train_on_batch,
    validation_logs,
)
from helpers.config import CONFIG_FILE, GrooVAEConfig, with_overrides
from helpers.constants import GROOVE_DEPTH
from helpers.converter import EncoderInputs, GrooveConverter
from helpers.data import load_groove_4bar, training_rows
from helpers.device import describe_precision, detect
from helpers.model import GrooVAE
from helpers.processes import (
    ProcessLayout,
    check_same,
    join,
    stopped_processes_named,
    wait_for_all,
)
from helpers.runs import (
    CHECKPOINT_DIR,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    History,
    checkpoint_paths,
    config_changes,
    latest_checkpoint,
    load_checkpoint,
    prepare_run_dir,
    save_checkpoint,
    start_from,
)

MOMENT_BATCHES = 16  # batches whose gradients stand in for Adam's lost moments when continuing
ETA_STEPS = 3  # steps timed after the first (which traces and compiles) for the ETA line
EVERY_ROW = slice(None)  # the rows of a batch that one process training alone reads


class TrainError(Exception):
    """A run folder, starting point or setting that training cannot use as asked."""


def _check(inputs: np.ndarray, outputs: np.ndarray, batch_size: int) -> None:
    if inputs.ndim != 3 or inputs.shape[-1] != GROOVE_DEPTH or inputs.shape != outputs.shape:
        raise TrainError(
            f"want inputs and outputs of one shape (n, steps, {GROOVE_DEPTH}), got "
            f"{inputs.shape} and {outputs.shape}; build them with helpers.data.load_groove_4bar"
        )
    if len(inputs) < batch_size:
        raise TrainError(
            f"{len(inputs)} windows cannot fill one batch of {batch_size}; lower the batch size"
        )


def pass_order(n: int, seed: int, pass_number: int) -> np.ndarray:
    """The window order of one pass: a permutation of range(n) fixed by (seed, pass number)."""
    return np.random.default_rng([seed, pass_number]).permutation(n)


def train_batches(
    inputs: np.ndarray,
    outputs: np.ndarray,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    rows: slice = EVERY_ROW,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """An endless stream of shuffled (inputs, outputs) batches for training.

    Every pass over the windows is a fresh random permutation drawn statelessly from (`seed`,
    pass number), so the stream is fixed by the seed and `start_step` jumps straight to any point
    of it: a resumed run sees the batches the unbroken run would have seen, on every backend.
    Magenta shuffles through a 5,120-window buffer instead (spec §2.5); a full permutation mixes
    at least as well and needs no buffer to replay. Plain numpy keeps TensorFlow out of JAX and
    PyTorch runs (Colab's TPU runtime has none). One of several processes draws the same
    permutation and reads only its `rows` of each batch (ProcessLayout.rows), so the processes
    together see the one-process stream, whatever their count.

    Args:
      inputs: (n, 64, 27) float32 encoder inputs (an array, or EncoderInputs deriving each
        batch's rows from the targets).
      outputs: (n, 64, 27) float32 decoder targets; a memory-mapped cache is read a batch at a
        time.
      batch_size: windows per batch; batches run across pass boundaries and never run short.
      seed: the shuffle seed.
      start_step: batches to skip, e.g. the step a run resumes from.
      rows: the rows of each global batch to yield; default all.

    Returns:
      An iterator of ((rows, 64, 27), (rows, 64, 27)) float32 pairs.

    Raises:
      TrainError: mismatched shapes or fewer windows than one batch.
    """
    _check(inputs, outputs, batch_size)  # here, not at the first batch
    inputs, outputs = _float32(inputs), _float32(outputs)
    return _stream(inputs, outputs, batch_size, seed, start_step, rows)


def _float32(windows):
    """Windows as float32, without reading them: a memory map stays a map (a view of it), and
    EncoderInputs derive only the rows read."""
    if isinstance(windows, EncoderInputs):
        return windows
    return np.asanyarray(windows, np.float32)


def _stream(inputs, outputs, batch_size: int, seed: int, start_step: int, rows: slice):
    n = len(inputs)
    orders: dict[int, np.ndarray] = {}
    position = start_step * batch_size
    while True:
        positions = np.arange(position, position + batch_size)
        passes = positions // n
        for old in [p for p in orders if p < passes[0]]:
            del orders[old]
        for p in np.unique(passes):
            if p not in orders:
                orders[p] = pass_order(n, seed, int(p))
        indices = np.array([orders[p][i] for p, i in zip(passes, positions % n)])[rows]
        yield training_rows(inputs, outputs, indices)
        position += batch_size


def eval_windows(
    inputs: np.ndarray,
    outputs: np.ndarray,
    batch_size: int,
    max_batches: int | None = None,
    rows: slice = EVERY_ROW,
) -> tuple[np.ndarray, np.ndarray]:
    """The windows one evaluation sees: whole batches in order, no shuffling (spec §2.5).

    Args:
      inputs, outputs: (n, 64, 27) float32 encoder inputs and decoder targets.
      batch_size: windows per batch; the remainder is dropped, as Magenta's eval does.
      max_batches: keep at most this many batches.
      rows: the rows of each batch one of several processes reads; default all.

    Returns:
      (inputs, outputs), each (batches * rows, 64, 27) float32.

    Raises:
      TrainError: mismatched shapes or fewer windows than one batch.
    """
    _check(inputs, outputs, batch_size)
    batches = len(inputs) // batch_size
    if max_batches is not None:
        batches = min(batches, max_batches)
    # The indices of our rows of each batch: only they are read (from the cache file, or derived).
    ours = np.arange(batches * batch_size).reshape(batches, batch_size)[:, rows].ravel()
    return training_rows(_float32(inputs), _float32(outputs), ours)


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


def _pairs(outputs: np.ndarray, config: GrooVAEConfig) -> tuple[EncoderInputs, np.ndarray]:
    """(encoder inputs, decoder targets): the config's converter options shape the inputs, each
    batch's rows derived as they are read (a memory-mapped corpus is never copied whole)."""
    outputs = np.asanyarray(outputs, np.float32)  # a memory map stays one (data.read_rows)
    return EncoderInputs(outputs, config.converter, config.train.seed), outputs


def _continue_at(model: GrooVAE, step: int, source: Path, run_dir: Path, pairs: tuple) -> None:
    """Carries a run on from weights alone: its step (and with it the learning rate, beta and
    batch order), its history, and Adam's moments re-estimated on the batches before `step`.

    Raises:
      TrainError: the source trained another config; continuing it as this one would mix two.
    """
    saved = GrooVAEConfig.read(source / CONFIG_FILE)
    changed = config_changes(model.config, saved)
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
    """Builds the model (inside any device scope), resumes its newest checkpoint, trains on.

    Of several processes, each reads its rows of every batch and process 0 alone writes.
    """
    t = config.train
    layout = options.processes
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
    # Each process read the run folder on its own: a copy that lags would start another stream.
    check_same(layout, "config, --steps or newest checkpoint", f"{config.to_json()} {start}")

    rows = layout.rows(t.batch_size)
    batches = train_batches(*pairs, t.batch_size, t.seed, start, rows)
    # A small MIDI folder may give no validation windows (evaluation is skipped) or fewer than
    # a batch (they are evaluated as one smaller batch, of whole rows for every process, and for
    # every replica of a TensorFlow strategy).
    eval_batch = min(t.batch_size, len(validation_windows))
    eval_batch -= eval_batch % max(layout.num_processes, replicas_in_sync())
    validation = None
    if eval_batch:
        validation = eval_windows(
            *_pairs(validation_windows, config),
            eval_batch,
            t.eval_batches,
            layout.rows(eval_batch),
        )
    else:
        print("no validation windows: this run trains without validation rows")
    learning_rate = MagentaDecay(t.learning_rate, t.decay_rate, t.min_learning_rate)
    history = History(run_dir / HISTORY_FILE if layout.writes else None, start)
    print(
        f"{config.name}: {describe_precision(t.precision, detect())}, batch {t.batch_size}, "
        f"step {start:,} of {t.num_steps:,}; an ETA follows the first {ETA_STEPS + 1} steps"
        + (f"; {layout.describe()}" if layout.several else "")
    )
    progress = options.progress and layout.writes
    bar = tqdm(total=t.num_steps, initial=start, unit="step", disable=not progress)
    last_save = time.monotonic()
    try:
        for step in range(start + 1, t.num_steps + 1):
            inputs, targets = next(batches)
            logs = train_on_batch(model, inputs, targets)  # this step's values only
            history.add_step(logs)
            if step == start + 1:
                timed_from = time.monotonic()
            elif step == start + 1 + ETA_STEPS and layout.writes:
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
                results = validation_logs(model, *validation, eval_batch // layout.num_processes)
                history.write(step, "validation", results)
            if save and layout.writes:
                save_checkpoint(model, run_dir)
                last_save = time.monotonic()
            bar.update(1)
    finally:
        bar.close()
        history.close()
    # The residuals per-hit decoding draws from (helpers.model.HitResiduals), as the run ends.
    # Over several processes every forward pass is a collective one; such a run keeps none of its
    # own and its grooves draw the bundled groovae_4bar's (TrainedModel says so).
    if not layout.several:
        model.measure_hit_residuals(*pairs, seed=t.seed).write(run_dir)


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
        folder continued from its bundle; _continue_at). Same config, one process only.
      processes: the processes sharing each global batch (helpers.processes); each must see the
        run folder (one disk, or a shared one) and every process runs train() alike.
    """

    batch_size: int | None = None
    data_dir: str | os.PathLike | None = None
    cache_dir: str | os.PathLike | None = None
    log_every_steps: int = 10
    progress: bool = True
    devices: int = 1
    init_from: str | os.PathLike | None = None
    continue_step: bool = False
    processes: ProcessLayout = ProcessLayout()


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
      BackendError: `devices` cannot be used on this machine or backend.
      ProcessError: the processes cannot join, or were started with different settings.
    """
    options = options or TrainOptions()
    overrides = {"num_steps": steps, "batch_size": options.batch_size}
    config = with_overrides(config, **{k: v for k, v in overrides.items() if v is not None})
    t = config.train
    layout = join(options.processes, keras.backend.backend())
    options = replace(options, processes=layout)
    if layout.several and options.continue_step:
        raise TrainError(
            "--continue-step runs in one process: continue the run there for a step, then "
            "resume it on several"
        )
    scope = device_scope(options.devices, t.batch_size, layout)  # fails before any write
    run_dir = Path(out_dir)
    if layout.writes:
        prepare_run_dir(run_dir, config)
    wait_for_all(layout, "run folder claimed")
    if not layout.writes:
        prepare_run_dir(run_dir, config, claim=False)
    keras.utils.set_random_seed(t.seed)

    if windows is None:
        converter = GrooveConverter.from_config(config.converter)  # its split_bars picks the cut
        windows = tuple(
            load_groove_4bar(split, options.data_dir, converter, options.cache_dir)
            for split in ("train", "validation")
        )
    with stopped_processes_named(layout):
        with scope:
            _train_loop(config, run_dir, *windows, options)
        wait_for_all(layout, "history written")
    if not (run_dir / HISTORY_FILE).exists():  # another machine's process, no shared folder
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    return pd.read_csv(run_dir / HISTORY_FILE)
