"""One training update on each Keras backend (gradients, Magenta's clipping, Adam, the decay), and
one global batch split over several devices through each backend's own engine."""

from __future__ import annotations

import contextlib

import keras
import numpy as np
from keras import ops
from keras.optimizers import LossScaleOptimizer

from helpers.config import TrainConfig
from helpers.processes import ProcessLayout, tensorflow_strategy


class MagentaDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = (learning_rate - min_learning_rate) * decay_rate**step + min_learning_rate."""

    def __init__(self, learning_rate: float, decay_rate: float, min_learning_rate: float):
        self.learning_rate = learning_rate
        self.decay_rate = decay_rate
        self.min_learning_rate = min_learning_rate

    def __call__(self, step):
        decay = keras.ops.power(self.decay_rate, keras.ops.cast(step, "float32"))
        return (self.learning_rate - self.min_learning_rate) * decay + self.min_learning_rate

    def get_config(self) -> dict:
        return {
            "learning_rate": self.learning_rate,
            "decay_rate": self.decay_rate,
            "min_learning_rate": self.min_learning_rate,
        }


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    """TF1's AdamOptimizer with Magenta's decaying learning rate (spec §4); a float16 run's sits
    in Keras's LossScaleOptimizer, which holds the loss scale that train_step moves.

    Keras 3's Adam folds the bias corrections into the step size and adds epsilon to the
    uncorrected sqrt(v): lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps), TF1's
    epsilon-hat form, so TF1's epsilon 1e-8 carries over as is. Clipping is in train_step.
    """
    schedule = MagentaDecay(config.learning_rate, config.decay_rate, config.min_learning_rate)
    adam = keras.optimizers.Adam(schedule, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    if config.precision != "float16":
        return adam
    return LossScaleOptimizer(adam, dynamic_growth_steps=config.loss_scale_growth_steps)


def _scaled(model, loss):
    """(the loss to differentiate, its loss scale or None): float16's smallest value is about
    6e-8, so small gradients vanish on their way back through float16 layers unless scaled up."""
    if not isinstance(model.optimizer, LossScaleOptimizer):
        return loss, None
    scale = ops.convert_to_tensor(model.optimizer.dynamic_scale)  # in JAX: the bound value
    return ops.multiply(loss, scale), scale


def _unscaled(grads: list, scale) -> list:
    return grads if scale is None else [ops.divide(g, scale) for g in grads]


def clip_gradients(grads: list, clip_norm: float, clip_to_zero: float):
    """Magenta's clipping: by global norm, or all zeros once the norm reaches `clip_to_zero`.

    A zero update still advances Adam's moments and the step counter, as in TF1 (spec §4).

    Returns:
      (clipped gradients, global norm as a float32 scalar).
    """
    global_norm = ops.sqrt(sum(ops.sum(ops.square(ops.cast(g, "float32"))) for g in grads))
    keep = global_norm < clip_to_zero  # False for a NaN norm too
    scale = clip_norm / ops.maximum(global_norm, clip_norm)
    clipped = [ops.where(keep, g * ops.cast(scale, g.dtype), ops.zeros_like(g)) for g in grads]
    return clipped, global_norm


def _bound(variables: list, values: list, fn):
    """Runs fn() with `variables` reading `values`; returns its result and the values after it."""
    with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
        result = fn()
    updated = [scope.get_current_value(v) for v in variables]
    return result, [old if new is None else new for old, new in zip(values, updated)]


def _jax_gradients(model, trainable, non_trainable, optimizer_values, data, noise=None):
    """JAX: (terms, gradients, non-trainable values after the pass) as pure functions of values."""
    import jax

    inputs, targets, _ = keras.utils.unpack_x_y_sample_weight(data)
    variables = [*model.trainable_variables, *model.non_trainable_variables]
    variables += model.optimizer.variables  # the step counter lives here

    def scaled_terms():
        terms = model.training_terms(inputs, targets, noise)
        return terms, *_scaled(model, terms["loss"])

    def loss(trainable_values):
        values = [*trainable_values, *non_trainable, *optimizer_values]
        (terms, scaled, scale), after = _bound(variables, values, scaled_terms)
        start = len(trainable_values)
        return scaled, (terms, scale, after[start : start + len(non_trainable)])

    (_, (terms, scale, non_trainable)), grads = jax.value_and_grad(loss, has_aux=True)(trainable)
    return terms, _unscaled(grads, scale), non_trainable


def _torch_gradients(model, data, noise=None):
    inputs, targets, _ = keras.utils.unpack_x_y_sample_weight(data)
    model.zero_grad()
    terms = model.training_terms(inputs, targets, noise)
    scaled, scale = _scaled(model, terms["loss"])
    scaled.backward()
    grads = _unscaled([v.value.grad for v in model.trainable_variables], scale)
    return {name: value.detach() for name, value in terms.items()}, grads


def _tensorflow_gradients(model, data, noise=None):
    import tensorflow as tf

    inputs, targets, _ = keras.utils.unpack_x_y_sample_weight(data)
    with tf.GradientTape() as tape:
        terms = model.training_terms(inputs, targets, noise)
        scaled, scale = _scaled(model, terms["loss"])
    grads = _unscaled(tape.gradient(scaled, model.trainable_variables), scale)
    # Replicas hold equal slices of the global batch: their mean is the global batch's.
    return replica_mean(terms), replica_mean(grads)


def loss_and_gradients(model, inputs, targets, noise=None) -> tuple[dict, list]:
    """The training terms and d loss / d trainable variables at the model's current weights.

    Args:
      model: a compiled GrooVAE whose optimizer is built.
      inputs, targets: one batch, (batch, 64, 27) each.
      noise: (batch, z_size) posterior noise to use instead of fresh draws.

    Returns:
      (terms, gradients in trainable_variables order), unclipped (float16: unscaled, or inf).
    """
    data = (inputs, targets)
    backend = keras.backend.backend()
    if backend == "jax":
        values = (model.trainable_variables, model.non_trainable_variables)
        values += (model.optimizer.variables,)
        terms, grads, _ = _jax_gradients(
            model, *([v.value for v in group] for group in values), data, noise
        )
        return terms, grads
    if backend == "torch":
        return _torch_gradients(model, data, noise)
    return _tensorflow_gradients(model, data, noise)


def estimate_adam_moments(model, batches, step: int) -> None:
    """Puts `model`'s Adam at `step` with its moments re-estimated, to continue from weights alone.

    A bundle keeps no optimizer state. A zero second moment at a late step would blow the first
    hundreds of updates up several-fold (its bias correction assumes a full history), so it becomes
    what a long run's average would hold: (1 - beta_2**step) times the mean square of the clipped
    gradient over `batches`, at the current weights. The first moment starts at zero: its bias
    correction is about 1 by then, so steps grow from a tenth to full size over some ten updates,
    where a first moment estimated at fixed weights (the full-batch gradient, with none of the
    noise that cancels in a running average) would take a full coherent step at once.

    Args:
      model: a compiled GrooVAE whose optimizer is built.
      batches: (inputs, targets) batches, e.g. the ones the training run saw last.
      step: the step the optimizer is to continue from.
    """
    optimizer = model.optimizer
    adam = optimizer.inner_optimizer if isinstance(optimizer, LossScaleOptimizer) else optimizer
    clipped = []
    for inputs, targets in batches:
        grads = _clip(model, loss_and_gradients(model, inputs, targets)[1], terms={})
        clipped.append([ops.convert_to_numpy(g) for g in grads])
    # Keras's Adam keeps one momentum and one velocity per trainable variable, in their order.
    for momentum, velocity, grads in zip(adam._momentums, adam._velocities, zip(*clipped)):
        momentum.assign(np.zeros(momentum.shape, momentum.dtype))
        velocity.assign((1 - adam.beta_2**step) * np.square(np.stack(grads)).mean(0))
    optimizer.iterations.assign(step)


def _clip(model, grads, terms) -> list:
    t = model.config.train
    grads, terms["global_norm"] = clip_gradients(grads, t.grad_clip, t.grad_norm_clip_to_zero)
    replicas = replica_count()  # the optimizer sums the replicas' gradients: hand each its share
    return grads if replicas == 1 else [g / replicas for g in grads]


def _update(model, grads: list, terms: dict) -> None:
    """Clips the gradients and updates the weights: Adam, or a float16 run's loss-scaled step."""
    if isinstance(model.optimizer, LossScaleOptimizer):
        return _apply_loss_scaled(model, grads, terms)
    model.optimizer.apply(_clip(model, grads, terms), model.trainable_variables)


def _apply_loss_scaled(model, grads: list, terms: dict) -> None:
    """A float16 step from its unscaled gradients: Magenta's clipping and Adam where all are
    finite; where one is not (float16 overflowed) the weights and Adam's moments stay as they
    were. The step counter advances either way, so batches, learning rate and beta follow it as
    in float32 and a resumed run equals an unbroken one (Adam's bias correction counts a skipped
    step: the next update is a little smaller). The loss scale moves as LossScaleOptimizer's
    own: halved after a skip, doubled after dynamic_growth_steps finite steps in a row. A select
    after the update, not a branch, keeps the skip one stateful code for every backend and for
    JAX's bound scope."""
    optimizer = model.optimizer
    adam = optimizer.inner_optimizer
    finite = optimizer.check_finite(grads)
    grads = _clip(model, grads, terms)  # a non-finite norm gives zeros: Adam stays finite
    kept = [*model.trainable_variables, *(v for v in adam.variables if v is not adam.iterations)]
    before = [ops.copy(v.value) for v in kept]
    adam.apply(grads, model.trainable_variables)
    for variable, old in zip(kept, before):
        variable.assign(ops.where(finite, variable.value, old))
    scale, finite_steps = optimizer.dynamic_scale, optimizer.step_counter
    grow = ops.logical_and(finite, ops.equal(finite_steps, optimizer.dynamic_growth_steps - 1))
    scale.assign(scale * ops.where(grow, 2.0, ops.where(finite, 1.0, 0.5)))
    finite_steps.assign(ops.where(ops.logical_and(finite, ~grow), finite_steps + 1, 0))


def _jax_train_step(model, state, data):
    trainable, non_trainable, optimizer_values, metrics_values = state
    terms, grads, non_trainable = _jax_gradients(
        model, trainable, non_trainable, optimizer_values, data
    )
    # The stateful backends' update, on this step's values (Keras's stateless_apply does as much).
    variables = [*model.trainable_variables, *model.optimizer.variables]
    values = [*trainable, *optimizer_values]
    _, values = _bound(variables, values, lambda: _update(model, grads, terms))
    trainable, optimizer_values = values[: len(trainable)], values[len(trainable) :]
    logs, metrics_values = _bound(
        model.metrics_variables, metrics_values, lambda: model.record_training(terms)
    )
    return logs, (trainable, non_trainable, optimizer_values, metrics_values)


def train_step(model, *args):
    """Keras's train_step for `model` on the current backend (JAX passes its state first)."""
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_train_step(model, *args)
    (data,) = args
    if backend == "torch":
        import torch

        terms, grads = _torch_gradients(model, data)
        with torch.no_grad():
            _update(model, grads, terms)
        return model.record_training(terms)
    terms, grads = _tensorflow_gradients(model, data)
    _update(model, grads, terms)
    return model.record_training(terms)


def test_step(model, *args):
    """Keras's test_step for `model` on the current backend (JAX passes its state first)."""
    if keras.backend.backend() != "jax":
        return model.evaluation_logs(*args)
    (trainable, non_trainable, metrics_values), data = args
    variables = [*model.trainable_variables, *model.non_trainable_variables]
    variables += model.metrics_variables
    logs, after = _bound(
        variables,
        [*trainable, *non_trainable, *metrics_values],
        lambda: model.evaluation_logs(data),
    )
    start = len(trainable)
    end = start + len(non_trainable)
    return logs, (trainable, after[start:end], after[end:])


def refresh_evaluation(model) -> None:
    """Makes the next evaluation read the current step (beta depends on it).

    A compiled JAX evaluation froze the step counter it was traced with, since evaluation gets no
    optimizer state; tracing it anew costs a compile. Other backends read the live counter.
    """
    if keras.backend.backend() == "jax":
        model.make_test_function(force=True)


class BackendError(Exception):
    """A device count this machine or backend cannot train on."""


def _tensorflow_devices() -> list[str]:
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return [d.name for d in devices]


def device_scope(
    devices: int, batch_size: int, layout: ProcessLayout | None = None
) -> contextlib.AbstractContextManager:
    """The scope to build, compile and train a model in so that it trains over `devices` devices,
    or over every device of every process of `layout`.

    Args:
      devices: how many local accelerators (or CPU devices) share each global batch; with
        several processes each uses all of its own, so this stays 1.
      batch_size: the global batch, split evenly over the devices.
      layout: the processes sharing each global batch, joined already (helpers.processes.join).

    Raises:
      BackendError: fewer devices than asked, a batch that does not split evenly, PyTorch, or
        a device count given with several processes.
    """
    layout = layout or ProcessLayout()
    if layout.several:
        if devices != 1:
            raise BackendError(
                "with several processes each trains on all of its own devices; drop --devices"
            )
        return _processes_scope(layout, batch_size)
    if devices == 1:
        return contextlib.nullcontext()
    if devices < 1 or batch_size % devices:
        raise BackendError(
            f"a global batch of {batch_size} does not split over {devices} devices; "
            "pick a batch size that is a multiple of the device count"
        )
    backend = keras.backend.backend()
    if backend == "torch":
        raise BackendError(
            "data parallel training runs on the jax and tensorflow backends; set "
            "KERAS_BACKEND=jax (or tensorflow) or train on one device"
        )
    found = keras.distribution.list_devices() if backend == "jax" else _tensorflow_devices()
    if len(found) < devices:
        raise BackendError(
            f"asked for {devices} devices but the {backend} backend sees {len(found)} "
            f"({', '.join(found)}); lower --devices"
        )
    if backend == "jax":
        return keras.distribution.DataParallel(devices=found[:devices]).scope()
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices=found[:devices]).scope()


def _processes_scope(layout: ProcessLayout, batch_size: int) -> contextlib.AbstractContextManager:
    """Keras's DataParallel over the devices of every JAX process, or the MultiWorkerMirroredStrategy
    of the TensorFlow ones (helpers.processes.join)."""
    strategy = tensorflow_strategy()
    devices = keras.distribution.list_devices() if strategy is None else []
    count = strategy.num_replicas_in_sync if strategy is not None else len(devices)
    if batch_size % count:
        raise BackendError(
            f"a global batch of {batch_size} does not split over the {count} devices of "
            f"{layout.num_processes} processes; pick a multiple of {count}"
        )
    if strategy is not None:
        return strategy.scope()
    # Each process hands in its own rows already (train_on_batch, evaluate): no resharding.
    return keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False).scope()


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


def replicas_in_sync() -> int:
    """How many equal slices the TensorFlow strategy in scope cuts each global batch into, over
    every process (1 outside one, and on other backends)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def _local_replicas():
    """(the TensorFlow strategy in scope, its replicas on this process) when it has more than one
    replica in all, else (None, 1)."""
    if replicas_in_sync() == 1:
        return None, 1
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    return strategy, len(strategy.extended.worker_devices)


# Each model's step functions over a TensorFlow strategy's replicas (_replicated), traced once.
_REPLICATED: dict[tuple[int, str], object] = {}


def _replicated(model: keras.Model, step: str):
    """`model`'s train_step or test_step run on every replica, its logs averaged over them.

    Keras's own TensorFlow trainer averages them with strategy.reduce(..., axis=0) under a
    MultiWorkerMirroredStrategy, which fails on our scalar logs (they have no axis 0); axis=None
    averages over replicas only, as Keras does under MirroredStrategy. A train step's logs are
    equal on every replica already (replica_mean); a test step's are each replica's own.
    """
    import tensorflow as tf

    key = (id(model), step)
    if key not in _REPLICATED:
        strategy = tf.distribute.get_strategy()
        function = getattr(model, step)

        @tf.function(reduce_retracing=True)
        def run(data):
            logs = strategy.run(function, args=(data,))
            return {name: strategy.reduce("MEAN", value, axis=None) for name, value in logs.items()}

        if any(model_id != id(model) for model_id, _ in _REPLICATED):
            _REPLICATED.clear()  # a new model: the old one's functions hold its variables
        _REPLICATED[key] = run
    return _REPLICATED[key]


def _on_replicas(model: keras.Model, step: str, inputs: np.ndarray, targets: np.ndarray, replicas):
    """One replicated step on this process's rows, each of its replicas taking an equal slice.
    replicas: _local_replicas(), looked up once per step by the caller."""
    strategy, local_replicas = replicas
    rows = len(inputs) // local_replicas

    def replica_slice(context):
        part = slice((context.replica_id_in_sync_group % local_replicas) * rows, None)
        return inputs[part][:rows], targets[part][:rows]

    data = strategy.experimental_distribute_values_from_function(replica_slice)
    logs = _replicated(model, step)(data)
    return {name: float(value) for name, value in logs.items()}


def train_on_batch(model: keras.Model, inputs: np.ndarray, targets: np.ndarray) -> dict:
    """One update on one global batch, of which this process holds its rows (all of them when it
    trains alone); under a TF strategy each replica gets an equal slice.

    Keras's own train_on_batch hands a TensorFlow replica the whole batch, and DataParallel shards
    the batch itself on JAX (each process handing in its own rows), so only the TensorFlow
    strategies split the batch here.
    """
    # The returned logs are this step's alone: Keras 3.13 (Colab's) keeps metrics running across
    # train_on_batch calls where later versions reset them, so reset before every update.
    model.reset_metrics()
    replicas = _local_replicas()
    if replicas[0] is not None:
        return _on_replicas(model, "train_step", inputs, targets, replicas)
    # Keras 3.13's JAX trainer lays out every part of (x, y, sample_weight) under a distribution
    # and fails on a None weight; our steps ignore the weights, so ones change nothing.
    weights = np.ones(len(inputs), "float32")
    return model.train_on_batch(inputs, targets, sample_weight=weights, return_dict=True)


def validation_logs(
    model: keras.Model, inputs: np.ndarray, targets: np.ndarray, batch_size: int
) -> dict:
    """The evaluation logs of `model` over whole batches of (inputs, targets), this process's rows
    of each validation batch; under a TF strategy each replica takes an equal slice of a batch.

    Keras's own evaluate lets a TensorFlow MultiWorkerMirroredStrategy shard the data over the
    processes again, and averages the logs along an axis they lack (_replicated).

    Args:
      inputs, targets: (batches * batch_size, 64, 27) float32.
      batch_size: this process's rows of one validation batch, a multiple of its replicas.
    """
    replicas = _local_replicas()
    if replicas[0] is None:
        return model.evaluate(inputs, targets, batch_size=batch_size, verbose=0, return_dict=True)
    model.reset_metrics()
    logs = {}
    for start in range(0, len(inputs), batch_size):
        part = slice(start, start + batch_size)
        logs = _on_replicas(model, "test_step", inputs[part], targets[part], replicas)
    return logs
