"""Training updates: Magenta's clipping, and one step on the current backend."""

import math

import numpy as np
import pytest

from helpers import steps


@pytest.mark.parametrize("norm, expected_norm", [(0.5, 0.5), (5.0, 1.0), (9999.0, 1.0)])
def test_clip_gradients_by_global_norm(norm, expected_norm):
    scale = norm / 5.0  # the unscaled gradients have global norm 5
    grads = [np.array([3.0, 0.0], np.float32) * scale, np.array([[4.0]], np.float32) * scale]
    clipped, global_norm = steps.clip_gradients(grads, 1.0, 10000.0)
    np.testing.assert_allclose(float(global_norm), norm, rtol=1e-6)
    clipped_norm = math.sqrt(sum(float(np.sum(np.square(g))) for g in clipped))
    np.testing.assert_allclose(clipped_norm, expected_norm, rtol=1e-6)


@pytest.mark.parametrize("value", [1e4, np.inf, np.nan])
def test_clip_gradients_to_zero_at_large_or_bad_norm(value):
    grads = [np.array([value, 1.0], np.float32), np.array([2.0], np.float32)]
    clipped, _ = steps.clip_gradients(grads, 1.0, 10000.0)
    for g in clipped:
        np.testing.assert_array_equal(np.asarray(g), 0.0)
