"""tf.data pipelines over (encoder inputs, decoder targets) window arrays: shuffle, repeat, batch."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from helpers.constants import GROOVE_DEPTH


class DatasetError(Exception):
    """Window arrays that cannot make the requested batches."""


def _check(inputs: np.ndarray, outputs: np.ndarray, batch_size: int) -> None:
    if inputs.ndim != 3 or inputs.shape[-1] != GROOVE_DEPTH or inputs.shape != outputs.shape:
        raise DatasetError(
            f"want inputs and outputs of one shape (n, steps, {GROOVE_DEPTH}), got "
            f"{inputs.shape} and {outputs.shape}; build them with helpers.data.load_groove_4bar"
        )
    if len(inputs) < batch_size:
        raise DatasetError(
            f"{len(inputs)} windows cannot fill one batch of {batch_size}; lower the batch size"
        )


def train_dataset(
    inputs: np.ndarray,
    outputs: np.ndarray,
    batch_size: int,
    shuffle_buffer: int,
    seed: int,
    start_step: int = 0,
) -> tf.data.Dataset:
    """An endless stream of shuffled (inputs, outputs) batches, as Magenta trains (spec §2.5).

    Each pass over the windows is shuffled through a `shuffle_buffer` of window indices, seeded by
    `seed` and the pass number, so the stream is fixed by the seed and `start_step` can jump to
    any point of it: a resumed run sees the batches the unbroken run would have seen.

    Args:
      inputs: (n, 64, 27) float32 encoder inputs.
      outputs: (n, 64, 27) float32 decoder targets.
      batch_size: windows per batch; a batch never runs short (drop_remainder).
      shuffle_buffer: shuffle buffer size, in windows (Magenta: 10 batches).
      seed: the shuffle seed.
      start_step: batches to skip, e.g. the step a run resumes from.

    Returns:
      A tf.data.Dataset of ((batch, 64, 27), (batch, 64, 27)) float32 pairs.

    Raises:
      DatasetError: mismatched shapes or fewer windows than one batch.
    """
    _check(inputs, outputs, batch_size)
    n = len(inputs)
    first_window = start_step * batch_size

    def one_pass(index):
        order = tf.data.Dataset.range(n)
        return order.shuffle(shuffle_buffer, seed=seed * 1_000_003 + index)

    indices = tf.data.Dataset.counter(first_window // n).flat_map(one_pass)
    indices = indices.skip(first_window % n).batch(batch_size, drop_remainder=True)
    return _gather(indices, inputs, outputs)


def eval_dataset(inputs: np.ndarray, outputs: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """One pass of (inputs, outputs) batches in order, without shuffling (spec §2.5).

    Args:
      inputs, outputs: (n, 64, 27) float32 encoder inputs and decoder targets.
      batch_size: windows per batch; the remainder is dropped, as Magenta's eval does.

    Returns:
      A finite tf.data.Dataset of ((batch, 64, 27), (batch, 64, 27)) float32 pairs.

    Raises:
      DatasetError: mismatched shapes or fewer windows than one batch.
    """
    _check(inputs, outputs, batch_size)
    indices = tf.data.Dataset.range(len(inputs)).batch(batch_size, drop_remainder=True)
    return _gather(indices, inputs, outputs)


def _gather(indices: tf.data.Dataset, inputs: np.ndarray, outputs: np.ndarray) -> tf.data.Dataset:
    """Index batches -> window batches; the arrays stay in memory once, outside the graph."""
    inputs = tf.constant(inputs, tf.float32)
    outputs = tf.constant(outputs, tf.float32)
    batches = indices.map(
        lambda i: (tf.gather(inputs, i), tf.gather(outputs, i)), num_parallel_calls=tf.data.AUTOTUNE
    )
    return batches.prefetch(tf.data.AUTOTUNE)
