"""Numbers for a trained GrooVAE: reconstruction scores, sample statistics, baselines, novelty."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
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
    WINDOW_STEPS,
)
from helpers.converter import encoder_inputs

# The metrics above are pure numpy. The run-level functions below import the model, sampler and
# data inside, so `import helpers.evaluate` never loads TensorFlow.

NEAREST_K = 20
GREEDY_TEMPERATURE = 1e-6  # hits = logit > 0, as the parity oracle's greedy decode
SAMPLE_TEMPERATURES = (0.5, 1.0)


class EvaluateError(Exception):
    """Arrays or runs that cannot be evaluated."""


def _check_grooves(grooves: np.ndarray, name: str) -> np.ndarray:
    grooves = np.asarray(grooves, np.float32)
    if grooves.ndim != 3 or grooves.shape[1:] != (WINDOW_STEPS, GROOVE_DEPTH):
        raise EvaluateError(
            f"{name} must be (n, {WINDOW_STEPS}, {GROOVE_DEPTH}) grooves, got shape {grooves.shape}"
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
    true = _check_grooves(true, "true")
    pred = _check_grooves(pred, "pred")
    if true.shape != pred.shape:
        raise EvaluateError(f"true {true.shape} and pred {pred.shape} differ in shape")
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
    grooves = _check_grooves(grooves, "grooves")
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
    a, b = _check_grooves(grooves_a, "grooves_a"), _check_grooves(grooves_b, "grooves_b")
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
        train = _check_grooves(train, "train")
        hits = train[..., HITS] > 0.5  # (n, 64, 9)
        self.hit_probability = hits.mean(axis=0)  # (64, 9)
        window, step, drum = np.nonzero(hits)
        cell = step * NUM_DRUM_CLASSES + drum
        order = np.argsort(cell, kind="stable")
        velocities = train[window, step, VELOCITIES.start + drum]
        offsets = train[window, step, OFFSETS.start + drum]
        self._values = np.stack([velocities, offsets], axis=-1)[order]  # (num_hits, 2) by cell
        self._counts = np.bincount(cell, minlength=WINDOW_STEPS * NUM_DRUM_CLASSES)
        self._starts = np.concatenate([[0], np.cumsum(self._counts)[:-1]])

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """Returns (n, 64, 27) float32 grooves."""
        rng = np.random.default_rng(seed)
        hits = rng.random((n, WINDOW_STEPS, NUM_DRUM_CLASSES)) < self.hit_probability
        grooves = np.zeros((n, WINDOW_STEPS, GROOVE_DEPTH), np.float32)
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


def nearest_neighbours(
    grooves: np.ndarray, train: np.ndarray, k: int = NEAREST_K, chunk: int = 64
) -> Neighbours:
    """Finds each groove's k nearest training windows.

    The distance is the Hamming distance between hit patterns (cells where one has a hit and the
    other not). Ties are broken by the squared Euclidean distance of the velocities, then of the
    offsets, then by training index. Hamming distances come from one matrix product per `chunk`
    queries, the tie-breakers only for each query's candidates, so 1,000 samples against 15.6k
    windows take about a second.

    Args:
      grooves: (n, 64, 27) query grooves.
      train: (m, 64, 27) training windows, m >= k.
      k: neighbours per query.
      chunk: queries per matrix product (memory is about 3 * chunk * m float32s).

    Returns:
      Neighbours(indices (n, k), hamming (n, k)).
    """
    grooves, train = _check_grooves(grooves, "grooves"), _check_grooves(train, "train")
    if not 1 <= k <= len(train):
        raise EvaluateError(f"k={k} neighbours asked from {len(train)} training windows")

    def features(x):
        flat = lambda part: x[..., part].reshape(len(x), -1)  # noqa: E731
        return (flat(HITS) > 0.5).astype(np.float32), flat(VELOCITIES), flat(OFFSETS)

    def squared(q, t, t_norm):
        return (q * q).sum(axis=1)[:, None] + t_norm[None] - 2.0 * q @ t.T

    train_parts = features(train)
    train_norms = [(t * t).sum(axis=1) for t in train_parts]
    indices = np.empty((len(grooves), k), np.int64)
    hamming = np.empty((len(grooves), k), np.int64)
    for begin in range(0, len(grooves), chunk):
        query_hits, query_vel, query_off = features(grooves[begin : begin + chunk])
        # for 0/1 vectors the squared distance is the Hamming distance, exact in float32
        # int16 holds 0..576 and partitions several times faster than int64
        ham = np.rint(squared(query_hits, train_parts[0], train_norms[0])).astype(np.int16)
        kth = np.partition(ham, k - 1, axis=1)[:, k - 1]
        for row in range(len(ham)):
            candidates = np.flatnonzero(ham[row] <= kth[row])
            # The tie-breakers only for the few candidates, not all m windows.
            vel, off = (
                squared(q[row : row + 1], t[candidates], n[candidates])[0]
                for q, t, n in zip((query_vel, query_off), train_parts[1:], train_norms[1:])
            )
            keys = (candidates, off, vel, ham[row, candidates])
            best = candidates[np.lexsort(keys)][:k]  # lexsort: the last key sorts first
            indices[begin + row], hamming[begin + row] = best, ham[row, best]
    return Neighbours(indices, hamming)


def novelty(grooves: np.ndarray, train: np.ndarray, k: int = NEAREST_K) -> dict:
    """How far grooves sit from the training set, by their nearest training window.

    Returns:
      dict of `nearest_hamming_mean`, `nearest_hamming_median`, `copy_fraction` (share of grooves
      whose hit pattern equals a training window's) and `k_hamming_mean` (mean over all k).
    """
    found = nearest_neighbours(grooves, train, k=k)
    nearest = found.hamming[:, 0]
    return {
        "nearest_hamming_mean": float(nearest.mean()),
        "nearest_hamming_median": float(np.median(nearest)),
        "copy_fraction": float((nearest == 0).mean()),
        "k_hamming_mean": float(found.hamming.mean()),
    }


# ------------------------------------------------------------------------------------------------
# A whole run


def _compiled(fn):
    """`fn` as one graph on TensorFlow, where Keras runs an LSTM's loop op by op when eager."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return fn
    import tensorflow as tf

    return tf.function(fn, reduce_retracing=True)


def posterior(model, inputs: np.ndarray, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma), each (n, z_size) float32: q(z | inputs) of every window, dropout off."""
    encode = _compiled(model.encode)
    parts = [encode(inputs[begin : begin + batch_size])
             for begin in range(0, len(inputs), batch_size)]
    return tuple(np.concatenate([np.asarray(p[i], np.float32) for p in parts]) for i in (0, 1))


def magenta_eval_losses(
    model,
    inputs: np.ndarray,
    targets: np.ndarray,
    seed: int = 0,
    batch_size: int = 512,
    encoded: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Magenta's eval numbers over a whole split, dropout off, z sampled from q (spec §4).

    Args:
      model: a GrooVAE.
      inputs: (n, 64, 27) encoder inputs (the run's converter options applied).
      targets: (n, 64, 27) decoder targets.
      seed: for the posterior samples.
      encoded: `posterior(model, inputs)` if already computed (the encoder is most of the cost).

    Returns:
      dict of per-timestep `hits_loss`, `velocities_loss`, `offsets_loss` (sums over the 9
      classes, averaged over every timestep), per-sequence `r_loss`, `kl_bits`, `kl_loss` (after
      free bits), `kl_beta` at the run's last step and `loss`, all means over the n windows.
    """
    from helpers.losses import kl_beta, kl_divergence, reconstruction_losses

    rng = np.random.default_rng(seed)
    all_mu, all_sigma = posterior(model, inputs, batch_size) if encoded is None else encoded
    teacher_forced = _compiled(model.reconstruction_logits)
    parts = {"hits_loss": [], "velocities_loss": [], "offsets_loss": [], "kl_nats": []}
    for begin in range(0, len(targets), batch_size):
        y = targets[begin : begin + batch_size]
        mu, sigma = all_mu[begin : begin + batch_size], all_sigma[begin : begin + batch_size]
        z = mu + sigma * rng.standard_normal(mu.shape).astype(np.float32)
        logits = teacher_forced(y, z)
        for name, values in zip(list(parts)[:3], reconstruction_losses(y, logits)):
            parts[name].append(np.asarray(values))  # (batch, 64)
        parts["kl_nats"].append(np.asarray(kl_divergence(mu, sigma)))
    steps = {name: np.concatenate(parts[name]) for name in parts}
    m = model.config.model
    kl_cost = np.maximum(steps["kl_nats"] - m.free_bits * np.log(2.0), 0.0)
    beta = float(kl_beta(model.config.train.num_steps, m))
    r_loss = sum(steps[name] for name in list(parts)[:3]).sum(axis=1)
    return {
        "hits_loss": float(steps["hits_loss"].mean()),
        "velocities_loss": float(steps["velocities_loss"].mean()),
        "offsets_loss": float(steps["offsets_loss"].mean()),
        "r_loss": float(r_loss.mean()),
        "kl_bits": float(steps["kl_nats"].mean() / np.log(2.0)),
        "kl_loss": float(kl_cost.mean()),
        "kl_beta": beta,
        "loss": float(r_loss.mean() + beta * kl_cost.mean()),
    }


def greedy_reconstructions(
    model, inputs: np.ndarray, batch_size: int = 512, mu: np.ndarray | None = None
) -> np.ndarray:
    """Decodes each window's posterior mean with hits = logit > 0.

    Args:
      mu: the posterior means of `inputs` if already computed (see `posterior`).

    Returns:
      (n, 64, 27) float32.
    """
    mu = posterior(model, inputs, batch_size)[0] if mu is None else mu
    out = [
        np.asarray(model.decode(mu[begin : begin + batch_size], GREEDY_TEMPERATURE, 0), np.float32)
        for begin in range(0, len(mu), batch_size)
    ]
    return np.concatenate(out)


def _sample_report(samples: np.ndarray, real: np.ndarray, train: np.ndarray) -> dict:
    return {
        "statistics": groove_statistics(samples),
        "distance_to_real": distribution_distances(samples, real),
        "novelty": novelty(samples, train),
    }


def evaluate_model(
    model,
    test: np.ndarray,
    train: np.ndarray,
    num_samples: int = 1000,
    temperatures: tuple[float, ...] = SAMPLE_TEMPERATURES,
    qpm: float | np.ndarray = DEFAULT_QPM,
    seed: int = 0,
) -> dict:
    """Every number of a run's evaluation, on arrays.

    Args:
      model: a GrooVAE.
      test: (n, 64, 27) real windows to score against (the decoder targets).
      train: (m, 64, 27) training windows, for the marginal baseline and novelty.
      num_samples: grooves drawn per temperature and per baseline.
      temperatures: sampling temperatures.
      qpm: tempo for timing errors in ms, scalar or per test window.
      seed: for posterior samples, prior samples and the baselines.

    Returns:
      A JSON-ready dict: `eval` (Magenta's losses), `reconstruction`, `samples` per temperature,
      `baselines` (`untrained`: a fresh GrooVAE of the same config; `marginal`), `test_novelty`
      (how far real unseen windows sit from the training set, for reference).
    """
    import keras

    from helpers.model import GrooVAE
    from helpers.sample import TrainedModel

    test, train = _check_grooves(test, "test"), _check_grooves(train, "train")
    inputs = encoder_inputs(test, model.config.converter, np.random.default_rng(seed))
    sampler = TrainedModel(model=model)
    keras.utils.set_random_seed(seed)
    untrained = GrooVAE(model.config)
    untrained_sampler = TrainedModel(model=untrained)
    # Each model encodes the test windows once, for its eval losses and its reconstructions.
    encoded, untrained_encoded = posterior(model, inputs), posterior(untrained, inputs)
    return {
        "config": model.config.name,
        "num_test_windows": len(test),
        "num_train_windows": len(train),
        "eval": magenta_eval_losses(model, inputs, test, seed, encoded=encoded),
        "reconstruction": reconstruction_metrics(
            test, greedy_reconstructions(model, inputs, mu=encoded[0]), qpm
        ),
        "samples": {
            f"temperature_{t}": _sample_report(
                sampler.sample_grooves(num_samples, t, seed), test, train
            )
            for t in temperatures
        },
        "baselines": {
            "untrained": {
                "eval": magenta_eval_losses(
                    untrained, inputs, test, seed, encoded=untrained_encoded
                ),
                "reconstruction": reconstruction_metrics(
                    test, greedy_reconstructions(untrained, inputs, mu=untrained_encoded[0]), qpm
                ),
                **_sample_report(
                    untrained_sampler.sample_grooves(num_samples, temperatures[0], seed),
                    test,
                    train,
                ),
            },
            "marginal": _sample_report(
                MarginalSampler(train).sample(num_samples, seed), test, train
            ),
        },
        "test_novelty": novelty(test, train),
    }


def _json_ready(value):
    """NaN -> None so metrics.json stays strict JSON."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def evaluate_run(
    run_dir: str | os.PathLike,
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    num_samples: int = 1000,
    temperatures: tuple[float, ...] = SAMPLE_TEMPERATURES,
    seed: int = 0,
) -> dict:
    """Evaluates a run's newest checkpoint on a GMD split and writes run_dir/metrics.json.

    Timing errors in ms use each window's own tempo (GMD's bpm).

    Args:
      run_dir: a run folder (config.json + checkpoints).
      split: the GMD split to score ("test" or "validation").
      data_dir: the GMD folder (helpers.data finds it when None).
      num_samples, temperatures, seed: as `evaluate_model`.

    Returns:
      The metrics dict (see `evaluate_model`), plus `run_dir` and `split`; NaN written as null.
    """
    from helpers.data import load_groove_4bar_split
    from helpers.train import restore_model

    model = restore_model(run_dir)
    real = load_groove_4bar_split(split, data_dir)
    train = load_groove_4bar_split("train", data_dir)
    metrics = evaluate_model(
        model,
        real.outputs,
        train.outputs,
        num_samples,
        tuple(temperatures),
        qpm=real.meta["bpm"].to_numpy(np.float64),
        seed=seed,
    )
    metrics = _json_ready({"run_dir": str(run_dir), "split": split, **metrics})
    (Path(run_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def metrics_table(metrics: dict) -> str:
    """The headline numbers of `evaluate_run` as an aligned text table."""
    rows = [("eval " + k, v) for k, v in metrics["eval"].items()]
    rows += [(f"reconstruction {k}", metrics["reconstruction"][k]) for k in
             ("hit_accuracy", "precision", "recall", "f1", "velocity_mae", "timing_mae_ms",
              "velocity_mae_found", "timing_mae_found_ms")]
    sets = {name: report for name, report in metrics["samples"].items()}
    sets.update({f"{name} baseline": report for name, report in metrics["baselines"].items()})
    for name, report in sets.items():
        distance = report["distance_to_real"]
        rows += [
            (f"{name}: W1 hit density", distance["hit_density_mean"]),
            (f"{name}: W1 velocity", distance["velocity"]),
            (f"{name}: W1 offset", distance["offset"]),
            (f"{name}: W1 hits per bar", distance["hits_per_bar"]),
            (f"{name}: nearest train Hamming", report["novelty"]["nearest_hamming_mean"]),
            (f"{name}: copies of train", report["novelty"]["copy_fraction"]),
        ]
    rows.append(("test windows: nearest train Hamming",
                 metrics["test_novelty"]["nearest_hamming_mean"]))
    width = max(len(name) for name, _ in rows)
    return "\n".join(
        f"{name:<{width}}  " + ("n/a" if value is None else f"{value:.4f}") for name, value in rows
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Evaluate a GrooVAE run; writes metrics.json.")
    parser.add_argument("--checkpoint", required=True, help="run folder")
    parser.add_argument("--split", default="test", choices=("test", "validation"))
    parser.add_argument("--data-dir", "--data_dir", default=None)
    parser.add_argument("--num-samples", "--num_samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(metrics_table(evaluate_run(args.checkpoint, args.split, args.data_dir,
                                     args.num_samples, seed=args.seed)))
