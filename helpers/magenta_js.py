"""magenta-js's checkpoint format: a folder of config.json, weights_manifest.json and shards, as
TF.js writes and reads it (float32, or quantized to float16 or uint8), written whole or not at
all; our config for such a folder, and its config.json for a model of ours."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from helpers.config import GrooVAEConfig, get_config, with_overrides
from helpers.constants import GROOVE_DEPTH, NUM_DRUM_CLASSES, REDUCED_DRUM_PITCH_CLASSES

MANIFEST = "weights_manifest.json"
CONFIG = "config.json"
MARKER = ".groovae-magenta-export"  # empty file: write_whole_folder wrote this folder
SHARD_BYTES = 4 * 1024 * 1024  # TF.js's default shard size, 4 MiB
QUANTIZATIONS = (None, "float16", "uint8")  # what we write; reading also takes "uint16"
# Byte layouts, little-endian as TF.js reads them: the stored dtype, then the quantized codes.
_STORED = {"float32": "<f4"}
_QUANTIZED = {"uint8": "<u1", "uint16": "<u2", "float16": "<f2"}


class MagentaJsError(Exception):
    """A magenta-js folder that is missing, damaged, or not ours to overwrite."""


def magenta_js_config(config: GrooVAEConfig) -> tuple[dict, list[str]]:
    """magenta-js's config.json for a model of `config`, and a line for each way magenta-js's
    GrooveConverter prepares a NoteSequence for the encoder (its `encode`) otherwise than this
    model was trained (`encodeTensors` takes the tensors as given; decoding is the same).

    Raises:
        MagentaJsError: a hits-conditioned config; magenta-js's MusicVAE takes no hit controls.
    """
    c = config.converter
    if c.hits_as_controls:
        raise MagentaJsError(
            f"{config.name} is conditioned on hits (hits_as_controls), and magenta-js's MusicVAE "
            "cannot feed hits to its encoder and decoder; export it as magenta-tf1 instead"
        )
    notes = []
    # magenta-js has no fixed_velocities switch: its tapify zeroes velocities, nothing else does.
    if c.tapify and not c.fixed_velocities:
        notes.append("magenta-js's tapify drops the velocities this model's encoder was trained on")
    if c.fixed_velocities and not c.tapify:
        notes.append("magenta-js keeps velocities, which this model's encoder was trained without")
    if c.add_instruments:
        notes.append(
            f"magenta-js keeps drum classes {list(c.add_instruments)} in what it encodes; "
            "this model's encoder was trained without them"
        )
    if c.max_note_dropout_probability:
        notes.append("magenta-js drops no notes before encoding (this model's note dropout)")
    # The inference map, with which our TrainedModel and Magenta's read and write grooves.
    config_json = groovae_config_json(
        config.model.max_seq_len, REDUCED_DRUM_PITCH_CLASSES, c.humanize, c.tapify
    )
    return config_json, notes


def groovae_config_json(
    num_steps: int, pitch_classes=None, humanize: bool = False, tapify: bool = False
) -> dict:
    """The `config.json` magenta-js needs for a GrooVAE: a MusicVAE with a GrooveConverter.
    Pass `pitch_classes` so magenta-js maps drums as our converter does, not by its own map."""
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
    """Writes {TF1 name: array} and `config_json` as a folder magenta-js's `MusicVAE(url)` loads,
    whole or not at all, stored as float32 or quantized ("float16", or "uint8": affine per tensor,
    as TF.js defines it). `out_dir` must be absent or an earlier output of this function.

    Raises:
        MagentaJsError: `out_dir` exists and was not written here.
        ValueError: an unknown quantization, or uint8 asked of non-finite values.
    """
    _check_quantization(quantization)
    encoded = [_encode(name, array, quantization) for name, array in weights.items()]
    entries, data = [e for e, _ in encoded], b"".join(b for _, b in encoded)
    shards = [data[i : i + SHARD_BYTES] for i in range(0, len(data), SHARD_BYTES)] or [b""]
    paths = [f"group1-shard{i + 1}of{len(shards)}" for i in range(len(shards))]

    def fill(folder: Path) -> None:
        for path, shard in zip(paths, shards):
            (folder / path).write_bytes(shard)
        manifest = [{"paths": paths, "weights": entries}]
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
        (folder / CONFIG).write_text(json.dumps(config_json, indent=2))

    return write_whole_folder(out_dir, fill)


def write_whole_folder(out_dir: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Writes `out_dir` whole or not at all: `fill` writes into a temporary sibling folder, which
    then replaces `out_dir`. `out_dir` must be absent or an earlier output of this function (it
    holds MARKER), so a folder someone else wrote is never touched.

    Raises:
        MagentaJsError: `out_dir` exists and was not written here.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not (out_dir / MARKER).is_file():
        raise MagentaJsError(f"{out_dir} exists and was not written by this exporter")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        fill(tmp)
        (tmp / MARKER).touch()
        shutil.rmtree(out_dir, ignore_errors=True)  # ours (checked above), or absent
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
    """A magenta-js folder (ours or Magenta's) as ({TF1 name: float32 array}, its config.json),
    dequantized as TF.js does.

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
    """The largest absolute change `quantization` makes to any weight (0.0 for None): every
    tensor encoded and decoded as write_magenta_js and TF.js do, an exact figure, not a bound."""
    _check_quantization(quantization)
    worst = 0.0
    for name, array in weights.items():
        spec, raw = _encode(name, array, quantization)
        original = np.asarray(array, dtype=np.float64).reshape(-1)
        restored = _decode(spec, raw).astype(np.float64)
        if original.size:
            worst = max(worst, float(np.max(np.abs(restored - original))))
    return worst


def config_from_js(config_json: dict, weights: dict[str, np.ndarray]) -> GrooVAEConfig:
    """Our config for a magenta-js folder: the converter from its config.json, sizes and
    controls from its weights' shapes (magenta-js's config does not name the sizes)."""
    args = config_json.get("dataConverter", {}).get("args", {})
    steps = int(args.get("numSteps", 32))
    mu = weights["encoder/mu/kernel"]
    enc = weights["encoder/cell_0/bidirectional_rnn/fw/multi_rnn_cell/cell_0/lstm_cell/kernel"]
    enc_units = enc.shape[1] // 4
    dec_units = [
        weights[f"decoder/multi_rnn_cell/cell_{i}/lstm_cell/kernel"].shape[1] // 4
        for i in range(sum(k.startswith("decoder/multi_rnn_cell/cell_") for k in weights) // 2)
    ]
    name = "groovae_4bar" if steps == 64 else "groovae_2bar_humanize"
    return with_overrides(
        get_config(name),
        name=f"magenta-js-{steps // 16}bar",
        split_bars=steps // 16,
        max_seq_len=steps,
        humanize=bool(args.get("humanize")),
        tapify=bool(args.get("tapify")),
        hits_as_controls=enc.shape[0] - GROOVE_DEPTH - enc_units == NUM_DRUM_CLASSES,
        z_size=int(mu.shape[1]),
        enc_rnn_size=(enc_units,),
        dec_rnn_size=tuple(dec_units),
    )
