"""Tests for helpers/windowing.py: any number of bars in, 4-bar windows out, and back."""

import mido
import numpy as np
import pytest

from helpers import windowing
from helpers.constants import HITS, OFFSETS
from helpers.converter import GrooveConverter, Rejected

BAR = 2.0  # seconds per 4/4 bar at 120 qpm


def _numbered(bars: int) -> np.ndarray:
    """A [16 * bars, 27] groove whose every step holds its own step number."""
    steps = np.arange(16 * bars, dtype=np.float64) + 1
    return np.repeat(steps[:, None], 27, axis=1)


@pytest.mark.parametrize("bars, windows", [(1, 1), (2, 1), (4, 1), (5, 2), (16, 4), (17, 5)])
def test_cut_gives_one_window_per_four_bars(bars, windows):
    assert windowing.cut(_numbered(bars), bars).shape == (windows, 64, 27)


@pytest.mark.parametrize("bars, loop", [(1, [1, 1, 1, 1]), (2, [1, 2, 1, 2]), (3, [1, 2, 3, 1])])
def test_cut_loops_a_short_last_part_from_its_start(bars, loop):
    (window,) = windowing.cut(_numbered(bars), bars)
    first_step_of_each_bar = window[::16, 0]
    np.testing.assert_array_equal(first_step_of_each_bar, [16 * (b - 1) + 1 for b in loop])


def test_cut_17_bars_loops_the_last_bar_of_the_fifth_window():
    windows = windowing.cut(_numbered(17), 17)
    np.testing.assert_array_equal(windows[:4].reshape(-1, 27), _numbered(16))
    np.testing.assert_array_equal(windows[4][::16, 0], [16 * 16 + 1] * 4)


def test_cut_pads_silent_bars_past_the_last_onset():
    windows = windowing.cut(_numbered(1), 6)
    assert windows.shape == (2, 64, 27) and not windows[0, 16:].any() and not windows[1].any()


@pytest.mark.parametrize("bars", [1, 2, 4, 7, 16, 17])
def test_stitch_undoes_cut(bars):
    groove = _numbered(bars)
    np.testing.assert_array_equal(windowing.stitch(windowing.cut(groove, bars), bars), groove)


def test_cycle_takes_windows_in_turn():
    windows = np.arange(2)[:, None, None] * np.ones((2, 64, 27))
    np.testing.assert_array_equal(windowing.cycle(windows, 5)[:, 0, 0], [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(windowing.cycle(windows, 1)[:, 0, 0], [0])


@pytest.mark.parametrize(
    "steps, total_time, qpm, bars",
    [
        (16, 2.0, 120.0, 1),
        (16, 3.9, 120.0, 2),  # a rest on the last beats of bar 2: the last note ends in bar 2
        (32, 4.4, 120.0, 2),  # a cymbal rings a little into bar 3
        (32, 2.1, 120.0, 2),  # the last onset decides when note ends say less
        (0, 0.5, 120.0, 1),
        (16, 16 * 4 * 60 / 90, 90.0, 16),
    ],
)
def test_length_in_bars(steps, total_time, qpm, bars):
    assert windowing.length_in_bars(steps, total_time, qpm) == bars


def test_sequence_windows_reads_tempo_and_length(make_drums):
    bar = 4 * 60 / 100
    ns = make_drums([(36, 100, i * bar, i * bar + 0.1) for i in range(6)], qpm=100.0)
    cut = windowing.sequence_windows(ns, GrooveConverter())
    assert (cut.bars, cut.qpm, cut.grooves.shape) == (6, 100.0, (2, 64, 27))
    np.testing.assert_array_equal(cut.grooves[1, ::16, 0], [1, 1, 1, 1])  # bars 5, 6, 5, 6


def test_sequence_windows_refuses_what_the_converter_refuses(make_drums):
    ns = make_drums([(36, 100, 0.0, 0.1)], time_signature=(3, 4))
    with pytest.raises(Rejected, match="not 4/4"):
        windowing.sequence_windows(ns, GrooveConverter())


def test_sequence_windows_keeps_the_drum_channel_only(make_drums):
    ns = make_drums([(36, 100, 0.0, 0.1), (38, 100, 2 * BAR, 2 * BAR + 0.1)])
    ns.notes[1].is_drum = False  # a melody note that happens to sit on a drum pitch
    assert windowing.sequence_windows(ns, GrooveConverter()).grooves[0, :, 1].sum() == 0
    ns.notes[0].is_drum = False
    with pytest.raises(Rejected, match="no drum notes"):
        windowing.sequence_windows(ns, GrooveConverter())


def test_a_tap_just_before_the_next_downbeat_keeps_two_bars(make_drums):
    """Two bars tapped at 120 qpm (a 16th is 0.125 s), the last tap 0.3 of a 16th before bar 3:
    it rounds onto bar 3's first step, and is the loop's next downbeat played early."""
    taps = [(42, 100, i * 0.125, i * 0.125 + 0.1) for i in range(2, 32, 4)]
    tapped = GrooveConverter(split_bars=2, tapify=True)
    windows = windowing.sequence_windows(
        make_drums([*taps, (38, 100, 31.7 * 0.125, 31.7 * 0.125 + 0.1)], qpm=120.0), tapped
    )
    assert windows.bars == 2 and windows.grooves.shape[0] == 1
    groove = windows.grooves[0]
    assert groove[..., HITS].sum() == len(taps) + 1  # the snare's tap folded onto step 0, early
    assert groove[0, HITS].sum() == 1 and groove[0, OFFSETS].max() > 0
    # A hit on the downbeat itself (not early) is a third bar.
    on_time = make_drums([*taps, (38, 100, 4.0, 4.1)], qpm=120.0)
    assert windowing.sequence_windows(on_time, tapped).bars == 3
    # Other tools read a file's bars as written: there the early hit makes a third bar.
    early = make_drums([*taps, (38, 100, 31.7 * 0.125, 31.7 * 0.125 + 0.1)], qpm=120.0)
    assert windowing.sequence_windows(early, GrooveConverter(split_bars=2)).bars == 3


def _midi_file(path, messages, ticks_per_beat=480):
    midi = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    midi.tracks.append(mido.MidiTrack(messages))
    midi.save(path)
    return path


def test_load_midi_gives_a_note_on_without_note_off_a_16th_and_says_so(tmp_path, caplog):
    """A crash left ringing (no note-off) is read as a 16th note, named in a warning; a note-off
    ends every earlier note of its pitch, as MIDI readers pair them."""
    messages = [mido.MetaMessage("set_tempo", tempo=500_000)]
    messages += [mido.Message("note_on", channel=9, note=36, velocity=100)]
    messages += [mido.Message("note_on", channel=9, note=36, velocity=90, time=240)]
    messages += [mido.Message("note_off", channel=9, note=36, time=240)]  # ends both kicks
    messages += [mido.Message("note_on", channel=9, note=49, velocity=110, time=480)]  # rings
    messages += [mido.Message("note_on", channel=9, note=38, velocity=1, time=480)]  # rings
    path = _midi_file(tmp_path / "ringing.mid", messages)
    sequence = windowing.load_midi(path)
    notes = sorted((n.pitch, n.velocity, n.start_time, n.end_time) for n in sequence.notes)
    assert notes == [
        (36, 90, 0.25, 0.5),
        (36, 100, 0.0, 0.5),
        (38, 1, 1.5, 1.625),
        (49, 110, 1.0, 1.125),
    ]
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert line.startswith(f"warning: {path}: 2 note-ons without a note-off")
    assert "channel 10" in line and "pitches 38, 49" in line


def test_load_midi_of_whole_notes_says_nothing(tmp_path, caplog):
    messages = [mido.Message("note_on", channel=9, note=36, velocity=100)]
    messages += [mido.Message("note_off", channel=9, note=36, time=480)]
    assert len(windowing.load_midi(_midi_file(tmp_path / "ok.mid", messages)).notes) == 1
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
