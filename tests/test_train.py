"""Optimizer and decay, the training loop, checkpoints, resuming and restoring (spec §4, §6)."""

import json
import re

import keras
import numpy as np
import pytest
from conftest import random_grooves

from helpers import runs
from helpers import train as training
from helpers.backends import ParallelError, make_optimizer, train_on_batch
from helpers.config import get_config
from helpers.model import GrooVAE
from helpers.runs import HISTORY_COLUMNS

DATA = {"train_data": random_grooves(48), "validation_data": random_grooves(16, seed=1)}


def _train(config, out_dir, steps, **kwargs):
    return training.train(
        config, out_dir, steps=steps, log_every_steps=1, progress=False, **DATA, **kwargs
    )


def test_train_step_clip_to_zero_skips_the_update_but_counts_the_step():
    keras.utils.set_random_seed(0)
    model = GrooVAE(get_config("tiny", grad_norm_clip_to_zero=1e-6))
    model.compile(optimizer=make_optimizer(model.config.train))
    before = [v.numpy() for v in model.trainable_variables]
    logs = model.train_on_batch(DATA["train_data"][:16], DATA["train_data"][:16], return_dict=True)
    assert float(logs["global_norm"]) > 1e-6
    assert int(model.optimizer.iterations) == 1
    for old, new in zip(before, model.trainable_variables):
        np.testing.assert_array_equal(new.numpy(), old)  # fresh Adam moments: zero step


def test_train_step_mixed_precision_is_finite():
    keras.utils.set_random_seed(0)
    model = GrooVAE(get_config("tiny", mixed_precision=True))
    model.compile(optimizer=make_optimizer(model.config.train))
    batch = DATA["train_data"][:16]
    logs = [model.train_on_batch(batch, batch, return_dict=True) for _ in range(2)]
    assert all(np.isfinite(float(v)) for v in logs[-1].values())


def test_train_on_batch_returns_this_steps_values_on_every_keras_version():
    """History means are taken over per-step logs, so no call may carry an earlier step's terms
    (Keras 3.13's train_on_batch keeps its metrics running; later versions reset them)."""
    keras.utils.set_random_seed(0)
    model = GrooVAE(get_config("tiny"))
    model.compile(optimizer=make_optimizer(model.config.train))
    batch = DATA["train_data"][:16]
    for _ in range(3):
        train_on_batch(model, batch, batch)
        for tracker in model.trackers.values():
            assert float(tracker.count) in (0.0, 1.0), tracker.name


def test_train_writes_config_history_and_checkpoints(tiny_config, tmp_path, capsys):
    history = _train(tiny_config, tmp_path, steps=40)
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith("tiny: float32 precision, batch 16, step 0 of 40")
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
    kept = sorted(p.name for p in (tmp_path / runs.CHECKPOINT_DIR).iterdir())
    assert kept == [f"ckpt-{s:09d}.npz" for s in (20, 30, 40)]  # the newest 3 kept
    assert training.latest_checkpoint(tmp_path).name == "ckpt-000000040.npz"


def test_eta_line():
    line = training.eta_line(6.1, 2996, now=0.0)
    assert line == "6.1 s/step: the remaining 2,996 steps take about 5 h 05 min (until 05:04 UTC)"


def test_train_resume_matches_unbroken_run(tiny_config, tmp_path):
    config = get_config("tiny", eval_every_steps=5, checkpoint_every_steps=5)
    unbroken = _train(config, tmp_path / "unbroken", steps=12)
    _train(config, tmp_path / "resumed", steps=7)  # a run stopped at step 7 ...
    resumed = _train(config, tmp_path / "resumed", steps=12)  # ... and continued to 12
    a, b = (h[h.split == "train"].reset_index(drop=True) for h in (unbroken, resumed))
    np.testing.assert_array_equal(b.step, np.arange(1, 13))
    for column in ("loss", "losses/kl_bits", "global_norm", "learning_rate"):
        np.testing.assert_allclose(b[column], a[column], rtol=1e-5, err_msg=column)
    a, b = (h[h.split == "validation"].set_index("step") for h in (unbroken, resumed))
    np.testing.assert_allclose(b.loc[a.index, "loss"], a["loss"], rtol=1e-5)


def test_train_rows_are_means_over_their_logging_interval(tiny_config, tmp_path):
    config = get_config("tiny", eval_every_steps=10, checkpoint_every_steps=10)
    every_step = training.train(
        config, tmp_path / "each", steps=10, log_every_steps=1, progress=False, **DATA
    )
    every_five = training.train(
        config, tmp_path / "fives", steps=10, log_every_steps=5, progress=False, **DATA
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
    _train(tiny_config, tmp_path, steps=14)  # checkpoints at 10 and 14
    (tmp_path / runs.CHECKPOINT_DIR / "ckpt-000000014.npz").unlink()  # as if killed at 13
    history = _train(tiny_config, tmp_path, steps=15)
    train_rows = history[history.split == "train"]
    np.testing.assert_array_equal(train_rows.step, np.arange(1, 16))


def test_train_refuses_a_directory_it_did_not_write(tiny_config, tmp_path):
    (tmp_path / "notes.txt").write_text("someone else's")
    with pytest.raises(training.TrainError, match="no config.json"):
        _train(tiny_config, tmp_path, steps=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_train_refuses_a_run_of_another_config(tiny_config, tmp_path):
    _train(tiny_config, tmp_path, steps=1)
    with pytest.raises(training.TrainError, match="differs in"):
        _train(get_config("tiny", z_size=4), tmp_path, steps=2)


def test_restore_model_reproduces_the_logged_validation(tiny_config, tmp_path):
    history = _train(tiny_config, tmp_path, steps=10)
    model = training.restore_model(tmp_path)
    assert model.config == get_config("tiny", num_steps=10)
    model.compile(optimizer=make_optimizer(model.config.train))
    model.reset_eval_noise()
    inputs, targets = DATA["validation_data"], DATA["validation_data"]
    results = model.evaluate(inputs, targets, batch_size=16, verbose=0, return_dict=True)
    logged = history[history.split == "validation"].iloc[-1]
    np.testing.assert_allclose(results["r_loss"], logged["losses/r_loss"], rtol=1e-5)
    np.testing.assert_allclose(results["kl_bits"], logged["losses/kl_bits"], rtol=1e-5)


def test_restore_model_without_checkpoint(tmp_path):
    with pytest.raises(runs.RunError, match="no config.json"):
        runs.restore_model(tmp_path)


def test_main_cli_continues_to_total_steps(tmp_path, monkeypatch):
    splits = {"train": DATA["train_data"], "validation": DATA["validation_data"]}
    monkeypatch.setattr(training, "load_groove_4bar", lambda split, *a, **k: splits[split])
    training.main(["--config", "tiny", "--out", str(tmp_path), "--batch-size", "8", "--steps", "2"])
    # --run-dir is the spelling now, --out the one users typed before; Magenta's --num_steps too.
    training.main(
        ["--config", "tiny", "--run-dir", str(tmp_path), "--batch-size", "8", "--num_steps", "3"]
    )
    history = json.loads((tmp_path / training.CONFIG_FILE).read_text())
    assert history["train"]["batch_size"] == 8 and history["train"]["num_steps"] == 3
    assert training.latest_checkpoint(tmp_path).name == "ckpt-000000003.npz"


def test_main_cli_precision_choice(tmp_path, monkeypatch):
    splits = {"train": DATA["train_data"], "validation": DATA["validation_data"]}
    monkeypatch.setattr(training, "load_groove_4bar", lambda split, *a, **k: splits[split])
    args = ["--config", "tiny", "--out", str(tmp_path), "--steps", "1", "--precision", "bfloat16"]
    training.main(args)
    assert json.loads((tmp_path / training.CONFIG_FILE).read_text())["train"]["mixed_precision"]
    assert training.restore_model(tmp_path).dtype_policy.name == "mixed_bfloat16"


@pytest.mark.parametrize("started, hardware", [("float32", "bfloat16"), ("bfloat16", "float32")])
def test_main_cli_auto_precision_continues_a_run_in_its_own(
    tmp_path, monkeypatch, started, hardware
):
    splits = {"train": DATA["train_data"], "validation": DATA["validation_data"]}
    monkeypatch.setattr(training, "load_groove_4bar", lambda split, *a, **k: splits[split])
    auto = lambda choice, device=None: hardware if choice == "auto" else choice  # noqa: E731
    monkeypatch.setattr(training, "resolve_precision", auto)
    args = ["--config", "tiny", "--out", str(tmp_path)]
    training.main([*args, "--steps", "1", "--precision", started])
    training.main([*args, "--steps", "2"])  # auto, on hardware that deserves the other precision
    saved = json.loads((tmp_path / training.CONFIG_FILE).read_text())["train"]
    assert saved["mixed_precision"] == (started == "bfloat16") and saved["num_steps"] == 2


@pytest.mark.parametrize(
    "devices, batch_size, message", [(2, 9, "does not split"), (4, 16, "lower --devices")]
)
def test_main_cli_devices_it_cannot_use_fail_before_any_write(
    devices, batch_size, message, tmp_path
):
    out = tmp_path / "run"
    args = ["--config", "tiny", "--out", str(out), "--steps", "1", "--batch-size", str(batch_size)]
    with pytest.raises(ParallelError, match=message):
        training.main([*args, "--devices", str(devices)])
    assert not out.exists()


def test_pairs_humanize_inputs_keep_hits_only():
    targets = DATA["train_data"]
    inputs, outputs = training._pairs(targets, get_config("tiny", humanize=True))
    np.testing.assert_array_equal(outputs, targets)
    np.testing.assert_array_equal(inputs[..., :9], targets[..., :9])
    np.testing.assert_array_equal(inputs[..., 9:], 0.0)
