"""Tests for helpers/metrics.py on constructed grooves with known answers."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import random_grooves

from helpers import metrics
from helpers.constants import HITS, OFFSETS, VELOCITIES

REPO = Path(__file__).resolve().parents[1]


def test_import_loads_no_deep_learning_framework():
    frameworks = "{'keras', 'tensorflow', 'torch', 'jax'}"
    check = f"import sys, helpers.metrics; print(sorted({frameworks} & set(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"


def test_reconstruction_metrics_perfect():
    true = random_grooves(4, 0)
    scores = metrics.reconstruction_metrics(true, true.copy())
    assert scores["hit_accuracy"] == 1.0 and scores["f1"] == 1.0
    assert scores["velocity_mae"] == 0.0 and scores["timing_mae_ms"] == 0.0
    assert all(d["f1"] == 1.0 for d in scores["per_drum"].values())


def test_reconstruction_metrics_known_offset_shift_gives_exact_ms():
    true = random_grooves(3, 1)
    pred = true.copy()
    pred[..., OFFSETS] += 0.2 * true[..., HITS]
    qpm = np.array([120.0, 60.0, 100.0])
    scores = metrics.reconstruction_metrics(true, pred, qpm=qpm)
    # 0.2 offset units = 0.1 step; step = 60 / qpm / 4 s
    hits_per_window = true[..., HITS].sum(axis=(1, 2))
    expected = np.sum(hits_per_window * 0.1 * 60 / qpm / 4 * 1000) / hits_per_window.sum()
    np.testing.assert_allclose(scores["timing_mae_ms"], expected, rtol=1e-5)
    np.testing.assert_allclose(
        metrics.reconstruction_metrics(true[:1], pred[:1])["timing_mae_ms"], 12.5, rtol=1e-5
    )


def test_reconstruction_metrics_velocity_mae_in_midi_units():
    true = random_grooves(2, 2)
    pred = true.copy()
    pred[..., VELOCITIES] = np.clip(true[..., VELOCITIES] - 10 / 127, 0, 1)
    pred[..., VELOCITIES] *= true[..., HITS]
    scores = metrics.reconstruction_metrics(true, pred)
    hits = true[..., HITS] > 0.5
    expected = np.mean(np.minimum(true[..., VELOCITIES][hits], 10 / 127)) * 127
    np.testing.assert_allclose(scores["velocity_mae"], expected, rtol=1e-5)


def test_reconstruction_metrics_precision_recall_counts():
    true = np.zeros((1, 64, 27), np.float32)
    pred = np.zeros_like(true)
    true[0, :4, 0] = 1  # kick on steps 0-3
    pred[0, 2:8, 0] = 1  # predicted on 2-7: 2 true positives, 4 false positives, 2 misses
    scores = metrics.reconstruction_metrics(true, pred)
    kick = scores["per_drum"]["kick"]
    np.testing.assert_allclose(
        [kick["precision"], kick["recall"], kick["f1"]], [2 / 6, 2 / 4, 4 / 10], rtol=1e-6
    )
    np.testing.assert_allclose(scores["hit_accuracy"], 1 - 6 / (64 * 9), rtol=1e-6)
    assert np.isnan(scores["per_drum"]["snare"]["precision"])


def test_reconstruction_metrics_bad_shape_raises():
    with pytest.raises(metrics.MetricsError, match=r"\(n, 16 \* bars, 27\)"):
        metrics.reconstruction_metrics(np.zeros((64, 27)), np.zeros((64, 27)))


def test_groove_statistics_constructed():
    grooves = np.zeros((2, 64, 27), np.float32)
    grooves[:, ::4, 0] = 1  # kick on every beat: 4 hits a bar
    grooves[:, ::4, VELOCITIES.start] = np.array([0.5, 1.0])[:, None]
    grooves[:, ::4, OFFSETS.start] = 0.1
    stats = metrics.groove_statistics(grooves)
    assert stats["hit_density"]["kick"] == 0.25 and stats["hit_density"]["snare"] == 0.0
    np.testing.assert_allclose(stats["velocity_mean"], 0.75 * 127, rtol=1e-6)
    np.testing.assert_allclose(stats["velocity_std"], 0.25 * 127, rtol=1e-5)
    np.testing.assert_allclose([stats["offset_mean"], stats["offset_std"]], [0.1, 0.0], atol=1e-6)
    assert stats["hits_per_bar"] == 4.0


def test_wasserstein_1d_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 300), rng.normal(0.5, 2, 170)
    np.testing.assert_allclose(
        metrics.wasserstein_1d(a, b), scipy_stats.wasserstein_distance(a, b), rtol=1e-10
    )


def test_wasserstein_1d_shift_is_the_shift():
    a = np.arange(10.0)
    np.testing.assert_allclose(metrics.wasserstein_1d(a, a + 0.3), 0.3, rtol=1e-12)


def test_distribution_distances_identical_sets_zero_and_shifted_velocity():
    a = random_grooves(8, 4)
    same = metrics.distribution_distances(a, a.copy())
    assert same["velocity"] == 0 and same["offset"] == 0 and same["hit_density_mean"] == 0
    louder = a.copy()
    louder[..., VELOCITIES] += 5 / 127 * a[..., HITS]
    np.testing.assert_allclose(metrics.distribution_distances(a, louder)["velocity"], 5, rtol=1e-4)


def test_marginal_sampler_matches_cell_frequencies():
    train = np.zeros((4, 64, 27), np.float32)
    train[:, 0, 0] = 1  # kick on step 0 always, velocity 0.8
    train[:, 0, VELOCITIES.start] = 0.8
    train[:2, 5, 1] = 1  # snare on step 5 in half the windows, offsets 0.3 / -0.3
    train[:2, 5, OFFSETS.start + 1] = [0.3, -0.3]
    samples = metrics.MarginalSampler(train).sample(2000, seed=0)
    assert samples[:, 0, 0].all() and np.all(samples[:, 0, VELOCITIES.start] == np.float32(0.8))
    np.testing.assert_allclose(samples[:, 5, 1].mean(), 0.5, atol=0.05)
    snare_offsets = samples[:, 5, OFFSETS.start + 1][samples[:, 5, 1] > 0]
    assert set(snare_offsets.tolist()) == {np.float32(0.3).item(), np.float32(-0.3).item()}
    assert samples[..., HITS].sum() == samples[:, 0, 0].sum() + samples[:, 5, 1].sum()


def test_marginal_sampler_seeded_is_repeatable():
    sampler = metrics.MarginalSampler(random_grooves(10, 5))
    np.testing.assert_array_equal(sampler.sample(3, seed=7), sampler.sample(3, seed=7))


def test_nearest_neighbours_known_hamming():
    train = np.zeros((5, 64, 27), np.float32)
    for i in range(5):
        train[i, :i, 0] = 1  # window i has i kicks: Hamming distance to window 0 is i
    found = metrics.nearest_neighbours(train[[0, 3]], train, k=3)
    np.testing.assert_array_equal(found.indices, [[0, 1, 2], [3, 2, 4]])
    np.testing.assert_array_equal(found.hamming, [[0, 1, 2], [0, 1, 1]])


def test_nearest_neighbours_velocity_then_timing_break_ties():
    train = np.zeros((3, 64, 27), np.float32)
    train[:, 0, 0] = 1
    train[:, 0, VELOCITIES.start] = [0.9, 0.5, 0.5]
    train[:, 0, OFFSETS.start] = [0.0, 0.4, 0.1]
    query = np.zeros((1, 64, 27), np.float32)
    query[0, 0, 0], query[0, 0, VELOCITIES.start] = 1, 0.5
    found = metrics.nearest_neighbours(query, train, k=3)
    np.testing.assert_array_equal(found.indices, [[2, 1, 0]])
    np.testing.assert_array_equal(found.hamming, [[0, 0, 0]])


def test_nearest_neighbours_chunks_agree_with_brute_force():
    train, queries = random_grooves(300, 6), random_grooves(20, 7)
    found = metrics.nearest_neighbours(queries, train, k=5, chunk=7)
    brute = ((queries[:, None, :, HITS] > 0.5) != (train[None, :, :, HITS] > 0.5)).sum(axis=(2, 3))
    np.testing.assert_array_equal(found.hamming, np.sort(brute, axis=1)[:, :5])
    np.testing.assert_array_equal(np.take_along_axis(brute, found.indices, 1), found.hamming)


def test_nearest_hamming_is_the_neighbours_distances_with_ties():
    # Sparse windows, each twice: many training windows tie at each query's k-th distance.
    train = np.concatenate([random_grooves(150, 16, density=0.01)] * 2)
    queries = random_grooves(25, 17, density=0.01)
    hamming = metrics.nearest_hamming(queries, train, k=6, chunk=7)
    np.testing.assert_array_equal(hamming, metrics.nearest_neighbours(queries, train, k=6).hamming)
    brute = ((queries[:, None, :, HITS] > 0.5) != (train[None, :, :, HITS] > 0.5)).sum(axis=(2, 3))
    np.testing.assert_array_equal(hamming, np.sort(brute, axis=1)[:, :6])
    with pytest.raises(metrics.MetricsError, match="k=301"):
        metrics.nearest_hamming(queries, train, k=301)


def test_nearest_neighbours_too_few_training_windows_raises():
    with pytest.raises(metrics.MetricsError, match="k=20"):
        metrics.nearest_neighbours(random_grooves(1, 8), random_grooves(5, 9))


def test_novelty_copies_are_zero_distance():
    train = random_grooves(50, 10)
    result = metrics.novelty(train[:5], train, k=3)
    assert result["copy_fraction"] == 1.0 and result["nearest_hamming_mean"] == 0.0
    assert set(result) == {
        "nearest_hamming_mean",
        "nearest_hamming_median",
        "copy_fraction",
        "k_hamming_mean",
    }


def test_reconstruction_metrics_found_hits_ignore_misses():
    true = np.zeros((1, 64, 27), np.float32)
    true[0, [0, 8], 0] = 1  # two kicks at velocity 100
    true[0, [0, 8], 9] = 100 / 127
    pred = true.copy()
    pred[0, 8, 0] = 0  # the second kick is missed, and its velocity channel reads 0
    pred[0, 8, 9] = 0
    pred[0, 0, 9] = 90 / 127  # the found one is 10 too soft
    scores = metrics.reconstruction_metrics(true, pred)
    np.testing.assert_allclose(scores["velocity_mae"], (10 + 100) / 2, rtol=1e-5)
    np.testing.assert_allclose(scores["velocity_mae_found"], 10, rtol=1e-5)
    assert scores["timing_mae_found_ms"] == 0.0
