"""Magenta-js checkpoints: TF.js `weights_manifest.json` + binary shards + MusicVAE `config.json`.

@magenta/music's `MusicVAE(url)` fetches `url/config.json` and `url/weights_manifest.json`, then
loads the shards with `tf.io.loadWeights`, keyed by Magenta's TF1 variable names (spec §3.4); it
reads the fused LSTM kernels as they are, gates [i, g, f, o] with the +1 forget bias in the cell.
So a GrooVAE exports as its TF1-named arrays, and nothing here depends on the model code.
"""

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

MANIFEST = "weights_manifest.json"
CONFIG = "config.json"
MARKER = ".groovae-magenta-js"  # empty file: this folder was written by write_magenta_js
SHARD_BYTES = 4 * 1024 * 1024  # TF.js's default shard size, 4 MiB
QUANTIZATIONS = (None, "float16", "uint8")  # what we write; reading also takes "uint16"
_STORED = {"float32": "<f4", "int32": "<i4"}  # unquantized dtypes, little-endian as TF.js reads
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
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.integer):  # stored as is: only float weights are quantized
        return {"name": name, "shape": list(array.shape), "dtype": "int32"}, array.astype(
            "<i4"
        ).tobytes()
    array = array.astype(np.float32)
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
    """The float32 (or int32) array TF.js builds from one manifest entry's bytes."""
    quant = spec.get("quantization")
    if quant is None:
        return np.frombuffer(raw, _STORED[spec["dtype"]]).astype(spec["dtype"])
    codes = np.frombuffer(raw, _QUANTIZED[quant["dtype"]])
    if quant["dtype"] == "float16":
        values = codes.astype(np.float32)
    else:  # TF.js computes code * scale + min in doubles, then stores float32 (int32 rounded)
        values = codes.astype(np.float64) * quant["scale"] + quant["min"]
        values = np.round(values) if spec["dtype"] == "int32" else values
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
        weights: TF1 variable name -> array (float arrays are stored float32).
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
