"""Tests for helpers/magenta_js.py: TF.js manifests and shards, quantization, damaged folders."""

import json
import re

import numpy as np
import pytest

from helpers.config import get_config
from helpers.constants import REDUCED_DRUM_PITCH_CLASSES
from helpers.magenta_js import (
    MANIFEST,
    SHARD_BYTES,
    MagentaJsError,
    groovae_config_json,
    magenta_js_config,
    quantization_error,
    read_magenta_js,
    write_magenta_js,
)

CONFIG = groovae_config_json(32)


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "decoder/output_projection/kernel": rng.normal(0, 0.3, (16, 27)).astype(np.float32),
        "decoder/output_projection/bias": rng.normal(0, 0.3, (27,)).astype(np.float32),
        "encoder/mu/bias": np.zeros(8, np.float32),  # constant: quantizes exactly
        "encoder/mu/kernel": rng.uniform(0.5, 2.0, (32, 8)).astype(np.float32),  # 0 not in range
    }


def test_write_magenta_js_float32_round_trip_exact(tmp_path):
    weights = _weights()
    folder = write_magenta_js(weights, CONFIG, tmp_path / "m")
    back, config = read_magenta_js(folder)
    assert config == CONFIG and list(back) == list(weights)
    for name, array in weights.items():
        assert back[name].dtype == np.float32
        np.testing.assert_array_equal(back[name], array)
    assert quantization_error(weights, None) == 0.0


def test_write_magenta_js_shards_at_most_4mb_and_weights_span_them(tmp_path):
    weights = {"big": np.arange(1_300_000, dtype=np.float32), **_weights()}  # 5.2 MB + a bit
    folder = write_magenta_js(weights, CONFIG, tmp_path / "m")
    (group,) = json.loads((folder / MANIFEST).read_text())
    assert group["paths"] == ["group1-shard1of2", "group1-shard2of2"]
    assert (folder / "group1-shard1of2").stat().st_size == SHARD_BYTES
    back, _ = read_magenta_js(folder)
    for name, array in weights.items():
        np.testing.assert_array_equal(back[name], array)


@pytest.mark.parametrize("quantization", ["float16", "uint8"])
def test_write_magenta_js_quantized_within_stated_error(tmp_path, quantization):
    weights = _weights()
    error = quantization_error(weights, quantization)
    back, _ = read_magenta_js(write_magenta_js(weights, CONFIG, tmp_path / "m", quantization))
    worst = max(float(np.abs(back[n].astype(np.float64) - w).max()) for n, w in weights.items())
    assert worst == pytest.approx(error, rel=1e-6)
    # float16 keeps 11 significant bits; uint8 is within half a step of each tensor's range.
    span = max(float(w.max() - w.min()) for w in weights.values())
    bound = 2.0**-11 * max(float(np.abs(w).max()) for w in weights.values())
    assert 0 < error <= (bound if quantization == "float16" else span / 255 / 2 * (1 + 1e-6))
    np.testing.assert_array_equal(back["encoder/mu/bias"], 0.0)


def test_write_magenta_js_uint8_keeps_zero_exact(tmp_path):
    weights = {"w": np.array([-0.7, 0.0, 0.001, 0.3, 1.1], np.float32)}
    back, _ = read_magenta_js(write_magenta_js(weights, CONFIG, tmp_path / "m", "uint8"))
    assert back["w"][1] == 0.0


def test_write_magenta_js_unknown_quantization_raises(tmp_path):
    with pytest.raises(ValueError, match="quantization"):
        write_magenta_js(_weights(), CONFIG, tmp_path / "m", "int4")
    assert not any(tmp_path.iterdir())


def test_write_magenta_js_refuses_a_folder_not_ours(tmp_path):
    foreign = tmp_path / "m"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(MagentaJsError, match="not written by"):
        write_magenta_js(_weights(), CONFIG, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_write_magenta_js_replaces_its_own_folder_whole(tmp_path):
    folder = write_magenta_js({"big": np.zeros(1_300_000, np.float32)}, CONFIG, tmp_path / "m")
    write_magenta_js(_weights(1), groovae_config_json(64), folder)
    back, config = read_magenta_js(folder)
    assert config == groovae_config_json(64) and set(back) == set(_weights())
    assert not (folder / "group1-shard2of2").exists()  # no stale shard from the first write
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temp folders left behind


def test_read_magenta_js_reads_uint16(tmp_path):
    (tmp_path / "group1-shard1of1").write_bytes(np.array([0, 1, 65535], "<u2").tobytes())
    spec = {"dtype": "uint16", "scale": 0.5, "min": -1.0}
    manifest = [
        {
            "paths": ["group1-shard1of1"],
            "weights": [{"name": "w", "shape": [3], "dtype": "float32", "quantization": spec}],
        }
    ]
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    (tmp_path / "config.json").write_text("{}")
    back, _ = read_magenta_js(tmp_path)
    np.testing.assert_array_equal(back["w"], np.float32([-1.0, -0.5, 32766.5]))


@pytest.fixture
def written(tmp_path):
    weights = {"big": np.ones(1_300_000, np.float32), **_weights()}
    return write_magenta_js(weights, CONFIG, tmp_path / "m")


def test_read_magenta_js_missing_manifest_raises(written):
    (written / MANIFEST).unlink()
    with pytest.raises(MagentaJsError, match=f"missing .*{MANIFEST}"):
        read_magenta_js(written)


def test_read_magenta_js_missing_shard_raises(written):
    (written / "group1-shard2of2").unlink()
    with pytest.raises(MagentaJsError, match="missing shard .*group1-shard2of2"):
        read_magenta_js(written)


@pytest.mark.parametrize("shard", ["group1-shard1of2", "group1-shard2of2"])
def test_read_magenta_js_short_shard_raises(written, shard):
    data = (written / shard).read_bytes()
    (written / shard).write_bytes(data[:-4])
    with pytest.raises(MagentaJsError, match=f"size mismatch at .*{shard}"):
        read_magenta_js(written)


@pytest.mark.parametrize("name", [MANIFEST, "config.json"])
def test_read_magenta_js_bad_json_raises(written, name):
    (written / name).write_text('{"cut off')
    with pytest.raises(MagentaJsError, match=f"bad JSON in .*{name}"):
        read_magenta_js(written)


@pytest.mark.parametrize("field", ["dtype", "quantization"])
def test_read_magenta_js_unknown_dtype_raises(written, field):
    manifest = json.loads((written / MANIFEST).read_text())
    spec = manifest[0]["weights"][1]
    spec.update({"dtype": "complex64"} if field == "dtype" else {"quantization": {"dtype": "int4"}})
    (written / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(MagentaJsError, match=f"{MANIFEST}: .*unknown dtype"):
        read_magenta_js(written)


def test_read_magenta_js_not_a_manifest_raises(written):
    (written / MANIFEST).write_text('{"weights": []}')
    with pytest.raises(MagentaJsError, match="not a TF.js weights manifest"):
        read_magenta_js(written)


def test_groovae_config_json_names_the_groove_converter():
    config = groovae_config_json(64, pitch_classes=[[36, 35], [38]])
    assert config == {
        "type": "MusicVAE",
        "dataConverter": {
            "type": "GrooveConverter",
            "args": {
                "numSteps": 64,
                "humanize": False,
                "tapify": False,
                "pitchClasses": [[36, 35], [38]],
            },
        },
    }


def test_magenta_js_config_reads_grooves_with_the_inference_map():
    config_json, notes = magenta_js_config(get_config("groovae_2bar_tap_fixed_velocity"))
    args = config_json["dataConverter"]["args"]
    assert (args["numSteps"], args["humanize"], args["tapify"]) == (32, False, True)
    assert args["pitchClasses"] == [list(c) for c in REDUCED_DRUM_PITCH_CLASSES]
    assert notes == []  # magenta-js's tapify is tapify with fixed velocities


@pytest.mark.parametrize(
    "config, note",
    [
        ("groovae_4bar_tap", "tapify drops the velocities"),
        ("groovae_2bar_add_closed_hh", r"keeps drum classes \[2\]"),
        ("groovae_2bar_tap_fixed_velocity_note_dropout", "drops no notes"),
    ],
)
def test_magenta_js_config_notes_what_magenta_js_encodes_otherwise(config, note):
    _, notes = magenta_js_config(get_config(config))
    assert len(notes) == 1 and re.search(note, notes[0])


def test_magenta_js_config_refuses_hits_as_controls():
    with pytest.raises(MagentaJsError, match="hits_as_controls.*magenta-tf1"):
        magenta_js_config(get_config("groovae_2bar_hits_control_tfds"))
