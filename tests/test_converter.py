"""Tests for helpers/converter.py: GrooveConverter against Magenta's reference arrays and hand-made
NoteSequences, and the encoder inputs (note dropout, tapify, humanize, fixed velocities)."""

import note_seq
import numpy as np
import pytest

from helpers import constants
from helpers.config import ConverterConfig
from helpers.converter import (
    MAX_DECODED_SHIFT,
    MULTIPLE_TEMPOS,
    MULTIPLE_TIME_SIGNATURES,
    NEGATIVE_TIME,
    NOT_4_4,
    SHORTER_THAN_WINDOW,
    ConverterError,
    EncoderInputs,
    GrooveConverter,
    encoder_inputs,
)

KICK, SNARE, CLOSED_HH = 0, 1, 2
STEP = 0.125  # seconds per 16th note at 120 qpm


def _bar4_kick(start=15 * 4 * STEP):
    """A note in bar 4 so a lone clip has its one window (spec §2.2 step 5)."""
    return (36, 50, start, start + 0.05)


def _only_window(converter, ns):
    tensors = converter.to_tensors(ns)
    assert len(tensors.outputs) == 1
    return tensors.inputs[0], tensors.outputs[0]


def _roundtrip_notes(sequences):
    return np.array(
        [
            (w, n.pitch, n.start_time, n.end_time, n.velocity)
            for w, ns in enumerate(sequences)
            for n in ns.notes
        ]
    ).reshape(-1, 5)


@pytest.mark.parity
def test_to_tensors_parity_full(parity_dir, gmd_dir):
    files = sorted((parity_dir / "full").glob("*.npz"))
    assert files
    for path in files:
        ref = np.load(path)
        midi = gmd_dir / (path.stem.replace("__", "/") + ".mid")
        converter = GrooveConverter()
        tensors = converter.to_tensors(note_seq.midi_file_to_note_sequence(str(midi)))
        # The parity files keep Magenta's float64 arrays as float32: compare at that precision.
        for part in ("inputs", "outputs"):
            ours = np.stack(getattr(tensors, part))
            assert ours.dtype == np.float64  # Magenta's dtype at the converter's surface
            np.testing.assert_array_equal(ours.astype(ref[part].dtype), ref[part], path.name)
        np.testing.assert_array_equal(tensors.lengths, ref["lengths"])
        np.testing.assert_array_equal(np.arange(len(tensors.outputs)) * 4, ref["window_start_bar"])


@pytest.mark.parity
@pytest.mark.parametrize(
    "mode,key", [("train", "rt_notes"), ("eval", "rt_notes"), ("infer", "rt_notes_infer")]
)
def test_from_tensors_parity_full(parity_dir, mode, key):
    for path in sorted((parity_dir / "full").glob("*.npz")):
        ref = np.load(path)
        converter = GrooveConverter()
        converter.set_mode(mode)
        notes = _roundtrip_notes(converter.from_tensors(ref["outputs"]))
        assert notes.shape == ref[key].shape, path.name
        # Ours keeps a note within MAX_DECODED_SHIFT of its 16th; Magenta's, half a step.
        outputs = ref["outputs"]
        early = outputs[..., 18:][outputs[..., :9] > 0.5] / 2  # in from_tensors' note order
        beyond = np.abs(early) > MAX_DECODED_SHIFT
        expected = ref[key].copy()
        moved = np.clip(early[beyond], -0.5, 0.5) - np.clip(
            early[beyond], -MAX_DECODED_SHIFT, MAX_DECODED_SHIFT
        )
        expected[beyond, 2:4] += moved[:, None] * STEP
        np.testing.assert_allclose(notes[~beyond], ref[key][~beyond], 0, 1e-9, err_msg=path.name)
        # The parity files hold outputs as float32, Magenta's own times were float64.
        np.testing.assert_allclose(notes[beyond], expected[beyond], 0, 1e-6, err_msg=path.name)


def test_to_tensors_shapes_and_dtypes(make_drums):
    tensors = GrooveConverter().to_tensors(make_drums([(38, 100, 0.0, 0.1), _bar4_kick()]))
    assert len(tensors.inputs) == len(tensors.outputs) == len(tensors.controls) == 1
    assert tensors.outputs[0].shape == (64, 27) and tensors.outputs[0].dtype == np.float64
    assert tensors.inputs[0].dtype == np.float64  # as Magenta's to_tensors returns them
    assert tensors.controls[0].shape == (64, 0)
    assert tensors.lengths == [64]


def test_to_tensors_highest_velocity_wins(make_drums):
    # Two snares (38 and 40 share class 1) and a tie between two kicks on one step.
    notes = [(38, 60, 0.0, 0.1), (40, 90, 0.01, 0.1), (36, 70, 0.02, 0.1), (36, 70, 0.0, 0.1)]
    _, out = _only_window(GrooveConverter(), make_drums(notes + [_bar4_kick()]))
    np.testing.assert_allclose(out[0, 9 + SNARE], 90 / 127, rtol=0, atol=1e-7)
    np.testing.assert_allclose(out[0, 18 + SNARE], -2 * 0.01 / STEP, rtol=0, atol=1e-6)
    # Equal maxima: the first in sequence order (start 0.02) is kept.
    np.testing.assert_allclose(out[0, 18 + KICK], -2 * 0.02 / STEP, rtol=0, atol=1e-6)


def test_to_tensors_offset_sign(make_drums):
    early, late = 4 * STEP - 0.02, 8 * STEP + 0.03
    notes = [(42, 80, early, early + 0.05), (42, 80, late, late + 0.05), _bar4_kick()]
    _, out = _only_window(GrooveConverter(), make_drums(notes))
    assert out[4, CLOSED_HH] == 1 and out[8, CLOSED_HH] == 1
    np.testing.assert_allclose(out[4, 18 + CLOSED_HH], 2 * 0.02 / STEP, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out[8, 18 + CLOSED_HH], -2 * 0.03 / STEP, rtol=0, atol=1e-6)


def test_to_tensors_half_step_rounds_up(make_drums):
    half = 2.5 * STEP  # exactly between steps 2 and 3: goes to 3, offset +1
    _, out = _only_window(GrooveConverter(), make_drums([(38, 80, half, half + 0.1), _bar4_kick()]))
    assert out[3, SNARE] == 1 and out[2, SNARE] == 0
    assert out[3, 18 + SNARE] == 1.0


def test_to_tensors_needs_an_onset_in_bar_4(make_drums):
    converter = GrooveConverter()
    # Notes ringing into bar 4 do not count: the length comes from the last onset.
    ns = make_drums([(36, 80, 0.0, 0.1), (38, 80, 47 * STEP, 64 * STEP)])
    assert converter.to_tensors(ns).outputs == []
    assert converter.drop_reasons[SHORTER_THAN_WINDOW] == 1
    assert len(converter.to_tensors(make_drums([(36, 80, 0.0, 0.1), _bar4_kick()])).outputs) == 1


def test_to_tensors_non_overlapping_windows_drop_remainder(make_drums):
    # Onsets in bars 1..9 -> two windows (bars 1-4, 5-8); bar 9 is a remainder.
    notes = [(36, 80, bar * 16 * STEP, bar * 16 * STEP + 0.1) for bar in range(9)]
    tensors = GrooveConverter().to_tensors(make_drums(notes))
    assert len(tensors.outputs) == 2
    assert tensors.outputs[1][0, KICK] == 1 and tensors.outputs[1][16, KICK] == 1


def test_to_tensors_hop_size_overlaps(make_drums):
    notes = [(36, 80, bar * 16 * STEP, bar * 16 * STEP + 0.1) for bar in range(6)]
    tensors = GrooveConverter(hop_size=16).to_tensors(make_drums(notes))
    assert len(tensors.outputs) == 3


def test_to_tensors_quantizes_with_the_tempo(make_drums):
    qpm = 90.0
    step = 60 / qpm / 4
    ns = make_drums([(38, 80, 5 * step, 5 * step + 0.1), _bar4_kick(63 * step)], qpm=qpm)
    _, out = _only_window(GrooveConverter(), ns)
    assert out[5, SNARE] == 1
    np.testing.assert_allclose(out[5, 18 + SNARE], 0.0, rtol=0, atol=1e-9)


@pytest.mark.parametrize("numerator,denominator", [(3, 4), (6, 8), (5, 4)])
def test_to_tensors_rejects_other_meters(make_drums, numerator, denominator):
    converter = GrooveConverter()
    ns = make_drums([(36, 80, 0.0, 0.1), _bar4_kick()], time_signature=(numerator, denominator))
    assert converter.to_tensors(ns).outputs == []
    assert converter.drop_reasons[NOT_4_4] == 1


def test_to_tensors_rejects_a_tempo_change(make_drums):
    converter = GrooveConverter()
    ns = make_drums([(36, 80, 0.0, 0.1), _bar4_kick()], qpm=100.0)
    ns.tempos.add(qpm=110.0, time=2.0)
    assert converter.to_tensors(ns).outputs == []
    same = make_drums([(36, 80, 0.0, 0.1), _bar4_kick()], qpm=100.0)
    same.tempos.add(qpm=100.0, time=2.0)  # a repeated tempo is no change
    assert len(converter.to_tensors(same).outputs) == 1
    late = make_drums([(36, 80, 0.0, 0.1), _bar4_kick()])
    del late.tempos[:]
    late.tempos.add(qpm=100.0, time=1.0)  # implicit 120 before it
    assert converter.to_tensors(late).outputs == []
    assert converter.drop_reasons[MULTIPLE_TEMPOS] == 2


def test_to_tensors_rejects_time_signature_changes(make_drums):
    converter = GrooveConverter()
    ns = make_drums([(36, 80, 0.0, 0.1), _bar4_kick()])
    ns.time_signatures.add(numerator=3, denominator=4, time=2.0)
    assert converter.to_tensors(ns).outputs == []
    assert converter.drop_reasons[MULTIPLE_TIME_SIGNATURES] == 1


def test_to_tensors_negative_times(make_drums):
    converter = GrooveConverter()
    # Slightly negative rounds to step 0; a whole step before 0 rejects.
    ok = make_drums([(36, 80, -0.01, 0.05), _bar4_kick()])
    assert len(converter.to_tensors(ok).outputs) == 1
    bad = make_drums([(36, 80, -0.2, 0.05), _bar4_kick()])
    assert converter.to_tensors(bad).outputs == []
    assert converter.drop_reasons[NEGATIVE_TIME] == 1


def test_to_tensors_skips_and_counts_unknown_pitches(make_drums):
    converter = GrooveConverter()
    ns = make_drums([(35, 80, 0.0, 0.1), (35, 90, 1.0, 1.1), (38, 80, 0.0, 0.1), _bar4_kick()])
    _, out = _only_window(converter, ns)
    assert converter.skipped_pitches == {35: 2}
    assert out[:, constants.HITS].sum() == 2
    converter.set_mode("infer")  # 35 is a kick in the inference map
    _, out = _only_window(converter, ns)
    assert out[:, constants.HITS].sum() == 4


def test_to_tensors_does_not_mutate_input(make_drums):
    ns = make_drums([(38, 80, 0.01, 0.1), _bar4_kick()])
    before = ns.SerializeToString()
    GrooveConverter(humanize=True).to_tensors(ns)
    assert ns.SerializeToString() == before


def test_to_tensors_infer_mode_uses_the_reduced_map(make_drums):
    # GMD pitches 45, 48, 58 change class between the maps (spec §2.1).
    notes = [(45, 80, 0.0, 0.1), (48, 80, STEP, 0.2), (58, 80, 2 * STEP, 0.3), _bar4_kick()]
    converter = GrooveConverter()
    _, train = _only_window(converter, make_drums(notes))
    converter.set_mode("infer")
    _, infer = _only_window(converter, make_drums(notes))
    assert train[0, 5] == train[1, 6] == train[2, 4] == 1  # mid tom, high tom, low tom
    assert infer[0, 4] == infer[1, 5] == infer[2, 7] == 1  # low tom, mid tom, crash


def test_encoder_inputs_equal_outputs_by_default(make_drums):
    ns = make_drums([(38, 80, 0.01, 0.1), (42, 30, 0.3, 0.4), _bar4_kick()])
    inputs, outputs = _only_window(GrooveConverter(), ns)
    np.testing.assert_array_equal(inputs, outputs)


def test_to_tensors_options_match_encoder_inputs(make_drums):
    notes = [(38, 80, 0.01, 0.1), (42, 30, 0.3, 0.4), (46, 99, 0.3, 0.4), _bar4_kick()]
    config = ConverterConfig(tapify=True, add_instruments=(0,))
    inputs, outputs = _only_window(GrooveConverter.from_config(config), make_drums(notes))
    np.testing.assert_array_equal(inputs, encoder_inputs(outputs, config))


def test_hits_as_controls(make_drums):
    converter = GrooveConverter(hits_as_controls=True)
    assert converter.control_depth == 9
    tensors = converter.to_tensors(make_drums([(38, 80, 0.0, 0.1), _bar4_kick()]))
    np.testing.assert_array_equal(tensors.controls[0], tensors.outputs[0][:, :9] == 1)


def test_from_tensors_clips_velocities_to_1_127_and_offsets():
    groove = np.zeros((1, 64, 27), np.float32)
    groove[0, 2, SNARE], groove[0, 2, 9 + SNARE], groove[0, 2, 18 + SNARE] = 1, 1.4, 3.0
    groove[0, 5, KICK], groove[0, 5, 9 + KICK], groove[0, 5, 18 + KICK] = 0.7, -0.2, -0.5
    groove[0, 6, KICK] = 0.5  # not above 0.5: no note
    (ns,) = GrooveConverter().from_tensors(groove)
    snare, kick = sorted(ns.notes, key=lambda n: n.pitch, reverse=True)
    assert (snare.pitch, snare.velocity, kick.pitch, kick.velocity) == (38, 127, 36, 1)
    np.testing.assert_allclose(snare.start_time, (2 - MAX_DECODED_SHIFT) * STEP, rtol=0, atol=1e-9)
    np.testing.assert_allclose(kick.start_time, (5 + 0.25) * STEP, rtol=0, atol=1e-9)
    np.testing.assert_allclose(kick.end_time - kick.start_time, STEP, rtol=0, atol=1e-9)
    assert len(ns.notes) == 2 and ns.tempos[0].qpm == 120


def test_from_tensors_roundtrip(make_drums):
    notes = [(38, 80, 0.01, 0.1), (42, 31, 0.3, 0.4), (51, 127, 1.02, 1.1), _bar4_kick()]
    converter = GrooveConverter()
    _, out = _only_window(converter, make_drums(notes))
    (ns,) = converter.from_tensors(out[None])
    got = sorted((n.pitch, n.velocity, round(n.start_time, 6)) for n in ns.notes)
    assert got == sorted((p, v, round(s, 6)) for p, v, s, _ in notes)


def test_converter_surface():
    converter = GrooveConverter()
    assert (converter.input_depth, converter.output_depth, converter.control_depth) == (27, 27, 0)
    assert [p[0] for p in converter.pitch_classes] == [36, 38, 42, 46, 43, 47, 50, 49, 51]
    converter.set_mode("infer")
    assert [p[0] for p in converter.pitch_classes] == [36, 38, 42, 46, 45, 48, 50, 49, 51]
    with pytest.raises(ConverterError):
        converter.set_mode("training")
    with pytest.raises(ConverterError):
        converter.from_tensors(np.zeros((64, 27)))


# ------------------------------------------------------------------------------------------
# Encoder inputs: note dropout, tapify, humanize, fixed velocities, instruments (spec §2.4).


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


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"humanize": True},
        {"tapify": True, "fixed_velocities": True, "max_note_dropout_probability": 0.8},
        {"max_note_dropout_probability": 0.5, "add_instruments": (2, 7)},
    ],
)
def test_encoder_inputs_of_rows_are_those_of_the_whole_corpus(options):
    rng = np.random.default_rng(0)
    windows = rng.random((40, 64, 27)).astype(np.float32)
    windows[..., constants.HITS] = windows[..., constants.HITS] > 0.7
    config = ConverterConfig(**options)
    whole = encoder_inputs(windows, config, 7)
    lazy = EncoderInputs(windows, config, 7)
    assert lazy.shape == whole.shape and lazy.dtype == whole.dtype and len(lazy) == 40
    rows = rng.permutation(40)[:16]  # a shuffled batch, as training reads it
    np.testing.assert_array_equal(lazy[rows], whole[rows])
    np.testing.assert_array_equal(lazy[np.sort(rows)], whole[np.sort(rows)])
    np.testing.assert_array_equal(lazy[5:30], whole[5:30])
    np.testing.assert_array_equal(lazy[3], whole[3])
    np.testing.assert_array_equal(lazy[..., :9], whole[..., :9])
    np.testing.assert_array_equal(np.asarray(lazy), whole)
    if config.max_note_dropout_probability:  # another seed, other draws
        assert not np.array_equal(EncoderInputs(windows, config, 8)[rows], lazy[rows])
