"""Tests for helpers/losses.py: reconstruction losses, KL divergence, free bits and beta
(spec §3.4, §4)."""

import math

import numpy as np
import pytest
from conftest import random_grooves

from helpers import losses
from helpers.config import get_config
from helpers.constants import GROOVE_DEPTH, HITS, OFFSETS, VELOCITIES, WINDOW_STEPS

FREE_NATS = 48 * math.log(2.0)


@pytest.mark.parity
def test_kl_divergence_matches_magenta(oracle):
    kl = losses.kl_divergence(oracle["mu"], oracle["sigma"])
    np.testing.assert_allclose(np.asarray(kl), oracle["kl_nats"], rtol=1e-5)


@pytest.mark.parity
def test_r_loss_matches_magenta(oracle):
    r_loss = losses.r_loss(oracle["x"], oracle["logits"])
    np.testing.assert_allclose(np.asarray(r_loss), oracle["r_loss"], rtol=1e-5)


def test_r_loss_uninformed_decoder():
    targets = random_grooves(3)
    logits = np.zeros_like(targets)  # p_hit = v = 0.5, offset = 0
    hit_cells = -np.where(targets[..., HITS] > 0, np.log(0.5 + 1e-7), np.log(1.0 - 0.5 + 1e-7))
    expected = (
        hit_cells.sum((1, 2))
        + np.square(0.5 - targets[..., VELOCITIES]).sum((1, 2))
        + np.square(targets[..., OFFSETS]).sum((1, 2))
    )
    np.testing.assert_allclose(np.asarray(losses.r_loss(targets, logits)), expected, rtol=1e-6)


def test_r_loss_caps_a_certain_miss_at_log_epsilon():
    targets = np.zeros((1, WINDOW_STEPS, GROOVE_DEPTH), np.float32)
    targets[0, 0, 0] = 1.0
    logits = np.zeros_like(targets)
    logits[..., HITS] = -100.0  # certain silence; velocities 0.5; offsets 0
    logits[..., VELOCITIES] = -100.0
    expected = -math.log(1e-7)  # one missed hit, everything else right
    np.testing.assert_allclose(float(losses.r_loss(targets, logits)[0]), expected, rtol=1e-5)


def test_reconstruction_losses_sum_to_r_loss():
    targets, logits = random_grooves(2, seed=1), random_grooves(2, seed=2) * 3.0 - 1.0
    parts = [np.asarray(p) for p in losses.reconstruction_losses(targets, logits)]
    assert all(p.shape == (2, WINDOW_STEPS) for p in parts)
    np.testing.assert_allclose(
        sum(parts).sum(-1), np.asarray(losses.r_loss(targets, logits)), rtol=1e-6
    )


@pytest.mark.parametrize("kl_nats", [FREE_NATS - 5.0, FREE_NATS + 7.0])
def test_loss_terms_free_bits_on_total_kl(kl_nats):
    config = get_config("groovae_4bar").model
    # sigma = 1 and all of mu in one dimension: KL = mu^2 / 2.
    mu = np.zeros((2, config.z_size), np.float32)
    mu[:, 0] = math.sqrt(2.0 * kl_nats)
    sigma = np.ones_like(mu)
    targets = random_grooves(2)
    logits = np.zeros_like(targets)
    terms = losses.loss_terms(targets, logits, mu, sigma, 10, config)
    r_loss = float(np.mean(losses.r_loss(targets, logits)))
    kl_cost = max(kl_nats - FREE_NATS, 0.0)
    np.testing.assert_allclose(float(terms["kl_bits"]), kl_nats / math.log(2.0), rtol=1e-5)
    np.testing.assert_allclose(float(terms["kl_loss"]), kl_cost, atol=1e-4)
    np.testing.assert_allclose(float(terms["loss"]), r_loss + 0.2 * kl_cost, rtol=1e-6)


def test_kl_beta_zero_at_step_zero_then_max_beta():
    config = get_config("groovae_4bar").model
    assert float(losses.kl_beta(0, config)) == 0.0
    np.testing.assert_allclose(float(losses.kl_beta(1, config)), 0.2, rtol=1e-7)
    annealed = get_config("groovae_4bar", beta_rate=0.99).model
    expected = (1 - 0.99**10) * 0.2
    np.testing.assert_allclose(float(losses.kl_beta(10, annealed)), expected, rtol=1e-5)
