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
from helpers.config import CONFIG_MAP, MAGENTA_CONFIGS, GrooVAEConfig, get_config
from helpers.constants import GROOVE_DEPTH
from helpers.magenta_js import (
    MANIFEST,
    MagentaJsError,
    config_from_js,
    read_magenta_js,
    write_whole_folder,
)
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
WIDTHS = ("max_seq_len", "z_size", "enc_rnn_size", "dec_rnn_size")  # hparams that shape weights
GLOBAL_STEP = "global_step"  # in Magenta's graph: its TrainedModel's Saver restores it too
LOADER = "load_in_magenta.py"  # beside a TF1 export: Magenta's TrainedModel on it


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


def _magenta_config_lines(config: GrooVAEConfig) -> list[str]:
    """Python lines that set `config` to Magenta's Config for a model of ours: Magenta's config of
    the same converter (else of the same window length) with our widths parsed into its hparams,
    and a GrooveConverter of our options where no Magenta config has them."""
    same = [n for n in MAGENTA_CONFIGS if CONFIG_MAP[n].converter == config.converter]
    steps = config.model.max_seq_len
    window = [n for n in MAGENTA_CONFIGS if CONFIG_MAP[n].model.max_seq_len == steps]
    base = (same or window or MAGENTA_CONFIGS)[0]
    lines = [f"config = copy.deepcopy(configs.CONFIG_MAP[{base!r}])"]
    theirs = CONFIG_MAP[base].model
    changed = []
    for key in (k for k in WIDTHS if getattr(config.model, k) != getattr(theirs, k)):
        value = getattr(config.model, key)  # HParams.parse spells a list [a,b]
        changed.append(
            f"{key}=[{','.join(map(str, value))}]" if isinstance(value, tuple) else f"{key}={value}"
        )
    if changed:
        lines.append(f"config.hparams.parse({','.join(changed)!r})")
    if not same:
        c = config.converter
        args = {
            **{k: getattr(c, k) for k in ("split_bars", "steps_per_quarter", "quarters_per_bar")},
            "max_tensors_per_notesequence": 20,  # Magenta's GrooVAE configs' value
            **{k: getattr(c, k) for k in ("humanize", "tapify", "fixed_velocities")},
            "hits_as_controls": c.hits_as_controls,
            "add_instruments": list(c.add_instruments) or None,
            "max_note_dropout_probability": c.max_note_dropout_probability or None,
        }
        lines.append("config = config._replace(data_converter=data.GrooveConverter(")
        lines += [f"    {key}={value!r}," for key, value in args.items()]
        lines.append("    pitch_classes=data.ROLAND_DRUM_PITCH_CLASSES,")
        lines += ["    inference_pitch_classes=data.REDUCED_DRUM_PITCH_CLASSES,", "))"]
    return lines


def _loader(config: GrooVAEConfig, name: str, step: int) -> str:
    """load_in_magenta.py for a TF1 export: Magenta's Config and TrainedModel for `name`.tar."""
    lines = _magenta_config_lines(config)
    imports = "configs, data" if any("data." in line for line in lines) else "configs"
    body = "\n".join(f"    {line}" for line in lines)
    return f'''"""Magenta's TrainedModel on {name}.tar, a GrooVAE of config {config.name!r} (step {step})
exported by groovae-drum-lab. Where Magenta 2.x is installed, `python {LOADER}` loads it
and `from {LOADER[:-3]} import trained_model` gives it to your code."""

import copy
import os

from magenta.models.music_vae import {imports}
from magenta.models.music_vae.trained_model import TrainedModel

CHECKPOINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "{name}.tar")


def magenta_config():
    """Magenta's Config with this model's widths and data converter."""
{body}
    return config


def trained_model(batch_size=1):
    return TrainedModel(magenta_config(), batch_size, checkpoint_dir_or_path=CHECKPOINT)


if __name__ == "__main__":
    trained_model()
    print(f"loaded {{CHECKPOINT}}")
'''


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """A tar entry without its owner or time, so the same weights give the same bytes."""
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def write_tf1(
    weights: dict[str, np.ndarray],
    config: GrooVAEConfig,
    out_dir: str | os.PathLike,
    step: int = 0,
) -> Path:
    """Writes {TF1 name: array} as a TF1 checkpoint Magenta's TrainedModel restores, whole or not
    at all. `out_dir` (absent, or an earlier output of this function) gets `checkpoint`,
    model.ckpt-<step>.index and .data-00000-of-00001 (also holding global_step = step),
    <name>.tar (the same three under <name>/, as in Magenta's released archives; <name> is
    out_dir's name) and load_in_magenta.py (Magenta's Config for `config`, and its TrainedModel).

    Raises:
      MagentaError: `out_dir` exists and was not written by this exporter.
    """
    import tensorflow as tf

    name, prefix = Path(out_dir).name, f"model.ckpt-{step}"
    names = sorted(weights)

    def fill(folder: Path) -> None:
        tf.raw_ops.SaveV2(
            prefix=str(folder / prefix),
            tensor_names=[*names, GLOBAL_STEP],
            shape_and_slices=[""] * (len(names) + 1),
            tensors=[*(np.asarray(weights[n], np.float32) for n in names), np.int64(step)],
        )
        # tf.train.latest_checkpoint reads this file (CheckpointState in text form).
        (folder / "checkpoint").write_text(
            f'model_checkpoint_path: "{prefix}"\nall_model_checkpoint_paths: "{prefix}"\n'
        )
        files = sorted(folder.iterdir())
        with tarfile.open(folder / f"{name}.tar", "w", format=tarfile.GNU_FORMAT) as tar:
            tar.add(folder, arcname=name, recursive=False, filter=_plain)
            for path in files:
                tar.add(path, arcname=f"{name}/{path.name}", filter=_plain)
        (folder / LOADER).write_text(_loader(config, name, step))

    try:
        return write_whole_folder(out_dir, fill)
    except MagentaJsError as error:
        raise MagentaError(str(error)) from None


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
        digest = gmd.download_file(url, tar)
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
