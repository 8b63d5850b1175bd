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


# ------------------------------------------------------------------------------------------------
# Groove features, on hand-made grooves (offsets: ours are + early in half steps; the features
# read steps, + late, so a hit 1/4 step late has offset -0.5 here and step offset +0.25)


def empty_grooves(n: int = 1, steps: int = 64) -> np.ndarray:
    return np.zeros((n, steps, 27), np.float32)


def play(grooves, steps, drum, velocity=0.8, offset=0.0, window=None):
    """Hits `drum` on `steps` of the given windows (all by default), in place."""
    window = slice(None) if window is None else window
    grooves[window, steps, drum] = 1
    grooves[window, steps, VELOCITIES.start + drum] = velocity
    grooves[window, steps, OFFSETS.start + drum] = offset
    return grooves


KICK, SNARE, HAT = 0, 1, 2


def test_groove_features_names_and_shapes():
    for steps in (16, 32, 64):
        features = metrics.groove_features(random_grooves(3, 11)[:, :steps])
        assert list(features) == list(metrics.GROOVE_FEATURES)
        assert all(v.shape == (3,) and v.dtype == np.float64 for v in features.values())


def test_groove_features_number_of_instruments():
    grooves = play(play(play(empty_grooves(2), [0, 8], KICK), 4, SNARE), [0, 1], HAT, window=0)
    np.testing.assert_array_equal(metrics.groove_features(grooves)["number_of_instruments"], [3, 2])


def test_groove_features_poly_velocity_and_offset_read_only_hits():
    grooves = play(empty_grooves(), 0, KICK, velocity=0.4, offset=0.2)  # 0.1 step early
    play(grooves, 8, KICK, velocity=0.8, offset=-0.6)  # 0.3 step late
    grooves[0, 5, VELOCITIES.start + SNARE] = 0.9  # written without a hit: the decoder does that
    grooves[0, 5, OFFSETS.start + SNARE] = 0.9
    features = metrics.groove_features(grooves)
    np.testing.assert_allclose(
        [features[k][0] for k in ("poly_velocity_mean", "poly_velocity_std")], [0.6, 0.2], atol=1e-6
    )
    np.testing.assert_allclose(
        [features[k][0] for k in ("poly_offset_mean", "poly_offset_std")], [0.1, 0.2], atol=1e-6
    )
    silent = metrics.groove_features(empty_grooves())
    assert silent["poly_velocity_mean"][0] == 0 and silent["poly_offset_std"][0] == 0


def test_groove_features_velocity_similarity_between_halves():
    grooves = play(play(empty_grooves(), 0, KICK, velocity=0.8), 32, KICK, velocity=0.6)
    play(grooves, 4, SNARE)  # hit in the first half only: not compared
    np.testing.assert_allclose(metrics.groove_features(grooves)["velocity_similarity"], [0.8])
    assert metrics.groove_features(empty_grooves())["velocity_similarity"][0] == 0


def test_groove_features_weak_to_strong_ratio():
    grooves = play(empty_grooves(), np.arange(0, 64, 4), KICK, velocity=0.5)  # 16 beats: 8.0
    play(grooves, np.arange(2, 64, 4), HAT, velocity=0.25)  # 16 off-beat 8ths: 4.0
    np.testing.assert_allclose(metrics.groove_features(grooves)["weak_to_strong_ratio"], [0.5])
    off_beat_only = play(empty_grooves(), 2, HAT)
    assert metrics.groove_features(off_beat_only)["weak_to_strong_ratio"][0] == 0


def test_groove_features_syncopation_longuet_higgins_lee():
    four_on_the_floor = play(empty_grooves(), np.arange(0, 64, 4), KICK)
    # The 4th 16th (weight 1) before a silent beat (weight 3): 2 per hit, 2 hits per 2-bar loop.
    anticipations = play(empty_grooves(), np.arange(3, 64, 16), KICK)
    resolved = play(anticipations.copy(), np.arange(4, 64, 16), KICK)  # the beat is played too
    # Weight 2 before a weaker 16th and a silent beat (weight 3): 1, from the step after next.
    eighth = play(empty_grooves(), [2], SNARE)
    sync = metrics.groove_features(
        np.concatenate([four_on_the_floor, anticipations, resolved, eighth])
    )["syncopation"]
    np.testing.assert_allclose(sync, [0, 4 / 30, 0, 1 / 30 / 2], atol=1e-12)


def test_groove_features_swingness_of_late_second_and_fourth_sixteenths():
    straight = play(empty_grooves(), np.arange(64), HAT)
    swung = play(straight.copy(), np.arange(1, 64, 2), HAT, offset=-2 / 3)  # 1/3 step late
    play(swung, np.arange(0, 64, 2), HAT, offset=-0.2)  # late on-8ths are not swing
    rushed = play(straight.copy(), np.arange(1, 64, 2), HAT, offset=0.5)  # early: not swing
    # Triplet-feel 8ths land on the 4th 16th, 1/3 step early: GrooveEvaluator's swingness
    # reads only lateness on the 2nd and 4th 16ths, so it scores them 0.
    triplet_eighths = play(empty_grooves(), np.arange(0, 64, 4), HAT)
    play(triplet_eighths, np.arange(3, 64, 4), HAT, offset=2 / 3)
    swingness = metrics.groove_features(np.concatenate([straight, swung, rushed, triplet_eighths]))[
        "swingness"
    ]
    np.testing.assert_allclose(swingness, [0, 2 / 3, 0, 0], atol=1e-6)


def test_groove_features_laidbackness_against_grid_and_hi_hat():
    beats = np.arange(0, 64, 4)
    kick_steps, snare_steps = beats[beats % 8 == 0], beats[beats % 8 == 4]

    def backbeat(offset, hat_offset=None):
        grooves = play(empty_grooves(), kick_steps, KICK, offset=offset)
        play(grooves, snare_steps, SNARE, offset=offset)
        return grooves if hat_offset is None else play(grooves, beats, HAT, offset=hat_offset)

    # At 120 qpm a step is 125 ms: offset -0.32 is 20 ms late, 0.32 20 ms early, -0.08 5 ms late.
    grooves = np.concatenate(
        [backbeat(-0.32), backbeat(0.32), backbeat(-0.08), backbeat(0.0, hat_offset=0.32)]
    )
    kick_only = play(empty_grooves(), kick_steps, KICK, offset=-0.32)  # half the beats
    grooves = np.concatenate([grooves, kick_only])
    np.testing.assert_allclose(
        metrics.groove_features(grooves)["laidbackness"], [1, -1, 0, 1, 0.5], atol=1e-12
    )
    # The same offset is 40 ms at 60 qpm, 8 ms at 300 qpm (under the 12 ms threshold).
    slow_fast = np.concatenate([backbeat(-0.32)] * 2)
    np.testing.assert_allclose(
        metrics.groove_features(slow_fast, qpm=np.array([60.0, 300.0]))["laidbackness"], [1, 0]
    )


def test_groove_features_timing_accuracy_on_eighth_note_steps():
    grooves = play(empty_grooves(), [0, 8], KICK, offset=0.2)  # 0.1 step early
    play(grooves, [2], HAT, offset=-0.2)  # 0.1 step late
    play(grooves, [3], HAT, offset=-0.9)  # a 16th off the 8ths: not read
    # Two drums on one step, one each way: the step's mean offset is 0.
    balanced = play(play(empty_grooves(), [0], KICK, offset=0.4), [0], HAT, offset=-0.4)
    only_sixteenths = play(empty_grooves(), [1], HAT, offset=0.4)
    accuracy = metrics.groove_features(np.concatenate([grooves, balanced, only_sixteenths]))[
        "timing_accuracy"
    ]
    np.testing.assert_allclose(accuracy[:2], [0.1, 0.0], atol=1e-6)
    assert np.isnan(accuracy[2])


# ------------------------------------------------------------------------------------------------
# MGEval's comparison of two sets


def test_compare_sets_identical_sets_overlap_and_disjoint_sets_do_not():
    table = metrics.groove_features(random_grooves(200, 12))
    same = metrics.compare_sets(table, {k: v.copy() for k, v in table.items()})
    assert list(same) == list(metrics.GROOVE_FEATURES)
    for name, c in same.items():
        assert c.overlap > 0.9 and c.kl < 0.02, (name, c)
        assert c.generated_mean == c.reference_mean
    rng = np.random.default_rng(13)
    apart = metrics.compare_sets(
        {"swingness": rng.normal(0.9, 0.02, 300)}, {"swingness": rng.normal(0.1, 0.02, 300)}
    )["swingness"]
    assert apart.overlap < 0.01 and apart.kl > 5
    np.testing.assert_allclose([apart.generated_mean, apart.reference_mean], [0.9, 0.1], atol=0.01)


def test_compare_sets_matches_scipy_kernel_densities():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(14)
    generated, reference = rng.normal(0.5, 1.0, 50), rng.normal(0.0, 1.0, 40)
    c = metrics.compare_sets({"f": generated}, {"f": reference})["f"]
    inter = np.abs(generated[:, None] - reference[None]).ravel()
    intra = np.abs(reference[:, None] - reference[None])[~np.eye(40, dtype=bool)]
    grid = np.linspace(-4, 10, 1401)
    p, q = (scipy_stats.gaussian_kde(d)(grid) for d in (inter, intra))
    dx = grid[1] - grid[0]
    np.testing.assert_allclose(c.overlap, np.minimum(p, q).sum() * dx, atol=0.005)
    q = np.maximum(q, 1e-10 * q.max())  # the floor compare_sets puts under the reference
    np.testing.assert_allclose(c.kl, np.sum(p * np.log(p / q)) * dx, rtol=0.03)
    assert 0.01 < c.kl and c.overlap < 0.99  # a shift of half a std is seen


def test_compare_sets_constant_features():
    same = metrics.compare_sets({"n": np.full(5, 3.0)}, {"n": np.full(4, 3.0)})["n"]
    assert (same.kl, same.overlap) == (0.0, 1.0)
    other = metrics.compare_sets({"n": np.full(5, 4.0)}, {"n": np.full(4, 3.0)})["n"]
    assert other.overlap < 0.01 and other.kl > 5


def test_compare_sets_too_few_values_raises():
    with pytest.raises(metrics.MetricsError, match="reference set has 1 value"):
        metrics.compare_sets({"f": np.arange(3.0)}, {"f": np.array([1.0, np.nan])})


def test_comparison_markdown_has_a_row_per_feature():
    table = metrics.groove_features(random_grooves(20, 15))
    text = metrics.comparison_markdown(metrics.compare_sets(table, table))
    rows = text.splitlines()[2:]
    assert all(row.count("|") == 7 for row in rows)  # 6 cells: no stray pipe in a row
    assert [row.split(" | ")[0].strip("| ") for row in rows] == list(metrics.GROOVE_FEATURES)
    assert "1.000 |" in rows[0]  # identical sets: overlap 1 on the number of instruments
