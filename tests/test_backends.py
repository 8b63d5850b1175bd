"""Training and the model on every Keras backend, each in its own interpreter.

Keras fixes its backend at import, so each backend runs tests/backend_job.py in a subprocess:
Magenta parity of the model, one training step's loss and gradients from the same weights, a tiny
run that TensorFlow starts, JAX continues and PyTorch finishes, and data parallel training on two
virtual CPU devices. The runner names the backends its environment must have in
GROOVAE_REQUIRE_BACKENDS (`make test`: all three; the Colab job: Colab's CPU image, which has no
PyTorch); a required one that is missing fails, any other missing one is skipped.
"""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import BACKEND_PACKAGES, require_backends, run_backend_job

SEGMENTS = (("tensorflow", 4), ("jax", 8), ("torch", 12))  # each continues the run to this step


CHECK = """
import sys
import numpy as np
import keras
from helpers import model as groovae
from helpers.magenta import load_magenta_weights
from helpers.config import get_config

oracle = dict(np.load(sys.argv[1]))
model = groovae.GrooVAE(get_config("groovae_4bar"))
load_magenta_weights(model, {k[2:]: v for k, v in oracle.items() if k.startswith("w/")})
mu, sigma = (keras.ops.convert_to_numpy(t) for t in model.encode(oracle["x"]))
np.testing.assert_allclose(mu, oracle["mu"], rtol=1e-5, atol=1e-4)
np.testing.assert_allclose(sigma, oracle["sigma"], rtol=1e-5, atol=1e-4)
logits = keras.ops.convert_to_numpy(model.reconstruction_logits(oracle["x"], oracle["z"]))
np.testing.assert_allclose(logits, oracle["logits"], atol=1e-4)
greedy = keras.ops.convert_to_numpy(model.decode(oracle["z"], temperature=1e-6, seed=0, decoding="magenta"))
np.testing.assert_array_equal(greedy[..., :9], oracle["greedy"][..., :9])
np.testing.assert_allclose(greedy[..., 9:], oracle["greedy"][..., 9:], atol=1e-4)
assert keras.backend.backend() == sys.argv[2]
assert "tensorflow" not in sys.modules, "the model pulled in TensorFlow"
"""


@pytest.mark.parity
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_model_matches_magenta_on_backend(backend, parity_dir):
    require_backends(backend)
    oracle = parity_dir / "model_oracle_groovae_4bar.npz"
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(oracle), backend],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """TensorFlow starts a tiny run, JAX continues it, PyTorch finishes it; each also takes one
    step's gradients from the weights TensorFlow drew."""
    require_backends(*BACKEND_PACKAGES)
    folder = tmp_path_factory.mktemp("chain")
    weights, run_dir = folder / "weights.npz", folder / "run"
    reports = {}
    for backend, total_steps in SEGMENTS:
        one_step = folder / f"one_step_{backend}.npz"
        reports[backend] = run_backend_job(
            backend, "backend_run", weights, one_step, run_dir, total_steps
        )
        reports[backend]["one_step"] = dict(np.load(one_step))
    history = pd.read_csv(run_dir / "history.csv")
    return reports, history


def test_one_step_parity_across_backends(chain):
    reports, _ = chain
    expected = reports["tensorflow"]["one_step"]
    assert expected["kl_beta"] > 0 and expected["kl_loss"] > 0  # the KL term is in play
    for backend in ("jax", "torch"):
        got = reports[backend]["one_step"]
        assert sorted(got) == sorted(expected)
        for name in expected:
            np.testing.assert_allclose(
                got[name], expected[name], rtol=1e-4, atol=1e-4, err_msg=f"{backend}: {name}"
            )


def test_tiny_run_trains_on_every_backend_and_reads_the_step(chain):
    _, history = chain
    rows = history[history.split == "train"]
    np.testing.assert_array_equal(rows.step, np.arange(1, 13))
    assert np.isfinite(rows["loss"]).all() and (rows["global_norm"] > 0).all()
    # beta = (1 - 0.9**step) * 0.2 at the step before each update: a step frozen at trace time
    # (a jitted JAX step reading a Python value) would repeat one beta.
    expected_beta = (1.0 - np.float32(0.9) ** (rows.step.to_numpy() - 1.0)) * 0.2
    np.testing.assert_allclose(rows["losses/kl_beta"], expected_beta, rtol=1e-5, atol=1e-7)
    expected_lr = (1e-3 - 1e-5) * np.float32(0.9999) ** (rows.step.to_numpy() - 1.0) + 1e-5
    np.testing.assert_allclose(rows["learning_rate"], expected_lr, rtol=1e-5)
    validation = history[history.split == "validation"]
    np.testing.assert_array_equal(validation.step, [4, 8, 12])
    assert np.isfinite(validation["loss"]).all()


def test_checkpoints_resume_across_backends(chain):
    reports, _ = chain
    # Each backend loads the previous one's last checkpoint and computes the same
    # teacher-forced reconstruction of fixed windows.
    for before, after in (("tensorflow", "jax"), ("jax", "torch")):
        np.testing.assert_allclose(
            reports[after]["start_r_loss"], reports[before]["end_r_loss"], rtol=1e-5
        )
    assert reports["tensorflow"]["start_r_loss"] is None  # a fresh run


def test_training_needs_no_tensorflow_off_its_backend(chain):
    reports, _ = chain
    assert not reports["jax"]["tensorflow_loaded"]
    assert not reports["torch"]["tensorflow_loaded"]


@pytest.mark.parametrize(
    "backend, dropout_keep_prob, env",
    [
        # One jitted program over sharded inputs draws the same dropout masks and noise as one
        # device, so even dropout matches.
        ("jax", 0.3, {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}),
        # MirroredStrategy replicas draw their own dropout masks: compare with dropout off.
        ("tensorflow", 1.0, {}),
    ],
)
def test_data_parallel_matches_one_device(backend, dropout_keep_prob, env, tmp_path):
    require_backends(backend)
    report = run_backend_job(backend, "parallel", tmp_path, dropout_keep_prob, env=env)
    one, two = report["1"], report["2"]
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)
    np.testing.assert_allclose(two["global_norm"], one["global_norm"], rtol=1e-4)
