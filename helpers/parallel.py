"""Data parallelism through each backend's own engine: one global batch split over devices.

JAX runs keras.distribution.DataParallel (one jitted program, inputs sharded on the batch axis);
TensorFlow runs tf.distribute.MirroredStrategy (one replica per device, gradients all-reduced).
PyTorch trains on one device here.
"""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402


class ParallelError(Exception):
    """A device count this machine or backend cannot train on."""


def _tensorflow_devices() -> list[str]:
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return [d.name for d in devices]


def device_scope(devices: int, batch_size: int) -> contextlib.AbstractContextManager:
    """The scope to build, compile and train a model in so that it trains over `devices` devices.

    Args:
      devices: how many local accelerators (or CPU devices) share each global batch.
      batch_size: the global batch, split evenly over the devices.

    Raises:
      ParallelError: fewer devices than asked, a batch that does not split evenly, or PyTorch.
    """
    if devices == 1:
        return contextlib.nullcontext()
    if devices < 1 or batch_size % devices:
        raise ParallelError(
            f"a global batch of {batch_size} does not split over {devices} devices; "
            "pick a batch size that is a multiple of the device count"
        )
    backend = keras.backend.backend()
    if backend == "torch":
        raise ParallelError(
            "data parallel training runs on the jax and tensorflow backends; set "
            "KERAS_BACKEND=jax (or tensorflow) or train on one device"
        )
    found = (
        keras.distribution.list_devices() if backend == "jax" else _tensorflow_devices()
    )
    if len(found) < devices:
        raise ParallelError(
            f"asked for {devices} devices but the {backend} backend sees {len(found)} "
            f"({', '.join(found)}); lower --devices"
        )
    if backend == "jax":
        return keras.distribution.DataParallel(devices=found[:devices]).scope()
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices=found[:devices]).scope()


def _tensorflow_replicas():
    """(replica context, replica count) inside a TensorFlow replica, else (None, 1)."""
    if keras.backend.backend() != "tensorflow":
        return None, 1
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None:
        return None, 1
    return context, context.num_replicas_in_sync


def posterior_noise(shape, seed):
    """N(0, 1) draws for z = mu + sigma * noise, the same for a global batch on any device count.

    Each TensorFlow replica draws the whole global batch's noise and keeps its own slice (z is
    small, so this is cheap); JAX's sharded program draws the global noise as one device would.
    """
    context, replicas = _tensorflow_replicas()
    if replicas == 1:
        return keras.random.normal(shape, seed=seed)
    local = shape[0]
    noise = keras.random.normal((local * replicas, *shape[1:]), seed=seed)
    start = context.replica_id_in_sync_group * local
    return keras.ops.slice(noise, (start, 0), (local, shape[1]))


def replica_mean(values):
    """The mean of a (nested) structure of tensors over TensorFlow replicas; as is elsewhere."""
    context, replicas = _tensorflow_replicas()
    if replicas == 1:
        return values
    return context.all_reduce("mean", values)


def replica_count() -> int:
    """How many TensorFlow replicas share this step's global batch (1 outside a strategy)."""
    return _tensorflow_replicas()[1]


def train_on_batch(model: keras.Model, inputs: np.ndarray, targets: np.ndarray) -> dict:
    """One update on one global batch; under a TF strategy each replica gets an equal slice.

    Keras's own train_on_batch hands a TensorFlow replica the whole batch, and DataParallel shards
    the batch itself on JAX, so only the MirroredStrategy case splits the batch here.
    """
    # The returned logs are this step's alone: Keras 3.13 (Colab's) keeps metrics running across
    # train_on_batch calls where later versions reset them, so reset before every update.
    model.reset_metrics()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.get_strategy()
        replicas = strategy.num_replicas_in_sync
        if replicas > 1:
            local = len(inputs) // replicas

            def replica_slice(context):
                part = slice(context.replica_id_in_sync_group * local, None)
                return inputs[part][:local], targets[part][:local]

            data = strategy.experimental_distribute_values_from_function(replica_slice)
            model.make_train_function()
            logs = model.train_function([data])
            return {name: float(value) for name, value in logs.items()}
    # Keras 3.13's JAX trainer lays out every part of (x, y, sample_weight) under a distribution
    # and fails on a None weight; our steps ignore the weights, so ones change nothing.
    weights = np.ones(len(inputs), "float32")
    return model.train_on_batch(inputs, targets, sample_weight=weights, return_dict=True)
