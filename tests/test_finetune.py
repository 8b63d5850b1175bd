"""Training on a folder of the user's MIDI files, and fine-tuning from a run or a bundled model."""

import numpy as np
import pandas as pd
import pytest
from conftest import random_grooves, write_groove_files

from helpers import bundles, data, runs
from helpers import train as training
from helpers.config import CONFIG_FILE, get_config
from helpers.model import GrooVAE
from helpers.runs import HISTORY_FILE

TRAIN, VALIDATION = random_grooves(48), random_grooves(16, seed=1)  # decoder-target windows
WINDOWS = (TRAIN, VALIDATION)


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


def _weights(model):
    return [np.asarray(v) for v in model.trainable_variables]


def test_cli_trains_a_tiny_config_on_a_midi_folder(midi_dir, tmp_path, capsys):
    out = tmp_path / "run"
    training.main(
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
    training.main([*argv, "--out", str(out)])
    printed = capsys.readouterr().out
    assert "with under 3 such files, all train, without validation" in printed
    assert "batch size lowered from 64 to 27: the train split has no more windows" in printed
    assert "no validation windows: this run trains without validation rows" in printed
    history = pd.read_csv(out / HISTORY_FILE)
    assert set(history.split) == {"train"} and history.step.max() == 2
    assert runs.latest_checkpoint(out).name == "ckpt-000000002.npz"


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
    with pytest.raises(bundles.PretrainedError, match="no bundled model 'groovae_4bar'"):
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
    from helpers.backends import MagentaDecay, train_on_batch

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
    batches = [training._pairs(g, config) for g in np.split(TRAIN[:32], 2)]
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
