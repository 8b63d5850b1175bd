"""Numpy batches: shapes, seeded shuffling, resumable streams, in-order evaluation."""

import itertools

import numpy as np
import pytest

from helpers.constants import GROOVE_DEPTH, WINDOW_STEPS
from helpers.train import TrainError, eval_windows, pass_order, train_batches


def _numbered(n: int) -> np.ndarray:
    """(n, 64, 27) windows whose every value is the window's index, so batches show the order."""
    index = np.arange(n, dtype=np.float32)[:, None, None]
    return np.broadcast_to(index, (n, WINDOW_STEPS, GROOVE_DEPTH))


def _order(stream, batches: int) -> list:
    return [inputs[:, 0, 0].astype(int) for inputs, _ in itertools.islice(stream, batches)]


def test_train_batches_batches_pairs():
    windows = _numbered(20)
    inputs, outputs = next(train_batches(windows, windows + 100, 8, seed=0))
    assert inputs.shape == (8, WINDOW_STEPS, GROOVE_DEPTH) and inputs.dtype == "float32"
    np.testing.assert_array_equal(outputs, inputs + 100)


def test_train_batches_each_window_once_per_pass():
    windows = _numbered(24)  # three batches per pass
    first_pass = np.concatenate(_order(train_batches(windows, windows, 8, seed=0), 3))
    np.testing.assert_array_equal(np.sort(first_pass), np.arange(24))
    assert not np.array_equal(first_pass, np.arange(24))


def test_train_batches_repeats_with_a_new_order():
    windows = _numbered(24)
    batches = _order(train_batches(windows, windows, 8, seed=0), 6)
    assert not np.array_equal(np.concatenate(batches[:3]), np.concatenate(batches[3:]))


def test_train_batches_start_step_continues_the_stream():
    windows = _numbered(30)  # batches straddle passes: 30 is not a multiple of 8
    unbroken = _order(train_batches(windows, windows, 8, seed=3), 12)
    resumed = _order(train_batches(windows, windows, 8, seed=3, start_step=7), 5)
    for expected, got in zip(unbroken[7:], resumed):
        np.testing.assert_array_equal(got, expected)


def test_train_batches_seed_sets_the_order():
    windows = _numbered(30)
    same = [_order(train_batches(windows, windows, 8, seed=1), 3) for _ in range(2)]
    other = _order(train_batches(windows, windows, 8, seed=2), 3)
    np.testing.assert_array_equal(np.concatenate(same[0]), np.concatenate(same[1]))
    assert not np.array_equal(np.concatenate(same[0]), np.concatenate(other))


def test_train_batches_follow_the_pass_orders():
    windows = _numbered(12)
    stream = np.concatenate(_order(train_batches(windows, windows, 8, seed=5), 3))
    expected = np.concatenate([pass_order(12, 5, 0), pass_order(12, 5, 1)])
    np.testing.assert_array_equal(stream, expected)


def test_eval_windows_in_order_drop_remainder():
    windows = _numbered(20)
    inputs, outputs = eval_windows(windows, windows + 1, 8)
    np.testing.assert_array_equal(inputs[:, 0, 0], np.arange(16))
    np.testing.assert_array_equal(outputs, inputs + 1)


def test_eval_windows_keep_at_most_max_batches():
    windows = _numbered(40)
    inputs, _ = eval_windows(windows, windows, 8, max_batches=2)
    np.testing.assert_array_equal(inputs[:, 0, 0], np.arange(16))


def test_train_batches_rejects_mismatched_arrays():
    with pytest.raises(TrainError, match="one shape"):
        train_batches(_numbered(20), _numbered(21), 8, seed=0)


def test_eval_windows_reject_fewer_windows_than_a_batch():
    with pytest.raises(TrainError, match="lower the batch size"):
        eval_windows(_numbered(5), _numbered(5), 8)
