"""Encoder inputs from grooves: the note dropout, tap, humanize and instrument options (spec §2.4).

Training, evaluation, sampling and the converter's to_tensors all build inputs here, so a
humanize or tap run's encoder sees the same kind of input everywhere.
"""

from __future__ import annotations

import numpy as np

from helpers import constants
from helpers.config import ConverterConfig


class ConverterError(ValueError):
    """A converter setting or a tensor that the converter cannot handle."""


def encoder_inputs(
    outputs: np.ndarray, config: ConverterConfig, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Derives encoder inputs from converter outputs, as the options of spec §2.4 do.

    Order: note dropout -> tapify -> humanize -> fixed_velocities -> add_instruments. Dropout draws
    one probability q ~ U(0, p) per sequence (per [steps, 27] slice) and drops each cell with
    probability max(0.2, 1 - velocity) * q.

    Args:
      outputs: float [..., steps, 27] hits | velocities | offsets; not modified.
      config: the options; hits_as_controls does not change inputs.
      rng: a Generator, or a seed for a fresh one; needed only when
        config.max_note_dropout_probability > 0.

    Returns:
      float32 array of the shape of `outputs`.

    Raises:
      ConverterError: not [..., steps, 27], or note dropout without an rng.
    """
    outputs = np.asarray(outputs)
    if outputs.shape[-1] != constants.GROOVE_DEPTH:
        raise ConverterError(f"want [..., steps, 27] groove tensors, got shape {outputs.shape}")
    hits = outputs[..., constants.HITS].copy()
    velocities = outputs[..., constants.VELOCITIES].copy()
    offsets = outputs[..., constants.OFFSETS].copy()

    if config.max_note_dropout_probability:
        if rng is None:
            raise ConverterError("note dropout needs an rng (np.random.default_rng(seed))")
        rng = np.random.default_rng(rng)  # a Generator comes back as it is
        q = rng.uniform(0.0, config.max_note_dropout_probability, size=outputs.shape[:-2])
        drop_p = np.maximum(0.2, 1 - velocities) * q[..., None, None]
        keep = (rng.random(velocities.shape) >= drop_p).astype(outputs.dtype)
        hits, velocities, offsets = hits * keep, velocities * keep, offsets * keep

    if config.tapify:
        # Quirk (spec §2.4): argmax over the dropped-out velocities, values from the originals.
        loudest = np.argmax(velocities, axis=-1)[..., None]
        tapped = [
            np.take_along_axis(outputs[..., part], loudest, axis=-1)
            for part in (constants.HITS, constants.VELOCITIES, constants.OFFSETS)
        ]
        hits, velocities, offsets = (np.zeros_like(hits) for _ in range(3))
        for part, values in zip((hits, velocities, offsets), tapped):
            part[..., 3:4] = values  # class 3: open hi-hat

    if config.humanize:
        velocities[:] = 0
        offsets[:] = 0
    if config.fixed_velocities:
        velocities[:] = 0
    if config.add_instruments:
        for part in (hits, velocities, offsets):
            part[..., list(config.add_instruments)] = 0
    return np.concatenate([hits, velocities, offsets], axis=-1).astype(np.float32)
