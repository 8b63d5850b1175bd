"""Scores for sets of grooves, from arrays alone: reconstruction, statistics, distances, novelty,
the field's groove features and MGEval's comparison of two sets.

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


# ------------------------------------------------------------------------------------------------
# Groove features (GrooveToolbox, GrooveEvaluator) and MGEval's comparison of two sets
#
# Units follow GrooveEvaluator's, so figures sit beside the published ones: velocities 0-1, offsets
# in 16th-note steps with + = late (our offsets are + = early in half steps, spec §2.2 step 6, so
# a step offset is -offset / 2), timing in ms at the groove's tempo.

# Longuet-Higgins & Lee's metrical weights of the 16 steps of a 4/4 bar (downbeat strongest).
METRICAL_WEIGHTS = np.array([5, 1, 2, 1, 3, 1, 2, 1, 4, 1, 2, 1, 3, 1, 2, 1])
SYNCOPATION_BARS = 2  # syncopation is scored on 2-bar loops, as GrooveToolbox's 32-step profile
MAX_SYNCOPATION = 30.0  # GrooveToolbox's normaliser for one voice over 2 bars
LAIDBACK_THRESHOLD_MS = 12.0  # the smallest push or drag GrooveToolbox counts
KICK, SNARE, CLOSED_HI_HAT = 0, 1, 2  # drum classes the laidbackness reads (DRUM_CLASS_NAMES)

# Name -> what it measures, in table order.
GROOVE_FEATURES = {
    "number_of_instruments": "drums with at least one hit",
    "poly_velocity_mean": "mean velocity of the hits (0-1)",
    "poly_velocity_std": "std of the hits' velocities (0-1)",
    "poly_offset_mean": "mean offset of the hits (steps, + late)",
    "poly_offset_std": "std of the hits' offsets (steps)",
    "velocity_similarity": "how alike the two halves' velocities are (1 = same)",
    "weak_to_strong_ratio": "velocity off the beat / on the beat",
    "syncopation": "Longuet-Higgins & Lee syncopation summed over drums",
    "swingness": "mean lateness of 2nd and 4th 16ths (half steps)",
    "laidbackness": "(dragged - pushed) kick/snare beats, per beat",
    "timing_accuracy": "mean absolute offset on 8th-note steps (steps)",
}


def groove_features(grooves: np.ndarray, qpm: float | np.ndarray = DEFAULT_QPM) -> dict:
    """The groove features of each groove, defined as GrooveToolbox and GrooveEvaluator define them.

    Definitions: Bruford et al., "Multidimensional similarity modelling of complex drum loops
    using the GrooveToolbox" (ISMIR 2020; fredbru/GrooveToolbox, Groove.py), as adapted to a
    hits/velocities/offsets grid by Haki et al.'s GrooveEvaluator (behzadhaki/GrooveTransformer,
    hvo_sequence/hvo_seq.py and hvo_sequence/utils.py; the feature list in
    eval/GrooveEvaluator/src/settings.py). docs/groove_features.md gives each definition. Only the
    cells with a hit (> 0.5) count; the decoder writes velocities and offsets everywhere (spec §3.4).

    Args:
      grooves: (n, 16 * bars, 27) grooves.
      qpm: tempo, a scalar or one per groove (n,); only laidbackness (in ms) reads it.

    Returns:
      dict of feature name (the keys of GROOVE_FEATURES, in that order) -> (n,) float64, NaN where
      a feature is undefined (timing accuracy of a groove with no hit on an 8th-note step).
    """
    grooves = check_grooves(grooves, "grooves").astype(np.float64)
    hits = grooves[..., HITS] > 0.5
    velocities = np.where(hits, grooves[..., VELOCITIES], np.nan)
    step_offsets = np.where(hits, -grooves[..., OFFSETS] / 2.0, np.nan)  # steps, + late
    qpm = np.broadcast_to(np.asarray(qpm, np.float64), (len(grooves),))
    offsets_ms = step_offsets * (step_seconds(qpm) * 1000.0)[:, None, None]
    velocity_mean, velocity_std = _hit_mean_std(velocities)
    offset_mean, offset_std = _hit_mean_std(step_offsets)
    return {
        "number_of_instruments": hits.any(axis=1).sum(axis=1).astype(np.float64),
        "poly_velocity_mean": velocity_mean,
        "poly_velocity_std": velocity_std,
        "poly_offset_mean": offset_mean,
        "poly_offset_std": offset_std,
        "velocity_similarity": _velocity_similarity(velocities),
        "weak_to_strong_ratio": _weak_to_strong_ratio(velocities),
        "syncopation": _syncopation(hits),
        "swingness": _swingness(step_offsets),
        "laidbackness": _laidbackness(offsets_ms),
        "timing_accuracy": _timing_accuracy(step_offsets),
    }


def _hit_mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over each groove's hits of (n, steps, 9) values NaN off the hits; 0 and 0
    for a groove without hits, as GrooveEvaluator gives."""
    count = np.sum(~np.isnan(values), axis=(1, 2))
    filled = np.nan_to_num(values)
    mean = filled.sum(axis=(1, 2)) / np.maximum(count, 1)
    squares = np.where(np.isnan(values), 0.0, (values - mean[:, None, None]) ** 2)
    return mean, np.sqrt(squares.sum(axis=(1, 2)) / np.maximum(count, 1))


def _velocity_similarity(velocities: np.ndarray) -> np.ndarray:
    """1 - |v1 - v2| averaged over the cells hit in both halves of the window (first half against
    second), 0 where no cell is; GrooveEvaluator's "velocity score symmetry"."""
    half = velocities.shape[1] // 2
    similarity = 1.0 - np.abs(velocities[:, :half] - velocities[:, half : 2 * half])
    both = ~np.isnan(similarity)
    total = np.where(both, similarity, 0.0).sum(axis=(1, 2))
    return np.where(both.any(axis=(1, 2)), total / np.maximum(both.sum(axis=(1, 2)), 1), 0.0)


def _weak_to_strong_ratio(velocities: np.ndarray) -> np.ndarray:
    """Summed velocity of the hits off the quarter notes over that of the hits on them (0 where
    none is on them)."""
    on_beat = np.arange(velocities.shape[1]) % STEPS_PER_QUARTER == 0
    filled = np.nan_to_num(velocities)
    strong = filled[:, on_beat].sum(axis=(1, 2))
    weak = filled[:, ~on_beat].sum(axis=(1, 2))
    return np.where(strong > 0, weak / np.where(strong > 0, strong, 1.0), 0.0)


def _loops(values: np.ndarray, bars: int) -> np.ndarray:
    """(n, loops, bars * 16, ...) loops of `bars` bars cut from (n, steps, ...) grooves, the last
    bar repeated when the bars do not divide evenly (GrooveToolbox's padding)."""
    loop_steps = bars * STEPS_PER_BAR
    while values.shape[1] % loop_steps:
        values = np.concatenate([values, values[:, -STEPS_PER_BAR:]], axis=1)
    return values.reshape(len(values), -1, loop_steps, *values.shape[2:])


def _syncopation(hits: np.ndarray) -> np.ndarray:
    """Longuet-Higgins & Lee syncopation of each drum, scored per 2-bar loop (wrapping round),
    normalised by 30, averaged over the loops and summed over the drums ("combined syncopation").

    A hit syncopates when the next step is silent and metrically stronger (scored by how much
    stronger), or else when the step after next is.
    """
    loops = _loops(hits, SYNCOPATION_BARS)  # (n, loops, 32, 9)
    weights = np.tile(METRICAL_WEIGHTS, SYNCOPATION_BARS)[:, None]  # (32, 1)
    score = np.zeros(loops.shape)
    undecided = loops.copy()
    for ahead in (1, 2):
        rise = np.roll(weights, -ahead, axis=0) - weights
        syncopates = undecided & ~np.roll(loops, -ahead, axis=2) & (rise > 0)
        score += syncopates * rise
        undecided &= ~syncopates
    return (score.sum(axis=2) / MAX_SYNCOPATION).mean(axis=1).sum(axis=1)


def _swingness(step_offsets: np.ndarray) -> np.ndarray:
    """Mean lateness of the late hits on the 2nd and 4th 16th of each beat, in half steps (1 =
    half a step late), 0 where none is late: GrooveEvaluator's swingness (its DAW-style mode,
    the one its feature table uses)."""
    offbeat = step_offsets[:, 1::2]
    late = offbeat > 0  # NaN (no hit) compares False
    total = np.where(late, offbeat, 0.0).sum(axis=(1, 2))
    return np.where(late.any(axis=(1, 2)), 2.0 * total / np.maximum(late.sum(axis=(1, 2)), 1), 0.0)


def _laidbackness(offsets_ms: np.ndarray) -> np.ndarray:
    """Dragged minus pushed kick-and-snare beats, over the beats looked at: per bar, the kick on
    beats 1 and 3 and the snare on 2 and 4 drag when over 12 ms late against the grid or against
    a closed hi-hat on the same step, and push when over 12 ms early. A beat without its drum
    makes no event (GrooveToolbox's timing matrix holds NaN there)."""
    bars = _loops(offsets_ms, 1)[:, :, ::STEPS_PER_QUARTER]  # (n, bars, 4 beats, 9)
    drum = np.tile([KICK, SNARE], 2)
    timing = np.take_along_axis(bars, drum[None, None, :, None], axis=3)[..., 0]
    hat = bars[..., CLOSED_HI_HAT]
    # A comparison with NaN (no hit) is False, so a missing drum or hi-hat makes no event.
    dragged = (timing > LAIDBACK_THRESHOLD_MS) | (timing > hat + LAIDBACK_THRESHOLD_MS)
    pushed = (timing < -LAIDBACK_THRESHOLD_MS) | (timing < hat - LAIDBACK_THRESHOLD_MS)
    beats = dragged.shape[1] * dragged.shape[2]
    return (dragged.sum(axis=(1, 2)) - pushed.sum(axis=(1, 2))) / beats


def _timing_accuracy(step_offsets: np.ndarray) -> np.ndarray:
    """Mean over the 8th-note steps with a hit of |the step's mean offset|, in steps: how far the
    unswung positions sit from the grid (0 is exact; NaN without such a step)."""
    on_eighths = step_offsets[:, ::2]
    count = np.sum(~np.isnan(on_eighths), axis=2)
    step_mean = np.nan_to_num(on_eighths).sum(axis=2) / np.maximum(count, 1)
    played = count > 0
    total = np.where(played, np.abs(step_mean), 0.0).sum(axis=1)
    return np.where(played.any(axis=1), total / np.maximum(played.sum(axis=1), 1), np.nan)


KDE_GRID_POINTS = 4096  # where the smoothed distance densities are evaluated
KDE_MIN_BANDWIDTH = 1 / 256  # of the distances' span: a constant feature still has a density
KDE_KERNEL_REACH = 8.0  # bandwidths each kernel is summed over
KL_FLOOR = 1e-10  # of its peak: the reference density's floor in the KL, so it stays finite


class FeatureComparison(NamedTuple):
    """One feature of a generated set against a reference set (MGEval's relative measures)."""

    generated_mean: float
    generated_std: float
    reference_mean: float
    reference_std: float
    kl: float  # KL(inter-set distances || reference intra-set distances), 0 = alike
    overlap: float  # overlapping area of the same two densities, 1 = alike


def compare_sets(generated: dict, reference: dict) -> dict[str, FeatureComparison]:
    """MGEval's comparison of two sets of grooves, feature by feature.

    Method of Yang & Lerch, "On the evaluation of generative models in music" (Neural Computing
    and Applications, 2020; RichardYang40148/mgeval, mgeval/utils.py), as GrooveEvaluator applies
    it (behzadhaki/GrooveTransformer, eval/MultiSetEvaluator/src/utils.py): the intra-set
    distances of the reference (|f_i - f_j| between its grooves, i != j) and the inter-set
    distances (|g_i - f_j| from every generated groove to every reference groove) are each
    smoothed into a density by a Gaussian kernel (Scott's bandwidth); the figures are the KL
    divergence of the inter-set density from the intra-set one and the area under the smaller
    of the two. A generated set drawn like the reference gives KL near 0 and overlap near 1.

    Ours differs from the released code in two ways: both densities are read on one shared grid
    (mgeval reads each on its own range, so two densities of one shape at different places score
    KL 0), and the kernel sums are binned on that grid (4096 points) rather than taken pair by
    pair, so a million distances take milliseconds; the reference density is floored at 1e-10 of
    its peak so the KL stays finite (disjoint sets score about 20). NaN feature values are
    dropped, as GrooveEvaluator does. Memory grows as n * m + m * m distances: 2,000 windows
    against 2,000 hold 8 M float64s (64 MB) at a time, a few seconds for the 11 features.

    Args:
      generated: feature table of the generated set, name -> (n,) values (`groove_features`).
      reference: feature table of the reference set (e.g. GMD's test windows), name -> (m,).

    Returns:
      dict of each feature both tables hold, in `generated`'s order -> FeatureComparison.

    Raises:
      MetricsError: a feature with fewer than 2 values (after NaNs) in either set.
    """
    comparisons = {}
    for name in (name for name in generated if name in reference):
        ours, theirs = (
            _finite(table[name], label, name)
            for table, label in ((generated, "generated"), (reference, "reference"))
        )
        inter = np.abs(ours[:, None] - theirs[None, :]).ravel()
        intra = np.abs(theirs[:, None] - theirs[None, :])[~np.eye(len(theirs), dtype=bool)]
        kl, overlap = _kl_and_overlap(inter, intra)
        comparisons[name] = FeatureComparison(
            float(ours.mean()),
            float(ours.std()),
            float(theirs.mean()),
            float(theirs.std()),
            kl,
            overlap,
        )
    return comparisons


def _finite(values: np.ndarray, label: str, name: str) -> np.ndarray:
    values = np.asarray(values, np.float64).ravel()
    values = values[~np.isnan(values)]
    if values.size < 2:
        raise MetricsError(f"{label} set has {values.size} value(s) of {name}; 2 or more needed")
    return values


def _kl_and_overlap(inter: np.ndarray, intra: np.ndarray) -> tuple[float, float]:
    """KL(inter || intra) and the overlapping area of their Gaussian kernel densities."""
    low, high = min(inter.min(), intra.min()), max(inter.max(), intra.max())
    if high == low:  # every distance the same in both: one and the same point mass
        return 0.0, 1.0
    bandwidths = [
        max(_scott_bandwidth(d), KDE_MIN_BANDWIDTH * (high - low)) for d in (inter, intra)
    ]
    margin = 4.0 * max(bandwidths)
    grid = np.linspace(low - margin, high + margin, KDE_GRID_POINTS)
    p, q = (_binned_density(d, grid, b) for d, b in zip((inter, intra), bandwidths))
    dx = grid[1] - grid[0]
    overlap = float(np.minimum(p, q).sum() * dx)
    q = np.maximum(q, KL_FLOOR * q.max())
    ratio = np.where(p > 0, p, 1.0) / q
    return float(np.sum(p * np.log(ratio)) * dx), overlap


def _scott_bandwidth(values: np.ndarray) -> float:
    """Scott's rule for one dimension, as scipy.stats.gaussian_kde: std * n ** (-1/5)."""
    return float(values.std(ddof=1) * values.size**-0.2) if values.size > 1 else 0.0


def _binned_density(values: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """A Gaussian kernel density of `values` on an even `grid`: counts per grid cell convolved with
    the kernel, normalised to integrate to 1."""
    dx = grid[1] - grid[0]
    edges = np.append(grid - dx / 2, grid[-1] + dx / 2)
    counts, _ = np.histogram(values, bins=edges)
    # The kernel reaches 8 bandwidths (its tail there is 1e-14 of its peak), the KL divergence
    # reads the smaller density's tails.
    reach = min(int(np.ceil(KDE_KERNEL_REACH * bandwidth / dx)), len(grid) - 1)
    taps = np.arange(-reach, reach + 1) * dx / bandwidth
    density = np.convolve(counts, np.exp(-0.5 * taps**2))[reach : reach + len(grid)]
    return density / (density.sum() * dx)


def comparison_markdown(comparisons: dict[str, FeatureComparison]) -> str:
    """A markdown table of `compare_sets`' result: one row per feature, its meaning, each set's
    mean ± std, KL and overlapping area."""
    lines = [
        "| feature | measures | generated | reference | KL | overlap |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in comparisons.items():
        lines.append(
            f"| {name} | {GROOVE_FEATURES.get(name, '')} "
            f"| {c.generated_mean:.3f} ± {c.generated_std:.3f} "
            f"| {c.reference_mean:.3f} ± {c.reference_std:.3f} | {c.kl:.3f} | {c.overlap:.3f} |"
        )
    return "\n".join(lines)
