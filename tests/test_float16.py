"""float16 mixed precision with dynamic loss scaling (helpers/backends.py) on every Keras backend.

Keras fixes its backend at import, so each backend runs tests/backend_job.py's float16 job in a
process of its own: the loss scale's moves and a skipped step, one step against float32, and a
run checkpointed and resumed.
"""

import numpy as np
import pytest
from backend_job import FLOAT16, OVERFLOWING_SCALE, SAFE_SCALE
from conftest import BACKEND_PACKAGES, require_backends, run_backend_job

INITIAL_SCALE = 2.0**15  # where Keras's LossScaleOptimizer starts


@pytest.fixture(scope="module", params=list(BACKEND_PACKAGES))
def report(request, tmp_path_factory) -> dict:
    backend = request.param
    require_backends(backend)
    return run_backend_job(backend, "float16", tmp_path_factory.mktemp(f"float16-{backend}"))


def test_loss_scale_grows_after_finite_steps_and_halves_on_overflow(report):
    steps = report["loss_scale"]
    # Steps 1-3 from SAFE_SCALE: doubled after 2 finite steps. Step 4 from OVERFLOWING_SCALE:
    # halved. Steps 5-6 from SAFE_SCALE again: the skip restarted the count, so it doubles at 6.
    assert FLOAT16["loss_scale_growth_steps"] == 2
    safe = SAFE_SCALE
    assert steps["scale"] == [safe, 2 * safe, 2 * safe, OVERFLOWING_SCALE / 2, safe, 2 * safe]
    assert steps["finite_steps"] == [1, 0, 1, 0, 1, 0]
    assert steps["step"] == [1, 2, 3, 4, 5, 6]  # a skipped step still counts


def test_a_step_with_non_finite_gradients_changes_no_weight_or_adam_moment(report):
    steps = report["loss_scale"]
    finite = np.isfinite(steps["global_norm"])
    np.testing.assert_array_equal(finite, [True, True, True, False, True, True])
    assert steps["weights_changed"] == finite.tolist()
    assert steps["moments_changed"] == finite.tolist()


def test_one_float16_step_matches_float32(report):
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


def test_checkpoint_carries_the_loss_scale_and_a_resumed_run_continues_it(report):
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
def test_float16_data_parallel_matches_one_device(backend, env, tmp_path):
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
