"""Grooves of any number of bars as the model's windows (4 or 2 bars): MIDI in, cut, loop a short
end, stitch, and back out at the input's tempo."""

from __future__ import annotations

import copy
import io
import logging
import math
import os
from pathlib import Path
from typing import NamedTuple

import mido
import note_seq
import numpy as np

from helpers.constants import (
    DEFAULT_QPM,
    HITS,
    MAX_GROOVE_MINUTES,
    MAX_QPM,
    NUM_DRUM_CLASSES,
    OFFSETS,
    QUARTERS_PER_BAR,
    STEPS_PER_BAR,
    STEPS_PER_QUARTER,
    WINDOW_STEPS,
)
from helpers.converter import GrooveConverter, Rejected, single_tempo

# Why a file gives no groove although the converter has no rule against it: MIDI's drum channel
# (10, 9 counting from 0) is the only place a drum part is known to be; other notes are not drums.
NO_DRUM_NOTES = "no drum notes (nothing on MIDI channel 10)"

logger = logging.getLogger(__name__)


class WindowingError(ValueError):
    """A MIDI file or NoteSequence that cannot be read as a groove, or a tempo it cannot take."""


class Windows(NamedTuple):
    """A groove cut for the model, with what it takes to put the result back together."""

    grooves: np.ndarray  # float64 [n, window steps, 27] converter outputs, one per window
    bars: int  # the input's length in 4/4 bars
    qpm: float  # the input's one tempo


def length_in_bars(groove_steps: int, total_time: float, qpm: float) -> int:
    """Bars a sequence lasts: up to its last onset, or its last note end rounded to a bar line.

    A groove whose last bar holds no onset still counts that bar when its notes ring into it
    for more than half a bar, so a 2-bar file with a rest on its last beats stays 2 bars.
    """
    bar_seconds = QUARTERS_PER_BAR * 60.0 / qpm
    by_notes = math.floor(total_time / bar_seconds + 0.5)
    return max(1, groove_steps // STEPS_PER_BAR, by_notes)


EARLY_OFFSET = 0.05  # half steps (a fortieth of a 16th) before a bar line that count as early


def fold_early_downbeat(groove: np.ndarray) -> np.ndarray:
    """A tapped [steps, 27] groove whose last bar holds nothing but hits played just before its bar
    line (the converter rounds them onto that bar's first step, early), a bar shorter: they are
    the loop's next downbeat played early, so they move to step 0 where that drum has no hit of
    its own. Two bars tapped with the last tap a hair before the next downbeat stay two bars.
    """
    last = groove[-STEPS_PER_BAR:]
    first_hits = last[0, HITS] > 0.5
    # Offsets are + early (spec §2.2), in half steps; one on the bar line within float rounding
    # is not early.
    early = (last[0, OFFSETS] > EARLY_OFFSET)[first_hits]
    if len(groove) <= STEPS_PER_BAR or last[1:, HITS].any() or not early.all():
        return groove
    folded = groove[:-STEPS_PER_BAR].copy()
    for drum in np.flatnonzero(first_hits & (folded[0, HITS] < 0.5)):
        cells = [drum, NUM_DRUM_CLASSES + drum, 2 * NUM_DRUM_CLASSES + drum]
        folded[0, cells] = last[0, cells]
    return folded


def loop_to_window(part: np.ndarray, window_steps: int = WINDOW_STEPS) -> np.ndarray:
    """A part of at most one window [steps, 27] repeated from its start until it fills one."""
    return part[np.arange(window_steps) % len(part)]


def cut(groove: np.ndarray, bars: int, window_steps: int = WINDOW_STEPS) -> np.ndarray:
    """A [steps, 27] groove of `bars` bars as consecutive windows [n, window_steps, 27].

    Steps past the groove's end (bars without onsets) are silence; the last window, when the
    bars do not fill it, repeats its own bars (with 4-bar windows: 1 bar four times, 2 bars
    twice, 3 bars and then their first bar).
    """
    steps = bars * STEPS_PER_BAR
    whole = np.zeros((steps, groove.shape[-1]), groove.dtype)
    whole[: min(len(groove), steps)] = groove[:steps]
    parts = (whole[start : start + window_steps] for start in range(0, steps, window_steps))
    return np.stack([loop_to_window(part, window_steps) for part in parts])


def stitch(windows: np.ndarray, bars: int) -> np.ndarray:
    """Windows [n, steps, 27] played one after another, trimmed to `bars` bars: [16 * bars, 27]."""
    return windows.reshape(-1, windows.shape[-1])[: bars * STEPS_PER_BAR]


def cycle(windows: np.ndarray, n: int) -> np.ndarray:
    """n windows from [k, 64, 27]: the given ones in turn, from the first again when k < n."""
    return windows[np.arange(n) % len(windows)]


def sequence_windows(sequence: note_seq.NoteSequence, converter: GrooveConverter) -> Windows:
    """The drum part of a NoteSequence of any number of 4/4 bars at one tempo, in windows of the
    converter's split_bars.

    Raises:
      converter.Rejected: no notes on the drum channel, several tempos, not 4/4, negative times,
        no notes in the drum map, over MAX_GROOVE_MINUTES long or faster than MAX_QPM.
    """
    drums = copy.deepcopy(sequence)
    del drums.notes[:]
    drums.notes.extend(note for note in sequence.notes if note.is_drum)
    if not drums.notes:
        raise Rejected(NO_DRUM_NOTES)
    if max(note.end_time for note in drums.notes) > 60 * MAX_GROOVE_MINUTES:
        raise Rejected(f"longer than {MAX_GROOVE_MINUTES:g} minutes")
    groove = converter.note_sequence_to_groove(drums)
    if converter.options.tapify:  # taps are played in a loop: see fold_early_downbeat
        groove = fold_early_downbeat(groove)
    qpm = single_tempo([(t.time, t.qpm) for t in sequence.tempos])
    if qpm > MAX_QPM:
        raise Rejected(f"a tempo of {qpm:,.6g} qpm (the tools take up to {MAX_QPM:g})")
    bars = length_in_bars(len(groove), sequence.total_time, qpm)
    window_steps = converter.steps_per_bar * converter.split_bars
    return Windows(cut(groove, bars, window_steps), bars, qpm)


def close_ringing_notes(midi: mido.MidiFile) -> list[tuple[int, int]]:
    """Gives every note-on that no note-off ends (a crash left ringing) a 16th note's length,
    by a note-off added to its track; MIDI readers (pretty_midi, so note-seq) drop such notes.

    A note-off ends every note of its channel and pitch begun before it, as pretty_midi pairs
    them. `midi` is changed in place.

    Returns:
      (channel, pitch) of each note closed, 0-based channels, in file order.
    """
    length = max(midi.ticks_per_beat // STEPS_PER_QUARTER, 1)
    closed = []
    for track in midi.tracks:
        timed, now, ringing = [], 0, {}
        for message in track:
            now += message.time
            timed.append((now, message))
            if message.type not in ("note_on", "note_off"):
                continue
            key = (message.channel, message.note)
            if message.type == "note_on" and message.velocity > 0:
                ringing.setdefault(key, []).append(now)
            else:
                ringing[key] = [tick for tick in ringing.get(key, []) if tick == now]
        added = [
            (tick + length, mido.Message("note_off", channel=key[0], note=key[1]))
            for key, ticks in ringing.items()
            for tick in ticks
        ]
        if not added:
            continue
        closed += [(m.channel, m.note) for _, m in added]
        # mido reads a track's end as its last message: it moves past the added note-offs.
        last = timed.pop() if timed and timed[-1][1].is_meta else None
        timed = sorted(timed + added, key=lambda timed_message: timed_message[0])
        if last is not None:
            timed.append((max(last[0], timed[-1][0]), last[1]))
        previous = 0
        track.clear()
        for tick, message in timed:
            track.append(message.copy(time=tick - previous))
            previous = tick
    return closed


def with_ringing_notes_closed(midi_bytes: bytes, name: str | os.PathLike) -> bytes:
    """A MIDI file's bytes with every note-on that no note-off ends given a 16th note's length
    (`close_ringing_notes`), and a warning line naming the file (`name`) and their pitches; the
    same bytes when every note ends.

    Raises:
      Whatever mido raises for a file it cannot read.
    """
    midi = mido.MidiFile(file=io.BytesIO(midi_bytes))
    closed = close_ringing_notes(midi)
    if not closed:
        return midi_bytes
    pitches = ", ".join(str(p) for p in sorted({pitch for _, pitch in closed}))
    channels = ", ".join(str(c + 1) for c in sorted({channel for channel, _ in closed}))
    logger.warning(
        f"warning: {name}: {len(closed)} note-ons without a note-off (channel {channels}, "
        f"pitches {pitches}), each played a 16th note long"
    )
    fixed = io.BytesIO()
    midi.save(file=fixed)
    return fixed.getvalue()


def load_midi(path: str | os.PathLike) -> note_seq.NoteSequence:
    """Reads a MIDI file as a NoteSequence, its `filename` the path (a refusal of it names the
    file); note-ons without a note-off are given a 16th note's length, with a warning line naming
    the file and their pitches.

    Raises:
      WindowingError: the file is missing or is not a readable MIDI file.
    """
    path = Path(path)
    try:
        sequence = note_seq.midi_to_note_sequence(
            with_ringing_notes_closed(path.read_bytes(), path)
        )
    except Exception as err:  # note-seq and mido raise many types for a corrupt file
        raise WindowingError(
            f"cannot read {path} as MIDI ({type(err).__name__}: {err}); give a Standard MIDI "
            "File (.mid) holding a drum groove in 4/4 at one tempo"
        ) from err
    sequence.filename = str(path)
    return sequence


def set_tempo(
    sequence: note_seq.NoteSequence, qpm: float, num_steps: int = WINDOW_STEPS
) -> note_seq.NoteSequence:
    """A copy of a decoded 120-qpm groove played at `qpm`: times scaled, one tempo, 4/4.

    The grid stays put: `num_steps` sixteenths at the new tempo (total_time set to that).
    """
    if qpm <= 0:
        raise WindowingError(f"qpm must be positive, got {qpm}")
    scale = DEFAULT_QPM / qpm
    out = copy.deepcopy(sequence)
    for note in out.notes:
        note.start_time *= scale
        note.end_time *= scale
    del out.tempos[:]
    del out.time_signatures[:]
    out.tempos.add(qpm=qpm, time=0.0)
    out.time_signatures.add(numerator=QUARTERS_PER_BAR, denominator=4, time=0.0)
    out.total_time = num_steps / STEPS_PER_QUARTER * 60.0 / qpm
    return out
