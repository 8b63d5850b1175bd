"""Magenta's TF1 variables into a GrooVAE: names, gate order, forget bias, clear errors (spec §3.1)."""

import tarfile

import keras
import numpy as np
import pytest

from helpers import magenta
from helpers.config import get_config
from helpers.model import GrooVAE, ModelError


@pytest.fixture
def tiny_model(tiny_config):
    keras.utils.set_random_seed(0)
    return GrooVAE(tiny_config)


@pytest.mark.parity
def test_load_magenta_checkpoint_reads_tf1_names(oracle, tmp_path):
    import tensorflow as tf

    names = [k[2:] for k in oracle if k.startswith("w/")]
    tf.raw_ops.SaveV2(
        prefix=str(tmp_path / "model.ckpt"),
        tensor_names=names + ["global_step"],
        shape_and_slices=[""] * (len(names) + 1),
        tensors=[oracle[f"w/{n}"] for n in names] + [np.int64(7)],
    )
    model = GrooVAE(get_config("groovae_4bar"))
    magenta.load_magenta_checkpoint(model, tmp_path / "model.ckpt")
    mu, _ = model.encode(oracle["x"])
    np.testing.assert_allclose(np.asarray(mu), oracle["mu"], rtol=1e-5, atol=1e-4)


@pytest.mark.parity
def test_load_magenta_weights_rejects_other_sizes(oracle, tiny_model):
    weights = {k[2:]: v for k, v in oracle.items() if k.startswith("w/")}
    with pytest.raises(ModelError, match="do not fit the config 'tiny'"):
        magenta.load_magenta_weights(tiny_model, weights)


def test_load_magenta_weights_rejects_missing_names(tiny_model):
    with pytest.raises(ModelError, match="lack"):
        magenta.load_magenta_weights(tiny_model, {"encoder/mu/kernel": np.zeros((32, 8))})


def test_load_magenta_checkpoint_rejects_missing_path(tiny_model, tmp_path):
    with pytest.raises(magenta.MagentaError, match="cannot read"):
        magenta.load_magenta_checkpoint(tiny_model, tmp_path / "nothing")


def test_magenta_lstm_to_keras_reorders_gates_and_adds_forget_bias():
    input_dim, units = 3, 2
    # Column block k of the fused kernel and bias holds the value k: gates [i, g, f, o].
    kernel = np.repeat(np.arange(4.0), units)[None, :].repeat(input_dim + units, axis=0)
    bias = np.repeat(np.arange(4.0), units)
    keras_kernel, recurrent, keras_bias = magenta._magenta_lstm_to_keras(kernel, bias, input_dim)
    assert keras_kernel.shape == (input_dim, 4 * units) and recurrent.shape == (units, 4 * units)
    # Keras order [i, f, c, o] = Magenta blocks [0, 2, 1, 3]; forget bias + 1.
    np.testing.assert_array_equal(keras_kernel[0], np.repeat([0.0, 2.0, 1.0, 3.0], units))
    np.testing.assert_array_equal(keras_bias, np.repeat([0.0, 3.0, 1.0, 3.0], units))


def test_write_tf1_writes_magentas_layout_with_global_step(tiny_model, tmp_path):
    weights = magenta.magenta_weights(tiny_model)
    folder = magenta.write_tf1(weights, tiny_model.config, tmp_path / "my_groovae", step=7)
    prefix = "model.ckpt-7"
    files = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
    assert files == {
        "checkpoint",
        f"{prefix}.index",
        f"{prefix}.data-00000-of-00001",
        "my_groovae.tar",
        magenta.LOADER,
    }
    assert (folder / "checkpoint").read_text().splitlines()[
        0
    ] == f'model_checkpoint_path: "{prefix}"'
    with tarfile.open(folder / "my_groovae.tar") as tar:
        assert sorted(tar.getnames()) == [
            "my_groovae",
            "my_groovae/checkpoint",
            f"my_groovae/{prefix}.data-00000-of-00001",
            f"my_groovae/{prefix}.index",
        ]
    for source in (folder, folder / "my_groovae.tar"):
        back = magenta.read_tf1(source)
        assert back.pop("global_step") == 7 and set(back) == set(weights)
        for name, array in weights.items():
            np.testing.assert_array_equal(back[name], array)


def test_write_tf1_replaces_its_own_folder_but_not_another(tiny_model, tmp_path):
    weights = magenta.magenta_weights(tiny_model)
    folder = magenta.write_tf1(weights, tiny_model.config, tmp_path / "m", step=1)
    magenta.write_tf1(weights, tiny_model.config, folder, step=2)
    assert not (folder / "model.ckpt-1.index").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no partial folder left
    foreign = tmp_path / "notes"
    foreign.mkdir()
    with pytest.raises(magenta.MagentaError, match="not written by"):
        magenta.write_tf1(weights, tiny_model.config, foreign)
    assert not any(foreign.iterdir())


@pytest.mark.parametrize(
    "config, expected",
    [
        # Our tiny: Magenta's groovae_4bar (the same converter), its widths parsed into hparams.
        (
            "tiny",
            [
                "CONFIG_MAP['groovae_4bar']",
                "parse('z_size=8,enc_rnn_size=[16],dec_rnn_size=[16,16]')",
            ],
        ),
        ("groovae_2bar_hits_control_tfds", ["CONFIG_MAP['groovae_2bar_hits_control_tfds']"]),
        # No Magenta config humanizes 4 bars: groovae_4bar with its converter replaced.
        (
            "groovae_4bar_humanize",
            ["CONFIG_MAP['groovae_4bar']", "data.GrooveConverter(", "humanize=True,"],
        ),
    ],
)
def test_write_tf1_loader_builds_the_matching_magenta_config(tmp_path, config, expected):
    folder = magenta.write_tf1({}, get_config(config), tmp_path / "m")
    loader = (folder / magenta.LOADER).read_text()
    for line in expected:
        assert line in loader
    assert ("parse(" in loader) == (config == "tiny")
    assert ("GrooveConverter(" in loader) == (config == "groovae_4bar_humanize")
    compile(loader, magenta.LOADER, "exec")
