"""Magenta's formats: its TF1 groovae checkpoints and magenta-js checkpoint folders, read into a GrooVAE and written from one, and its released models downloaded once into a cache."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from helpers.constants import GROOVE_DEPTH
from helpers.model import GrooVAE, ModelError

MAGENTA_FORGET_BIAS = 1.0  # LSTMBlockCell adds it inside the cell; Keras keeps it in the bias


def _magenta_lstm_to_keras(kernel: np.ndarray, bias: np.ndarray, input_dim: int) -> list:
    """Fused [x; h] kernel, gates [i, g, f, o] -> Keras [kernel, recurrent, bias], [i, f, c, o].

    The forget bias Magenta adds inside the cell moves into the stored bias (spec §3.1).
    """
    i, g, f, o = np.split(kernel, 4, axis=1)
    reordered = np.concatenate([i, f, g, o], axis=1)
    bi, bg, bf, bo = np.split(bias, 4)
    keras_bias = np.concatenate([bi, bf + MAGENTA_FORGET_BIAS, bg, bo])
    return [reordered[:input_dim], reordered[input_dim:], keras_bias]


def _magenta_names(model: GrooVAE) -> list:
    """(Keras layer, Magenta variable scope, LSTM input size or None) for every weighted layer."""
    m = model.config.model
    entries, input_dim = [], GROOVE_DEPTH + model.control_depth
    for i, units in enumerate(m.enc_rnn_size):
        for direction, lstm in (("fw", model.encoder_fw[i]), ("bw", model.encoder_bw[i])):
            scope = f"encoder/cell_{i}/bidirectional_rnn/{direction}/multi_rnn_cell/cell_0"
            scope += "/lstm_cell"
            entries.append((lstm, scope, input_dim))
        input_dim = 2 * units
    entries += [(model.mu, "encoder/mu", None), (model.sigma, "encoder/sigma", None)]
    entries.append((model.z_to_initial_state, "decoder/z_to_initial_state", None))
    input_dim = GROOVE_DEPTH + m.z_size + model.control_depth
    for i, units in enumerate(m.dec_rnn_size):
        scope = f"decoder/multi_rnn_cell/cell_{i}/lstm_cell"
        entries.append((model.decoder_lstms[i], scope, input_dim))
        input_dim = units
    entries.append((model.output_projection, "decoder/output_projection", None))
    return entries


def load_magenta_weights(model: GrooVAE, weights: dict) -> None:
    """Sets `model`'s weights from Magenta variables (spec §3.4 lists their names).

    Args:
      model: a GrooVAE whose config matches the weights' sizes.
      weights: {magenta variable name: array}, e.g. 'decoder/output_projection/kernel'. Extra
        names (Adam slots, global_step) are ignored.

    Raises:
      ModelError: a variable is missing or its shape does not fit the config.
    """
    for layer, scope, input_dim in _magenta_names(model):
        names = (f"{scope}/kernel", f"{scope}/bias")
        missing = [n for n in names if n not in weights]
        if missing:
            raise ModelError(f"Magenta weights lack {missing}; is this a groovae checkpoint?")
        kernel, bias = (np.asarray(weights[n], "float32") for n in names)
        if input_dim is None:
            values = [kernel, bias]
        else:
            values = _magenta_lstm_to_keras(kernel, bias, input_dim)
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise ModelError(
                f"{scope}: Magenta shapes {[kernel.shape, bias.shape]} do not fit the config "
                f"{model.config.name!r} (Keras wants {expected}); pick the matching config"
            )
        layer.set_weights(values)


def load_magenta_checkpoint(model: GrooVAE, path: str) -> None:
    """Loads a TF1 MusicVAE checkpoint (a directory or a checkpoint prefix) into `model`.

    Raises:
      ModelError: the checkpoint cannot be read or does not fit the model.
    """
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(str(path))
    except (ValueError, tf.errors.OpError) as error:
        raise ModelError(f"cannot read a TF checkpoint at {path}: {error}") from error
    names = reader.get_variable_to_shape_map()
    load_magenta_weights(model, {name: reader.get_tensor(name) for name in names})


MANIFEST = "weights_manifest.json"
CONFIG = "config.json"
MARKER = ".groovae-magenta-js"  # empty file: this folder was written by write_magenta_js
SHARD_BYTES = 4 * 1024 * 1024  # TF.js's default shard size, 4 MiB
QUANTIZATIONS = (None, "float16", "uint8")  # what we write; reading also takes "uint16"
# Byte layouts, little-endian as TF.js reads them: the stored dtype, then the quantized codes.
_STORED = {"float32": "<f4"}
_QUANTIZED = {"uint8": "<u1", "uint16": "<u2", "float16": "<f2"}


class MagentaJsError(Exception):
    """A magenta-js folder is missing, damaged or not ours to overwrite."""


def groovae_config_json(
    num_steps: int, pitch_classes=None, humanize: bool = False, tapify: bool = False
) -> dict:
    """The `config.json` magenta-js needs for a GrooVAE: a MusicVAE with a GrooveConverter.

    Pass `pitch_classes` (lists of MIDI pitches, first one written back) so magenta-js maps drums
    as our converter does; without it magenta-js uses its own 9-class default map.
    """
    args = {"numSteps": int(num_steps), "humanize": bool(humanize), "tapify": bool(tapify)}
    if pitch_classes is not None:
        args["pitchClasses"] = [[int(p) for p in c] for c in pitch_classes]
    return {"type": "MusicVAE", "dataConverter": {"type": "GrooveConverter", "args": args}}


def _encode(name: str, array: np.ndarray, quantization: str | None) -> tuple[dict, bytes]:
    """One manifest entry and its bytes; uint8 is TF.js's affine code with zero exactly on a step."""
    array = np.asarray(array, dtype=np.float32)
    spec = {"name": name, "shape": list(array.shape), "dtype": "float32"}
    if quantization is None:
        return spec, array.astype("<f4").tobytes()
    if quantization == "float16":
        spec["quantization"] = {"dtype": "float16"}
        return spec, array.astype("<f2").tobytes()
    if array.size and not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: uint8 quantization needs finite values")
    low = float(array.min()) if array.size else 0.0
    high = float(array.max()) if array.size else 0.0
    scale = (high - low) / 255 if high > low else 1.0
    if low <= 0 <= high and high > low:  # nudge the range so that 0.0 maps to an integer
        low = -float(np.round(-low / scale)) * scale
    wide = array.astype(np.float64)
    codes = np.round((np.clip(wide, low, low + 255 * scale) - low) / scale).astype("<u1")
    spec["quantization"] = {"dtype": "uint8", "scale": scale, "min": low}
    return spec, codes.tobytes()


def _decode(spec: dict, raw: bytes) -> np.ndarray:
    """The float32 array TF.js builds from one manifest entry's bytes."""
    quant = spec.get("quantization")
    if quant is None:
        return np.frombuffer(raw, _STORED[spec["dtype"]]).astype(spec["dtype"])
    codes = np.frombuffer(raw, _QUANTIZED[quant["dtype"]])
    if quant["dtype"] == "float16":
        values = codes.astype(np.float32)
    else:  # TF.js computes code * scale + min in doubles, then stores float32
        values = codes.astype(np.float64) * quant["scale"] + quant["min"]
    return values.astype(spec["dtype"])


def _check_quantization(quantization: str | None) -> None:
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, not {quantization!r}")


def _nbytes(spec: dict) -> int:
    quant = spec.get("quantization")
    dtype = _QUANTIZED[quant["dtype"]] if quant else _STORED[spec["dtype"]]
    return int(np.prod(spec["shape"], dtype=np.int64)) * np.dtype(dtype).itemsize


def write_magenta_js(
    weights: dict[str, np.ndarray],
    config_json: dict,
    out_dir,
    quantization: str | None = None,
) -> Path:
    """Write a folder magenta-js's `MusicVAE(url)` can load, all at once or not at all.

    Args:
        weights: TF1 variable name -> array, stored as float32.
        config_json: the MusicVAE spec, e.g. `groovae_config_json(64)`.
        out_dir: the folder; it must be absent or an earlier output of this function.
        quantization: None (float32), "float16" or "uint8" (affine per tensor, as TF.js defines).

    Returns:
        The folder's path.

    Raises:
        MagentaJsError: `out_dir` exists and was not written here.
        ValueError: an unknown quantization, or uint8 asked of non-finite values.
    """
    _check_quantization(quantization)
    out_dir = Path(out_dir)
    if out_dir.exists() and not (out_dir / MARKER).is_file():
        raise MagentaJsError(f"{out_dir} exists and was not written by write_magenta_js")
    encoded = [_encode(name, array, quantization) for name, array in weights.items()]
    entries, data = [e for e, _ in encoded], b"".join(b for _, b in encoded)
    shards = [data[i : i + SHARD_BYTES] for i in range(0, len(data), SHARD_BYTES)] or [b""]
    paths = [f"group1-shard{i + 1}of{len(shards)}" for i in range(len(shards))]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()  # not mkdtemp: its 0700 mode would stay on the published folder
    try:
        for path, shard in zip(paths, shards):
            (tmp / path).write_bytes(shard)
        manifest = [{"paths": paths, "weights": entries}]
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        (tmp / CONFIG).write_text(json.dumps(config_json, indent=2))
        (tmp / MARKER).touch()
        if out_dir.exists():  # ours: swap it out, then delete it once the new one is in place
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / "x")
            try:
                os.replace(tmp, out_dir)
            except OSError:
                os.replace(old / "x", out_dir)
                raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MagentaJsError(f"missing {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MagentaJsError(f"bad JSON in {path}: {err}") from None


def read_magenta_js(folder) -> tuple[dict[str, np.ndarray], dict]:
    """Read a magenta-js folder (ours or Magenta's) back as float32 arrays, dequantized as TF.js does.

    Returns:
        (weights, config): TF1 variable name -> array, and the parsed `config.json`.

    Raises:
        MagentaJsError: a missing manifest, shard or config, bad JSON, an unknown dtype or a shard
            whose size disagrees with the manifest; the message names the file.
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    manifest = _load_json(manifest_path)
    weights = {}
    try:
        for group in manifest:
            specs, paths = group["weights"], [folder / p for p in group["paths"]]
            for spec in specs:
                quant = spec.get("quantization")
                if spec["dtype"] not in _STORED or (quant and quant["dtype"] not in _QUANTIZED):
                    kind = quant["dtype"] if quant else spec["dtype"]
                    raise MagentaJsError(f"{manifest_path}: {spec['name']}: unknown dtype {kind}")
            missing = [p for p in paths if not p.is_file()]
            if missing:
                raise MagentaJsError(f"missing shard {missing[0]} (listed in {manifest_path})")
            sizes = [p.stat().st_size for p in paths]
            need = sum(_nbytes(s) for s in specs)
            if sum(sizes) != need:  # blame the first shard off TF.js's 4 MiB layout, else the last
                bad = next((p for p, n in zip(paths[:-1], sizes) if n != SHARD_BYTES), paths[-1])
                raise MagentaJsError(
                    f"shard size mismatch at {bad}: {manifest_path} needs {need} bytes "
                    f"in {len(paths)} shard(s), they hold {sum(sizes)}"
                )
            data, offset = b"".join(p.read_bytes() for p in paths), 0
            for spec in specs:
                raw = data[offset : offset + _nbytes(spec)]
                offset += len(raw)
                weights[spec["name"]] = _decode(spec, raw).reshape(spec["shape"])
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise MagentaJsError(f"{manifest_path} is not a TF.js weights manifest ({err!r})") from None
    return weights, _load_json(folder / CONFIG)


def quantization_error(weights: dict[str, np.ndarray], quantization: str | None) -> float:
    """The largest absolute change `quantization` makes to any weight (0.0 for None).

    Computed by encoding and decoding every tensor as `write_magenta_js` and TF.js do, so it is
    the exact figure to state beside an exported model, not a bound.
    """
    _check_quantization(quantization)
    worst = 0.0
    for name, array in weights.items():
        spec, raw = _encode(name, array, quantization)
        original = np.asarray(array, dtype=np.float64).reshape(-1)
        restored = _decode(spec, raw).astype(np.float64)
        if original.size:
            worst = max(worst, float(np.max(np.abs(restored - original))))
    return worst
