"""Tests for helpers/model.py: encoder, teacher-forced and sampling decoders, train and test
steps (spec §3-§4)."""

import math

import keras
import numpy as np
import pytest
from conftest import random_grooves

from helpers import losses
from helpers import model as groovae
from helpers.config import get_config
from helpers.constants import GROOVE_DEPTH, HITS, OFFSETS, VELOCITIES, WINDOW_STEPS
from helpers.magenta import load_magenta_weights


@pytest.fixture(scope="module")
def magenta_model(oracle):
    model = groovae.GrooVAE(get_config("groovae_4bar"))
    load_magenta_weights(model, {k[2:]: v for k, v in oracle.items() if k.startswith("w/")})
    return model


@pytest.fixture
def tiny_model(tiny_config):
    keras.utils.set_random_seed(0)
    return groovae.GrooVAE(tiny_config)


@pytest.mark.parity
def test_encode_matches_magenta(magenta_model, oracle):
    mu, sigma = magenta_model.encode(oracle["x"])
    np.testing.assert_allclose(np.asarray(mu), oracle["mu"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(sigma), oracle["sigma"], rtol=1e-5, atol=1e-4)


@pytest.mark.parity
def test_reconstruction_logits_matches_magenta(magenta_model, oracle):
    logits = magenta_model.reconstruction_logits(oracle["x"], oracle["z"])
    np.testing.assert_allclose(np.asarray(logits), oracle["logits"], atol=1e-4)


@pytest.mark.parity
def test_loss_terms_matches_magenta(magenta_model, oracle):
    mu, sigma = magenta_model.encode(oracle["x"])
    logits = magenta_model.reconstruction_logits(oracle["x"], oracle["z"])
    terms = losses.loss_terms(oracle["x"], logits, mu, sigma, 1, magenta_model.config.model)
    np.testing.assert_allclose(float(terms["loss"]), oracle["loss"], rtol=1e-5)


@pytest.mark.parity
@pytest.mark.parametrize("z_key, greedy_key", [("z", "greedy"), ("z_prior", "greedy_prior")])
def test_decode_greedy_matches_magenta(magenta_model, oracle, z_key, greedy_key):
    grooves = np.asarray(magenta_model.decode(oracle[z_key], temperature=1e-6, seed=0))
    expected = oracle[greedy_key]
    np.testing.assert_array_equal(grooves[..., HITS], expected[..., HITS])
    np.testing.assert_allclose(grooves[..., VELOCITIES], expected[..., VELOCITIES], atol=1e-4)
    np.testing.assert_allclose(grooves[..., OFFSETS], expected[..., OFFSETS], atol=1e-4)


def test_grooVAE_shapes_and_dtypes(tiny_model, tiny_config):
    x = random_grooves(4)
    z_size = tiny_config.model.z_size
    mu, sigma = tiny_model.encode(x)
    assert tuple(mu.shape) == (4, z_size) and tuple(sigma.shape) == (4, z_size)
    logits = tiny_model.reconstruction_logits(x, mu)
    assert tuple(logits.shape) == (4, WINDOW_STEPS, GROOVE_DEPTH) and logits.dtype == "float32"
    assert tuple(tiny_model(x).shape) == (4, WINDOW_STEPS, GROOVE_DEPTH)
    assert float(np.min(sigma)) > 0.0


def test_grooVAE_stacked_layers_shapes():
    config = get_config("tiny", enc_rnn_size=(16, 12), dec_rnn_size=(16, 8, 8))
    model = groovae.GrooVAE(config)
    x = random_grooves(2)
    mu, _ = model.encode(x)
    assert tuple(mu.shape) == (2, 8)
    assert tuple(model.reconstruction_logits(x, mu).shape) == (2, WINDOW_STEPS, GROOVE_DEPTH)
    assert tuple(model.decode(mu, seed=0).shape) == (2, WINDOW_STEPS, GROOVE_DEPTH)


def test_grooVAE_initial_posterior_is_near_standard(tiny_model):
    # Kernels N(0, 0.001^2), biases 0: mu ~ 0 and sigma ~ softplus(0) = ln 2 (spec §3.3).
    mu, sigma = tiny_model.encode(random_grooves(4))
    np.testing.assert_allclose(np.asarray(mu), 0.0, atol=0.05)
    np.testing.assert_allclose(np.asarray(sigma), math.log(2.0), atol=0.05)


def test_grooVAE_dropout_only_when_training(tiny_model):
    x = random_grooves(2)
    np.testing.assert_array_equal(np.asarray(tiny_model(x)), np.asarray(tiny_model(x)))
    trained = [np.asarray(tiny_model(x, training=True)) for _ in range(2)]
    assert np.abs(trained[0] - trained[1]).max() > 1e-4


def _inputs_seen_by(layers_to_watch, monkeypatch) -> dict:
    """Record what each watched layer is called with; returns {layer name: [inputs, ...]}."""
    seen = {layer.name: [] for layer in layers_to_watch}
    for cls in {type(layer) for layer in layers_to_watch}:
        original = cls.__call__

        def recording_call(self, *args, _original=original, **kwargs):
            if self.name in seen:
                seen[self.name].append(np.asarray(args[0], dtype="float32"))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__call__", recording_call)
    return seen


def test_grooVAE_dropout_is_per_step_on_every_layer_input_z_included(tiny_model, monkeypatch):
    # Spec §3.2: inverted dropout at 1 - keep = 70 % on each layer's input, a fresh mask every step
    # (not one mask over time), z dropped with the rest of [y_{t-1}, z], separate fw and bw masks.
    keep = tiny_model.config.model.dropout_keep_prob
    watched = [tiny_model.encoder_fw[0], tiny_model.encoder_bw[0], *tiny_model.decoder_lstms]
    seen = _inputs_seen_by(watched, monkeypatch)
    batch, z_size = 64, tiny_model.config.model.z_size
    ones = np.ones((batch, WINDOW_STEPS, GROOVE_DEPTH), "float32")
    tiny_model.encode(ones, training=True)
    tiny_model.reconstruction_logits(ones, np.ones((batch, z_size), "float32"), training=True)

    def check_mask(inputs: np.ndarray, where: str) -> np.ndarray:
        kept = inputs != 0
        np.testing.assert_allclose(inputs[kept], 1.0 / keep, rtol=1e-5, err_msg=where)
        assert abs(kept.mean() - keep) < 0.03, f"{where}: kept {kept.mean():.3f}, want {keep}"
        # A mask shared across time would make every step equal to the first one.
        assert (kept != kept[:, :1]).mean() > 0.3, f"{where}: one mask for all steps"
        return kept

    fw = check_mask(seen[tiny_model.encoder_fw[0].name][0], "encoder fw input")
    bw = check_mask(seen[tiny_model.encoder_bw[0].name][0], "encoder bw input")
    assert (fw != bw).mean() > 0.3, "fw and bw share one mask"
    decoder_in = seen[tiny_model.decoder_lstms[0].name][0][:, 1:]  # t = 0 sees zeros, not targets
    check_mask(decoder_in[..., GROOVE_DEPTH:], "z in the decoder input")
    check_mask(decoder_in[..., :GROOVE_DEPTH], "previous targets in the decoder input")
    top_layer_in = seen[tiny_model.decoder_lstms[1].name][0]
    assert (top_layer_in == 0).mean() > 0.5, "no dropout between decoder layers"


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_grooVAE_mixed_precision_keeps_float32_variables_and_outputs(tiny_config, precision):
    config = get_config("tiny", precision=precision)
    model = groovae.GrooVAE(config)
    assert {v.dtype for v in model.trainable_variables} == {"float32"}
    assert model.decoder_lstms[0].compute_dtype == precision
    logits = model(random_grooves(2))
    assert logits.dtype == "float32"


def test_grooVAE_serialization_round_trip(tiny_model):
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(tiny_model))
    assert isinstance(rebuilt, groovae.GrooVAE)
    assert rebuilt.config == tiny_model.config
    assert rebuilt.count_params() == tiny_model.count_params()


def test_train_step_tiny_is_finite_and_updates(tiny_model):
    tiny_model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = random_grooves(16)
    before = [np.array(v) for v in tiny_model.trainable_variables]
    logs = tiny_model.train_on_batch(x, x, return_dict=True)
    assert set(logs) == set(groovae.TRAIN_TERMS)
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert float(logs["kl_beta"]) == 0.0  # step 0
    assert int(tiny_model.optimizer.iterations) == 1
    after = [np.array(v) for v in tiny_model.trainable_variables]
    assert all(np.abs(a - b).max() > 0 for a, b in zip(after, before))


def test_test_step_reports_eval_terms(tiny_model):
    tiny_model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = random_grooves(16)
    logs = tiny_model.evaluate(x, x, batch_size=8, verbose=0, return_dict=True)
    assert set(logs) == set(groovae.EVAL_TERMS) | {"hit_f1"}
    assert 0.0 <= logs["hit_accuracy"] <= 1.0 and 0.0 <= logs["hit_f1"] <= 1.0
    per_step = logs["hits_loss"] + logs["velocities_loss"] + logs["offsets_loss"]
    # Per-timestep means x 64 steps = the per-sequence r_loss of the same passes.
    np.testing.assert_allclose(per_step * WINDOW_STEPS, logs["r_loss"], rtol=1e-5)


def test_decode_seed_reproducible(tiny_model):
    z = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    first = np.asarray(tiny_model.decode(z, seed=1))
    np.testing.assert_array_equal(first, np.asarray(tiny_model.decode(z, seed=1)))
    other = np.asarray(tiny_model.decode(z, seed=2))
    assert not np.array_equal(first[..., HITS], other[..., HITS])
    assert first.shape == (3, WINDOW_STEPS, GROOVE_DEPTH)
    assert set(np.unique(first[..., HITS])) <= {0.0, 1.0}


def test_compiled_decode_equals_the_step_by_step_eager_decode(tiny_model):
    """The compiled loop draws the same hits as stepping the cells eagerly; the graph's own
    kernels may round velocities and offsets differently in the last bit."""
    z = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    for seed, temperature in ((3, 0.5), (7, 1.0), (0, 1e-6)):
        generator = keras.random.SeedGenerator(seed)
        noise = [keras.random.uniform((5, 9), seed=generator) for _ in range(WINDOW_STEPS)]
        eager = tiny_model._decode_steps(
            keras.ops.convert_to_tensor(z),
            keras.ops.convert_to_tensor(temperature),
            noise.__getitem__,
            keras.ops.zeros((5, WINDOW_STEPS, 0)),
        )
        compiled, eager = np.asarray(tiny_model.decode(z, temperature, seed)), np.asarray(eager)
        np.testing.assert_array_equal(compiled[..., HITS], eager[..., HITS])
        np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-6)


def test_decode_rejects_zero_temperature(tiny_model):
    with pytest.raises(groovae.ModelError, match="temperature"):
        tiny_model.decode(np.zeros((1, 8), np.float32), temperature=0.0)
