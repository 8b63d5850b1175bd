"""Tests for helpers/train.py and the training it runs (helpers/training.py): batches, the
training loop, resuming, MIDI folders (spec §4, §6)."""

import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from subprocess import PIPE

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import (
    TRAIN_WINDOWS,
    VALIDATION_WINDOWS,
    beat_notes,
    drum_sequence,
    train_every_step,
    write_groove_files,
    write_midi,
)

from helpers import data, runs, train, training
from helpers.backends import BackendError, make_optimizer, train_on_batch
from helpers.config import get_config
from helpers.constants import GROOVE_DEPTH, WINDOW_STEPS
from helpers.converter import encoder_inputs
from helpers.model import GrooVAE
from helpers.runs import HISTORY_COLUMNS, HISTORY_FILE
from helpers.training import TrainError, eval_windows, pass_order, train_batches

REPO = Path(__file__).resolve().parents[1]
TRAIN, VALIDATION = TRAIN_WINDOWS, VALIDATION_WINDOWS  # decoder-target windows
WINDOWS = (TRAIN, VALIDATION)
EVERY_STEP = training.TrainOptions(log_every_steps=1, progress=False)  # a history row a step


def test_train_step_clip_to_zero_skips_the_update_but_counts_the_step():
    keras.utils.set_random_seed(0)
    model = GrooVAE(get_config("tiny", grad_norm_clip_to_zero=1e-6))
    model.compile(optimizer=make_optimizer(model.config.train))
    before = [v.numpy() for v in model.trainable_variables]
    logs = model.train_on_batch(TRAIN[:16], TRAIN[:16], return_dict=True)
    assert float(logs["global_norm"]) > 1e-6
    assert int(model.optimizer.iterations) == 1
    for old, new in zip(before, model.trainable_variables):
        np.testing.assert_array_equal(new.numpy(), old)  # fresh Adam moments: zero step


def test_train_step_mixed_precision_is_finite():
    keras.utils.set_random_seed(0)
    model = GrooVAE(get_config("tiny", precision="bfloat16"))
    model.compile(optimizer=make_optimizer(model.config.train))
    batch = TRAIN[:16]
    logs = [model.train_on_batch(batch, batch, return_dict=True) for _ in range(2)]
    assert all(np.isfinite(float(v)) for v in logs[-1].values())


def test_train_on_batch_returns_this_steps_values_on_every_keras_version():
    """History means are taken over per-step logs, so no call may carry an earlier step's terms
    (Keras 3.13's train_on_batch keeps its metrics running; later versions reset them)."""
    keras.utils.set_random_seed(0)
    model = GrooVAE(get_config("tiny"))
    model.compile(optimizer=make_optimizer(model.config.train))
    batch = TRAIN[:16]
    for _ in range(3):
        train_on_batch(model, batch, batch)
        for tracker in model.trackers.values():
            assert float(tracker.count) in (0.0, 1.0), tracker.name


def test_train_writes_config_history_and_checkpoints(tiny_config, tmp_path, capsys):
    history = train_every_step(tiny_config, tmp_path, steps=40)
    said = capsys.readouterr().out.splitlines()
    # The precision in words and why, e.g. "float32 (this CPU has no AVX512_BF16 or AMX ...)".
    assert re.match(r"tiny: float32 \(.+\), batch 16, step 0 of 40; ", said[0]), said[0]
    eta = r"[\d.e+-]+ s/step: the remaining 36 steps take about 1 min \(until \d\d:\d\d UTC\)"
    assert any(re.fullmatch(eta, line) for line in said), said
    saved = json.loads((tmp_path / training.CONFIG_FILE).read_text())
    assert saved["name"] == "tiny" and saved["train"]["num_steps"] == 40
    assert list(history.columns) == HISTORY_COLUMNS
    train_rows = history[history.split == "train"]
    np.testing.assert_array_equal(train_rows.step, np.arange(1, 41))
    assert np.isfinite(train_rows["loss"]).all()
    assert train_rows["losses/kl_beta"].iloc[0] == 0.0 and train_rows["losses/kl_beta"].iloc[1] > 0
    validation = history[history.split == "validation"]
    np.testing.assert_array_equal(validation.step, [10, 20, 30, 40])  # eval_every_steps = 10
    assert validation["metrics/hit_f1"].between(0, 1).all()
    kept = sorted(p.name for p in (tmp_path / runs.CHECKPOINT_DIR).glob("*.npz"))
    assert kept == [f"ckpt-{s:09d}.npz" for s in (20, 30, 40)]  # the newest 3 kept
    assert training.latest_checkpoint(tmp_path).name == "ckpt-000000040.npz"


def test_eta_line():
    line = training.eta_line(6.1, 2996, now=0.0)
    assert line == "6.1 s/step: the remaining 2,996 steps take about 5 h 05 min (until 05:04 UTC)"


def test_train_resume_matches_unbroken_run(tiny_config, tmp_path):
    config = get_config("tiny", eval_every_steps=5, checkpoint_every_steps=5)
    unbroken = train_every_step(config, tmp_path / "unbroken", steps=12)
    train_every_step(config, tmp_path / "resumed", steps=7)  # a run stopped at step 7 ...
    resumed = train_every_step(config, tmp_path / "resumed", steps=12)  # ... and continued to 12
    a, b = (h[h.split == "train"].reset_index(drop=True) for h in (unbroken, resumed))
    np.testing.assert_array_equal(b.step, np.arange(1, 13))
    for column in ("loss", "losses/kl_bits", "global_norm", "learning_rate"):
        np.testing.assert_allclose(b[column], a[column], rtol=1e-5, err_msg=column)
    a, b = (h[h.split == "validation"].set_index("step") for h in (unbroken, resumed))
    np.testing.assert_allclose(b.loc[a.index, "loss"], a["loss"], rtol=1e-5)


def test_train_rows_are_means_over_their_logging_interval(tiny_config, tmp_path):
    config = get_config("tiny", eval_every_steps=10, checkpoint_every_steps=10)
    every_step = training.train(
        config, tmp_path / "each", steps=10, windows=WINDOWS, options=EVERY_STEP
    )
    fives = training.TrainOptions(log_every_steps=5, progress=False)
    every_five = training.train(
        config, tmp_path / "fives", steps=10, windows=WINDOWS, options=fives
    )
    steps = every_step[every_step.split == "train"].set_index("step")
    rows = every_five[every_five.split == "train"].set_index("step")
    assert list(rows.index) == [5, 10]
    for end in (5, 10):
        interval = steps.loc[end - 4 : end]
        for column in ("loss", "losses/r_loss", "losses/kl_bits", "global_norm"):
            np.testing.assert_allclose(
                rows.loc[end, column], interval[column].mean(), rtol=1e-5, err_msg=column
            )
        # Schedule values are the row's own step's, not an average.
        for column in ("losses/kl_beta", "learning_rate"):
            np.testing.assert_allclose(rows.loc[end, column], steps.loc[end, column], rtol=1e-6)


def test_train_resume_drops_history_past_the_checkpoint(tiny_config, tmp_path):
    train_every_step(tiny_config, tmp_path, steps=14)  # checkpoints at 10 and 14
    (tmp_path / runs.CHECKPOINT_DIR / "ckpt-000000014.npz").unlink()  # as if killed at 13
    history = train_every_step(tiny_config, tmp_path, steps=15)
    train_rows = history[history.split == "train"]
    np.testing.assert_array_equal(train_rows.step, np.arange(1, 16))


def test_train_refuses_a_directory_it_did_not_write(tiny_config, tmp_path):
    (tmp_path / "notes.txt").write_text("someone else's")
    with pytest.raises(runs.RunError, match="no config.json"):
        train_every_step(tiny_config, tmp_path, steps=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_train_refuses_a_run_of_another_config(tiny_config, tmp_path):
    train_every_step(tiny_config, tmp_path, steps=1)
    with pytest.raises(runs.RunError, match="differs in"):
        train_every_step(get_config("tiny", z_size=4), tmp_path, steps=2)


def test_main_cli_continues_to_total_steps(tmp_path, monkeypatch):
    splits = {"train": TRAIN, "validation": VALIDATION}
    monkeypatch.setattr(training, "load_groove_4bar", lambda split, *a, **k: splits[split])
    train.main(["--config", "tiny", "--out", str(tmp_path), "--batch-size", "8", "--steps", "2"])
    # --run-dir is the spelling now, --out the one users typed before; Magenta's --num_steps too.
    train.main(
        ["--config", "tiny", "--run-dir", str(tmp_path), "--batch-size", "8", "--num_steps", "3"]
    )
    history = json.loads((tmp_path / training.CONFIG_FILE).read_text())
    assert history["train"]["batch_size"] == 8 and history["train"]["num_steps"] == 3
    assert training.latest_checkpoint(tmp_path).name == "ckpt-000000003.npz"


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_main_cli_precision_choice(tmp_path, monkeypatch, precision):
    splits = {"train": TRAIN, "validation": VALIDATION}
    monkeypatch.setattr(training, "load_groove_4bar", lambda split, *a, **k: splits[split])
    args = ["--config", "tiny", "--out", str(tmp_path), "--steps", "1", "--precision", precision]
    train.main(args)
    saved = json.loads((tmp_path / training.CONFIG_FILE).read_text())["train"]
    assert saved["precision"] == precision
    assert runs.restore_model(tmp_path).dtype_policy.name == f"mixed_{precision}"


@pytest.mark.parametrize(
    "started, hardware", [("float32", "bfloat16"), ("bfloat16", "float32"), ("float16", "float32")]
)
def test_main_cli_auto_precision_continues_a_run_in_its_own(
    tmp_path, monkeypatch, started, hardware
):
    splits = {"train": TRAIN, "validation": VALIDATION}
    monkeypatch.setattr(training, "load_groove_4bar", lambda split, *a, **k: splits[split])
    auto = lambda choice, device=None: hardware if choice == "auto" else choice  # noqa: E731
    monkeypatch.setattr(runs, "resolve_precision", auto)
    args = ["--config", "tiny", "--out", str(tmp_path)]
    train.main([*args, "--steps", "1", "--precision", started])
    train.main([*args, "--steps", "2"])  # auto, on hardware that deserves the other precision
    saved = json.loads((tmp_path / training.CONFIG_FILE).read_text())["train"]
    assert saved["precision"] == started and saved["num_steps"] == 2


@pytest.mark.parametrize(
    "devices, batch_size, message", [(2, 9, "does not split"), (4, 16, "lower --devices")]
)
def test_main_cli_devices_it_cannot_use_fail_before_any_write(
    devices, batch_size, message, tmp_path
):
    out = tmp_path / "run"
    args = ["--config", "tiny", "--out", str(out), "--steps", "1", "--batch-size", str(batch_size)]
    with pytest.raises(BackendError, match=message):
        train.main([*args, "--devices", str(devices)])
    assert not out.exists()


def test_main_cli_trains_a_small_midi_folder_and_shows_its_split(tmp_path, monkeypatch, capsys):
    """Issue 22's folder: 14 takes of 8 to 12 bars and a corrupt file. The path hash leaves a
    split empty; files move there, validation has fewer windows than a batch."""
    folder = tmp_path / "takes"
    for i in range(14):
        notes = beat_notes(8 + i % 5, 100.0)
        write_midi(folder / f"take_{i:02d}.mid", drum_sequence(notes, qpm=100.0))
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06 not MIDI")
    monkeypatch.setattr(data, "DEFAULT_CACHE_DIR", tmp_path / "cache")
    run = tmp_path / "run"
    argv = ["--config", "tiny", "--midi-dir", str(folder), "--steps", "3", "--run-dir", str(run)]
    train.main(argv)
    said = capsys.readouterr().out
    chosen = re.search(
        r"split chosen \(files with windows\): (\d+) train, (\d+) validation, "
        r"(\d+) test; moved so that no split is without windows: ",
        said,
    )
    assert chosen and [int(n) for n in chosen.groups()][1:] == [1, 1], said
    assert "broken.mid" in said and "corrupt file" in said
    history = pd.read_csv(run / runs.HISTORY_FILE)
    assert list(zip(history.step, history.split)) == [(3, "train"), (3, "validation")]


def test_train_without_validation_windows_skips_evaluation(tiny_config, tmp_path, capsys):
    no_validation = (TRAIN, VALIDATION[:0])
    options = training.TrainOptions(progress=False)
    history = training.train(
        tiny_config, tmp_path, steps=10, windows=no_validation, options=options
    )
    assert (
        "no validation windows: this run trains without validation rows" in capsys.readouterr().out
    )
    assert set(history.split) == {"train"} and history.step.max() == 10


def test_pairs_humanize_inputs_keep_hits_only():
    targets = TRAIN
    inputs, outputs = training._pairs(targets, get_config("tiny", humanize=True))
    np.testing.assert_array_equal(outputs, targets)
    np.testing.assert_array_equal(inputs[..., :9], targets[..., :9])
    np.testing.assert_array_equal(inputs[..., 9:], 0.0)


# --- checkpoints that survive faults -----------------------------------------------------------


# A training process that dies mid-save, in the ways a kill can land (KILL: where).
KILLED_TRAINING = """
import os, signal, sys
import numpy as np
from helpers import training
from helpers.config import get_config
from helpers.converter import encoder_inputs

run_dir, data, steps, kill = sys.argv[1:]
saves = []
write, replace = np.savez, os.replace

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def half_written(path, **arrays):  # the 2nd checkpoint dies halfway through its file
    saves.append(path)
    write(path, **arrays)
    if len(saves) == 2:
        with open(path, "r+b") as file:
            file.truncate(os.path.getsize(path) // 2)
        die()

def unrecorded(source, target):  # the 2nd checkpoint lands, its record never does
    replace(source, target)
    if str(target).endswith(".npz"):
        saves.append(target)
        if len(saves) == 2:
            die()

if kill == "mid-write":
    np.savez = half_written
elif kill == "before-record":
    os.replace = unrecorded
arrays = np.load(data)
config = get_config("tiny", checkpoint_every_steps=2, eval_every_steps=4)
windows = (arrays["train"], arrays["validation"])
options = training.TrainOptions(log_every_steps=1, progress=False)
training.train(config, run_dir, steps=int(steps), windows=windows, options=options)
"""


def test_training_killed_mid_save_always_resumes_without_gaps_or_repeats(tmp_path):
    """SIGKILL halfway through a checkpoint file, between a checkpoint and its record, and at
    a random moment: each new process resumes at the newest whole checkpoint, and the finished
    run's history.csv has every row once."""
    data, run, steps = tmp_path / "windows.npz", tmp_path / "run", 24
    np.savez(data, train=TRAIN, validation=VALIDATION)
    folder = run / runs.CHECKPOINT_DIR

    def launch(kill):
        argv = [sys.executable, "-c", KILLED_TRAINING, str(run), str(data), str(steps), kill]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # what it said before dying, all of it
        return subprocess.Popen(argv, stdout=PIPE, stderr=PIPE, text=True, env=env, cwd=REPO)

    def started_at(out):
        return int(re.search(r"step (\d+) of", out).group(1))

    died = launch("mid-write")
    out, err = died.communicate(timeout=300)
    assert died.returncode == -signal.SIGKILL, err
    assert started_at(out) == 0 and list(folder.glob(".ckpt-000000004.npz.partial*"))

    died = launch("before-record")  # resumes at 2, saves 4, dies as 6 lands
    out, err = died.communicate(timeout=300)
    assert died.returncode == -signal.SIGKILL and started_at(out) == 2, err
    assert not (folder / "ckpt-000000006.json").exists()

    delay = random.uniform(0.0, 2.0)
    died = launch("at random")  # resumes at 6, dies when it dies
    first_line = ""
    while "step" not in first_line:
        first_line = died.stdout.readline()
    time.sleep(delay)
    died.kill()
    out, err = died.communicate(timeout=300)
    assert started_at(first_line) == 6, (first_line, out, err)

    resumed_at = runs.checkpoint_step(runs.latest_checkpoint(run))
    done = launch("none")
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0 and started_at(out) == resumed_at, (delay, err)
    history = pd.read_csv(run / runs.HISTORY_FILE)
    np.testing.assert_array_equal(history[history.split == "train"].step, np.arange(1, steps + 1))
    validation = history[history.split == "validation"].step
    np.testing.assert_array_equal(validation, np.arange(4, steps + 1, 4))
    assert sorted(p.name for p in folder.iterdir()) == [
        f"ckpt-{s:09d}{x}" for s in (steps - 4, steps - 2, steps) for x in (".json", ".npz")
    ]


# ------------------------------------------------------------------------------------------
# Numpy batches: shapes, seeded shuffling, resumable streams, in-order evaluation.


def _numbered(n: int) -> np.ndarray:
    """(n, 64, 27) windows whose every value is the window's index, so batches show the order."""
    index = np.arange(n, dtype=np.float32)[:, None, None]
    return np.broadcast_to(index, (n, WINDOW_STEPS, GROOVE_DEPTH))


def _order(stream, batches: int) -> list:
    return [inputs[:, 0, 0].astype(int) for inputs, _ in itertools.islice(stream, batches)]


def test_train_batches_batches_pairs():
    windows = _numbered(20)
    inputs, outputs = next(train_batches(windows, windows + 100, 8, seed=0))
    assert inputs.shape == (8, WINDOW_STEPS, GROOVE_DEPTH) and inputs.dtype == "float32"
    np.testing.assert_array_equal(outputs, inputs + 100)


def test_train_batches_each_window_once_per_pass():
    windows = _numbered(24)  # three batches per pass
    first_pass = np.concatenate(_order(train_batches(windows, windows, 8, seed=0), 3))
    np.testing.assert_array_equal(np.sort(first_pass), np.arange(24))
    assert not np.array_equal(first_pass, np.arange(24))


def test_train_batches_repeats_with_a_new_order():
    windows = _numbered(24)
    batches = _order(train_batches(windows, windows, 8, seed=0), 6)
    assert not np.array_equal(np.concatenate(batches[:3]), np.concatenate(batches[3:]))


def test_train_batches_start_step_continues_the_stream():
    windows = _numbered(30)  # batches straddle passes: 30 is not a multiple of 8
    unbroken = _order(train_batches(windows, windows, 8, seed=3), 12)
    resumed = _order(train_batches(windows, windows, 8, seed=3, start_step=7), 5)
    for expected, got in zip(unbroken[7:], resumed):
        np.testing.assert_array_equal(got, expected)


def test_train_batches_seed_sets_the_order():
    windows = _numbered(30)
    same = [_order(train_batches(windows, windows, 8, seed=1), 3) for _ in range(2)]
    other = _order(train_batches(windows, windows, 8, seed=2), 3)
    np.testing.assert_array_equal(np.concatenate(same[0]), np.concatenate(same[1]))
    assert not np.array_equal(np.concatenate(same[0]), np.concatenate(other))


def test_train_batches_follow_the_pass_orders():
    windows = _numbered(12)
    stream = np.concatenate(_order(train_batches(windows, windows, 8, seed=5), 3))
    expected = np.concatenate([pass_order(12, 5, 0), pass_order(12, 5, 1)])
    np.testing.assert_array_equal(stream, expected)


def test_eval_windows_in_order_drop_remainder():
    windows = _numbered(20)
    inputs, outputs = eval_windows(windows, windows + 1, 8)
    np.testing.assert_array_equal(inputs[:, 0, 0], np.arange(16))
    np.testing.assert_array_equal(outputs, inputs + 1)


def test_eval_windows_keep_at_most_max_batches():
    windows = _numbered(40)
    inputs, _ = eval_windows(windows, windows, 8, max_batches=2)
    np.testing.assert_array_equal(inputs[:, 0, 0], np.arange(16))


def test_train_batches_rejects_mismatched_arrays():
    with pytest.raises(TrainError, match="one shape"):
        train_batches(_numbered(20), _numbered(21), 8, seed=0)


def test_eval_windows_reject_fewer_windows_than_a_batch():
    with pytest.raises(TrainError, match="lower the batch size"):
        eval_windows(_numbered(5), _numbered(5), 8)


@pytest.fixture
def midi_dir(tmp_path, monkeypatch):
    """write_groove_files' folder (a corrupt file among them) with one take for validation."""
    folder = tmp_path / "my_drums"
    write_groove_files(folder)
    (folder / "split.csv").write_text(
        "midi_filename,split\n16_bars.mid,train\n17_bars.mid,validation\n"
    )
    monkeypatch.setattr(data, "DEFAULT_CACHE_DIR", tmp_path / "cache")
    return folder


def test_cli_trains_a_tiny_config_on_a_midi_folder(midi_dir, tmp_path, capsys):
    out = tmp_path / "run"
    train.main(
        [
            "--config",
            "tiny",
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--midi-dir",
            str(midi_dir),
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "corrupt.mid" in printed and "corrupt file" in printed
    assert "waltz.mid" in printed and "not 4/4" in printed
    assert runs.latest_checkpoint(out).name == "ckpt-000000002.npz"
    history = pd.read_csv(out / HISTORY_FILE)
    assert history.split.tolist()[-2:] == ["train", "validation"]
    assert np.isfinite(history.loss).all()


def test_cli_midi_folder_too_small_for_its_batch_and_validation_still_trains(
    midi_dir, tmp_path, capsys
):
    """Two usable files (16 and 17 bars: 27 windows) all train, at a batch lowered to 27."""
    (midi_dir / "split.csv").write_text("midi_filename,split\n16_bars.mid,train\n")
    out = tmp_path / "run"
    argv = ["--config", "tiny", "--steps", "2", "--batch-size", "64", "--midi-dir", str(midi_dir)]
    train.main([*argv, "--out", str(out)])
    printed = capsys.readouterr().out
    assert "with under 3 such files, all train, without validation" in printed
    assert "batch size lowered from 64 to 27: the train split has no more windows" in printed
    assert "no validation windows: this run trains without validation rows" in printed
    history = pd.read_csv(out / HISTORY_FILE)
    assert set(history.split) == {"train"} and history.step.max() == 2
    assert runs.latest_checkpoint(out).name == "ckpt-000000002.npz"


def test_batches_from_a_memory_mapped_cache_are_those_of_the_array(tmp_path):
    """A cache folder read memory-mapped, inputs derived per batch (note dropout on), gives each
    of two processes its rows of the very batches the in-memory corpus gives one process."""
    config = get_config("tiny", max_note_dropout_probability=0.5)
    window_shape = TRAIN.shape[1:]
    data.save_split(tmp_path / "split", [TRAIN[:20], TRAIN[20:]], [], {}, window_shape)
    mapped = data.load_split(tmp_path / "split").outputs
    assert isinstance(mapped, np.memmap)
    whole = encoder_inputs(TRAIN, config.converter, config.train.seed), TRAIN
    alone = list(itertools.islice(train_batches(*whole, 16, seed=4, start_step=3), 6))
    for process in range(2):
        rows = slice(8 * process, 8 * (process + 1))
        stream = train_batches(*training._pairs(mapped, config), 16, 4, 3, rows)
        for (inputs, outputs), (expected_inputs, expected_outputs) in zip(stream, alone):
            assert type(inputs) is np.ndarray and type(outputs) is np.ndarray
            np.testing.assert_array_equal(inputs, expected_inputs[rows])
            np.testing.assert_array_equal(outputs, expected_outputs[rows])
        evaluated = eval_windows(*training._pairs(mapped, config), 16, 2, rows)
        expected = eval_windows(*whole, 16, 2)
        for ours, all_rows in zip(evaluated, expected):
            np.testing.assert_array_equal(
                ours, all_rows.reshape(2, 16, 64, 27)[:, rows].reshape(16, 64, 27)
            )
