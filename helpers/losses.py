"""Magenta's groovae objective on tensors: reconstruction losses, KL, free bits, beta (spec §3.4,
§4)."""

from __future__ import annotations

import math

from keras import ops

from helpers.config import ModelConfig
from helpers.constants import HITS, OFFSETS, VELOCITIES

LOG_LOSS_EPSILON = 1e-7  # tf.losses.log_loss's default, on probabilities (spec §3.4)


def reconstruction_losses(targets, logits, velocity_offset_loss: str = "all_cells"):
    """Per-timestep reconstruction losses, each summed over the 9 classes (spec §3.4).

    Args:
      targets: (batch, 64, 27) float, the decoder targets [hits | velocities | offsets].
      logits: (batch, 64, 27) float, the decoder's pre-activations.
      velocity_offset_loss: "all_cells" (Magenta's) squares velocity and offset errors over all
        classes, hit or not; "hit_cells" only where the target has a hit.

    Returns:
      (hits, velocities, offsets), each (batch, 64) float32: the eps = 1e-7 log-loss on hit
      probabilities and the squared errors of velocities and offsets.
    """
    targets = ops.cast(targets, "float32")
    logits = ops.cast(logits, "float32")
    p_hit = ops.sigmoid(logits[..., HITS])
    hits = targets[..., HITS]
    eps = LOG_LOSS_EPSILON
    hits_loss = -(hits * ops.log(p_hit + eps) + (1.0 - hits) * ops.log(1.0 - p_hit + eps))
    velocities_loss = ops.square(ops.sigmoid(logits[..., VELOCITIES]) - targets[..., VELOCITIES])
    offsets_loss = ops.square(ops.tanh(logits[..., OFFSETS]) - targets[..., OFFSETS])
    if velocity_offset_loss == "hit_cells":
        velocities_loss = velocities_loss * hits
        offsets_loss = offsets_loss * hits
    return tuple(ops.sum(part, axis=-1) for part in (hits_loss, velocities_loss, offsets_loss))


def r_loss(targets, logits, velocity_offset_loss: str = "all_cells"):
    """The per-sequence reconstruction loss: the step losses summed over time (spec §3.4).

    Args:
      targets: (batch, 64, 27) float decoder targets.
      logits: (batch, 64, 27) float decoder pre-activations.
      velocity_offset_loss: where velocity and offset errors count, as reconstruction_losses.

    Returns:
      (batch,) float32.
    """
    parts = reconstruction_losses(targets, logits, velocity_offset_loss)
    return ops.sum(sum(parts), axis=-1)


def kl_divergence(mu, sigma):
    """KL(N(mu, sigma^2) || N(0, I)) per example, in nats (spec §4).

    Args:
      mu, sigma: (batch, z_size) float.

    Returns:
      (batch,) float32.
    """
    mu = ops.cast(mu, "float32")
    sigma = ops.cast(sigma, "float32")
    return 0.5 * ops.sum(ops.square(mu) + ops.square(sigma) - 1.0 - 2.0 * ops.log(sigma), axis=-1)


def kl_beta(step, config: ModelConfig):
    """The KL weight (1 - beta_rate**step) * max_beta: 0 at step 0 for groovae_4bar (spec §4)."""
    step = ops.cast(step, "float32")
    return (1.0 - ops.power(ops.cast(config.beta_rate, "float32"), step)) * config.max_beta


def loss_terms(targets, logits, mu, sigma, step, config: ModelConfig) -> dict:
    """The objective and logged scalars for one batch: Magenta's (spec §4), or with velocity and
    offset errors on hit cells only (config.velocity_offset_loss).

    Args:
      targets: (batch, 64, 27) decoder targets; logits: (batch, 64, 27) teacher-forced logits.
      mu, sigma: (batch, z_size) posterior parameters.
      step: the global step before this update (it sets beta).
      config: the model config (free_bits, max_beta, beta_rate, velocity_offset_loss).

    Returns:
      Scalars `loss`, `r_loss`, `kl_loss` (after free bits), `kl_bits` (before), `kl_beta`.
    """
    kl_nats = kl_divergence(mu, sigma)
    # Free bits come off each example's total KL, not per dimension (spec §4).
    kl_cost = ops.maximum(kl_nats - config.free_bits * math.log(2.0), 0.0)
    beta = kl_beta(step, config)
    mean_r_loss = ops.mean(r_loss(targets, logits, config.velocity_offset_loss))
    mean_kl_cost = ops.mean(kl_cost)
    return {
        "loss": mean_r_loss + beta * mean_kl_cost,
        "r_loss": mean_r_loss,
        "kl_loss": mean_kl_cost,
        "kl_bits": ops.mean(kl_nats) / math.log(2.0),
        "kl_beta": beta,
    }
