"""Scores for sets of grooves, from arrays alone: reconstruction, statistics, distances, novelty.

Pure numpy on (n, 64, 27) grooves, so it loads no model and no deep learning framework.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from helpers.constants import (
    DEFAULT_QPM,
    DRUM_CLASS_NAMES,
    GROOVE_DEPTH,
    HITS,
    MAX_MIDI_VELOCITY,
    NUM_DRUM_CLASSES,
    OFFSETS,
    STEPS_PER_BAR,
    STEPS_PER_QUARTER,
    VELOCITIES,
)

NEAREST_K = 20


class MetricsError(Exception):
    """Arrays that cannot be scored."""


def check_grooves(grooves: np.ndarray, name: str) -> np.ndarray:
    """`grooves` as float32, or MetricsError naming `name` unless it is (n, 16 * bars, 27)."""
    grooves = np.asarray(grooves, np.float32)
    steps_ok = grooves.ndim == 3 and grooves.shape[1] and grooves.shape[1] % STEPS_PER_BAR == 0
    if not steps_ok or grooves.shape[2] != GROOVE_DEPTH:
        raise MetricsError(
            f"{name} must be (n, 16 * bars, {GROOVE_DEPTH}) grooves, got shape {grooves.shape}"
        )
    return grooves


# ------------------------------------------------------------------------------------------------
# Reconstruction


def step_seconds(qpm: float | np.ndarray) -> float | np.ndarray:
    """Length of one 16th-note step in seconds."""
    return 60.0 / np.asarray(qpm, np.float64) / STEPS_PER_QUARTER


def reconstruction_metrics(
    true: np.ndarray, pred: np.ndarray, qpm: float | np.ndarray = DEFAULT_QPM
) -> dict:
    """Scores a reconstruction cell by cell against its target.

    Hit scores use hits > 0.5. Velocity and timing errors are taken on the TRUE hits, reading
    the predicted velocity/offset channels at those cells whether or not a hit was predicted
    there (the decoder writes them everywhere, spec §3.4).

    Args:
      true: (n, 64, 27) target grooves.
      pred: (n, 64, 27) predicted grooves.
      qpm: tempo in quarter notes per minute, a scalar or one per window (n,), for timing in ms.
        An offset of 1 is half a step, so ms = |off_pred - off_true| / 2 * step_seconds * 1000.

    Returns:
      dict with `hit_accuracy`, overall `precision`/`recall`/`f1` (micro-averaged over drums),
      `per_drum` {name: {precision, recall, f1, support}}, `velocity_mae` in MIDI units (0-127),
      `timing_mae_ms`, and both again over the hits found (true and predicted):
      `velocity_mae_found`, `timing_mae_found_ms`. A score with nothing to count is NaN.
    """
    true = check_grooves(true, "true")
    pred = check_grooves(pred, "pred")
    if true.shape != pred.shape:
        raise MetricsError(f"true {true.shape} and pred {pred.shape} differ in shape")
    qpm = np.broadcast_to(np.asarray(qpm, np.float64), (len(true),))
    true_hits, pred_hits = true[..., HITS] > 0.5, pred[..., HITS] > 0.5
    tp = (true_hits & pred_hits).sum(axis=(0, 1))
    n_pred, n_true = pred_hits.sum(axis=(0, 1)), true_hits.sum(axis=(0, 1))

    def prf(tp, n_pred, n_true):
        with np.errstate(invalid="ignore", divide="ignore"):
            precision, recall = tp / n_pred, tp / n_true
            f1 = 2 * tp / (n_pred + n_true)
        return precision, recall, f1

    precision, recall, f1 = prf(tp, n_pred, n_true)
    all_precision, all_recall, all_f1 = prf(tp.sum(), n_pred.sum(), n_true.sum())
    velocity_error = np.abs(pred[..., VELOCITIES] - true[..., VELOCITIES])
    ms_per_offset = (step_seconds(qpm) * 1000.0 / 2.0)[:, None, None]
    timing_error = np.abs(pred[..., OFFSETS] - true[..., OFFSETS]) * ms_per_offset
    both_hits = true_hits & pred_hits
    return {
        "hit_accuracy": float((true_hits == pred_hits).mean()),
        "precision": float(all_precision),
        "recall": float(all_recall),
        "f1": float(all_f1),
        "per_drum": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(DRUM_CLASS_NAMES, precision, recall, f1, n_true)
        },
        "velocity_mae": _mean(velocity_error[true_hits]) * MAX_MIDI_VELOCITY,
        "timing_mae_ms": _mean(timing_error[true_hits]),
        # The same on the hits the model found: how well it plays the notes it does play.
        "velocity_mae_found": _mean(velocity_error[both_hits]) * MAX_MIDI_VELOCITY,
        "timing_mae_found_ms": _mean(timing_error[both_hits]),
    }


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


# ------------------------------------------------------------------------------------------------
# Sample statistics and distances between sets


def groove_statistics(grooves: np.ndarray) -> dict:
    """Summary statistics of a set of grooves, over the cells with a hit.

    Args:
      grooves: (n, 64, 27).

    Returns:
      dict of `hit_density` per drum (fraction of steps hit, {name: float}), `velocity_mean`,
      `velocity_std` (MIDI units), `offset_mean`, `offset_std` (offset units, + = early) and
      `hits_per_bar` (mean over bars).
    """
    grooves = check_grooves(grooves, "grooves")
    hits = grooves[..., HITS] > 0.5
    velocities = grooves[..., VELOCITIES][hits] * MAX_MIDI_VELOCITY
    offsets = grooves[..., OFFSETS][hits]
    return {
        "hit_density": dict(zip(DRUM_CLASS_NAMES, map(float, hits.mean(axis=(0, 1))))),
        "velocity_mean": _mean(velocities),
        "velocity_std": float(velocities.std()) if velocities.size else float("nan"),
        "offset_mean": _mean(offsets),
        "offset_std": float(offsets.std()) if offsets.size else float("nan"),
        "hits_per_bar": _mean(_hits_per_bar(hits)),
    }


def _hits_per_bar(hits: np.ndarray) -> np.ndarray:
    """(n * 4,) hit counts of every bar."""
    return hits.reshape(len(hits), -1, STEPS_PER_BAR, NUM_DRUM_CLASSES).sum(axis=(2, 3)).ravel()


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    """Wasserstein-1 (earth mover's) distance between two 1-D samples: the area between their
    empirical CDFs. Our own few lines; it agrees with scipy.stats.wasserstein_distance."""
    a, b = np.sort(np.ravel(a)), np.sort(np.ravel(b))
    if not a.size or not b.size:
        return float("nan")
    support = np.concatenate([a, b])
    support.sort()
    cdf_a = np.searchsorted(a, support[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, support[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(support)))


def distribution_distances(grooves_a: np.ndarray, grooves_b: np.ndarray) -> dict:
    """Wasserstein-1 distances between two sets' distributions of each statistic.

    Compared per window: each drum's hit density; over all hits: velocity (MIDI units) and
    offset; over all bars: hits per bar.

    Returns:
      dict `hit_density` {drum name: W1}, `hit_density_mean` (mean over drums), `velocity`,
      `offset`, `hits_per_bar`.
    """
    a, b = check_grooves(grooves_a, "grooves_a"), check_grooves(grooves_b, "grooves_b")
    hits_a, hits_b = a[..., HITS] > 0.5, b[..., HITS] > 0.5
    density = {
        name: wasserstein_1d(hits_a[..., d].mean(axis=1), hits_b[..., d].mean(axis=1))
        for d, name in enumerate(DRUM_CLASS_NAMES)
    }
    return {
        "hit_density": density,
        "hit_density_mean": float(np.mean(list(density.values()))),
        "velocity": wasserstein_1d(a[..., VELOCITIES][hits_a], b[..., VELOCITIES][hits_b])
        * MAX_MIDI_VELOCITY,
        "offset": wasserstein_1d(a[..., OFFSETS][hits_a], b[..., OFFSETS][hits_b]),
        "hits_per_bar": wasserstein_1d(_hits_per_bar(hits_a), _hits_per_bar(hits_b)),
    }


# ------------------------------------------------------------------------------------------------
# Baseline: independent per-cell marginals


class MarginalSampler:
    """Draws grooves cell by cell, independently, from a training set's per-step marginals.

    Each (step, drum) cell is hit with the training frequency of a hit there; a hit takes the
    (velocity, offset) pair of a training hit drawn uniformly from that same cell. No cell knows
    about any other, so this is the "no model" baseline for sample statistics.

    Args:
      train: (n, 64, 27) training grooves.
    """

    def __init__(self, train: np.ndarray):
        train = check_grooves(train, "train")
        hits = train[..., HITS] > 0.5  # (n, 64, 9)
        self.hit_probability = hits.mean(axis=0)  # (64, 9)
        window, step, drum = np.nonzero(hits)
        cell = step * NUM_DRUM_CLASSES + drum
        order = np.argsort(cell, kind="stable")
        velocities = train[window, step, VELOCITIES.start + drum]
        offsets = train[window, step, OFFSETS.start + drum]
        self._values = np.stack([velocities, offsets], axis=-1)[order]  # (num_hits, 2) by cell
        self._counts = np.bincount(cell, minlength=self.hit_probability.size)
        self._starts = np.concatenate([[0], np.cumsum(self._counts)[:-1]])

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """Returns (n, 64, 27) float32 grooves."""
        rng = np.random.default_rng(seed)
        hits = rng.random((n, *self.hit_probability.shape)) < self.hit_probability
        grooves = np.zeros((*hits.shape[:2], GROOVE_DEPTH), np.float32)
        grooves[..., HITS] = hits
        window, step, drum = np.nonzero(hits)
        cell = step * NUM_DRUM_CLASSES + drum
        pick = self._starts[cell] + (rng.random(cell.size) * self._counts[cell]).astype(np.int64)
        grooves[window, step, VELOCITIES.start + drum] = self._values[pick, 0]
        grooves[window, step, OFFSETS.start + drum] = self._values[pick, 1]
        return grooves


# ------------------------------------------------------------------------------------------------
# Novelty: nearest training windows


class Neighbours(NamedTuple):
    """The K nearest training windows of each query groove, nearest first."""

    indices: np.ndarray  # (n, k) int64 rows of the training set
    hamming: np.ndarray  # (n, k) int64 hit cells that differ, out of 64 * 9 = 576


def _hit_patterns(grooves: np.ndarray) -> np.ndarray:
    """(n, 576) float32 0/1: which cells of each groove are hit."""
    return (grooves[..., HITS].reshape(len(grooves), -1) > 0.5).astype(np.float32)


def _squared_distances(q: np.ndarray, t: np.ndarray, t_norm: np.ndarray) -> np.ndarray:
    """(len(q), len(t)) squared Euclidean distances, `t_norm` being t's squared row norms."""
    return (q * q).sum(axis=1)[:, None] + t_norm[None] - 2.0 * q @ t.T


def _hamming_chunks(query_hits: np.ndarray, train_hits: np.ndarray, chunk: int):
    """Yields (begin, (chunk, m) int16 Hamming distances) for each `chunk` query rows."""
    train_norm = train_hits.sum(axis=1)
    for begin in range(0, len(query_hits), chunk):
        # For 0/1 vectors the squared distance is the Hamming distance, exact in float32.
        # int16 holds 0..576 and partitions several times faster than int64.
        squared = _squared_distances(query_hits[begin : begin + chunk], train_hits, train_norm)
        yield begin, np.rint(squared).astype(np.int16)


def _check_k(k: int, train: np.ndarray) -> None:
    if not 1 <= k <= len(train):
        raise MetricsError(f"k={k} neighbours asked from {len(train)} training windows")


def nearest_neighbours(
    grooves: np.ndarray, train: np.ndarray, k: int = NEAREST_K, chunk: int = 64
) -> Neighbours:
    """Finds each groove's k nearest training windows.

    The distance is the Hamming distance between hit patterns (cells where one has a hit and the
    other not). Ties are broken by the squared Euclidean distance of the velocities, then of the
    offsets, then by training index. Hamming distances come from one matrix product per `chunk`
    queries, the tie-breakers only for each query's candidates (the windows at or within its
    k-th distance), so the cost grows with the ties: `nearest_hamming` gives the distances alone.

    Args:
      grooves: (n, 64, 27) query grooves.
      train: (m, 64, 27) training windows, m >= k.
      k: neighbours per query.
      chunk: queries per matrix product (memory is about 3 * chunk * m float32s).

    Returns:
      Neighbours(indices (n, k), hamming (n, k)).
    """
    grooves, train = check_grooves(grooves, "grooves"), check_grooves(train, "train")
    _check_k(k, train)

    def flat(x, part):
        return x[..., part].reshape(len(x), -1)

    train_tie_breakers = [flat(train, part) for part in (VELOCITIES, OFFSETS)]
    train_norms = [(t * t).sum(axis=1) for t in train_tie_breakers]
    indices = np.empty((len(grooves), k), np.int64)
    hamming = np.empty((len(grooves), k), np.int64)
    for begin, ham in _hamming_chunks(_hit_patterns(grooves), _hit_patterns(train), chunk):
        queries = grooves[begin : begin + chunk]
        query_tie_breakers = [flat(queries, part) for part in (VELOCITIES, OFFSETS)]
        kth = np.partition(ham, k - 1, axis=1)[:, k - 1]
        for row in range(len(ham)):
            candidates = np.flatnonzero(ham[row] <= kth[row])
            # The tie-breakers only for the few candidates, not all m windows.
            vel, off = (
                _squared_distances(q[row : row + 1], t[candidates], n[candidates])[0]
                for q, t, n in zip(query_tie_breakers, train_tie_breakers, train_norms)
            )
            keys = (candidates, off, vel, ham[row, candidates])
            best = candidates[np.lexsort(keys)][:k]  # lexsort: the last key sorts first
            indices[begin + row], hamming[begin + row] = best, ham[row, best]
    return Neighbours(indices, hamming)


def nearest_hamming(
    grooves: np.ndarray, train: np.ndarray, k: int = NEAREST_K, chunk: int = 256
) -> np.ndarray:
    """(n, k) int64 Hamming distances from each groove to its k nearest training windows,
    nearest first: `nearest_neighbours(...).hamming`, without the tie-breaks that only order
    windows at equal distance: 1,000 grooves against 15.6k windows take about 0.5 CPU seconds."""
    grooves, train = check_grooves(grooves, "grooves"), check_grooves(train, "train")
    _check_k(k, train)
    hamming = np.empty((len(grooves), k), np.int64)
    for begin, ham in _hamming_chunks(_hit_patterns(grooves), _hit_patterns(train), chunk):
        nearest = np.partition(ham, k - 1, axis=1)[:, :k]
        hamming[begin : begin + len(ham)] = np.sort(nearest, axis=1)
    return hamming


def novelty(grooves: np.ndarray, train: np.ndarray, k: int = NEAREST_K) -> dict:
    """How far grooves sit from the training set, by their nearest training window.

    Returns:
      dict of `nearest_hamming_mean`, `nearest_hamming_median`, `copy_fraction` (share of grooves
      whose hit pattern equals a training window's) and `k_hamming_mean` (mean over all k).
    """
    hamming = nearest_hamming(grooves, train, k=k)
    nearest = hamming[:, 0]
    return {
        "nearest_hamming_mean": float(nearest.mean()),
        "nearest_hamming_median": float(np.median(nearest)),
        "copy_fraction": float((nearest == 0).mean()),
        "k_hamming_mean": float(hamming.mean()),
    }
