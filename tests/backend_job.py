"""Jobs that tests/test_backends.py runs on one Keras backend each, in a
process of its own.

Keras fixes its backend at import, so every backend other than the test's own runs this file as
a script: `python tests/backend_job.py JOB ARGS...` with KERAS_BACKEND set. Off TensorFlow the
script hides TensorFlow first, as on Colab's TPU runtime, and reports whether anything reached for
it. Each job prints one JSON line.
"""

import dataclasses
import json
import os
import sys

if __name__ == "__main__" and os.environ.get("KERAS_BACKEND") != "tensorflow":
    sys.modules["tensorflow"] = None  # `import tensorflow` now fails as if it were not installed

import keras
import numpy as np
from conftest import random_grooves

from helpers import backends, losses, runs, training
from helpers import model as groovae
from helpers.config import get_config

# Dropout off and beta annealed, so one step's loss and gradients are fixed by the weights, the
# batch, the noise and the step counter, which then shows in every logged beta.
PARITY = {"dropout_keep_prob": 1.0, "beta_rate": 0.9}
RUN = {**PARITY, "dropout_keep_prob": 0.3, "eval_every_steps": 4, "checkpoint_every_steps": 4}
PARITY_STEP = 3
# float16: growth after 2 finite steps; a scale at which the tiny model's gradients stay finite
# on every backend (its first steps overflow at Keras's starting 2^15), and one that overflows.
FLOAT16 = {"precision": "float16", "loss_scale_growth_steps": 2}
SAFE_SCALE, OVERFLOWING_SCALE = 2.0**7, 2.0**40


# A history row every step, no progress bar.
EVERY_STEP = training.TrainOptions(log_every_steps=1, progress=False)


def data() -> tuple[np.ndarray, np.ndarray]:
    """train()'s (train, validation) windows: random grooves, the same in every process."""
    return random_grooves(48), random_grooves(16, seed=1)


def parity_batch() -> tuple[np.ndarray, np.ndarray]:
    """(grooves, posterior noise) shared by every backend's one-step check."""
    grooves = random_grooves(16, seed=2)
    noise = np.random.default_rng(3).standard_normal((16, 8)).astype(np.float32)
    return grooves, noise


def compiled(config) -> groovae.GrooVAE:
    """A GrooVAE of `config`, compiled with our optimizer, built."""
    model = groovae.GrooVAE(config)
    model.compile(optimizer=backends.make_optimizer(config.train))
    model.optimizer.build(model.trainable_variables)
    return model


def one_step(weights_path: str, out_path: str) -> dict:
    """Loss terms and gradients of one step from saved weights; writes the weights if absent."""
    model = compiled(get_config("tiny", **PARITY))
    if os.path.exists(weights_path):
        with np.load(weights_path) as saved:
            for i, variable in enumerate(model.trainable_variables):
                variable.assign(saved[f"{i:04d}"])
    else:
        arrays = {f"{i:04d}": np.asarray(v) for i, v in enumerate(model.trainable_variables)}
        np.savez(weights_path, **arrays)
    model.optimizer.iterations.assign(PARITY_STEP)
    grooves, noise = parity_batch()
    terms, grads = backends.loss_and_gradients(model, grooves, grooves, noise)
    arrays = {name: np.asarray(terms[name]) for name in ("loss", "r_loss", "kl_loss", "kl_beta")}
    arrays.update({f"grad/{i:04d}": np.asarray(g) for i, g in enumerate(grads)})
    np.savez(out_path, **arrays)
    return {"loss": float(arrays["loss"])}


def resume(run_dir: str, total_steps: int) -> dict:
    """Continues the tiny run in `run_dir` to `total_steps`, from whatever backend wrote it.

    Reports the teacher-forced reconstruction loss (z = mu, no noise) of the checkpoint it
    started from, so the test can compare it with the backend that wrote that checkpoint.
    """
    start = runs.latest_checkpoint(run_dir)
    report = {"start_r_loss": None}
    if start is not None:
        report["start_r_loss"] = deterministic_r_loss(runs.restore_model(run_dir, start))
    config = get_config("tiny", **RUN)
    training.train(config, run_dir, steps=total_steps, windows=data(), options=EVERY_STEP)
    report["end_r_loss"] = deterministic_r_loss(runs.restore_model(run_dir))
    return report


def deterministic_r_loss(model) -> float:
    _, grooves = data()
    return float(keras.ops.mean(losses.r_loss(grooves, model(grooves))))


def parallel(run_dir: str, dropout_keep_prob: str, precision: str = "", steps: int = 4) -> dict:
    """The training losses of one short run on one device and on two sharing each batch; in
    float32, or with precision "float16" as test_backends.py's float16 tests train it."""
    float16 = FLOAT16 if precision == "float16" else {}
    config = get_config("tiny", dropout_keep_prob=float(dropout_keep_prob), **float16)
    report = {}
    for devices in (1, 2):
        history = training.train(
            config,
            os.path.join(run_dir, str(devices)),
            steps=steps,
            windows=data(),
            options=dataclasses.replace(EVERY_STEP, devices=devices),
        )
        rows = history[history.split == "train"]
        report[devices] = {name: rows[name].tolist() for name in ("loss", "global_norm")}
    return report


def backend_run(weights_path: str, one_step_path: str, run_dir: str, total_steps: int) -> dict:
    """One process's share of the cross-backend checks: the one-step check, then the resume."""
    return {**one_step(weights_path, one_step_path), **resume(run_dir, total_steps)}


def _values(variables) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def _changed(before: list[np.ndarray], variables) -> bool:
    return any(not np.array_equal(b, a) for b, a in zip(before, _values(variables)))


def float16_loss_scale() -> dict:
    """Six float16 steps, the 1st and 5th from SAFE_SCALE, the 4th from OVERFLOWING_SCALE: after
    each, the loss scale, its finite-step count, the step counter, the logged global norm and
    whether the weights and Adam's moments changed."""
    model = compiled(get_config("tiny", **PARITY, **FLOAT16))
    optimizer = model.optimizer
    adam = optimizer.inner_optimizer
    moments = [v for v in adam.variables if v is not adam.iterations]
    grooves, _ = parity_batch()
    keys = ("scale", "finite_steps", "step", "global_norm", "weights_changed", "moments_changed")
    report = {key: [] for key in keys}
    for scale in (SAFE_SCALE, None, None, OVERFLOWING_SCALE, SAFE_SCALE, None):
        if scale is not None:
            optimizer.dynamic_scale.assign(scale)
        weights, moment_values = _values(model.trainable_variables), _values(moments)
        logs = backends.train_on_batch(model, grooves, grooves)
        report["weights_changed"].append(_changed(weights, model.trainable_variables))
        report["moments_changed"].append(_changed(moment_values, moments))
        report["scale"].append(float(_values([optimizer.dynamic_scale])[0]))
        report["finite_steps"].append(int(_values([optimizer.step_counter])[0]))
        report["step"].append(int(_values([optimizer.iterations])[0]))
        report["global_norm"].append(float(logs["global_norm"]))
    return report


def _global_norm(arrays: list[np.ndarray]) -> float:
    return float(np.sqrt(sum(np.sum(np.square(a, dtype=np.float64)) for a in arrays)))


def float16_against_float32() -> dict:
    """One step from the same weights, batch and posterior noise in float32 and in float16 (at
    SAFE_SCALE): each's loss terms, and how far float16's gradients and update are from
    float32's, relative to float32's global norm."""
    grooves, noise = parity_batch()
    weights, found = None, {}
    for precision in ("float32", "float16"):
        model = compiled(get_config("tiny", **PARITY, precision=precision))
        if weights is None:
            weights = _values(model.trainable_variables)
        for variable, value in zip(model.trainable_variables, weights):
            variable.assign(value)
        if precision == "float16":
            model.optimizer.dynamic_scale.assign(SAFE_SCALE)
        model.optimizer.iterations.assign(PARITY_STEP)
        terms, grads = backends.loss_and_gradients(model, grooves, grooves, noise)
        logs = backends.train_on_batch(model, grooves, grooves)  # the model's own noise stream
        update = [a - w for a, w in zip(_values(model.trainable_variables), weights)]
        found[precision] = {
            "terms": {name: float(terms[name]) for name in ("loss", "r_loss", "kl_loss")},
            "logs": {name: float(logs[name]) for name in ("loss", "global_norm")},
            "grads": [np.asarray(keras.ops.convert_to_numpy(g)) for g in grads],
            "update": update,
        }
    ours, theirs = found["float16"], found["float32"]
    report = {name: [theirs[name], ours[name]] for name in ("terms", "logs")}
    for name in ("grads", "update"):
        difference = [a - b for a, b in zip(ours[name], theirs[name])]
        report[f"{name}_error"] = _global_norm(difference) / _global_norm(theirs[name])
    return report


def float16_resume(run_dir: str) -> dict:
    """A tiny float16 run to step 8 unbroken, and one stopped at step 4 and resumed: their train
    and validation rows, and the loss scale in the unbroken run's step-4 checkpoint. Dropout is
    on, so the resumed run must also draw the masks the unbroken one drew."""
    config = get_config("tiny", **{**RUN, **FLOAT16})
    report = {}
    for name, stops in (("unbroken", (8,)), ("resumed", (4, 8))):
        for steps in stops:
            history = training.train(
                config,
                os.path.join(run_dir, name),
                steps=steps,
                windows=data(),
                options=EVERY_STEP,
            )
        rows = history[history.split == "train"]
        columns = ("step", "loss", "global_norm", "learning_rate", "losses/kl_beta")
        report[name] = {column: rows[column].tolist() for column in columns}
        report[name]["validation"] = history[history.split == "validation"]["loss"].tolist()
    model = compiled(config)
    step_4 = runs.checkpoint_paths(os.path.join(run_dir, "unbroken"))[0]
    runs.load_checkpoint(model, step_4, with_optimizer=True)
    report["checkpoint"] = {
        "step": runs.checkpoint_step(step_4),
        "scale": float(_values([model.optimizer.dynamic_scale])[0]),
    }
    return report


def float16(run_dir: str) -> dict:
    """The float16 checks of tests/test_backends.py, in one process per backend."""
    return {
        "loss_scale": float16_loss_scale(),
        "against_float32": float16_against_float32(),
        "resume": float16_resume(run_dir),
    }


JOBS = {"backend_run": backend_run, "parallel": parallel, "float16": float16}


if __name__ == "__main__":
    job, *args = sys.argv[1:]
    if job == "parallel" and os.environ["KERAS_BACKEND"] == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        two = [tf.config.LogicalDeviceConfiguration()] * 2
        tf.config.set_logical_device_configuration(cpu, two)
    report = JOBS[job](*(int(a) if a.isdigit() else a for a in args))
    report["tensorflow_loaded"] = sys.modules.get("tensorflow") is not None
    print(json.dumps(report))
