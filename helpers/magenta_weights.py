"""Magenta's TF1 groovae variables, from a checkpoint or a dict, loaded into a GrooVAE (spec §3.1)."""

from __future__ import annotations

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
