"""Batches of (encoder inputs, decoder targets) windows as numpy arrays, for any Keras backend."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

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


def pass_order(n: int, seed: int, pass_number: int) -> np.ndarray:
    """The window order of one pass: a permutation of range(n) fixed by (seed, pass number)."""
    return np.random.default_rng([seed, pass_number]).permutation(n)


def train_batches(
    inputs: np.ndarray,
    outputs: np.ndarray,
    batch_size: int,
    seed: int,
    start_step: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """An endless stream of shuffled (inputs, outputs) batches for training.

    Every pass over the windows is a fresh random permutation drawn statelessly from (`seed`,
    pass number), so the stream is fixed by the seed and `start_step` jumps straight to any point
    of it: a resumed run sees the batches the unbroken run would have seen, on every backend.
    Magenta shuffles through a 5,120-window buffer instead (spec §2.5); a full permutation mixes
    at least as well and needs no buffer to replay. Plain numpy keeps TensorFlow out of JAX and
    PyTorch runs (Colab's TPU runtime has none).

    Args:
      inputs: (n, 64, 27) float32 encoder inputs.
      outputs: (n, 64, 27) float32 decoder targets.
      batch_size: windows per batch; batches run across pass boundaries and never run short.
      seed: the shuffle seed.
      start_step: batches to skip, e.g. the step a run resumes from.

    Returns:
      An iterator of ((batch, 64, 27), (batch, 64, 27)) float32 pairs.

    Raises:
      DatasetError: mismatched shapes or fewer windows than one batch.
    """
    _check(inputs, outputs, batch_size)  # here, not at the first batch
    inputs, outputs = np.asarray(inputs, np.float32), np.asarray(outputs, np.float32)
    return _stream(inputs, outputs, batch_size, seed, start_step)


def _stream(inputs: np.ndarray, outputs: np.ndarray, batch_size: int, seed: int, start_step: int):
    n = len(inputs)
    orders: dict[int, np.ndarray] = {}
    position = start_step * batch_size
    while True:
        positions = np.arange(position, position + batch_size)
        passes = positions // n
        for old in [p for p in orders if p < passes[0]]:
            del orders[old]
        for p in np.unique(passes):
            if p not in orders:
                orders[p] = pass_order(n, seed, int(p))
        indices = np.array([orders[p][i] for p, i in zip(passes, positions % n)])
        yield inputs[indices], outputs[indices]
        position += batch_size


def eval_windows(
    inputs: np.ndarray, outputs: np.ndarray, batch_size: int, max_batches: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The windows one evaluation sees: whole batches in order, no shuffling (spec §2.5).

    Args:
      inputs, outputs: (n, 64, 27) float32 encoder inputs and decoder targets.
      batch_size: windows per batch; the remainder is dropped, as Magenta's eval does.
      max_batches: keep at most this many batches.

    Returns:
      (inputs, outputs), each (batches * batch_size, 64, 27) float32.

    Raises:
      DatasetError: mismatched shapes or fewer windows than one batch.
    """
    _check(inputs, outputs, batch_size)
    batches = len(inputs) // batch_size
    if max_batches is not None:
        batches = min(batches, max_batches)
    end = batches * batch_size
    return np.asarray(inputs[:end], np.float32), np.asarray(outputs[:end], np.float32)
