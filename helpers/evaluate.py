"""A trained GrooVAE's evaluation: runs the model over a split, scores it with helpers.metrics."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from helpers.cli import add_data_dir, add_run_dir, command_parser, run_folder
from helpers.constants import DEFAULT_QPM
from helpers.converter import GrooveConverter, encoder_inputs
from helpers.metrics import (
    MarginalSampler,
    check_grooves,
    distribution_distances,
    groove_statistics,
    novelty,
    reconstruction_metrics,
)

# The model, sampler and data are imported inside the run-level functions, so
# `import helpers.evaluate` never loads TensorFlow.

GREEDY_TEMPERATURE = 1e-6  # hits = logit > 0, as the parity oracle's greedy decode
SAMPLE_TEMPERATURES = (0.5, 1.0)


def _compiled(fn, *shapes: tuple):
    """`fn` of float32 arrays of `shapes` as one graph on TensorFlow, where Keras runs an LSTM's
    loop op by op when eager.

    A None batch size makes one graph serve every batch, the last smaller one included: each
    graph costs a trace and an optimisation on its first call.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return fn
    import tensorflow as tf

    signature = [tf.TensorSpec(shape, tf.float32) for shape in shapes]
    return tf.function(fn, input_signature=signature)


def _batches(arrays: list, batch_size: int):
    """Row batches of each array that is not None, together."""
    arrays = [np.asarray(a, np.float32) for a in arrays if a is not None]
    for begin in range(0, len(arrays[0]), batch_size):
        yield [a[begin : begin + batch_size] for a in arrays]


def posterior(
    model, inputs: np.ndarray, batch_size: int = 512, controls: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma), each (n, z_size) float32: q(z | inputs, controls) of every window, dropout
    off (controls: model.controls_of the targets, for a hits-conditioned model)."""
    shapes = [(None, *np.shape(a)[1:]) for a in (inputs, controls) if a is not None]
    encode = _compiled(model.encode, *shapes)
    parts = [encode(*batch) for batch in _batches([inputs, controls], batch_size)]
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
    controls = model.controls_of(targets)
    if encoded is None:
        encoded = posterior(model, inputs, batch_size, controls)
    all_mu, all_sigma = encoded
    shapes = [(None, *np.shape(targets)[1:]), (None, all_mu.shape[1])]
    if controls is not None:
        shapes.append((None, *controls.shape[1:]))
    teacher_forced = _compiled(model.reconstruction_logits, *shapes)
    parts = {"hits_loss": [], "velocities_loss": [], "offsets_loss": [], "kl_nats": []}
    for begin in range(0, len(targets), batch_size):
        y = targets[begin : begin + batch_size]
        mu, sigma = all_mu[begin : begin + batch_size], all_sigma[begin : begin + batch_size]
        z = mu + sigma * rng.standard_normal(mu.shape).astype(np.float32)
        extra = [] if controls is None else [controls[begin : begin + batch_size]]
        logits = teacher_forced(np.asarray(y, np.float32), z.astype(np.float32, copy=False), *extra)
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
    model,
    inputs: np.ndarray,
    batch_size: int = 512,
    mu: np.ndarray | None = None,
    controls: np.ndarray | None = None,
) -> np.ndarray:
    """Decodes each window's posterior mean with hits = logit > 0.

    Args:
      mu: the posterior means of `inputs` if already computed (see `posterior`).
      controls: model.controls_of(targets), for a hits-conditioned model.

    Returns:
      (n, steps, 27) float32.
    """
    mu = posterior(model, inputs, batch_size, controls)[0] if mu is None else mu
    out = [
        np.asarray(model.decode(batch[0], GREEDY_TEMPERATURE, 0, *batch[1:]), np.float32)
        for batch in _batches([mu, controls], batch_size)
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

    test, train = check_grooves(test, "test"), check_grooves(train, "train")
    inputs = encoder_inputs(test, model.config.converter, seed)
    controls = model.controls_of(test)
    # A hits-conditioned model samples feels for the test windows' hits, taken in turn.
    sample_controls = None if controls is None else controls[np.arange(num_samples) % len(test)]
    sampler = TrainedModel(model=model)
    keras.utils.set_random_seed(seed)
    untrained = GrooVAE(model.config)
    untrained_sampler = TrainedModel(model=untrained)
    # Each model encodes the test windows once, for its eval losses and its reconstructions.
    encoded = posterior(model, inputs, controls=controls)
    untrained_encoded = posterior(untrained, inputs, controls=controls)
    return {
        "config": model.config.name,
        "num_test_windows": len(test),
        "num_train_windows": len(train),
        "eval": magenta_eval_losses(model, inputs, test, seed, encoded=encoded),
        "reconstruction": reconstruction_metrics(
            test, greedy_reconstructions(model, inputs, mu=encoded[0], controls=controls), qpm
        ),
        "samples": {
            f"temperature_{t}": _sample_report(
                sampler.sample_grooves(num_samples, t, seed, sample_controls), test, train
            )
            for t in temperatures
        },
        "baselines": {
            "untrained": {
                "eval": magenta_eval_losses(
                    untrained, inputs, test, seed, encoded=untrained_encoded
                ),
                "reconstruction": reconstruction_metrics(
                    test,
                    greedy_reconstructions(
                        untrained, inputs, mu=untrained_encoded[0], controls=controls
                    ),
                    qpm,
                ),
                **_sample_report(
                    untrained_sampler.sample_grooves(
                        num_samples, temperatures[0], seed, sample_controls
                    ),
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


def json_ready(value):
    """NaN -> None so metrics.json stays strict JSON."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
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
    from helpers.runs import restore_model

    model = restore_model(run_dir)
    converter = GrooveConverter.from_config(model.config.converter)  # the run's 2- or 4-bar cut
    real = load_groove_4bar_split(split, data_dir, converter)
    train = load_groove_4bar_split("train", data_dir, converter)
    metrics = evaluate_model(
        model,
        real.outputs,
        train.outputs,
        num_samples,
        tuple(temperatures),
        qpm=real.meta["bpm"].to_numpy(np.float64),
        seed=seed,
    )
    metrics = json_ready({"run_dir": str(run_dir), "split": split, **metrics})
    (Path(run_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def metrics_table(metrics: dict) -> str:
    """The headline numbers of `evaluate_run` as an aligned text table."""
    rows = [("eval " + k, v) for k, v in metrics["eval"].items()]
    rows += [
        (f"reconstruction {k}", metrics["reconstruction"][k])
        for k in (
            "hit_accuracy",
            "precision",
            "recall",
            "f1",
            "velocity_mae",
            "timing_mae_ms",
            "velocity_mae_found",
            "timing_mae_found_ms",
        )
    ]
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
    rows.append(
        ("test windows: nearest train Hamming", metrics["test_novelty"]["nearest_hamming_mean"])
    )
    width = max(len(name) for name, _ in rows)
    return "\n".join(
        f"{name:<{width}}  " + ("n/a" if value is None else f"{value:.4f}") for name, value in rows
    )


def main(argv: list[str] | None = None) -> dict:
    """`python -m helpers.evaluate --run-dir RUN`: prints the metrics table; returns the metrics."""
    parser = command_parser("evaluate", __doc__)
    add_run_dir(parser, "--checkpoint", required=True, type=run_folder)
    parser.add_argument("--split", default="test", choices=("test", "validation"))
    add_data_dir(parser)
    parser.add_argument(
        "--num-samples", "--num_samples", dest="num_samples", type=int, default=1000
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    metrics = evaluate_run(
        args.run_dir, args.split, args.data_dir, args.num_samples, seed=args.seed
    )
    print(metrics_table(metrics))
    return metrics


if __name__ == "__main__":
    from helpers.cli import run_command

    run_command(main)
