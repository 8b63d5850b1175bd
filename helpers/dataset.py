"""tf.data pipelines over (encoder inputs, decoder targets) windows: shuffle, repeat, batch."""

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
    seed: int,
    start_step: int = 0,
) -> tf.data.Dataset:
    """An endless stream of shuffled (inputs, outputs) batches for training.

    Every pass over the windows is a fresh random permutation, drawn statelessly from
    (`seed`, pass number), so the stream is fixed by the seed and `start_step` jumps straight to
    any point of it: a resumed run sees the batches the unbroken run would have seen. Magenta
    shuffles through a 5,120-window buffer instead (spec §2.5); a full permutation mixes at least
    as well and needs no buffer to replay.

    Args:
      inputs: (n, 64, 27) float32 encoder inputs.
      outputs: (n, 64, 27) float32 decoder targets.
      batch_size: windows per batch; batches run across pass boundaries and never run short.
      seed: the shuffle seed.
      start_step: batches to skip, e.g. the step a run resumes from.

    Returns:
      A tf.data.Dataset of ((batch, 64, 27), (batch, 64, 27)) float32 pairs.

    Raises:
      DatasetError: mismatched shapes or fewer windows than one batch.
    """
    _check(inputs, outputs, batch_size)
    n = len(inputs)

    def window_at(position):
        """The window at a position of the endless stream: pass position // n, slot position % n."""
        pass_seed = tf.stack([tf.constant(seed, tf.int64), position // n])
        return tf.random.experimental.index_shuffle(position % n, pass_seed, max_index=n - 1)

    positions = tf.data.Dataset.counter(start_step * batch_size)
    indices = positions.map(window_at).batch(batch_size, drop_remainder=True)
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
