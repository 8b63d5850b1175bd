"""Tests for helpers/evaluate.py on constructed grooves with known answers."""

import numpy as np
import pytest
from conftest import random_grooves

from helpers import evaluate
from helpers.constants import HITS, OFFSETS, VELOCITIES


def test_reconstruction_metrics_perfect():
    true = random_grooves(4, 0)
    scores = evaluate.reconstruction_metrics(true, true.copy())
    assert scores["hit_accuracy"] == 1.0 and scores["f1"] == 1.0
    assert scores["velocity_mae"] == 0.0 and scores["timing_mae_ms"] == 0.0
    assert all(d["f1"] == 1.0 for d in scores["per_drum"].values())


def test_reconstruction_metrics_known_offset_shift_gives_exact_ms():
    true = random_grooves(3, 1)
    pred = true.copy()
    pred[..., OFFSETS] += 0.2 * true[..., HITS]
    qpm = np.array([120.0, 60.0, 100.0])
    scores = evaluate.reconstruction_metrics(true, pred, qpm=qpm)
    # 0.2 offset units = 0.1 step; step = 60 / qpm / 4 s
    hits_per_window = true[..., HITS].sum(axis=(1, 2))
    expected = np.sum(hits_per_window * 0.1 * 60 / qpm / 4 * 1000) / hits_per_window.sum()
    np.testing.assert_allclose(scores["timing_mae_ms"], expected, rtol=1e-5)
    np.testing.assert_allclose(
        evaluate.reconstruction_metrics(true[:1], pred[:1])["timing_mae_ms"], 12.5, rtol=1e-5
    )


def test_reconstruction_metrics_velocity_mae_in_midi_units():
    true = random_grooves(2, 2)
    pred = true.copy()
    pred[..., VELOCITIES] = np.clip(true[..., VELOCITIES] - 10 / 127, 0, 1)
    pred[..., VELOCITIES] *= true[..., HITS]
    scores = evaluate.reconstruction_metrics(true, pred)
    hits = true[..., HITS] > 0.5
    expected = np.mean(np.minimum(true[..., VELOCITIES][hits], 10 / 127)) * 127
    np.testing.assert_allclose(scores["velocity_mae"], expected, rtol=1e-5)


def test_reconstruction_metrics_precision_recall_counts():
    true = np.zeros((1, 64, 27), np.float32)
    pred = np.zeros_like(true)
    true[0, :4, 0] = 1  # kick on steps 0-3
    pred[0, 2:8, 0] = 1  # predicted on 2-7: 2 true positives, 4 false positives, 2 misses
    scores = evaluate.reconstruction_metrics(true, pred)
    kick = scores["per_drum"]["kick"]
    np.testing.assert_allclose([kick["precision"], kick["recall"], kick["f1"]],
                               [2 / 6, 2 / 4, 4 / 10], rtol=1e-6)
    np.testing.assert_allclose(scores["hit_accuracy"], 1 - 6 / (64 * 9), rtol=1e-6)
    assert np.isnan(scores["per_drum"]["snare"]["precision"])


def test_reconstruction_metrics_bad_shape_raises():
    with pytest.raises(evaluate.EvaluateError, match=r"\(n, 64, 27\)"):
        evaluate.reconstruction_metrics(np.zeros((64, 27)), np.zeros((64, 27)))


def test_groove_statistics_constructed():
    grooves = np.zeros((2, 64, 27), np.float32)
    grooves[:, ::4, 0] = 1  # kick on every beat: 4 hits a bar
    grooves[:, ::4, VELOCITIES.start] = np.array([0.5, 1.0])[:, None]
    grooves[:, ::4, OFFSETS.start] = 0.1
    stats = evaluate.groove_statistics(grooves)
    assert stats["hit_density"]["kick"] == 0.25 and stats["hit_density"]["snare"] == 0.0
    np.testing.assert_allclose(stats["velocity_mean"], 0.75 * 127, rtol=1e-6)
    np.testing.assert_allclose(stats["velocity_std"], 0.25 * 127, rtol=1e-5)
    np.testing.assert_allclose([stats["offset_mean"], stats["offset_std"]], [0.1, 0.0], atol=1e-6)
    assert stats["hits_per_bar"] == 4.0


def test_wasserstein_1d_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 300), rng.normal(0.5, 2, 170)
    np.testing.assert_allclose(evaluate.wasserstein_1d(a, b),
                               scipy_stats.wasserstein_distance(a, b), rtol=1e-10)


def test_wasserstein_1d_shift_is_the_shift():
    a = np.arange(10.0)
    np.testing.assert_allclose(evaluate.wasserstein_1d(a, a + 0.3), 0.3, rtol=1e-12)


def test_distribution_distances_identical_sets_zero_and_shifted_velocity():
    a = random_grooves(8, 4)
    same = evaluate.distribution_distances(a, a.copy())
    assert same["velocity"] == 0 and same["offset"] == 0 and same["hit_density_mean"] == 0
    louder = a.copy()
    louder[..., VELOCITIES] += 5 / 127 * a[..., HITS]
    np.testing.assert_allclose(evaluate.distribution_distances(a, louder)["velocity"], 5, rtol=1e-4)


def test_marginal_sampler_matches_cell_frequencies():
    train = np.zeros((4, 64, 27), np.float32)
    train[:, 0, 0] = 1  # kick on step 0 always, velocity 0.8
    train[:, 0, VELOCITIES.start] = 0.8
    train[:2, 5, 1] = 1  # snare on step 5 in half the windows, offsets 0.3 / -0.3
    train[:2, 5, OFFSETS.start + 1] = [0.3, -0.3]
    samples = evaluate.MarginalSampler(train).sample(2000, seed=0)
    assert samples[:, 0, 0].all() and np.all(samples[:, 0, VELOCITIES.start] == np.float32(0.8))
    np.testing.assert_allclose(samples[:, 5, 1].mean(), 0.5, atol=0.05)
    snare_offsets = samples[:, 5, OFFSETS.start + 1][samples[:, 5, 1] > 0]
    assert set(snare_offsets.tolist()) == {np.float32(0.3).item(), np.float32(-0.3).item()}
    assert samples[..., HITS].sum() == samples[:, 0, 0].sum() + samples[:, 5, 1].sum()


def test_marginal_sampler_seeded_is_repeatable():
    sampler = evaluate.MarginalSampler(random_grooves(10, 5))
    np.testing.assert_array_equal(sampler.sample(3, seed=7), sampler.sample(3, seed=7))


def test_nearest_neighbours_known_hamming():
    train = np.zeros((5, 64, 27), np.float32)
    for i in range(5):
        train[i, :i, 0] = 1  # window i has i kicks: Hamming distance to window 0 is i
    found = evaluate.nearest_neighbours(train[[0, 3]], train, k=3)
    np.testing.assert_array_equal(found.indices, [[0, 1, 2], [3, 2, 4]])
    np.testing.assert_array_equal(found.hamming, [[0, 1, 2], [0, 1, 1]])


def test_nearest_neighbours_velocity_then_timing_break_ties():
    train = np.zeros((3, 64, 27), np.float32)
    train[:, 0, 0] = 1
    train[:, 0, VELOCITIES.start] = [0.9, 0.5, 0.5]
    train[:, 0, OFFSETS.start] = [0.0, 0.4, 0.1]
    query = np.zeros((1, 64, 27), np.float32)
    query[0, 0, 0], query[0, 0, VELOCITIES.start] = 1, 0.5
    found = evaluate.nearest_neighbours(query, train, k=3)
    np.testing.assert_array_equal(found.indices, [[2, 1, 0]])
    np.testing.assert_array_equal(found.hamming, [[0, 0, 0]])


def test_nearest_neighbours_chunks_agree_with_brute_force():
    train, queries = random_grooves(300, 6), random_grooves(20, 7)
    found = evaluate.nearest_neighbours(queries, train, k=5, chunk=7)
    brute = ((queries[:, None, :, HITS] > 0.5) != (train[None, :, :, HITS] > 0.5)).sum(axis=(2, 3))
    np.testing.assert_array_equal(found.hamming, np.sort(brute, axis=1)[:, :5])
    np.testing.assert_array_equal(np.take_along_axis(brute, found.indices, 1), found.hamming)


def test_nearest_neighbours_too_few_training_windows_raises():
    with pytest.raises(evaluate.EvaluateError, match="k=20"):
        evaluate.nearest_neighbours(random_grooves(1, 8), random_grooves(5, 9))


def test_novelty_copies_are_zero_distance():
    train = random_grooves(50, 10)
    result = evaluate.novelty(train[:5], train, k=3)
    assert result["copy_fraction"] == 1.0 and result["nearest_hamming_mean"] == 0.0
    assert set(result) == {"nearest_hamming_mean", "nearest_hamming_median", "copy_fraction",
                           "k_hamming_mean"}


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
    np.testing.assert_allclose(losses["loss"], losses["r_loss"] + losses["kl_beta"]
                               * losses["kl_loss"], rtol=1e-6)
    assert losses["kl_bits"] > 0 and losses["kl_beta"] == pytest.approx(0.2)


def test_greedy_reconstructions_are_deterministic_binary_hits(tiny_model):
    grooves = random_grooves(5, 12)
    first = evaluate.greedy_reconstructions(tiny_model, grooves, batch_size=2)
    again = evaluate.greedy_reconstructions(tiny_model, grooves, batch_size=2)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (5, 64, 27) and set(np.unique(first[..., HITS])) <= {0.0, 1.0}


def test_evaluate_model_tiny_reports_every_section(tiny_model):
    metrics = evaluate.evaluate_model(tiny_model, random_grooves(12, 13), random_grooves(30, 14),
                                      num_samples=6)
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

    def fake_split(split, data_dir=None):  # GMD stays out of the unit tests
        meta = pd.DataFrame({"bpm": np.full(len(grooves), 100)})
        return data.GrooveSplit(outputs=grooves, meta=meta, summary={})

    monkeypatch.setattr(data, "load_groove_4bar_split", fake_split)
    metrics = evaluate.evaluate_run(run_dir, num_samples=4)
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
    assert metrics["split"] == "test" and metrics["num_train_windows"] == 24
    assert "eval r_loss" in evaluate.metrics_table(metrics)


def test_reconstruction_metrics_found_hits_ignore_misses():
    true = np.zeros((1, 64, 27), np.float32)
    true[0, [0, 8], 0] = 1  # two kicks at velocity 100
    true[0, [0, 8], 9] = 100 / 127
    pred = true.copy()
    pred[0, 8, 0] = 0  # the second kick is missed, and its velocity channel reads 0
    pred[0, 8, 9] = 0
    pred[0, 0, 9] = 90 / 127  # the found one is 10 too soft
    scores = evaluate.reconstruction_metrics(true, pred)
    np.testing.assert_allclose(scores["velocity_mae"], (10 + 100) / 2, rtol=1e-5)
    np.testing.assert_allclose(scores["velocity_mae_found"], 10, rtol=1e-5)
    assert scores["timing_mae_found_ms"] == 0.0
