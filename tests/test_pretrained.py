"""Tests for helpers/bundles.py and TrainedModel.pretrained: float16 bundles, their errors, and
which model plays."""

import shutil

import numpy as np
import pytest

from helpers import bundles, runs, sample, train
from helpers.config import get_config, with_overrides


@pytest.fixture(scope="module")
def tiny_bundle(tiny_run, tmp_path_factory):
    """A bundle of the tiny run's weights under a fresh pretrained root."""
    root = tmp_path_factory.mktemp("pretrained")
    folder = root / "tiny"
    folder.mkdir()
    shutil.copy(tiny_run / train.CONFIG_FILE, folder)
    model = runs.restore_model(tiny_run)
    bundles.save_weights(model, folder / bundles.WEIGHTS_FILE, step=2)
    return root


def test_round_trip_is_float32_and_decodes_as_the_run(tiny_run, tiny_bundle):
    run = sample.TrainedModel(tiny_run)
    bundled = sample.TrainedModel.pretrained("tiny", root=tiny_bundle)
    assert type(bundled) is type(run) and bundled.step == run.step == 2
    for ours, theirs in zip(bundled.model.trainable_variables, run.model.trainable_variables):
        assert ours.dtype == "float32"
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-3, atol=1e-4)
        assert np.array_equal(ours.numpy(), theirs.numpy().astype(np.float16).astype(np.float32))
    z = np.random.default_rng(0).standard_normal((4, run.config.model.z_size)).astype(np.float32)
    ours, theirs = bundled.decode_grooves(z, 1e-6, seed=1), run.decode_grooves(z, 1e-6, seed=1)
    # greedy hits: float16 rounding may flip a rare logit near 0
    assert (ours[..., :9] == theirs[..., :9]).mean() > 0.99
    np.testing.assert_allclose(ours[..., 9:], theirs[..., 9:], atol=2e-2)
    mu_ours, _ = bundled.model.encode(ours)
    mu_theirs, _ = run.model.encode(ours)
    np.testing.assert_allclose(mu_ours, mu_theirs, atol=2e-2)


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_bundle_of_a_mixed_precision_run_loads_at_float32(tiny_run, tmp_path, precision):
    config = with_overrides(get_config("tiny"), precision=precision)
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / train.CONFIG_FILE).write_text(config.to_json())
    bundles.save_weights(runs.restore_model(tiny_run), tmp_path / "mixed" / "weights.npz", 7)
    model, step = bundles.load_bundle("mixed", tmp_path)
    assert step == 7 and model.dtype_policy.compute_dtype == "float32"


def test_run_models_carry_their_step_and_label(tiny_run):
    run = sample.TrainedModel(tiny_run)
    assert run.step == 2 and run.label == "tiny-ckpt-000000002"
    assert str(tiny_run) in run.source


def test_unknown_name_lists_what_is_bundled(tiny_bundle):
    with pytest.raises(bundles.PretrainedError, match=r"'nope'.*bundled: tiny"):
        sample.TrainedModel.pretrained("nope", root=tiny_bundle)


def test_missing_and_truncated_weights_name_the_file(tiny_bundle, tmp_path):
    shutil.copytree(tiny_bundle / "tiny", tmp_path / "tiny")
    weights = tmp_path / "tiny" / bundles.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(bundles.PretrainedError, match=f"{weights}.*truncated"):
        bundles.load_bundle("tiny", tmp_path)
    model, _ = bundles.load_bundle("tiny", tiny_bundle)
    weights.unlink()
    with pytest.raises(bundles.PretrainedError, match=f"{weights} is missing"):
        bundles.load_weights(model, weights)


def test_weights_of_another_config_are_refused(tiny_bundle):
    from helpers.model import GrooVAE

    other = GrooVAE(with_overrides(get_config("tiny"), z_size=7))
    with pytest.raises(bundles.PretrainedError, match="different models"):
        bundles.load_weights(other, tiny_bundle / "tiny" / bundles.WEIGHTS_FILE)


def test_without_a_run_the_bundled_model_plays(tiny_bundle, tmp_path):
    groovae = sample.pick_model("tiny", outputs_dir=tmp_path, root=tiny_bundle)
    assert groovae.run_dir is None and groovae.step == 2 and groovae.label == "tiny-pretrained"
    assert (
        groovae.source.startswith("the bundled tiny") and "no tiny run of yours" in groovae.source
    )
    assert groovae.sample_grooves(2, seed=0).shape == (2, 64, 27)


def test_a_run_of_your_own_comes_before_the_bundle(tiny_run, tiny_bundle):
    groovae = sample.pick_model("tiny", outputs_dir=tiny_run.parents[1], root=tiny_bundle)
    assert groovae.run_dir == tiny_run and groovae.source.startswith("your run")
    bundled = sample.pick_model("tiny", "bundled", tiny_run.parents[1], root=tiny_bundle)
    assert bundled.label == "tiny-pretrained" and bundled.step == 2


def test_pick_model_without_run_or_bundle_says_how_to_train(tmp_path, tiny_bundle):
    with pytest.raises(sample.SampleError, match="python -m helpers.train --config groovae_2bar"):
        sample.pick_model("drumify", outputs_dir=tmp_path, root=tiny_bundle)
