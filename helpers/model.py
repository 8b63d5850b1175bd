"""GrooVAE: Magenta's groovae_4bar network (spec §3) as a Keras 3 model, trained on `losses`."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from helpers import backends
from helpers.backends import posterior_noise
from helpers.config import GrooVAEConfig
from helpers.constants import GROOVE_DEPTH, HITS, NUM_DRUM_CLASSES, OFFSETS, VELOCITIES
from helpers.data import training_rows
from helpers.losses import loss_terms, reconstruction_losses

TRAIN_TERMS = ("loss", "r_loss", "kl_loss", "kl_bits", "kl_beta", "global_norm")
EVAL_TERMS = (
    *TRAIN_TERMS[:-1],
    "hits_loss",  # per-timestep sums over the 9 classes, averaged over timesteps (spec §4)
    "velocities_loss",
    "offsets_loss",
    "hit_accuracy",  # fraction of the 9 x 64 hit cells right at p > 0.5, teacher forced
)
HIT_COUNTS = ("hit_tp", "hit_fp", "hit_fn")  # streamed over an evaluation for the hit F1
# How the sampling decoder gives a drawn hit its velocity and offset: "per_hit" plays each drawn
# hit at the value the model expects given that hit, with a learned spread drawn around it, and
# feeds back zeros where no hit is drawn (as training data has); "magenta" is Magenta's exact
# decoding (spec §3.4), which plays and feeds back the raw outputs in every cell.
DECODINGS = ("per_hit", "magenta")
# Under Magenta's objective the outputs are p(hit) * E[value | hit]; dividing by p recovers the
# value given a hit, with p floored here so a hit the model hardly expected is not blown up.
MIN_HIT_PROBABILITY = 0.05
MIN_RESIDUAL_HITS = 50  # true hits of a drum below which it takes the residuals of all drums
RESIDUAL_WINDOWS = 2048  # training windows HitResiduals are measured on
RESIDUAL_QUANTILES = 65  # points of each residual distribution kept, 0 to 1 in steps of 1/64


class ModelError(Exception):
    """Weights or inputs that do not fit the model's config."""


@dataclass(frozen=True)
class HitResiduals:
    """How a drummer's hits stray from what the model expects given each hit, per drum: the
    quantiles of (played - expected) velocity and offset over the true hits of teacher-forced
    training windows. Per-hit decoding draws a residual from them (by the inverse of their
    distribution) scaled by sqrt(temperature), as dividing a log-density by the temperature
    scales a normal's variance, so at temperature 1 a set of grooves has the drummers' spread
    and its shape, near 0 the expected values.

    Kept beside a model's weights as hit_residuals.json (runs write it when they end; bundles
    carry it).
    """

    velocities: tuple[tuple[float, ...], ...]  # 9 drums x RESIDUAL_QUANTILES, velocity in [0, 1]
    offsets: tuple[tuple[float, ...], ...]  # the same for offsets in [-1, 1] of half a step
    hits: int  # true hits they were measured on

    FILE = "hit_residuals.json"

    def array(self) -> np.ndarray:
        """(2, 9, quantiles) float32: velocities' residual quantiles, then offsets'."""
        return np.asarray([self.velocities, self.offsets], np.float32)

    def write(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / self.FILE
        path.write_text(json.dumps(dataclasses.asdict(self)))
        return path

    @classmethod
    def read(cls, folder: str | os.PathLike) -> HitResiduals | None:
        """The residuals kept in `folder`, or None when it has none.

        Raises:
          ModelError: a damaged file (not JSON, missing fields, not 9 rising finite quantile
            rows per feature).
        """
        path = Path(folder) / cls.FILE
        if not path.exists():
            return None
        try:
            values = json.loads(path.read_text())
            parts = [tuple(tuple(row) for row in values[k]) for k in ("velocities", "offsets")]
            residuals = cls(*parts, int(values["hits"]))
            array = residuals.array()
        except (ValueError, KeyError, TypeError) as error:
            raise ModelError(f"{path} is damaged ({error}); delete it to measure again") from None
        if (
            array.ndim != 3
            or array.shape[:2] != (2, NUM_DRUM_CLASSES)
            or not np.all(np.isfinite(array))
            or np.any(np.diff(array, axis=-1) < 0)
        ):
            raise ModelError(f"{path} does not hold rising residual quantiles per drum; delete it")
        return residuals


def _fused_glorot(input_dim: int, units: int) -> keras.initializers.Initializer:
    """TF1's glorot_uniform over LSTMBlockCell's fused [in + H, 4H] kernel (spec §3.1)."""
    limit = math.sqrt(6.0 / (input_dim + units + 4 * units))
    return keras.initializers.RandomUniform(-limit, limit)


def _lstm(units: int, input_dim: int, dtype, name: str, **kwargs) -> layers.LSTM:
    # Default activations, biases and no recurrent dropout keep the layer cuDNN-eligible.
    return layers.LSTM(
        units,
        unit_forget_bias=True,
        kernel_initializer=_fused_glorot(input_dim, units),
        recurrent_initializer=_fused_glorot(input_dim, units),
        dtype=dtype,
        name=name,
        **kwargs,
    )


def _small_dense(units: int, dtype, name: str) -> layers.Dense:
    """Magenta's mu, sigma and z_to_initial_state layers: kernels N(0, 0.001^2) (spec §3.3)."""
    return layers.Dense(
        units,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
        dtype=dtype,
        name=name,
    )


@keras.saving.register_keras_serializable(package="groovae")
class GrooVAE(keras.Model):
    """Magenta's MusicVAE with a BiLSTM encoder and a GrooveLstmDecoder (spec §3).

    `model(x)` is the deterministic teacher-forced reconstruction (z = mu) of a (batch, 64, 27)
    groove, as logits. Training data are (encoder inputs, decoder targets) pairs: the inputs
    differ from the targets in the humanize and tap variants (spec §2.4).
    """

    def __init__(self, config: GrooVAEConfig, **kwargs):
        precision = config.train.precision  # Keras's mixed policies keep float32 variables
        kwargs.setdefault("dtype", None if precision == "float32" else f"mixed_{precision}")
        super().__init__(**kwargs)
        self.config = config
        m = config.model
        dtype = self.dtype_policy
        rate = 1.0 - m.dropout_keep_prob  # on every LSTM layer's input, per step (spec §3.2)
        # Seeded: an unseeded Dropout draws from PyTorch's global generator, which a resumed run
        # restarts; a seed puts its draws in a state the checkpoint carries, on every backend.
        dropout_seeds = itertools.count(config.train.seed + 2)  # seed, seed + 1: the z seeds

        def dropout(name: str) -> layers.Dropout:
            return layers.Dropout(rate, seed=next(dropout_seeds), dtype=dtype, name=name)

        # hits_as_controls: the target's hits join the encoder's input and every decoder step's.
        self.control_depth = NUM_DRUM_CLASSES if config.converter.hits_as_controls else 0

        # Encoder: each layer a forward and a backward LSTM, each with its own input dropout.
        self.encoder_fw, self.encoder_bw, self.encoder_dropout = [], [], []
        input_dim = GROOVE_DEPTH + self.control_depth
        for i, units in enumerate(m.enc_rnn_size):
            last = i == len(m.enc_rnn_size) - 1
            for direction, lstms in (("fw", self.encoder_fw), ("bw", self.encoder_bw)):
                lstms.append(
                    _lstm(
                        units,
                        input_dim,
                        dtype,
                        f"encoder_{direction}_{i}",
                        return_sequences=not last,
                        go_backwards=direction == "bw",
                    )
                )
            self.encoder_dropout.append([dropout(f"encoder_dropout_{d}_{i}") for d in "fb"])
            input_dim = 2 * units
        self.mu = _small_dense(m.z_size, dtype, "mu")
        self.sigma = _small_dense(m.z_size, dtype, "sigma")

        # Decoder: z -> initial states, then a stack of LSTMs fed [previous target, z].
        self.z_to_initial_state = _small_dense(2 * sum(m.dec_rnn_size), dtype, "z_to_initial_state")
        self.decoder_lstms, self.decoder_dropout = [], []
        input_dim = GROOVE_DEPTH + m.z_size + self.control_depth
        for i, units in enumerate(m.dec_rnn_size):
            name = f"decoder_{i}"
            self.decoder_lstms.append(
                _lstm(units, input_dim, dtype, name, return_sequences=True, return_state=True)
            )
            self.decoder_dropout.append(dropout(f"{name}_dropout"))
            input_dim = units
        self.output_projection = layers.Dense(GROOVE_DEPTH, dtype=dtype, name="output_projection")

        self.z_seed = keras.random.SeedGenerator(config.train.seed, name="z_seed")
        self.eval_z_seed = keras.random.SeedGenerator(config.train.seed + 1, name="eval_z_seed")
        self._eval_z_seed_start = ops.convert_to_numpy(self.eval_z_seed.state)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in TRAIN_TERMS + EVAL_TERMS}
        # Hit F1 over all cells, streamed as counts of true positives, false positives and misses.
        self.hit_counts = {name: keras.metrics.Sum(name=name) for name in HIT_COUNTS}
        self.build((None, m.max_seq_len, GROOVE_DEPTH))

    def build(self, input_shape):
        """Creates every weight from the config alone, so weights load before any call."""
        m = self.config.model
        steps = m.max_seq_len
        input_dim = GROOVE_DEPTH + self.control_depth
        for fw, bw, units in zip(self.encoder_fw, self.encoder_bw, m.enc_rnn_size):
            fw.build((None, steps, input_dim))
            bw.build((None, steps, input_dim))
            input_dim = 2 * units
        self.mu.build((None, input_dim))
        self.sigma.build((None, input_dim))
        self.z_to_initial_state.build((None, m.z_size))
        input_dim = GROOVE_DEPTH + m.z_size + self.control_depth
        for lstm, units in zip(self.decoder_lstms, m.dec_rnn_size):
            lstm.build((None, steps, input_dim))
            input_dim = units
        self.output_projection.build((None, steps, input_dim))
        self.built = True

    @property
    def metrics(self) -> list:
        return [*self.trackers.values(), *self.hit_counts.values()]

    def get_config(self) -> dict:
        return {"name": self.name, "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config: dict) -> GrooVAE:
        return cls(GrooVAEConfig.from_dict(config["config"]), name=config.get("name"))

    def reset_eval_noise(self) -> None:
        """Restarts evaluation's posterior samples, so every evaluation draws the same z noise."""
        self.eval_z_seed.state.assign(self._eval_z_seed_start)

    def with_controls(self, x, controls):
        """[x, controls] on the last axis, as Magenta's MusicVAE joins them; x alone without.

        Raises:
          ModelError: controls missing for a model that has them, or given to one that has not.
        """
        if self.control_depth == 0:
            if controls is not None:
                raise ModelError(f"{self.config.name} takes no controls")
            return x
        if controls is None:
            raise ModelError(
                f"{self.config.name} is conditioned on hits: pass controls, (batch, steps, 9) hits"
            )
        return ops.concatenate([x, ops.cast(controls, x.dtype)], axis=-1)

    def encode(self, inputs, controls=None, training: bool = False):
        """The posterior q(z | inputs, controls) (spec §3.3).

        Args:
          inputs: (batch, steps, 27) float encoder inputs.
          controls: (batch, steps, 9) hits, for a hits_as_controls config only.
          training: applies input dropout when True.

        Returns:
          (mu, sigma), each (batch, z_size) float32; sigma = softplus(dense), no floor.
        """
        x = self.with_controls(ops.convert_to_tensor(inputs), controls)
        encoder = zip(self.encoder_fw, self.encoder_bw, self.encoder_dropout)
        for fw, bw, (drop_fw, drop_bw) in encoder:
            h_fw = fw(drop_fw(x, training=training))
            h_bw = bw(drop_bw(x, training=training))
            if fw.return_sequences:  # a lower layer: realign the backward outputs in time
                h_bw = ops.flip(h_bw, axis=1)
            # Last layer: h_fw at the last step, h_bw after consuming step 0.
            x = ops.concatenate([h_fw, h_bw], axis=-1)
        mu = ops.cast(self.mu(x), "float32")
        sigma = ops.cast(ops.softplus(self.sigma(x)), "float32")
        return mu, sigma

    def _initial_states(self, z) -> list:
        """tanh(dense(z)) split as Magenta's [c1, h1, c2, h2, ...] into Keras [h, c] pairs."""
        flat = ops.tanh(self.z_to_initial_state(z))
        states, start = [], 0
        for units in self.config.model.dec_rnn_size:
            c, h = flat[:, start : start + units], flat[:, start + units : start + 2 * units]
            states.append([h, c])
            start += 2 * units
        return states

    def reconstruction_logits(self, targets, z, controls=None, training: bool = False):
        """The teacher-forced decoder (spec §3.4): step t sees [targets[t - 1], z, controls[t]],
        zeros for targets[-1].

        Args:
          targets: (batch, steps, 27) float decoder targets.
          z: (batch, z_size) float latent codes.
          controls: (batch, steps, 9) hits, for a hits_as_controls config only.
          training: applies input dropout when True.

        Returns:
          (batch, 64, 27) float32 pre-activations [hits | velocities | offsets].
        """
        steps = ops.shape(targets)[1]
        previous = ops.pad(targets[:, :-1], [[0, 0], [1, 0], [0, 0]])
        z_per_step = ops.repeat(ops.expand_dims(ops.cast(z, previous.dtype), 1), steps, axis=1)
        x = self.with_controls(ops.concatenate([previous, z_per_step], axis=-1), controls)
        decoder = zip(self.decoder_lstms, self.decoder_dropout, self._initial_states(z))
        for lstm, dropout, state in decoder:
            x, _, _ = lstm(dropout(x, training=training), initial_state=state, training=training)
        return ops.cast(self.output_projection(x), "float32")

    def controls_of(self, grooves):
        """The one answer to "which controls does this model take for these grooves?": their hits
        (cells with hit > 0.5) for a hits_as_controls config (spec §2.4), else None.

        Args:
          grooves: (batch, steps, 27), numpy (returns numpy float32) or a backend tensor, as a
            training step's targets (returns a float32 tensor).
        """
        if not self.control_depth:
            return None
        hits = grooves[..., HITS] > 0.5
        return (
            hits.astype(np.float32)
            if isinstance(grooves, np.ndarray)
            else ops.cast(hits, "float32")
        )

    def call(self, inputs, training: bool = False):
        """Teacher-forced reconstruction logits (batch, steps, 27) of `inputs`, from z = mu."""
        controls = self.controls_of(inputs)
        mu, _ = self.encode(inputs, controls, training=training)
        return self.reconstruction_logits(inputs, mu, controls, training=training)

    def _forward(self, inputs, targets, training: bool, seed, noise=None):
        """One reparameterised pass: z = mu + sigma * eps, one sample per example (spec §4)."""
        controls = self.controls_of(targets)
        mu, sigma = self.encode(inputs, controls, training=training)
        noise = posterior_noise(ops.shape(mu), seed) if noise is None else noise
        z = mu + sigma * ops.convert_to_tensor(noise, mu.dtype)
        logits = self.reconstruction_logits(targets, z, controls, training=training)
        step = self.optimizer.iterations if self.optimizer is not None else 0
        return loss_terms(targets, logits, mu, sigma, step, self.config.model), logits

    def training_terms(self, inputs, targets, noise=None) -> dict:
        """The loss terms of one training pass (dropout on), at the optimizer's current step.

        Args:
          inputs, targets: (batch, 64, 27) encoder inputs and decoder targets.
          noise: (batch, z_size) posterior noise; default fresh draws from the model's stream.
        """
        return self._forward(inputs, targets, True, self.z_seed, noise)[0]

    def record_training(self, terms: dict) -> dict:
        """Feeds one step's terms to the training trackers; returns their running means."""
        for name in TRAIN_TERMS:
            self.trackers[name].update_state(terms[name])
        return {name: self.trackers[name].result() for name in TRAIN_TERMS}

    def train_step(self, *args):
        return backends.train_step(self, *args)

    def test_step(self, *args):
        return backends.test_step(self, *args)

    def evaluation_logs(self, data) -> dict:
        """Feeds one validation batch to the evaluation trackers; returns their running values."""
        inputs, targets, _ = keras.utils.unpack_x_y_sample_weight(data)
        terms, logits = self._forward(inputs, targets, False, self.eval_z_seed)
        hits_loss, velocities_loss, offsets_loss = reconstruction_losses(
            targets, logits, self.config.model.velocity_offset_loss
        )
        terms["hits_loss"] = ops.mean(hits_loss)
        terms["velocities_loss"] = ops.mean(velocities_loss)
        terms["offsets_loss"] = ops.mean(offsets_loss)
        p_hit = ops.sigmoid(logits[..., HITS])
        hits = ops.cast(targets[..., HITS], "float32")
        terms["hit_accuracy"] = ops.mean(ops.cast(ops.equal(p_hit > 0.5, hits > 0.5), "float32"))
        for name in EVAL_TERMS:
            self.trackers[name].update_state(terms[name])
        predicted = ops.cast(p_hit > 0.5, "float32")
        self.hit_counts["hit_tp"].update_state(ops.sum(predicted * hits))
        self.hit_counts["hit_fp"].update_state(ops.sum(predicted * (1.0 - hits)))
        self.hit_counts["hit_fn"].update_state(ops.sum((1.0 - predicted) * hits))
        tp, fp, fn = (self.hit_counts[name].result() for name in HIT_COUNTS)
        logs = {name: self.trackers[name].result() for name in EVAL_TERMS}
        logs["hit_f1"] = 2.0 * tp / ops.maximum(2.0 * tp + fp + fn, 1.0)
        return logs

    def decode(
        self,
        z,
        temperature: float = 1.0,
        seed: int | None = None,
        controls=None,
        hits=None,
        decoding: str = "per_hit",
        residuals=None,
    ):
        """The sampling decoder (spec §3.4), run step by step with the trained LSTM cells.

        Each step samples hits ~ Bernoulli(sigmoid(hit_logit / temperature)). With
        decoding="magenta" velocities = sigmoid and offsets = tanh of the outputs, in every cell,
        and the whole 27-vector is fed back with z, exactly as Magenta. With "per_hit" (the
        default) a drawn hit gets the velocity and offset expected given that hit (`hit_values`)
        plus a residual drawn from `residuals` times sqrt(temperature), clipped to their ranges;
        cells without a hit hold zeros, in the groove and in what is fed back.

        Args:
          z: (batch, z_size) float latent codes.
          temperature: divides the hit logits only; near 0 gives hits = logit > 0.
          seed: an int makes the hit draws reproducible.
          controls: (batch, steps, 9) hits, for a hits_as_controls config only; step t sees
            controls[t] beside the previous output and z, as in training.
          hits: (batch, steps, 9) hits to play instead of drawing them: the decoder writes
            their velocities and offsets and feeds them back, so the result has exactly these.
          decoding: one of DECODINGS.
          residuals: (2, 9, quantiles) quantiles of velocity and offset residuals around their
            expected values given a hit, per drum (HitResiduals.array()); None plays the
            expected values.

        Returns:
          (batch, 64, 27) float32 grooves [hits (0/1) | velocities | offsets].
        """
        if temperature <= 0:
            raise ModelError(f"temperature must be > 0, got {temperature}")
        if decoding not in DECODINGS:
            raise ModelError(f"decoding {decoding!r}: choose one of {', '.join(DECODINGS)}")
        per_hit = decoding == "per_hit"
        residuals = np.zeros((2, NUM_DRUM_CLASSES, 1)) if residuals is None else residuals
        residuals = ops.convert_to_tensor(np.asarray(residuals, np.float32))
        z = ops.convert_to_tensor(z, "float32")
        temperature = ops.convert_to_tensor(temperature, "float32")
        shape = (ops.shape(z)[0], NUM_DRUM_CLASSES)
        steps = self.config.model.max_seq_len
        # A zero-width control sequence keeps one code path (and one trace) for both kinds.
        empty = ops.zeros((shape[0], steps, 0), "float32")
        controls = ops.cast(self.with_controls(empty, controls), "float32")
        given = hits is not None
        hits = ops.zeros((shape[0], steps, NUM_DRUM_CLASSES)) if hits is None else hits
        hits = ops.cast(ops.convert_to_tensor(hits), "float32")
        play = ops.convert_to_tensor(1.0 if given else 0.0, "float32")
        dynamics = (shape[0], 2 * NUM_DRUM_CLASSES)  # a residual draw per velocity and offset
        if keras.backend.backend() != "tensorflow":
            # Every step's hit draws up front, in the order the step loop takes them; the
            # per-hit draws after them, so Magenta's decoding draws the same hits either way.
            seed = keras.random.SeedGenerator(seed) if seed is not None else None
            noise = ops.stack([keras.random.uniform(shape, seed=seed) for _ in range(steps)])
            draws = None
            if per_hit:
                draws = ops.stack([keras.random.uniform(dynamics, seed=seed) for _ in range(steps)])
            return self._decode_steps(
                z,
                temperature,
                lambda t: noise[t],
                controls,
                hits,
                play,
                (lambda t: draws[t]) if per_hit else None,
                residuals,
            )
        # Keras folds a seed into int32 this way; unseeded, Python's random (which
        # keras.utils.set_random_seed also seeds) picks one.
        seed = random.randrange(2**31 - 2) if seed is None else seed % (2**31 - 2)
        if getattr(self, "_decode_functions", None) is None:
            self._decode_functions = {}
        functions = self._decode_functions
        if decoding not in functions:
            import tensorflow as tf

            def compiled(z, temperature, seed, controls, hits, play, residuals):
                # Step t draws what uniform(seed=SeedGenerator(seed)) gives on its t-th call:
                # TensorFlow's stateless uniform at [seed, t]; its residual draws at
                # [seed, steps + t], a stream of their own.
                def noise(t):
                    pair = tf.stack([seed, tf.cast(t, tf.int32)])
                    return tf.random.stateless_uniform([tf.shape(z)[0], NUM_DRUM_CLASSES], pair)

                def residual_draws(t):
                    pair = tf.stack([seed, tf.cast(steps + t, tf.int32)])
                    return tf.random.stateless_uniform([tf.shape(z)[0], dynamics[1]], pair)

                draws = residual_draws if per_hit else None
                return self._decode_steps(
                    z, temperature, noise, controls, hits, play, draws, residuals
                )

            functions[decoding] = tf.function(compiled, reduce_retracing=True)
        seed = ops.convert_to_tensor(seed, "int32")
        return functions[decoding](z, temperature, seed, controls, hits, play, residuals)

    def hit_values(self, logits):
        """Velocities and offsets expected given a hit in each cell (per-hit decoding).

        A model trained on hit cells only ("hit_cells") outputs them directly; under Magenta's
        objective (spec §4) the outputs are p(hit) * E[value | hit], so they are divided by the
        model's own p(hit), floored at MIN_HIT_PROBABILITY, and clipped to their ranges.

        Args:
          logits: (..., 27) float32 decoder pre-activations.

        Returns:
          (velocities, offsets), each (..., 9) float32, in [0, 1] and [-1, 1].
        """
        velocities = ops.sigmoid(logits[..., VELOCITIES])
        offsets = ops.tanh(logits[..., OFFSETS])
        if self.config.model.velocity_offset_loss == "all_cells":
            p_hit = ops.maximum(ops.sigmoid(logits[..., HITS]), MIN_HIT_PROBABILITY)
            velocities = ops.minimum(velocities / p_hit, 1.0)
            offsets = ops.clip(offsets / p_hit, -1.0, 1.0)
        return velocities, offsets

    def measure_hit_residuals(
        self, inputs, targets, windows: int = RESIDUAL_WINDOWS, seed: int = 0
    ) -> HitResiduals:
        """HitResiduals of this model on (n, steps, 27) training windows, teacher forced from
        z = mu.

        Args:
          inputs: encoder inputs (the config's converter made them from targets).
          targets: the drummer's grooves.
          windows: how many of them, drawn without replacement by `seed`, to measure on.
        """
        rows = np.sort(np.random.default_rng(seed).permutation(len(targets))[:windows])
        inputs, targets = training_rows(inputs, targets, rows)
        batch_size = 256
        drums, velocities, offsets = [], [], []
        for begin in range(0, len(targets), batch_size):
            x = np.asarray(inputs[begin : begin + batch_size], np.float32)
            y = np.asarray(targets[begin : begin + batch_size], np.float32)
            controls = self.controls_of(y)
            mu, _ = self.encode(x, controls)
            logits = self.reconstruction_logits(y, mu, controls)
            expected = [ops.convert_to_numpy(v) for v in self.hit_values(logits)]
            hit = y[..., HITS] > 0.5
            drums.append(np.nonzero(hit)[-1])
            velocities.append((y[..., VELOCITIES] - expected[0])[hit])
            offsets.append((y[..., OFFSETS] - expected[1])[hit])
        drums = np.concatenate(drums)
        levels = np.linspace(0.0, 1.0, RESIDUAL_QUANTILES)

        def quantiles(residuals: np.ndarray) -> tuple:
            rows = []
            for drum in range(NUM_DRUM_CLASSES):
                # A drum hardly ever played takes the residuals of all drums together.
                own = residuals[drums == drum]
                pool = own if len(own) >= MIN_RESIDUAL_HITS else residuals
                pool = pool if len(pool) else np.zeros(1)
                rows.append(tuple(float(v) for v in np.quantile(pool, levels)))
            return tuple(rows)

        return HitResiduals(
            quantiles(np.concatenate(velocities)), quantiles(np.concatenate(offsets)), len(drums)
        )

    def _decode_steps(
        self, z, temperature, noise, controls, hits=None, play=0.0, draws=None, residuals=None
    ):
        """Steps the decoder cells, step t's hits drawn against noise(t), (batch, 9) uniforms,
        or where play is 1 taken from hits[:, t]; its input joined by controls[:, t]
        ((batch, steps, 0) when the model has none). With draws(t), (batch, 18) uniforms, the
        drawn hits play per-hit values plus residuals drawn from `residuals` quantiles."""
        states = self._initial_states(z)
        steps, batch = self.config.model.max_seq_len, ops.shape(z)[0]

        def step(t, carry):
            previous, states, grooves = carry
            x = ops.concatenate([previous, z, ops.take(controls, t, axis=1)], axis=-1)
            states = list(states)
            for i, lstm in enumerate(self.decoder_lstms):
                x, states[i] = lstm.cell(x, states[i], training=False)
            logits = ops.cast(self.output_projection(x), "float32")
            p_hit = ops.sigmoid(logits[:, HITS] / temperature)
            # u < p never fires at p = 0 and always fires at p = 1, since u is in [0, 1).
            drawn = ops.cast(noise(t) < p_hit, "float32")
            played = (
                drawn if hits is None else play * ops.take(hits, t, axis=1) + (1 - play) * drawn
            )
            if draws is None:
                velocities = ops.sigmoid(logits[:, VELOCITIES])
                offsets = ops.tanh(logits[:, OFFSETS])
            else:
                velocities, offsets = self.hit_values(logits)
                drawn_residuals = _inverse_quantiles(residuals, draws(t)) * ops.sqrt(temperature)
                velocities = ops.clip(velocities + drawn_residuals[:, :NUM_DRUM_CLASSES], 0, 1)
                offsets = ops.clip(offsets + drawn_residuals[:, NUM_DRUM_CLASSES:], -1, 1)
                velocities, offsets = velocities * played, offsets * played
            previous = ops.concatenate([played, velocities, offsets], axis=-1)
            grooves = ops.slice_update(grooves, [t, 0, 0], previous[None])
            return previous, states, grooves

        start = ops.zeros((batch, GROOVE_DEPTH), "float32")
        carry = (start, states, ops.zeros((steps, batch, GROOVE_DEPTH), "float32"))
        _, _, grooves = ops.fori_loop(0, steps, step, carry)
        return ops.transpose(grooves, [1, 0, 2])


def _inverse_quantiles(quantiles, uniforms):
    """Draws by the inverse distribution: (2, 9, q) quantile rows at evenly spaced levels and
    (batch, 18) uniforms in [0, 1) give (batch, 18) values, linear between the quantiles."""
    count = ops.shape(quantiles)[-1]
    table = ops.reshape(quantiles, (-1,))  # row r = feature * 9 + drum
    position = uniforms * ops.cast(count - 1, uniforms.dtype)  # count: a tensor when traced
    below = ops.floor(position)
    fraction = position - below
    below = ops.cast(below, "int32")
    above = ops.minimum(below + 1, count - 1)
    rows = ops.arange(2 * NUM_DRUM_CLASSES, dtype="int32")[None, :] * count
    low, high = ops.take(table, rows + below), ops.take(table, rows + above)
    return low + fraction * (high - low)
