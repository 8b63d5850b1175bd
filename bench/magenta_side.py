"""Magenta's own groovae_4bar training graph, timed step by step in a side environment.

The side environment is a virtualenv outside the repository (default ~/.cache/groovae-bench),
built on first use and never a project dependency: the `magenta` 2.1.4 wheel installed without
its dependencies (its pins do not install on Python 3.11+), beside the TensorFlow 2.21 stack
that runs its TF1 graph unmodified. `MagentaStepper` starts this file as a worker in that
environment; the worker builds the graph once, then runs one training step per request, so a
bench can alternate Magenta's steps with ours on the same windows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

SIDE_PACKAGES = (
    "tensorflow-cpu==2.21.0",
    "tf-keras==2.21.0",
    "tensorflow-probability==0.25.0",
    "tf_slim==1.1.0",
    "note-seq==0.0.5",
    "tensorflow-datasets==4.9.10",
)
MAGENTA_WHEEL = "magenta==2.1.4"
DEFAULT_ROOT = Path.home() / ".cache" / "groovae-bench"


def side_python(root: Path = DEFAULT_ROOT) -> Path:
    """The side environment's interpreter, building the environment first if it is missing."""
    venv = root / "magenta-venv"
    python = venv / "bin" / "python"
    ready = venv / ".installed"
    if ready.exists():
        return python
    print(f"building Magenta's side environment in {venv} (first use, a few minutes)")
    root.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *SIDE_PACKAGES], check=True)
    subprocess.run([*pip, "--no-deps", MAGENTA_WHEEL], check=True)
    ready.write_text("\n".join((*SIDE_PACKAGES, MAGENTA_WHEEL)) + "\n")
    return python


def trained_model_greedy(model, z, controls, shape: tuple, temperature: float) -> tuple:
    """Decodes `z` with Magenta's TrainedModel, in its own session (run in the side environment).

    TrainedModel's decode returns samples only, so this runs its decoder's results for the logits
    too; and it feeds one control sequence to the whole batch, so with controls each window
    decodes alone.

    Args:
      model: magenta.models.music_vae.trained_model.TrainedModel.
      z: (n, z_size) latents; controls: (n, steps, control_depth) (ignored without controls).
      shape: (n, steps, output_depth) of the samples.
      temperature: the hits' sampling temperature (tiny: greedy).

    Returns:
      (samples, logits), both float32 of `shape`.
    """
    import numpy as np

    feed = {model._temperature: temperature, model._z_input: z, model._max_length: shape[1]}
    samples, logits = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    rows = [range(shape[0])] if model._c_input is None else [[i] for i in range(shape[0])]
    for row in rows:
        if model._c_input is not None:
            feed[model._c_input] = np.asarray(controls[row[0]], np.float32)
        results = model._sess.run(model._decoder_results, feed)
        samples[row], logits[row] = results.samples[row], results.rnn_output[row]
    return samples, logits


class StepWorker:
    """A process that trains one model step by step on request, timing each step itself.

    It answers a JSON line once it is ready, then one per step index written to its stdin:
    {"seconds": wall time of that step}. Its stderr goes to `log`.
    """

    def __init__(self, command: list[str], env: dict, log: Path):
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as stderr:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
            )
        self.info = self._reply()  # the worker says it is ready once its model is built

    def _reply(self) -> dict:
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"a bench worker stopped; see {self.log}")
        return json.loads(line)

    def step(self, index: int) -> float:
        """Runs training step `index` (its batch of windows); returns its wall time in seconds."""
        self._process.stdin.write(f"{index}\n")
        self._process.stdin.flush()
        return self._reply()["seconds"]

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(timeout=60)

    def __enter__(self) -> StepWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def serve(train_step, info: dict) -> None:
    """A StepWorker's side: says `info` when ready, then times train_step(index) per request."""
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        began = time.perf_counter()
        train_step(int(line))
        print(json.dumps({"seconds": time.perf_counter() - began}), flush=True)


def batch_rows(index: int, batch_size: int, count: int) -> list[int]:
    """The rows of step `index`'s batch: [index * batch_size, ...) modulo the window count."""
    return [(index * batch_size + i) % count for i in range(batch_size)]


class MagentaStepper(StepWorker):
    """A worker process holding Magenta's groovae_4bar training graph at one batch size.

    Args:
      windows_path: an .npy file of (n, 64, 27) float32 windows; batch i is batch_rows(i, ...),
        the same rows a caller feeds its own model.
      batch_size: examples per step.
      root: where the side environment lives.
    """

    def __init__(self, windows_path: str | Path, batch_size: int, root: Path = DEFAULT_ROOT):
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("PYTHONPATH", None)  # the worker must see Magenta's stack, not the project's
        python = side_python(root)
        command = [str(python), __file__, str(windows_path), str(batch_size)]
        # TF1's deprecation chatter and any error go to the log.
        super().__init__(command, env, root / "worker.log")


def _worker(windows_path: str, batch_size: int) -> None:
    """The worker's loop: build Magenta's graph, then answer each step index with its time."""
    import numpy as np
    import tensorflow.compat.v1 as tf
    from magenta.models.music_vae import configs

    tf.disable_v2_behavior()
    windows = np.load(windows_path)
    config = configs.CONFIG_MAP["groovae_4bar"]
    hparams = config.hparams
    hparams.batch_size = batch_size
    steps, depth = hparams.max_seq_len, config.data_converter.output_depth
    with tf.Graph().as_default():
        sequences = tf.placeholder(tf.float32, [batch_size, steps, depth])
        lengths = tf.fill([batch_size], steps)
        model = config.model
        model.build(hparams, depth, is_training=True)
        # groovae_4bar's encoder input is its output sequence (no humanize or tap variant).
        optimizer = model.train(sequences, sequences, lengths)
        # The update music_vae_train.py builds: global-norm clipping, zeros past the cut-off.
        grads, variables = zip(*optimizer.compute_gradients(model.loss))
        norm = tf.global_norm(grads)
        clipped = tf.cond(
            norm < hparams.grad_norm_clip_to_zero,
            lambda: tf.clip_by_global_norm(grads, hparams.grad_clip, use_norm=norm)[0],
            lambda: [tf.zeros(tf.shape(g)) for g in grads],
        )
        train_op = optimizer.apply_gradients(zip(clipped, variables), global_step=model.global_step)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())

            def train_step(index: int) -> None:
                rows = batch_rows(index, batch_size, len(windows))
                session.run([train_op, model.loss], {sequences: windows[rows]})

            serve(train_step, {"tensorflow": tf.__version__})


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]))
