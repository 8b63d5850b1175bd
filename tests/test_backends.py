"""Tests for helpers/backends.py: updates, clipping, decay, float16 and data parallel, on every
Keras backend, each in its own interpreter.

Keras fixes its backend at import, so each backend runs tests/backend_job.py in a subprocess:
Magenta parity of the model, one training step's loss and gradients from the same weights, a tiny
run that TensorFlow starts, JAX continues and PyTorch finishes, and data parallel training on two
virtual CPU devices. The runner names the backends its environment must have in
GROOVAE_REQUIRE_BACKENDS (`make test`: all three; the Colab job: Colab's CPU image, which has no
PyTorch); a required one that is missing fails, any other missing one is skipped.
"""

import math
import os
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
from backend_job import FLOAT16, OVERFLOWING_SCALE, SAFE_SCALE
from conftest import BACKEND_PACKAGES, require_backends, run_backend_job

from helpers import backends
from helpers.config import get_config

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
greedy = keras.ops.convert_to_numpy(model.decode(oracle["z"], temperature=1e-6, seed=0))
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


# ------------------------------------------------------------------------------------------
# Training updates: Magenta's learning-rate decay, Adam and clipping.


@pytest.mark.parametrize("norm, expected_norm", [(0.5, 0.5), (5.0, 1.0), (9999.0, 1.0)])
def test_clip_gradients_by_global_norm(norm, expected_norm):
    scale = norm / 5.0  # the unscaled gradients have global norm 5
    grads = [np.array([3.0, 0.0], np.float32) * scale, np.array([[4.0]], np.float32) * scale]
    clipped, global_norm = backends.clip_gradients(grads, 1.0, 10000.0)
    np.testing.assert_allclose(float(global_norm), norm, rtol=1e-6)
    clipped_norm = math.sqrt(sum(float(np.sum(np.square(g))) for g in clipped))
    np.testing.assert_allclose(clipped_norm, expected_norm, rtol=1e-6)


@pytest.mark.parametrize("value", [1e4, np.inf, np.nan])
def test_clip_gradients_to_zero_at_large_or_bad_norm(value):
    grads = [np.array([value, 1.0], np.float32), np.array([2.0], np.float32)]
    clipped, _ = backends.clip_gradients(grads, 1.0, 10000.0)
    for g in clipped:
        np.testing.assert_array_equal(np.asarray(g), 0.0)


# The spec's figures, as rounded there (its "7.44e-4" is 7.434e-4).
@pytest.mark.parametrize(
    "step, expected, atol",
    [(0, 1e-3, 5e-8), (3000, 7.44e-4, 1e-6), (10_000, 3.7e-4, 5e-6), (200_000, 1.0e-5, 5e-7)],
)
def test_magenta_decay_spec_values(step, expected, atol):
    t = get_config("groovae_4bar").train
    decay = backends.MagentaDecay(t.learning_rate, t.decay_rate, t.min_learning_rate)
    # Like Magenta's tf.pow, the decay runs in float32: 0.9999 is rounded before the power.
    exact = (1e-3 - 1e-5) * float(np.float32(0.9999)) ** step + 1e-5
    np.testing.assert_allclose(float(decay(step)), exact, rtol=1e-5)
    np.testing.assert_allclose(float(decay(step)), expected, rtol=0, atol=atol)


def test_make_optimizer_matches_tf1_adam():
    config = get_config("groovae_4bar").train
    optimizer = backends.make_optimizer(config)
    variable = keras.Variable(np.array([0.5, -1.0, 2.0], np.float32))
    grads = [np.array([0.1, -3.0, 1e-9], np.float32), np.array([0.2, 1.0, 0.0], np.float32)]
    value, m, v = variable.numpy().astype(np.float64), 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        optimizer.apply([g], [variable])
        # TF1: lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t); var -= lr_t * m / (sqrt(v) + eps).
        lr = (1e-3 - 1e-5) * 0.9999 ** (t - 1) + 1e-5
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * np.square(g, dtype=np.float64)
        value -= lr * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(variable.numpy(), value, rtol=1e-5)


# ------------------------------------------------------------------------------------------
# float16 mixed precision with dynamic loss scaling (helpers/backends.py) on every Keras backend.
#
# Keras fixes its backend at import, so each backend runs tests/backend_job.py's float16 job in a
# process of its own: the loss scale's moves and a skipped step, one step against float32, and a
# run checkpointed and resumed.


INITIAL_SCALE = 2.0**15  # where Keras's LossScaleOptimizer starts


def _replayed_scale(global_norms: list[float]) -> float:
    """The loss scale after steps with these logged norms (non-finite: a skipped step), moved as
    Keras's LossScaleOptimizer moves it."""
    scale, finite_steps = INITIAL_SCALE, 0
    for finite in np.isfinite(global_norms):
        finite_steps = finite_steps + 1 if finite else 0
        scale *= 1.0 if finite else 0.5
        if finite_steps == FLOAT16["loss_scale_growth_steps"]:
            scale, finite_steps = 2 * scale, 0
    return scale


class TestFloat16:
    """float16 runs, one process per backend; a class of their own so they run beside the tests
    above on another test worker (conftest.py)."""

    @pytest.fixture(scope="class", params=list(BACKEND_PACKAGES))
    def report(self, request, tmp_path_factory) -> dict:
        backend = request.param
        require_backends(backend)
        return run_backend_job(backend, "float16", tmp_path_factory.mktemp(f"float16-{backend}"))

    def test_loss_scale_grows_after_finite_steps_and_halves_on_overflow(self, report):
        steps = report["loss_scale"]
        # Steps 1-3 from SAFE_SCALE: doubled after 2 finite steps. Step 4 from OVERFLOWING_SCALE:
        # halved. Steps 5-6 from SAFE_SCALE again: the skip restarted the count, so it doubles at 6.
        assert FLOAT16["loss_scale_growth_steps"] == 2
        safe = SAFE_SCALE
        assert steps["scale"] == [safe, 2 * safe, 2 * safe, OVERFLOWING_SCALE / 2, safe, 2 * safe]
        assert steps["finite_steps"] == [1, 0, 1, 0, 1, 0]
        assert steps["step"] == [1, 2, 3, 4, 5, 6]  # a skipped step still counts

    def test_a_step_with_non_finite_gradients_changes_no_weight_or_adam_moment(self, report):
        steps = report["loss_scale"]
        finite = np.isfinite(steps["global_norm"])
        np.testing.assert_array_equal(finite, [True, True, True, False, True, True])
        assert steps["weights_changed"] == finite.tolist()
        assert steps["moments_changed"] == finite.tolist()

    def test_one_float16_step_matches_float32(self, report):
        found = report["against_float32"]
        # float16 keeps 11 significant bits (a rounding of 2^-11 = 4.9e-4 relative) in every layer
        # output; the loss terms and the global norm are sums in float32 of such values, so they
        # agree to about 1e-3 (measured 1e-7 to 1e-3): 5e-3 leaves room across backends.
        for part in ("terms", "logs"):
            float32, float16 = found[part]
            for name, value in float32.items():
                np.testing.assert_allclose(float16[name], value, rtol=5e-3, err_msg=name)
        # The unscaled gradients carry those roundings through 64 recurrent steps of the LSTMs:
        # measured 3e-4 to 7e-3 of float32's global norm. Unscaled wrongly they would be off by the
        # scale, 128x; not scaled at all, small gradients would flush to zero.
        assert found["grads_error"] < 2e-2
        # Adam's early updates are close to lr * sign(gradient) for every weight, so a weight whose
        # gradient is within float16's rounding of zero may move the other way (up to 2 lr apart):
        # measured 1.4-1.6 % of the update's norm. A skipped or zeroed update would be 100 %.
        assert found["update_error"] < 0.1

    def test_checkpoint_carries_the_loss_scale_and_a_resumed_run_continues_it(self, report):
        resume = report["resume"]
        unbroken, resumed = resume["unbroken"], resume["resumed"]
        scale = _replayed_scale(unbroken["global_norm"][:4])
        assert resume["checkpoint"] == {"step": 4, "scale": scale}
        # The scale moved before the checkpoint and steps after it update the weights, so a resumed
        # run that restarted the scale at 2^15 would skip steps the unbroken run took.
        assert scale < INITIAL_SCALE and np.isfinite(unbroken["global_norm"][4:]).any()
        np.testing.assert_array_equal(resumed["step"], np.arange(1, 9))
        for column, values in unbroken.items():
            np.testing.assert_allclose(resumed[column], values, rtol=1e-5, err_msg=column)

    @pytest.mark.parametrize(
        "backend, env",
        [("jax", {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}), ("tensorflow", {})],
    )
    def test_float16_data_parallel_matches_one_device(self, backend, env, tmp_path):
        require_backends(backend)
        report = run_backend_job(backend, "parallel", tmp_path, 1.0, "float16", 8, env=env)
        one, two = report["1"], report["2"]
        # Replicas judge the all-reduced gradients, so they skip together, and the steps one device
        # skips; 8 steps reach past the first overflows at 2^15 to some updates.
        finite = np.isfinite(one["global_norm"])
        assert finite.any() and not finite.all()
        np.testing.assert_array_equal(np.isfinite(two["global_norm"]), finite)
        np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)
        # Each replica sums its half of the batch's gradients in float16: measured 1e-3 apart.
        norms = [np.asarray(run["global_norm"])[finite] for run in (two, one)]
        np.testing.assert_allclose(*norms, rtol=5e-3)
