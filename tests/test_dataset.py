"""tf.data pipelines: shapes, seeded shuffling, resumable streams, in-order evaluation."""

import numpy as np
import pytest

from helpers.constants import GROOVE_DEPTH, WINDOW_STEPS
from helpers.dataset import DatasetError, eval_dataset, train_dataset


def _numbered(n: int) -> np.ndarray:
    """(n, 64, 27) windows whose every value is the window's index, so batches show the order."""
    index = np.arange(n, dtype=np.float32)[:, None, None]
    return np.broadcast_to(index, (n, WINDOW_STEPS, GROOVE_DEPTH))


def _order(dataset, batches: int) -> list:
    return [inputs[:, 0, 0].numpy().astype(int) for inputs, _ in dataset.take(batches)]


def test_train_dataset_batches_pairs():
    windows = _numbered(20)
    inputs, outputs = next(iter(train_dataset(windows, windows + 100, 8, seed=0)))
    assert inputs.shape == (8, WINDOW_STEPS, GROOVE_DEPTH) and inputs.dtype == "float32"
    np.testing.assert_array_equal(outputs.numpy(), inputs.numpy() + 100)


def test_train_dataset_each_window_once_per_pass():
    windows = _numbered(24)  # three batches per pass
    first_pass = np.concatenate(_order(train_dataset(windows, windows, 8, seed=0), 3))
    np.testing.assert_array_equal(np.sort(first_pass), np.arange(24))
    assert not np.array_equal(first_pass, np.arange(24))


def test_train_dataset_repeats_with_a_new_order():
    windows = _numbered(24)
    batches = _order(train_dataset(windows, windows, 8, seed=0), 6)
    assert not np.array_equal(np.concatenate(batches[:3]), np.concatenate(batches[3:]))


def test_train_dataset_start_step_continues_the_stream():
    windows = _numbered(30)  # batches straddle passes: 30 is not a multiple of 8
    unbroken = _order(train_dataset(windows, windows, 8, seed=3), 12)
    resumed = _order(train_dataset(windows, windows, 8, seed=3, start_step=7), 5)
    for expected, got in zip(unbroken[7:], resumed):
        np.testing.assert_array_equal(got, expected)


def test_train_dataset_seed_sets_the_order():
    windows = _numbered(30)
    same = [_order(train_dataset(windows, windows, 8, seed=1), 3) for _ in range(2)]
    other = _order(train_dataset(windows, windows, 8, seed=2), 3)
    np.testing.assert_array_equal(np.concatenate(same[0]), np.concatenate(same[1]))
    assert not np.array_equal(np.concatenate(same[0]), np.concatenate(other))


def test_eval_dataset_in_order_drops_remainder():
    windows = _numbered(20)
    batches = _order(eval_dataset(windows, windows, 8), 10)
    np.testing.assert_array_equal(np.concatenate(batches), np.arange(16))


def test_train_dataset_rejects_mismatched_arrays():
    with pytest.raises(DatasetError, match="one shape"):
        train_dataset(_numbered(20), _numbered(21), 8, seed=0)


def test_eval_dataset_rejects_fewer_windows_than_a_batch():
    with pytest.raises(DatasetError, match="lower the batch size"):
        eval_dataset(_numbered(5), _numbered(5), 8)
