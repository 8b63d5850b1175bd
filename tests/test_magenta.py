"""Tests for helpers/magenta.py: Magenta's GrooVAE family against Magenta 2.1.4's own numbers
(tests/fixtures/magenta): each config's converter, its network loaded from a TF1 .tar, the
released-model download on loopback and the magenta-js format; Magenta's TF1 variables into a
GrooVAE (names, gate order, forget bias, clear errors)."""

import hashlib
import http.server
import json
import tarfile
import threading
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import REPO, drum_sequence

from helpers import gmd, magenta
from helpers.config import MAGENTA_CONFIGS, GrooVAEConfig, get_config, with_overrides
from helpers.constants import HITS
from helpers.converter import GrooveConverter
from helpers.losses import r_loss
from helpers.magenta_js import groovae_config_json, write_magenta_js
from helpers.model import GrooVAE, ModelError
from helpers.sample import TrainedModel

FIXTURES = REPO / "tests" / "fixtures" / "magenta"
# The widths bench/magenta_family.py gives Magenta's configs for these fixtures.
TINY_WIDTHS = dict(z_size=8, enc_rnn_size=(16,), dec_rnn_size=(16, 16))
# float32 graphs, TF1 LSTMBlockCell against Keras' LSTM: bench/bench_family.py measures at most
# 3e-7 at tiny and full widths; the margins leave room for other CPUs and backends.
ATOL = 1e-4
R_LOSS_RTOL = 1e-3


def tiny_config(name: str) -> GrooVAEConfig:
    return with_overrides(get_config(name), **TINY_WIDTHS)


def reference(name: str) -> dict:
    """The fixture's arrays, with `meta` parsed."""
    with np.load(FIXTURES / f"{name}_tiny.npz") as saved:
        arrays = {key: saved[key] for key in saved.files}
    arrays["meta"] = json.loads(str(arrays["meta"]))
    return arrays


def controls_of(ref: dict, config: GrooVAEConfig) -> np.ndarray | None:
    """The fixture's controls as the model takes them: (n, steps, 9) float32, or None."""
    return ref["controls"].astype(np.float32) if config.converter.hits_as_controls else None


def synthetic_sequences(ref: dict) -> list:
    """The NoteSequences Magenta's converter read, rebuilt from the stored notes and tempos."""
    notes = ref["sequence_notes"]
    return [
        drum_sequence(
            [(int(p), int(v), start, end) for _, p, v, start, end in notes[notes[:, 0] == i]],
            qpm=float(qpm),
        )
        for i, qpm in enumerate(ref["sequence_qpm"])
    ]


@pytest.fixture(scope="module", params=MAGENTA_CONFIGS)
def loaded(request) -> tuple[str, TrainedModel, dict]:
    """(config name, our TrainedModel on Magenta's tiny .tar, the fixture's arrays)."""
    name = request.param
    trained = TrainedModel.magenta(FIXTURES / f"{name}_tiny.tar", config=tiny_config(name))
    return name, trained, reference(name)


# --- the converter ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MAGENTA_CONFIGS)
def test_groove_converter_to_tensors_matches_magenta(name):
    ref = reference(name)
    config = get_config(name)
    converter = GrooveConverter.from_config(config.converter, seed=0)
    converter.set_mode(ref["meta"]["converter_mode"].split()[0])  # "infer", as Magenta ran
    tensors = [converter.to_tensors(s) for s in synthetic_sequences(ref)]
    windows = {
        key: np.stack([row for t in tensors for row in getattr(t, key)])
        for key in ("inputs", "outputs", "controls", "lengths")
    }
    counts = [len(t.outputs) for t in tensors]
    np.testing.assert_array_equal(np.repeat(np.arange(len(counts)), counts), ref["window_sequence"])
    assert windows["outputs"].dtype == np.float64
    np.testing.assert_array_equal(windows["outputs"], ref["outputs"])  # bit-exact
    np.testing.assert_array_equal(windows["lengths"], ref["lengths"])
    assert windows["controls"].shape == ref["controls"].shape
    np.testing.assert_array_equal(windows["controls"], ref["controls"])
    if config.converter.hits_as_controls:
        assert windows["controls"].dtype == ref["controls"].dtype == np.bool_
    assert windows["inputs"].dtype == np.float64
    if config.converter.max_note_dropout_probability:
        # Magenta draws its dropout from np.random: compare what any draw keeps, the tapped line
        # alone (class 3, hits and offsets; fixed velocities are all 0).
        for inputs in (windows["inputs"], ref["inputs"]):
            assert not np.delete(inputs, [3, 21], axis=-1).any()
    else:
        np.testing.assert_array_equal(windows["inputs"], ref["inputs"])  # bit-exact


# --- the network from Magenta's TF1 .tar ------------------------------------------------------


def test_posterior_matches_magenta(loaded):
    name, trained, ref = loaded
    config = trained.config
    mu, sigma = trained.model.encode(ref["inputs"].astype(np.float32), controls_of(ref, config))
    np.testing.assert_allclose(np.asarray(mu), ref["mu"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.asarray(sigma), ref["sigma"], atol=ATOL, rtol=0)
    if not config.converter.max_note_dropout_probability:
        # From the outputs alone, through our encoder inputs and controls.
        mu, sigma = trained.posterior(ref["outputs"].astype(np.float32))
        np.testing.assert_allclose(mu, ref["mu"], atol=ATOL, rtol=0)
        np.testing.assert_allclose(sigma, ref["sigma"], atol=ATOL, rtol=0)


def test_reconstruction_logits_and_r_loss_match_magenta(loaded):
    _, trained, ref = loaded
    controls = controls_of(ref, trained.config)
    logits = trained.model.reconstruction_logits(ref["outputs"], ref["mu"], controls)
    np.testing.assert_allclose(np.asarray(logits), ref["logits"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(
        np.asarray(r_loss(ref["outputs"], logits)), ref["r_loss"], rtol=R_LOSS_RTOL
    )


def test_decode_greedy_matches_magenta(loaded):
    _, trained, ref = loaded
    controls = controls_of(ref, trained.config)
    greedy = trained.decode_grooves(ref["mu"], float(ref["temperature"]), 0, controls)
    assert np.isfinite(greedy).all()
    np.testing.assert_array_equal(greedy[..., HITS], ref["greedy"][..., HITS])
    np.testing.assert_allclose(greedy, ref["greedy"], atol=ATOL, rtol=0)
    # Teacher-forced on Magenta's own greedy outputs, the decoder gives its greedy logits.
    logits = trained.model.reconstruction_logits(ref["greedy"], ref["mu"], controls)
    np.testing.assert_allclose(np.asarray(logits), ref["greedy_logits"], atol=ATOL, rtol=0)


def test_trained_model_magenta_names_its_source(loaded):
    name, trained, _ = loaded
    assert trained.source == f"the Magenta checkpoint {FIXTURES / f'{name}_tiny.tar'}, as {name}"
    assert trained.label == f"{name}-magenta"


# --- Magenta's released names and the download ------------------------------------------------


def test_released_names_map_to_configs_and_back():
    for release, config_name in magenta.RELEASED.items():
        assert config_name in MAGENTA_CONFIGS, release
    # A config's own name downloads the release that plays it; only the TFDS-trained hits model
    # is released under another name.
    for config_name in MAGENTA_CONFIGS:
        release = magenta.RELEASES.get(config_name, config_name)
        if config_name == "groovae_2bar_tap_fixed_velocity_note_dropout":
            assert release not in magenta.RELEASED  # Magenta released no such checkpoint
        else:
            assert magenta.RELEASED[release] == config_name
    assert magenta.RELEASES == {"groovae_2bar_hits_control_tfds": "groovae_2bar_hits_control"}


@pytest.fixture
def storage(monkeypatch, tmp_path):
    """A loopback GROOVAE_MAGENTA_URL serving each config's tiny .tar as its release's .tar.

    Yields (requests, modes): the paths asked for, and {release: "cut"} to announce a whole file
    but send half of it and close. An unknown name is a 404.
    """
    tars = {magenta.RELEASES.get(c, c): FIXTURES / f"{c}_tiny.tar" for c in MAGENTA_CONFIGS}
    requests, modes = [], {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            release = self.path.rsplit("/", 1)[-1].removesuffix(".tar")
            if release not in tars:
                self.send_error(404)
                return
            body = tars[release].read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if modes.get(release) == "cut" else body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(magenta.STORAGE_ENV, f"http://127.0.0.1:{httpd.server_address[1]}/models/")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr(gmd, "USER_CACHE_DIR", tmp_path / "user-cache")
    yield requests, modes
    httpd.shutdown()
    httpd.server_close()


def cache_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("name", ["groovae_2bar_humanize", "groovae_2bar_hits_control_tfds"])
def test_load_by_name_downloads_once_and_plays(storage, tmp_path, name):
    requests, _ = storage
    release = magenta.RELEASES.get(name, name)
    model, source = magenta.load(name, tiny_config(name))
    assert requests == [f"/models/{release}.tar"]
    assert source == f"Magenta's released {release}, as {name}"
    cache = tmp_path / "user-cache" / "magenta"
    assert cache_files(cache) == [f"{release}.tar", f"{release}.tar.sha256"]
    digest = hashlib.sha256((FIXTURES / f"{name}_tiny.tar").read_bytes()).hexdigest()
    assert (cache / f"{release}.tar.sha256").read_text().strip() == digest
    ref = reference(name)
    config = model.config
    mu, _ = model.encode(ref["inputs"].astype(np.float32), controls_of(ref, config))
    np.testing.assert_allclose(np.asarray(mu), ref["mu"], atol=ATOL, rtol=0)
    magenta.load(release, tiny_config(name))  # the released name itself, from the cache
    assert len(requests) == 1


def test_download_release_cut_short_is_one_error_and_leaves_nothing(storage, tmp_path):
    requests, modes = storage
    modes["groovae_4bar"] = "cut"
    cache = tmp_path / "cache"
    with pytest.raises(magenta.MagentaError) as error:
        magenta.download_release("groovae_4bar", cache)
    assert "truncated" in str(error.value) and "/models/groovae_4bar.tar" in str(error.value)
    assert cache_files(cache) == []
    modes.clear()  # the next try downloads it whole
    assert magenta.download_release("groovae_4bar", cache) == cache / "groovae_4bar.tar"
    assert len(requests) == 2


def test_download_release_refuses_a_cached_file_that_changed(storage, tmp_path):
    requests, _ = storage
    cache = tmp_path / "cache"
    tar = magenta.download_release("groovae_4bar", cache)
    damaged = bytearray(tar.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    tar.write_bytes(bytes(damaged))
    with pytest.raises(magenta.MagentaError, match="does not match the SHA-256") as error:
        magenta.download_release("groovae_4bar", cache)
    assert str(tar) in str(error.value) and "delete it" in str(error.value)
    # Refused as it is: not replaced, nothing new beside it, nothing downloaded.
    assert tar.read_bytes() == bytes(damaged) and len(requests) == 1
    assert cache_files(cache) == ["groovae_4bar.tar", "groovae_4bar.tar.sha256"]


def test_download_release_missing_name_says_where_to_place_it(storage, tmp_path):
    requests, _ = storage
    cache = tmp_path / "cache"
    with pytest.raises(magenta.MagentaError) as error:
        magenta.download_release("groovae_2bar_humanize_nokl", cache)
    message = str(error.value)
    assert "404" in message and "/models/groovae_2bar_humanize_nokl.tar" in message
    assert f"place it at {cache / 'groovae_2bar_humanize_nokl.tar'}" in message
    assert cache_files(cache) == []
    # Following that advice: the file placed by hand is used, not downloaded again.
    (cache / "groovae_2bar_humanize_nokl.tar").write_bytes(
        (FIXTURES / "groovae_2bar_humanize_tiny.tar").read_bytes()
    )
    path = magenta.download_release("groovae_2bar_humanize_nokl", cache)
    assert path == cache / "groovae_2bar_humanize_nokl.tar" and len(requests) == 1
    assert cache_files(cache) == [path.name, f"{path.name}.sha256"]  # checked from now on
    model, _ = magenta.load(path, tiny_config("groovae_2bar_humanize"))
    ref = reference("groovae_2bar_humanize")
    mu, _ = model.encode(ref["inputs"].astype(np.float32))
    np.testing.assert_allclose(np.asarray(mu), ref["mu"], atol=ATOL, rtol=0)


# --- the magenta-js format --------------------------------------------------------------------


@pytest.mark.parametrize("name", MAGENTA_CONFIGS)
def test_magenta_js_folder_of_the_same_weights_encodes_the_same(tmp_path, name):
    ref = reference(name)
    config = get_config(name)
    weights = {
        key: value
        for key, value in magenta.read_tf1(FIXTURES / f"{name}_tiny.tar").items()
        if key.startswith(("encoder/", "decoder/"))  # magenta-js folders hold no global_step
    }
    c = config.converter
    config_json = groovae_config_json(
        config.model.max_seq_len, humanize=c.humanize, tapify=c.tapify
    )
    folder = write_magenta_js(weights, config_json, tmp_path / name)
    model, source = magenta.load(folder)
    assert source.startswith(f"the magenta-js checkpoint {folder}")
    js = model.config
    assert (js.model.max_seq_len, js.converter.split_bars) == (c.split_bars * 16, c.split_bars)
    assert (js.model.z_size, js.model.enc_rnn_size, js.model.dec_rnn_size) == tuple(
        TINY_WIDTHS.values()
    )
    assert (js.converter.hits_as_controls, js.converter.humanize, js.converter.tapify) == (
        c.hits_as_controls,
        c.humanize,
        c.tapify,
    )
    mu, _ = model.encode(ref["inputs"].astype(np.float32), controls_of(ref, config))
    np.testing.assert_allclose(np.asarray(mu), ref["mu"], atol=ATOL, rtol=0)


# ------------------------------------------------------------------------------------------
# Magenta's TF1 variables into a GrooVAE: names, gate order, forget bias, clear errors (spec §3.1).


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
