"""Tests for helpers/runs.py: checkpoints that survive faults, restoring a run, and starting from a
run or a bundled model (fine-tuning)."""

import hashlib
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import (
    TRAIN_WINDOWS,
    VALIDATION_WINDOWS,
    train_every_step,
)

from helpers import bundles, runs, training
from helpers.backends import make_optimizer, train_on_batch
from helpers.config import CONFIG_FILE, get_config
from helpers.model import GrooVAE
from helpers.runs import HISTORY_FILE

TRAIN, VALIDATION = TRAIN_WINDOWS, VALIDATION_WINDOWS  # decoder-target windows
WINDOWS = (TRAIN, VALIDATION)


def _weights(model):
    return [np.asarray(v) for v in model.trainable_variables]


def test_start_from_a_run_copies_its_weights(tiny_run):
    model = GrooVAE(get_config("tiny"))
    runs.start_from(model, tiny_run)
    for ours, theirs in zip(_weights(model), _weights(runs.restore_model(tiny_run))):
        np.testing.assert_array_equal(ours, theirs)


def test_fine_tune_fresh_optimizer_and_schedule_close_to_its_start(tiny_run, tmp_path):
    options = training.TrainOptions(log_every_steps=1, progress=False, init_from=tiny_run)
    history = training.train(
        get_config("tiny"), tmp_path / "tuned", steps=1, windows=WINDOWS, options=options
    )
    assert history.learning_rate.iloc[0] == pytest.approx(get_config("tiny").train.learning_rate)
    assert runs.latest_checkpoint(tmp_path / "tuned").name == "ckpt-000000001.npz"
    start = _weights(runs.restore_model(tiny_run))
    tuned = _weights(runs.restore_model(tmp_path / "tuned"))
    fresh = _weights(GrooVAE(get_config("tiny")))
    # One Adam step moves a weight by about the learning rate; a new model is far away.
    assert max(np.abs(a - b).max() for a, b in zip(tuned, start)) < 3e-3
    assert max(np.abs(a - b).max() for a, b in zip(fresh, start)) > 0.05


def test_fine_tune_resumes_its_own_checkpoint_not_the_start(tiny_run, tmp_path):
    config = get_config("tiny")
    tuned = training.TrainOptions(progress=False, init_from=tiny_run)
    training.train(config, tmp_path, steps=1, windows=WINDOWS, options=tuned)
    elsewhere = training.TrainOptions(progress=False, init_from="nowhere")
    history = training.train(config, tmp_path, steps=2, windows=WINDOWS, options=elsewhere)
    assert history.step.max() == 2


def test_fine_tune_from_the_bundled_model(tiny_run, tmp_path, monkeypatch):
    root = tmp_path / "pretrained"
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / CONFIG_FILE).write_text((tiny_run / CONFIG_FILE).read_text())
    bundles.save_weights(runs.restore_model(tiny_run), root / "tiny" / "weights.npz", 2)
    monkeypatch.setattr(runs, "bundle_dir", lambda name: bundles.bundle_dir(name, root))
    model = GrooVAE(get_config("tiny"))
    runs.start_from(model, "pretrained:tiny")
    for ours, theirs in zip(_weights(model), _weights(runs.restore_model(tiny_run))):
        np.testing.assert_array_equal(ours, theirs.astype(np.float16).astype(np.float32))
    with pytest.raises(bundles.BundleError, match="no bundled model 'groovae_4bar'"):
        runs.start_from(model, "pretrained")


def test_start_from_a_folder_that_is_no_run_says_so(tmp_path):
    with pytest.raises(runs.RunError, match="has no config.json"):
        runs.start_from(GrooVAE(get_config("tiny")), tmp_path)


def test_start_from_a_model_of_other_sizes_is_refused(tiny_run):
    bigger = GrooVAE(get_config("tiny", z_size=16))
    with pytest.raises(runs.RunError, match="holds a tiny model of other sizes than 'tiny'"):
        runs.start_from(bigger, tiny_run)


def _first_update_per_learning_rate(model, batch, step):
    """Median |weight change| / learning rate over the weights one training step moves."""
    from helpers.backends import MagentaDecay

    before = _weights(model)
    train_on_batch(model, *batch)
    t = model.config.train
    rate = float(MagentaDecay(t.learning_rate, t.decay_rate, t.min_learning_rate)(step))
    moved = np.concatenate([np.abs(a - b).ravel() for a, b in zip(_weights(model), before)])
    return np.median(moved[moved > 0]) / rate


@pytest.mark.parametrize("estimated", [True, False])
def test_re_estimated_moments_keep_the_first_late_step_small(tiny_run, estimated):
    from helpers.backends import estimate_adam_moments, make_optimizer

    config, step = get_config("tiny"), 1500
    model = runs.restore_model(tiny_run)
    model.compile(optimizer=make_optimizer(config.train))
    model.optimizer.build(model.trainable_variables)
    batches = [tuple(map(np.asarray, training._pairs(g, config))) for g in np.split(TRAIN[:32], 2)]
    if estimated:
        estimate_adam_moments(model, batches, step)
        assert all(not np.asarray(m).any() for m in model.optimizer._momentums)
        assert all(np.asarray(v).any() for v in model.optimizer._velocities)
    else:  # what a bare step counter with fresh moments does: steps several times too large
        model.optimizer.iterations.assign(step)
    assert int(np.asarray(model.optimizer.iterations)) == step
    ratio = _first_update_per_learning_rate(model, batches[0], step)
    # Adam's first moment is a tenth of the gradient after one update: about 0.1 learning rates.
    assert (0.03 < ratio < 0.3) if estimated else ratio > 1.0


def test_continue_step_carries_a_run_on_at_its_step(tiny_run, tmp_path, capsys):
    config = get_config("tiny")
    source = pd.read_csv(tiny_run / HISTORY_FILE)
    options = training.TrainOptions(
        log_every_steps=1, progress=False, init_from=tiny_run, continue_step=True
    )
    history = training.train(config, tmp_path / "on", steps=4, windows=WINDOWS, options=options)
    assert "at step 2: Adam's moments re-estimated on 2 batches" in capsys.readouterr().out
    assert runs.latest_checkpoint(tmp_path / "on").name == "ckpt-000000004.npz"
    pd.testing.assert_frame_equal(history.iloc[: len(source)], source)
    t = config.train
    # The schedule goes on from step 2 (a row holds the rate of its step's update, step - 1).
    rates = history[history.split.eq("train") & history.step.gt(2)].learning_rate
    expected = [
        (t.learning_rate - t.min_learning_rate) * t.decay_rate**s + t.min_learning_rate
        for s in (2, 3)
    ]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)


def test_continue_step_refuses_another_config(tiny_run, tmp_path):
    options = training.TrainOptions(
        batch_size=8, progress=False, init_from=tiny_run, continue_step=True
    )
    with pytest.raises(training.TrainError, match=r"differs in \['train.batch_size'\]"):
        training.train(
            get_config("tiny"), tmp_path / "on", steps=4, windows=WINDOWS, options=options
        )


def test_restore_model_reproduces_the_logged_validation(tiny_config, tmp_path):
    history = train_every_step(tiny_config, tmp_path, steps=10)
    model = runs.restore_model(tmp_path)
    assert model.config == get_config("tiny", num_steps=10)
    model.compile(optimizer=make_optimizer(model.config.train))
    model.reset_eval_noise()
    inputs, targets = VALIDATION, VALIDATION
    results = model.evaluate(inputs, targets, batch_size=16, verbose=0, return_dict=True)
    logged = history[history.split == "validation"].iloc[-1]
    np.testing.assert_allclose(results["r_loss"], logged["losses/r_loss"], rtol=1e-5)
    np.testing.assert_allclose(results["kl_bits"], logged["losses/kl_bits"], rtol=1e-5)


def test_restore_model_without_checkpoint(tmp_path):
    with pytest.raises(runs.RunError, match="no config.json"):
        runs.restore_model(tmp_path)


@pytest.mark.parametrize("mixed_precision, precision", [(True, "bfloat16"), (False, "float32")])
def test_run_config_auto_keeps_the_precision_of_a_run_saved_before_float16(
    tmp_path, mixed_precision, precision
):
    values = get_config("tiny").to_dict()
    del values["train"]["precision"], values["train"]["loss_scale_growth_steps"]
    values["train"]["mixed_precision"] = mixed_precision
    (tmp_path / training.CONFIG_FILE).write_text(json.dumps(values))
    config = runs.run_config("tiny", tmp_path, "auto", hardware="not consulted")
    assert config == get_config("tiny", precision=precision)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A tiny run trained 6 steps, checkpoints at 2, 4 and 6 (each with its record)."""
    run = tmp_path_factory.mktemp("saved") / "run"
    config = get_config("tiny", checkpoint_every_steps=2, eval_every_steps=2)
    train_every_step(config, run, steps=6)
    return run


def _copy(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy, copy / runs.CHECKPOINT_DIR / "ckpt-000000006.npz"


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_checkpoints_are_saved_with_a_record_of_their_size_and_sha256(saved_run):
    folder = saved_run / runs.CHECKPOINT_DIR
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"ckpt-{s:09d}{x}" for s in (2, 4, 6) for x in (".json", ".npz")]
    record = json.loads((folder / "ckpt-000000006.json").read_text())
    newest = folder / "ckpt-000000006.npz"
    assert record["step"] == 6 and record["bytes"] == newest.stat().st_size
    assert record["sha256"] == hashlib.sha256(newest.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "damage, why",
    [
        (_truncate, r"[\d,]+ of its [\d,]+ bytes \(cut short, or still syncing\)"),
        (_flip_a_byte, r"damaged \(its bytes do not match"),
        (lambda p: p.with_suffix(".json").write_text("{"), "its record .* is damaged"),
        (
            lambda p: (_truncate(p), p.with_suffix(".json").unlink()),
            r"no ckpt-000000006.json and it does not read back",
        ),
        (
            lambda p: (_flip_a_byte(p), p.with_suffix(".json").unlink()),
            r"no ckpt-000000006.json and it does not read back",
        ),
    ],
    ids=["truncated", "bit flip", "damaged record", "truncated, no record", "bit flip, no record"],
)
def test_a_broken_newest_checkpoint_is_skipped_for_the_newest_whole_one(
    saved_run, tmp_path, capsys, damage, why
):
    run, newest = _copy(saved_run, tmp_path)
    damage(newest)
    assert runs.latest_checkpoint(run).name == "ckpt-000000004.npz"
    (line,) = capsys.readouterr().out.splitlines()
    assert re.fullmatch(f"skipping checkpoint {re.escape(str(newest))}: {why}.*", line), line
    restored = runs.restore_model(run)
    expected = GrooVAE(restored.config)
    runs.load_checkpoint(expected, newest.with_name("ckpt-000000004.npz"), with_optimizer=False)
    for ours, theirs in zip(restored.weights, expected.weights):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    with pytest.raises(runs.RunError, match="cannot be used"):
        runs.restore_model(run, newest)


def test_a_whole_checkpoint_without_its_record_is_still_used(saved_run, tmp_path, capsys):
    """Its record never written (killed in between) or not yet synced, or a run saved before
    records were kept: the zip's own CRCs show it whole."""
    run, newest = _copy(saved_run, tmp_path)
    newest.with_suffix(".json").unlink()
    assert runs.latest_checkpoint(run) == newest and capsys.readouterr().out == ""


def test_a_record_without_its_checkpoint_is_ignored_then_cleaned_up(saved_run, tmp_path):
    run, newest = _copy(saved_run, tmp_path)
    newest.unlink()
    (newest.parent / ".ckpt-000000008.npz.partial.npz").write_bytes(b"PK")  # a save cut short
    (newest.parent / "ckpt-000000005.json").write_text("{}")  # a record left alone
    assert runs.latest_checkpoint(run).name == "ckpt-000000004.npz"
    config = get_config("tiny", checkpoint_every_steps=2, eval_every_steps=2)
    history = train_every_step(config, run, steps=6)  # resumes at 4, saves 6 again
    assert sorted(p.name for p in newest.parent.iterdir()) == [
        f"ckpt-{s:09d}{x}" for s in (2, 4, 6) for x in (".json", ".npz")
    ]
    np.testing.assert_array_equal(history[history.split == "train"].step, np.arange(1, 7))


def test_resume_skips_a_broken_newest_checkpoint(saved_run, tmp_path, capsys):
    run, newest = _copy(saved_run, tmp_path)
    _truncate(newest)
    config = get_config("tiny", checkpoint_every_steps=2, eval_every_steps=2)
    history = train_every_step(config, run, steps=8)
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith(f"skipping checkpoint {newest}: ")
    assert re.match(r"tiny: float32 \(.+\), batch 16, step 4 of 8; ", said[1]), said[1]
    np.testing.assert_array_equal(history[history.split == "train"].step, np.arange(1, 9))
    np.testing.assert_array_equal(history[history.split == "validation"].step, [2, 4, 6, 8])
    assert runs.checkpoint_problem(newest) is None  # saved again, whole


def test_no_whole_checkpoint_refuses_rather_than_starting_over(saved_run, tmp_path):
    run, _ = _copy(saved_run, tmp_path)
    for path in runs.checkpoint_paths(run):
        _truncate(path)
    with pytest.raises(runs.RunError, match="none of the checkpoints .* is whole"):
        runs.restore_model(run)
    config = get_config("tiny", checkpoint_every_steps=2, eval_every_steps=2)
    with pytest.raises(training.TrainError, match="no checkpoint in .* is whole"):
        train_every_step(config, run, steps=8)
    assert len(pd.read_csv(run / runs.HISTORY_FILE)) == 9  # its history kept: 6 train, 3 val
