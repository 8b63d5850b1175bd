"""Magenta's formats: TF1 groovae checkpoints (a folder, a prefix or a released .tar) and
magenta-js checkpoint folders, read into a GrooVAE and written from one; Magenta's released
models downloaded once into a cache."""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from helpers import gmd
from helpers.config import GrooVAEConfig, get_config
from helpers.constants import GROOVE_DEPTH
from helpers.magenta_js import MANIFEST, MagentaJsError, config_from_js, read_magenta_js
from helpers.model import GrooVAE, ModelError

MAGENTA_STORAGE = "https://storage.googleapis.com/magentadata/models/music_vae/checkpoints"
STORAGE_ENV = "GROOVAE_MAGENTA_URL"  # another address for the released .tar files (a mirror)
# Magenta's released GrooVAE checkpoints (its GrooVAE demo notebook) and the config each plays.
# The _nokl ones were trained with settings Magenta's sources do not record; their networks
# have the shapes of their base configs, so they load and play as those.
RELEASED = {
    "groovae_4bar": "groovae_4bar",
    "groovae_2bar_humanize": "groovae_2bar_humanize",
    "groovae_2bar_humanize_nokl": "groovae_2bar_humanize",
    "groovae_2bar_tap_fixed_velocity": "groovae_2bar_tap_fixed_velocity",
    "groovae_2bar_add_closed_hh": "groovae_2bar_add_closed_hh",
    "groovae_2bar_hits_control": "groovae_2bar_hits_control_tfds",
    "groovae_2bar_hits_control_nokl": "groovae_2bar_hits_control_tfds",
}
RELEASES = {"groovae_2bar_hits_control_tfds": "groovae_2bar_hits_control"}  # config -> .tar
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


def _keras_lstm_to_magenta(weights: list) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of _magenta_lstm_to_keras: Keras [kernel, recurrent, bias] -> TF1's fused."""
    kernel = np.concatenate([np.asarray(w, np.float32) for w in weights[:2]])
    i, f, g, o = np.split(kernel, 4, axis=1)
    bi, bf, bg, bo = np.split(np.asarray(weights[2], np.float32), 4)
    bias = np.concatenate([bi, bg, bf - MAGENTA_FORGET_BIAS, bo])
    return np.concatenate([i, g, f, o], axis=1), bias


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


def magenta_weights(model: GrooVAE) -> dict[str, np.ndarray]:
    """`model`'s weights under Magenta's TF1 names and layouts (load_magenta_weights' inverse)."""
    weights = {}
    for layer, scope, input_dim in _magenta_names(model):
        values = [np.asarray(w, np.float32) for w in layer.get_weights()]
        if input_dim is not None:
            values = _keras_lstm_to_magenta(values)
        weights[f"{scope}/kernel"], weights[f"{scope}/bias"] = values
    return weights


def read_tf1(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A TF1 checkpoint's variables, from a folder, a prefix (model.ckpt-N) or a released .tar.

    Raises:
      MagentaError: nothing readable there.
    """
    import tensorflow as tf

    path = Path(path)
    if path.suffix == ".tar":
        with tempfile.TemporaryDirectory() as folder:
            try:
                with tarfile.open(path) as archive:
                    archive.extractall(folder, filter="data")
            except (OSError, tarfile.TarError) as error:
                raise MagentaError(f"{path} is not a readable .tar ({error})") from None
            index = sorted(Path(folder).rglob("*.index"))
            if not index:
                raise MagentaError(f"{path} holds no TF1 checkpoint (no .index file)")
            return read_tf1(str(index[-1]).removesuffix(".index"))
    try:
        reader = tf.train.load_checkpoint(str(path))
    except (ValueError, tf.errors.OpError) as error:
        raise MagentaError(f"cannot read a TF1 checkpoint at {path}: {error}") from None
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def load_magenta_checkpoint(model: GrooVAE, path: str | os.PathLike) -> None:
    """Loads a TF1 MusicVAE checkpoint (a folder, a prefix or a released .tar) into `model`.

    Raises:
      MagentaError: the checkpoint cannot be read; ModelError: it does not fit the model.
    """
    load_magenta_weights(model, read_tf1(path))


def download_release(name: str, cache_dir: Path | None = None) -> Path:
    """Magenta's released `name`.tar, downloaded once into the cache (GROOVAE_MAGENTA_URL
    overrides the storage address). The first download's SHA-256 is recorded beside it and every
    later use checks it, so a file damaged in the cache is refused, not loaded. A file placed
    there by hand (as the download error advises) is used as it is, its SHA-256 recorded then.

    Raises:
      MagentaError: the download failed (nothing is kept), or the cached file changed.
    """
    folder = Path(cache_dir or gmd.USER_CACHE_DIR / "magenta")
    tar, recorded = folder / f"{name}.tar", folder / f"{name}.tar.sha256"
    url = f"{os.environ.get(STORAGE_ENV, MAGENTA_STORAGE).rstrip('/')}/{name}.tar"
    if tar.exists():
        digest = hashlib.sha256(tar.read_bytes()).hexdigest()
        if not recorded.exists():
            recorded.write_text(digest + "\n")
        elif digest != recorded.read_text().strip():
            raise MagentaError(
                f"{tar} does not match the SHA-256 recorded at its download; delete it and "
                "its .sha256 to download it again"
            )
        return tar
    try:
        digest = gmd.download(url, tar)
    except gmd.DownloadError as error:
        raise MagentaError(
            f"cannot download Magenta's {name} from {url} ({error}). Without internet, download "
            f"it elsewhere and place it at {tar}, or pass the .tar's path instead of its name"
        ) from None
    recorded.write_text(digest + "\n")
    return tar


def load(
    name_or_path: str | os.PathLike, config: GrooVAEConfig | None = None
) -> tuple[GrooVAE, str]:
    """A GrooVAE with Magenta's weights, and one line saying where they came from, from a
    released name (RELEASED, or the config it plays), a TF1 checkpoint (folder, prefix or .tar)
    or a magenta-js folder; `config` defaults to the name's or the magenta-js folder's own.

    Raises:
      MagentaError: unknown name, failed download, unreadable checkpoint, or a config that does
        not fit the weights (the message says which).
    """
    text = str(name_or_path)
    release = RELEASES.get(text, text if text in RELEASED else None)
    if release is not None:
        path, source = download_release(release), f"Magenta's released {release}"
        config = config or get_config(RELEASED[release])
    elif (Path(text) / MANIFEST).exists():
        path, source = Path(text), f"the magenta-js checkpoint {text}"
    elif Path(text).exists() or Path(text + ".index").exists():
        path, source = Path(text), f"the Magenta checkpoint {text}"
    else:
        raise MagentaError(
            f"{text} is neither one of Magenta's released models ({', '.join(RELEASED)}) nor a "
            "checkpoint on disk (a TF1 folder, prefix or .tar, or a magenta-js folder)"
        )
    if path.is_dir() and (path / MANIFEST).exists():
        try:
            weights, config_json = read_magenta_js(path)
        except MagentaJsError as error:
            raise MagentaError(str(error)) from None
        config = config or config_from_js(config_json, weights)
    elif config is None:
        raise MagentaError(f"{text} is a TF1 checkpoint: say which config it is (config=...)")
    else:
        weights = read_tf1(path)
    model = GrooVAE(config)
    try:
        load_magenta_weights(model, weights)
    except ModelError as error:
        raise MagentaError(str(error)) from None
    return model, f"{source}, as {config.name}"


class MagentaError(Exception):
    """A Magenta model that cannot be found, downloaded or read as asked."""
