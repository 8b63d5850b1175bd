"""Grooves of any number of bars as the model's 4-bar windows: cut, loop a short end, stitch."""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import note_seq
import numpy as np

from helpers.constants import QUARTERS_PER_BAR, STEPS_PER_BAR, WINDOW_STEPS
from helpers.converter import GrooveConverter, Rejected, single_tempo

# Why a file gives no groove although the converter has no rule against it: MIDI's drum channel
# (10, 9 counting from 0) is the only place a drum part is known to be; other notes are not drums.
NO_DRUM_NOTES = "no drum notes (nothing on MIDI channel 10)"


class Windows(NamedTuple):
    """A groove cut for the model, with what it takes to put the result back together."""

    grooves: np.ndarray  # float64 [n, 64, 27] converter outputs, one row per 4-bar window
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


def loop_to_window(part: np.ndarray) -> np.ndarray:
    """A part of at most 4 bars [steps, 27] repeated from its start until it fills 64 steps."""
    return part[np.arange(WINDOW_STEPS) % len(part)]


def cut(groove: np.ndarray, bars: int) -> np.ndarray:
    """A [steps, 27] groove of `bars` bars as consecutive 4-bar windows [n, 64, 27].

    Steps past the groove's end (bars without onsets) are silence; the last window, when the
    bars do not fill it, repeats its own bars (1 bar four times, 2 bars twice, 3 bars and then
    their first bar).
    """
    steps = bars * STEPS_PER_BAR
    whole = np.zeros((steps, groove.shape[-1]), groove.dtype)
    whole[: min(len(groove), steps)] = groove[:steps]
    starts = range(0, steps, WINDOW_STEPS)
    return np.stack([loop_to_window(whole[start : start + WINDOW_STEPS]) for start in starts])


def stitch(windows: np.ndarray, bars: int) -> np.ndarray:
    """Windows [n, 64, 27] played one after another and trimmed to `bars` bars: [16 * bars, 27]."""
    return windows.reshape(-1, windows.shape[-1])[: bars * STEPS_PER_BAR]


def cycle(windows: np.ndarray, n: int) -> np.ndarray:
    """n windows from [k, 64, 27]: the given ones in turn, from the first again when k < n."""
    return windows[np.arange(n) % len(windows)]


def sequence_windows(sequence: note_seq.NoteSequence, converter: GrooveConverter) -> Windows:
    """The drum part of a NoteSequence of any number of 4/4 bars at one tempo, in 4-bar windows.

    Raises:
      converter.Rejected: no notes on the drum channel, several tempos, not 4/4, negative times
        or no notes in the drum map.
    """
    drums = copy.deepcopy(sequence)
    del drums.notes[:]
    drums.notes.extend(note for note in sequence.notes if note.is_drum)
    if not drums.notes:
        raise Rejected(NO_DRUM_NOTES)
    groove = converter.note_sequence_to_groove(drums)
    qpm = single_tempo([(t.time, t.qpm) for t in sequence.tempos])
    bars = length_in_bars(len(groove), sequence.total_time, qpm)
    return Windows(cut(groove, bars), bars, qpm)
