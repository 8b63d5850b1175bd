"""Jobs that tests/test_backends.py runs on one Keras backend each, in a process of its own.

Keras fixes its backend at import, so every backend other than the test's own runs this file as
a script: `python tests/backend_job.py JOB ARGS...` with KERAS_BACKEND set. Off TensorFlow the
script hides TensorFlow first, as on Colab's TPU runtime, and reports whether anything reached for
it. Each job prints one JSON line.
"""

import json
import os
import sys

if __name__ == "__main__" and os.environ.get("KERAS_BACKEND") != "tensorflow":
    sys.modules["tensorflow"] = None  # `import tensorflow` now fails as if it were not installed

import keras  # noqa: E402
import numpy as np  # noqa: E402
from conftest import random_grooves  # noqa: E402

from helpers import backends, losses, runs, train  # noqa: E402
from helpers import model as groovae  # noqa: E402
from helpers.config import get_config  # noqa: E402

# Dropout off and beta annealed, so one step's loss and gradients are fixed by the weights, the
# batch, the noise and the step counter, which then shows in every logged beta.
PARITY = {"dropout_keep_prob": 1.0, "beta_rate": 0.9}
RUN = {**PARITY, "dropout_keep_prob": 0.3, "eval_every_steps": 4, "checkpoint_every_steps": 4}
PARITY_STEP = 3


def data() -> dict:
    return {"train_data": random_grooves(48), "validation_data": random_grooves(16, seed=1)}


def parity_batch() -> tuple[np.ndarray, np.ndarray]:
    """(grooves, posterior noise) shared by every backend's one-step check."""
    grooves = random_grooves(16, seed=2)
    noise = np.random.default_rng(3).standard_normal((16, 8)).astype(np.float32)
    return grooves, noise


def one_step(weights_path: str, out_path: str) -> dict:
    """Loss terms and gradients of one step from saved weights; writes the weights if absent."""
    model = groovae.GrooVAE(get_config("tiny", **PARITY))
    model.compile(optimizer=backends.make_optimizer(model.config.train))
    model.optimizer.build(model.trainable_variables)
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
    train.train(config, run_dir, steps=total_steps, log_every_steps=1, progress=False, **data())
    report["end_r_loss"] = deterministic_r_loss(runs.restore_model(run_dir))
    return report


def deterministic_r_loss(model) -> float:
    grooves = data()["validation_data"]
    return float(keras.ops.mean(losses.r_loss(grooves, model(grooves))))


def parallel(run_dir: str, dropout_keep_prob: str) -> dict:
    """The training losses of one short run on one device and on two sharing each batch."""
    config = get_config("tiny", dropout_keep_prob=float(dropout_keep_prob))
    report = {}
    for devices in (1, 2):
        history = train.train(
            config,
            os.path.join(run_dir, str(devices)),
            steps=4,
            log_every_steps=1,
            progress=False,
            devices=devices,
            **data(),
        )
        rows = history[history.split == "train"]
        report[devices] = {name: rows[name].tolist() for name in ("loss", "global_norm")}
    return report


def backend_run(weights_path: str, one_step_path: str, run_dir: str, total_steps: int) -> dict:
    """One process's share of the cross-backend checks: the one-step check, then the resume."""
    return {**one_step(weights_path, one_step_path), **resume(run_dir, total_steps)}


JOBS = {"backend_run": backend_run, "parallel": parallel}


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
