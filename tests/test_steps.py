"""Training updates: Magenta's learning-rate decay, Adam and clipping."""

import math

import keras
import numpy as np
import pytest

from helpers import backends
from helpers.config import get_config


@pytest.mark.parametrize("norm, expected_norm", [(0.5, 0.5), (5.0, 1.0), (9999.0, 1.0)])
def test_clip_gradients_by_global_norm(norm, expected_norm):
    scale = norm / 5.0  # the unscaled gradients have global norm 5
    grads = [np.array([3.0, 0.0], np.float32) * scale, np.array([[4.0]], np.float32) * scale]
    clipped, global_norm = backends.clip_gradients(grads, 1.0, 10000.0)
    np.testing.assert_allclose(float(global_norm), norm, rtol=1e-6)
    clipped_norm = math.sqrt(sum(float(np.sum(np.square(g))) for g in clipped))
    np.testing.assert_allclose(clipped_norm, expected_norm, rtol=1e-6)


@pytest.mark.parametrize("value", [1e4, np.inf, np.nan])
def test_clip_gradients_to_zero_at_large_or_bad_norm(value):
    grads = [np.array([value, 1.0], np.float32), np.array([2.0], np.float32)]
    clipped, _ = backends.clip_gradients(grads, 1.0, 10000.0)
    for g in clipped:
        np.testing.assert_array_equal(np.asarray(g), 0.0)


# The spec's figures, as rounded there (its "7.44e-4" is 7.434e-4).
@pytest.mark.parametrize(
    "step, expected, atol",
    [(0, 1e-3, 5e-8), (3000, 7.44e-4, 1e-6), (10_000, 3.7e-4, 5e-6), (200_000, 1.0e-5, 5e-7)],
)
def test_magenta_decay_spec_values(step, expected, atol):
    t = get_config("groovae_4bar").train
    decay = backends.MagentaDecay(t.learning_rate, t.decay_rate, t.min_learning_rate)
    # Like Magenta's tf.pow, the decay runs in float32: 0.9999 is rounded before the power.
    exact = (1e-3 - 1e-5) * float(np.float32(0.9999)) ** step + 1e-5
    np.testing.assert_allclose(float(decay(step)), exact, rtol=1e-5)
    np.testing.assert_allclose(float(decay(step)), expected, rtol=0, atol=atol)


def test_make_optimizer_matches_tf1_adam():
    config = get_config("groovae_4bar").train
    optimizer = backends.make_optimizer(config)
    variable = keras.Variable(np.array([0.5, -1.0, 2.0], np.float32))
    grads = [np.array([0.1, -3.0, 1e-9], np.float32), np.array([0.2, 1.0, 0.0], np.float32)]
    value, m, v = variable.numpy().astype(np.float64), 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        optimizer.apply([g], [variable])
        # TF1: lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t); var -= lr_t * m / (sqrt(v) + eps).
        lr = (1e-3 - 1e-5) * 0.9999 ** (t - 1) + 1e-5
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * np.square(g, dtype=np.float64)
        value -= lr * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(variable.numpy(), value, rtol=1e-5)
