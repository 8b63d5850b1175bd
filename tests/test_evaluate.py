"""Tests for helpers/evaluate.py: a (tiny) model run over grooves and scored."""

import numpy as np
import pytest
from conftest import random_grooves

from helpers import evaluate
from helpers.constants import HITS


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    from helpers.config import get_config
    from helpers.model import GrooVAE

    keras.utils.set_random_seed(0)
    return GrooVAE(get_config("tiny"))


def test_magenta_eval_losses_r_loss_is_64_per_step_sums(tiny_model):
    grooves = random_grooves(10, 11)
    losses = evaluate.magenta_eval_losses(tiny_model, grooves, grooves, batch_size=4)
    per_step = losses["hits_loss"] + losses["velocities_loss"] + losses["offsets_loss"]
    np.testing.assert_allclose(losses["r_loss"], 64 * per_step, rtol=1e-5)
    np.testing.assert_allclose(
        losses["loss"], losses["r_loss"] + losses["kl_beta"] * losses["kl_loss"], rtol=1e-6
    )
    assert losses["kl_bits"] > 0 and losses["kl_beta"] == pytest.approx(0.2)


def test_greedy_reconstructions_are_deterministic_binary_hits(tiny_model):
    grooves = random_grooves(5, 12)
    first = evaluate.greedy_reconstructions(tiny_model, grooves, batch_size=2)
    again = evaluate.greedy_reconstructions(tiny_model, grooves, batch_size=2)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (5, 64, 27) and set(np.unique(first[..., HITS])) <= {0.0, 1.0}


def test_evaluate_model_tiny_reports_every_section(tiny_model):
    metrics = evaluate.evaluate_model(
        tiny_model, random_grooves(12, 13), random_grooves(30, 14), num_samples=6
    )
    assert set(metrics["samples"]) == {"temperature_0.5", "temperature_1.0"}
    assert set(metrics["baselines"]) == {"untrained", "marginal"}
    assert 0 <= metrics["reconstruction"]["hit_accuracy"] <= 1
    for report in [*metrics["samples"].values(), *metrics["baselines"].values()]:
        assert 0 <= report["novelty"]["nearest_hamming_mean"] <= 576
        assert np.isfinite(report["distance_to_real"]["hit_density_mean"])
    assert metrics["num_test_windows"] == 12 and np.isfinite(metrics["eval"]["loss"])


def test_evaluate_run_writes_metrics_json(tiny_run, tmp_path, monkeypatch):
    import json
    import shutil

    import pandas as pd

    from helpers import data

    grooves = random_grooves(24, 15)
    run_dir = shutil.copytree(tiny_run, tmp_path / "run")  # the shared run stays as trained

    def fake_split(split, data_dir=None, converter=None):  # GMD stays out of the unit tests
        meta = pd.DataFrame({"bpm": np.full(len(grooves), 100)})
        return data.GrooveSplit(outputs=grooves, meta=meta, summary={})

    monkeypatch.setattr(data, "load_groove_4bar_split", fake_split)
    metrics = evaluate.evaluate_run(run_dir, num_samples=4)
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
    assert metrics["split"] == "test" and metrics["num_train_windows"] == 24
    assert "eval r_loss" in evaluate.metrics_table(metrics)


@pytest.mark.parametrize("run_flag", ["--run-dir", "--checkpoint"])
def test_main_passes_its_flags_down(monkeypatch, capsys, run_flag, tmp_path):
    called = {}
    run, gmd = tmp_path / "run", tmp_path / "gmd"
    for folder in (run, gmd):
        folder.mkdir()
    (run / "config.json").write_text("{}")  # what the parser looks for; the rest is faked

    def fake_run(run_dir, split, data_dir, num_samples, seed):
        called.update(
            run_dir=run_dir, split=split, data_dir=data_dir, num_samples=num_samples, seed=seed
        )
        return {"r_loss": 1.0}

    monkeypatch.setattr(evaluate, "evaluate_run", fake_run)
    monkeypatch.setattr(evaluate, "metrics_table", lambda metrics: f"table of {sorted(metrics)}")
    argv = [
        run_flag,
        str(run),
        "--split",
        "validation",
        "--num_samples",
        "7",
        "--data-dir",
        str(gmd),
    ]
    metrics = evaluate.main(argv)
    assert metrics == {"r_loss": 1.0} and capsys.readouterr().out == "table of ['r_loss']\n"
    assert called == {
        "run_dir": str(run),
        "split": "validation",
        "data_dir": str(gmd),
        "num_samples": 7,
        "seed": 0,
    }
