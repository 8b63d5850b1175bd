"""Encoder inputs: note dropout, tapify, humanize, fixed velocities, instruments (spec §2.4)."""

import numpy as np
import pytest

from helpers import constants
from helpers.config import ConverterConfig
from helpers.converter import ConverterError, encoder_inputs

OPEN_HH = 3


def _groove(rng, shape=(3, 64)):
    hits = (rng.random(shape + (9,)) < 0.3).astype(np.float32)
    velocities = hits * rng.integers(1, 128, shape + (9,)) / 127
    offsets = hits * rng.uniform(-1, 1, shape + (9,))
    return np.concatenate([hits, velocities, offsets], axis=-1).astype(np.float32)


def test_encoder_inputs_humanize_and_fixed_velocities():
    groove = _groove(np.random.default_rng(0))
    human = encoder_inputs(groove, ConverterConfig(humanize=True))
    np.testing.assert_array_equal(human[..., constants.HITS], groove[..., constants.HITS])
    assert not human[..., 9:].any()
    fixed = encoder_inputs(groove, ConverterConfig(fixed_velocities=True))
    assert not fixed[..., constants.VELOCITIES].any()
    np.testing.assert_array_equal(fixed[..., constants.OFFSETS], groove[..., constants.OFFSETS])


def test_encoder_inputs_tapify_moves_the_loudest_to_open_hihat():
    groove = _groove(np.random.default_rng(1))
    tapped = encoder_inputs(groove, ConverterConfig(tapify=True))
    loudest = groove[..., constants.VELOCITIES].argmax(-1)
    for part in (constants.HITS, constants.VELOCITIES, constants.OFFSETS):
        values = groove[..., part]
        expected = np.take_along_axis(values, loudest[..., None], -1)[..., 0]
        np.testing.assert_array_equal(tapped[..., part][..., OPEN_HH], expected)
        assert not np.delete(tapped[..., part], OPEN_HH, axis=-1).any()


def test_encoder_inputs_add_instruments_zeroes_classes():
    groove = _groove(np.random.default_rng(2))
    inputs = encoder_inputs(groove, ConverterConfig(add_instruments=(0, 2)))
    for part in (constants.HITS, constants.VELOCITIES, constants.OFFSETS):
        assert not inputs[..., part][..., [0, 2]].any()
        np.testing.assert_array_equal(inputs[..., part][..., 1], groove[..., part][..., 1])


def test_encoder_inputs_note_dropout_drops_whole_cells():
    groove = _groove(np.random.default_rng(3), shape=(200, 64))
    config = ConverterConfig(max_note_dropout_probability=0.5)
    inputs = encoder_inputs(groove, config, np.random.default_rng(0))
    kept = inputs[..., constants.HITS] == 1
    dropped = (groove[..., constants.HITS] == 1) & ~kept
    # Mean q is 0.25 and the weight >= 0.2, so between 5 % and 25 % of the hits go.
    assert 0.05 < dropped.sum() / (groove[..., constants.HITS] == 1).sum() < 0.25
    assert not inputs[..., 9:][np.concatenate([dropped, dropped], axis=-1)].any()
    np.testing.assert_array_equal(inputs[..., 9:18][kept], groove[..., 9:18][kept])
    with pytest.raises(ConverterError):
        encoder_inputs(groove, config)


def test_encoder_inputs_keep_the_outputs_unchanged():
    groove = _groove(np.random.default_rng(4))
    before = groove.copy()
    encoder_inputs(groove, ConverterConfig(tapify=True, humanize=True, add_instruments=(1,)))
    np.testing.assert_array_equal(groove, before)
