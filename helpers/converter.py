"""GrooveConverter: drum NoteSequences <-> [steps, 27] hit | velocity | offset tensors (spec §2),
and the encoder inputs its options derive (§2.4)."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import note_seq
import numpy as np

from helpers import constants
from helpers.config import ConverterConfig

# Why a sequence or clip gives no window. Magenta returns empty tensors for all of them (spec §2.2);
# we also say which rule fired so data summaries can count them.
MULTIPLE_TIME_SIGNATURES = "multiple time signatures"
BAD_TIME_SIGNATURE = "bad time signature"
MULTIPLE_TEMPOS = "multiple tempos"
NEGATIVE_TIME = "negative time"
NOT_4_4 = "not 4/4"
NO_NOTES = "no notes"
SHORTER_THAN_WINDOW = "no onset in the last bar of a window"

QUANTIZE_CUTOFF = 0.5  # note-seq rounds t * steps_per_second + 0.5 down (spec §2.2 step 1)
# How far from its own 16th a decoded note may be written, in steps. Magenta allows half a step
# either way (spec §2.3), but a note half a step late is read back in the next step, and one
# nearly half a step off can land in its neighbour once a MIDI file rounds it to whole ticks (a
# 16th is 55 ticks in a note-seq file), where it may merge with a hit there and be lost.
MAX_DECODED_SHIFT = 0.5 - 1 / 32
MODES = ("train", "eval", "infer")


class ConverterError(ValueError):
    """A converter setting or a tensor that the converter cannot handle."""


class Rejected(Exception):
    """A sequence the converter turns into no window; `reason` is one of the constants above."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ConverterTensors(NamedTuple):
    """Magenta's converter output: one entry per window."""

    inputs: list  # float64 [steps, input_depth] encoder inputs, Magenta's dtype
    outputs: list  # float64 [steps, output_depth] decoder targets
    controls: list  # bool [steps, control_depth]
    lengths: list  # int, steps each


def pitch_class_lookup(pitch_classes: Sequence[Sequence[int]]) -> dict[int, int]:
    """Maps each MIDI pitch to its class index; a pitch listed twice keeps its last class."""
    return {pitch: cls for cls, pitches in enumerate(pitch_classes) for pitch in pitches}


def single_tempo(tempos: Sequence[tuple[float, float]]) -> float:
    """The one tempo note-seq's quantizer accepts, from (time, qpm) pairs in sequence order.

    Raises:
      Rejected: MULTIPLE_TEMPOS, with note-seq's rules (spec §2.2 step 1).
    """
    if not tempos:
        return constants.DEFAULT_QPM
    ordered = sorted(tempos, key=lambda t: t[0])
    # An implicit 120 qpm holds until the first tempo event.
    if ordered[0][0] != 0 and ordered[0][1] != constants.DEFAULT_QPM:
        raise Rejected(MULTIPLE_TEMPOS)
    # note-seq compares the later tempos with the first one *in sequence order*.
    if any(qpm != tempos[0][1] for _, qpm in ordered[1:]):
        raise Rejected(MULTIPLE_TEMPOS)
    return tempos[0][1]


def single_time_signature(time_signatures: Sequence[tuple[float, int, int]]) -> tuple[int, int]:
    """The one (numerator, denominator) the quantizer accepts, from (time, num, den) triples.

    Raises:
      Rejected: MULTIPLE_TIME_SIGNATURES or BAD_TIME_SIGNATURE (spec §2.2 step 1).
    """
    if time_signatures:
        ordered = sorted(time_signatures, key=lambda ts: ts[0])
        # An implicit 4/4 holds until the first time signature event.
        if ordered[0][0] != 0 and ordered[0][1:] != (4, 4):
            raise Rejected(MULTIPLE_TIME_SIGNATURES)
        if any(ts[1:] != tuple(time_signatures[0][1:]) for ts in ordered[1:]):
            raise Rejected(MULTIPLE_TIME_SIGNATURES)
        numerator, denominator = time_signatures[0][1:]
    else:
        numerator, denominator = 4, 4
    if denominator <= 0 or denominator & (denominator - 1) or numerator == 0:
        raise Rejected(BAD_TIME_SIGNATURE)
    return numerator, denominator


def quantize_to_step(times: np.ndarray, steps_per_second: float) -> np.ndarray:
    """note-seq's quantization: int(t * steps_per_second + 0.5), truncating toward zero."""
    return (np.asarray(times, np.float64) * steps_per_second + (1 - QUANTIZE_CUTOFF)).astype(
        np.int64
    )


class GrooveConverter:
    """Magenta's GrooveConverter, continuous (non-categorical) encoding.

    Differs from Magenta in one way: a pitch missing from the active drum map is skipped and
    counted in `skipped_pitches` instead of raising KeyError (spec §2.1). `drop_reasons` counts
    why sequences gave no window. `max_tensors_per_notesequence` is kept, as Magenta's
    GrooveConverter keeps it, without effect: only its other converters sample windows.
    """

    def __init__(
        self,
        split_bars: int | None = 4,
        steps_per_quarter: int = constants.STEPS_PER_QUARTER,
        quarters_per_bar: int = constants.QUARTERS_PER_BAR,
        pitch_classes: Sequence[Sequence[int]] = constants.ROLAND_DRUM_PITCH_CLASSES,
        inference_pitch_classes: Sequence[Sequence[int]] | None = (
            constants.REDUCED_DRUM_PITCH_CLASSES
        ),
        humanize: bool = False,
        tapify: bool = False,
        fixed_velocities: bool = False,
        hits_as_controls: bool = False,
        max_note_dropout_probability: float | None = None,
        add_instruments: Sequence[int] | None = None,
        hop_size: int | None = None,
        seed: int | None = None,
        max_tensors_per_notesequence: int | None = 8,
    ):
        inference_pitch_classes = inference_pitch_classes or pitch_classes
        if len(pitch_classes) != constants.NUM_DRUM_CLASSES or len(inference_pitch_classes) != len(
            pitch_classes
        ):
            raise ConverterError(
                f"want {constants.NUM_DRUM_CLASSES} pitch classes in both maps, got "
                f"{len(pitch_classes)} and {len(inference_pitch_classes)}"
            )
        if split_bars is None and hop_size is not None:
            raise ConverterError("hop_size needs split_bars")
        self.split_bars = split_bars
        self.steps_per_quarter = steps_per_quarter
        self.steps_per_bar = steps_per_quarter * quarters_per_bar
        self.hop_size = hop_size
        self.hits_as_controls = hits_as_controls
        self.max_tensors_per_notesequence = max_tensors_per_notesequence
        self.options = ConverterConfig(
            hits_as_controls=hits_as_controls,
            split_bars=split_bars or 0,
            steps_per_quarter=steps_per_quarter,
            quarters_per_bar=quarters_per_bar,
            humanize=humanize,
            tapify=tapify,
            fixed_velocities=fixed_velocities,
            max_note_dropout_probability=max_note_dropout_probability or 0.0,
            add_instruments=tuple(add_instruments or ()),
        )
        self._pitch_classes = {False: tuple(map(tuple, pitch_classes))}
        self._pitch_classes[True] = tuple(map(tuple, inference_pitch_classes))
        self._class_maps = {k: pitch_class_lookup(v) for k, v in self._pitch_classes.items()}
        self.rng = np.random.default_rng(seed)
        self.mode = "train"
        self.skipped_pitches: collections.Counter = collections.Counter()
        self.drop_reasons: collections.Counter = collections.Counter()

    @classmethod
    def from_config(cls, config: ConverterConfig, **kwargs) -> GrooveConverter:
        """A converter with the settings of a ConverterConfig (plus any keyword of __init__)."""
        options = dataclasses.asdict(config)
        options["max_note_dropout_probability"] = config.max_note_dropout_probability or None
        options["add_instruments"] = config.add_instruments or None
        return cls(**options, **kwargs)

    # --- Magenta's surface -------------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        """'train' and 'eval' use pitch_classes; 'infer' the inference map (spec §2.1)."""
        if mode not in MODES:
            raise ConverterError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode

    @property
    def is_inferring(self) -> bool:
        return self.mode == "infer"

    @property
    def pitch_classes(self) -> tuple[tuple[int, ...], ...]:
        return self._pitch_classes[self.is_inferring]

    @property
    def pitch_class_map(self) -> dict[int, int]:
        return self._class_maps[self.is_inferring]

    input_depth = output_depth = constants.GROOVE_DEPTH  # hits | velocities | offsets

    @property
    def control_depth(self) -> int:
        return constants.NUM_DRUM_CLASSES if self.hits_as_controls else 0

    # --- NoteSequence -> tensors ---------------------------------------------------------------

    def to_tensors(self, note_sequence: note_seq.NoteSequence) -> ConverterTensors:
        """Windows of a NoteSequence (spec §2.2); empty lists when the converter rejects it."""
        try:
            groove = self.note_sequence_to_groove(note_sequence)
        except Rejected as rejected:
            self.drop_reasons[rejected.reason] += 1
            return ConverterTensors([], [], [], [])
        return self.groove_to_tensors(groove)

    def note_sequence_to_groove(self, note_sequence: note_seq.NoteSequence) -> np.ndarray:
        """The whole sequence on the grid: float64 [16 * bars, 27], before windowing.

        Raises:
          Rejected: the reason the converter gives no window.
        """
        ns = note_sequence
        numerator, denominator = single_time_signature(
            [(ts.time, ts.numerator, ts.denominator) for ts in ns.time_signatures]
        )
        qpm = single_tempo([(t.time, t.qpm) for t in ns.tempos])
        events = [cc.time for cc in ns.control_changes] + [a.time for a in ns.text_annotations]
        return self.notes_to_groove(
            start_times=np.array([n.start_time for n in ns.notes], np.float64),
            end_times=np.array([n.end_time for n in ns.notes], np.float64),
            pitches=np.array([n.pitch for n in ns.notes], np.int64),
            velocities=np.array([n.velocity for n in ns.notes], np.int64),
            qpm=qpm,
            numerator=numerator,
            denominator=denominator,
            event_times=np.array(events, np.float64),
        )

    def notes_to_groove(
        self,
        start_times: np.ndarray,
        end_times: np.ndarray,
        pitches: np.ndarray,
        velocities: np.ndarray,
        qpm: float,
        numerator: int = 4,
        denominator: int = 4,
        event_times: np.ndarray | None = None,
    ) -> np.ndarray:
        """Notes (in sequence order; times in seconds) of a one-tempo, one-meter sequence on the
        grid: float64 [16 * bars, 27], bars counted to the bar of the last onset (spec §2.2 step
        5). `event_times` are control change and text annotation times (negative ones reject).

        Raises:
          Rejected: NEGATIVE_TIME, NOT_4_4 or NO_NOTES.
        """
        steps_per_second = self.steps_per_quarter * qpm / 60.0
        starts = quantize_to_step(start_times, steps_per_second)
        ends = quantize_to_step(end_times, steps_per_second)
        ends = np.where(ends == starts, ends + 1, ends)
        negative_events = (
            event_times is not None and (quantize_to_step(event_times, steps_per_second) < 0).any()
        )
        if (starts < 0).any() or (ends < 0).any() or negative_events:
            raise Rejected(NEGATIVE_TIME)
        steps_per_bar = self.steps_per_quarter * (4.0 / denominator * numerator)
        if steps_per_bar != self.steps_per_bar:
            raise Rejected(NOT_4_4)

        classes = np.array([self.pitch_class_map.get(int(p), -1) for p in pitches], np.int64)
        unknown = classes < 0
        if unknown.any():
            self.skipped_pitches.update(int(p) for p in pitches[unknown])
        known = ~unknown
        starts, classes = starts[known], classes[known]
        start_times, velocities = start_times[known], velocities[known]
        if not len(starts):
            raise Rejected(NO_NOTES)

        total_bars = int(np.ceil((starts.max() + 1) / self.steps_per_bar))
        groove = np.zeros((self.steps_per_bar * total_bars, constants.GROOVE_DEPTH))
        # One note per (step, class): the loudest, the first of equal maxima (spec §2.2 step 6).
        order = np.lexsort((np.arange(len(starts)), -velocities, classes, starts))
        cell = starts[order] * constants.NUM_DRUM_CLASSES + classes[order]
        winners = order[np.r_[True, cell[1:] != cell[:-1]]]
        step, cls = starts[winners], classes[winners]
        step_length = 60.0 / qpm / self.steps_per_quarter
        groove[step, cls] = 1.0
        groove[step, constants.NUM_DRUM_CLASSES + cls] = velocities[winners] / 127.0
        # Positive = played early (spec §2.2 step 6); same float operations as Magenta.
        offsets = (step_length * step - start_times[winners]) / step_length * 2
        groove[step, 2 * constants.NUM_DRUM_CLASSES + cls] = offsets
        return groove

    def windows(self, num_steps: int) -> tuple[int, range]:
        """Window length and start steps over a groove of num_steps (spec §2.2 step 10)."""
        if not self.split_bars:
            return num_steps, range(0, 1)
        window = self.steps_per_bar * self.split_bars
        return window, range(0, num_steps - window + 1, self.hop_size or window)

    def groove_to_tensors(self, groove: np.ndarray) -> ConverterTensors:
        """Encoder inputs, controls and windows of a whole-sequence groove [steps, 27]."""
        inputs = encoder_inputs(groove, self.options, self.rng)
        controls = groove[:, constants.HITS].astype(bool)
        if not self.hits_as_controls:
            controls = controls[:, :0]
        window, starts = self.windows(len(groove))
        if not starts:
            self.drop_reasons[SHORTER_THAN_WINDOW] += 1
        return ConverterTensors(
            inputs=[inputs[i : i + window] for i in starts],
            outputs=[groove[i : i + window] for i in starts],
            controls=[controls[i : i + window] for i in starts],
            lengths=[window for _ in starts],
        )

    # --- tensors -> NoteSequence ---------------------------------------------------------------

    def from_tensors(self, samples: np.ndarray, controls=None) -> list[note_seq.NoteSequence]:
        """Decodes [n, steps, 27] grooves to 120 qpm drum NoteSequences (spec §2.3); `controls`
        are accepted and unused, as in Magenta.

        Cells with hit > 0.5 become notes of the active mode's first class pitch; velocity
        round(v * 127) clipped to [1, 127]; start (step - clip(offset / 2, -s, s)) * 0.125 s with
        s = MAX_DECODED_SHIFT, in the samples' own float precision as Magenta computes it.

        Magenta clips velocity to [0, 127] and offset / 2 to [-0.5, 0.5] (spec §2.3); a hit
        written at velocity 0 is a note-off to every MIDI reader, and one half a step off is read
        back in its neighbour's step: both would lose the hit from the file.
        """
        samples = np.asarray(samples)
        if samples.ndim != 3 or samples.shape[-1] != constants.GROOVE_DEPTH:
            raise ConverterError(f"want [n, steps, 27] grooves, got shape {samples.shape}")
        step_length = 60.0 / constants.DEFAULT_QPM / self.steps_per_quarter
        first_pitches = [pitches[0] for pitches in self.pitch_classes]
        sequences = []
        for sample in samples:
            ns = note_seq.NoteSequence()
            ns.tempos.add(qpm=constants.DEFAULT_QPM)
            for i, j in zip(*np.nonzero(sample[:, constants.HITS] > 0.5)):
                velocity = sample[i, constants.NUM_DRUM_CLASSES + j]
                offset = np.clip(
                    sample[i, 2 * constants.NUM_DRUM_CLASSES + j] / 2,
                    -MAX_DECODED_SHIFT,
                    MAX_DECODED_SHIFT,
                )
                start = (int(i) - offset) * step_length
                note = ns.notes.add(
                    pitch=first_pitches[j],
                    velocity=int(np.clip(int(np.round(velocity * 127)), 1, 127)),
                    start_time=start,
                    instrument=constants.MIDI_DRUM_CHANNEL,
                    is_drum=True,
                )
                note.end_time = note.start_time + step_length
            sequences.append(ns)
        return sequences


def encoder_inputs(
    outputs: np.ndarray, config: ConverterConfig, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Encoder inputs of converter outputs [..., steps, 27] (not modified), as spec §2.4's options
    derive them, in the shape and float dtype of `outputs` (float32 for other dtypes).

    Order: note dropout -> tapify -> humanize -> fixed_velocities -> add_instruments. Dropout draws
    one probability q ~ U(0, p) per sequence (per [steps, 27] slice) and drops each cell with
    probability max(0.2, 1 - velocity) * q, from `rng` (a Generator or a seed).

    Raises:
      ConverterError: not [..., steps, 27], or note dropout without an rng.
    """
    outputs = _groove_tensors(outputs)
    draws = None
    if config.max_note_dropout_probability:
        if rng is None:
            raise ConverterError("note dropout needs an rng (np.random.default_rng(seed))")
        rng = np.random.default_rng(rng)  # a Generator comes back as it is
        q = rng.uniform(0.0, config.max_note_dropout_probability, size=outputs.shape[:-2])
        draws = q, rng.random((*outputs.shape[:-1], constants.NUM_DRUM_CLASSES))
    return _derived_inputs(outputs, config, draws)


def _groove_tensors(outputs) -> np.ndarray:
    outputs = np.asanyarray(outputs)  # a memory map stays one
    if outputs.shape[-1] != constants.GROOVE_DEPTH:
        raise ConverterError(f"want [..., steps, 27] groove tensors, got shape {outputs.shape}")
    return outputs


def _derived_inputs(outputs: np.ndarray, config: ConverterConfig, draws: tuple | None):
    """encoder_inputs given its dropout draws: (q per sequence, a uniform per cell) or None."""
    hits = outputs[..., constants.HITS].copy()
    velocities = outputs[..., constants.VELOCITIES].copy()
    offsets = outputs[..., constants.OFFSETS].copy()

    if draws is not None:
        q, uniforms = draws
        drop_p = np.maximum(0.2, 1 - velocities) * q[..., None, None]
        keep = (uniforms >= drop_p).astype(outputs.dtype)
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
    dtype = outputs.dtype if outputs.dtype.kind == "f" else np.float32
    return np.concatenate([hits, velocities, offsets], axis=-1).astype(dtype)


class EncoderInputs:
    """encoder_inputs(windows, config, seed) of windows [n, steps, 27], derived only for the rows
    read: indexing it gives the rows the whole array would hold, bit for bit, without ever holding
    the whole (the windows may be a memory-mapped cache larger than memory).

    Note dropout draws its numbers for all n windows from one stream (q for every window, then a
    uniform per cell, in row order); each double takes one step of numpy's PCG64, so the draws of
    window i are found by advancing a copy of the stream to them.

    Attributes:
      windows: the converter outputs, (n, steps, 27).
      shape, dtype, ndim: those of the whole encoder inputs.
    """

    def __init__(self, windows: np.ndarray, config: ConverterConfig, seed: int | None = None):
        self.windows = _groove_tensors(windows)
        if self.windows.ndim != 3:
            raise ConverterError(f"want windows (n, steps, 27), got shape {self.windows.shape}")
        if config.max_note_dropout_probability and seed is None:
            raise ConverterError("note dropout needs a seed")
        self.config, self.seed = config, seed
        self.shape = self.windows.shape
        self.ndim = 3
        self.dtype = self.windows.dtype if self.windows.dtype.kind == "f" else np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index) -> np.ndarray:
        """Rows by an int, slice or int array, optionally followed by indices within a window."""
        rows, *within = index if isinstance(index, tuple) else (index,)
        if rows is Ellipsis:  # inputs[..., :9]: every row
            rows, within = slice(None), [Ellipsis, *within]
        picked = np.arange(len(self))[rows]
        single = picked.ndim == 0
        picked = np.atleast_1d(picked)
        inputs = self.of_rows(picked, self.windows[picked])
        inputs = inputs[0] if single else inputs
        return inputs[tuple(within)] if within else inputs

    def of_rows(self, rows: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """The encoder inputs of rows [k] whose windows [k, steps, 27] the caller has read."""
        return _derived_inputs(windows, self.config, self._draws(np.asarray(rows)))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every row at once: only for windows that fit in memory."""
        inputs = self[:]
        return inputs if dtype is None else inputs.astype(dtype)

    def _draws(self, rows: np.ndarray) -> tuple | None:
        """The dropout draws of these rows, as encoder_inputs draws them for all n at once."""
        p = self.config.max_note_dropout_probability
        if not p:
            return None
        n, steps = len(self), self.shape[1]
        cells = steps * constants.NUM_DRUM_CLASSES
        start = np.random.default_rng(self.seed).bit_generator.state
        q, uniforms = np.empty(len(rows)), np.empty((len(rows), steps, constants.NUM_DRUM_CLASSES))
        # Runs of consecutive rows are drawn together: a slice costs two jumps, not one a row.
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for run in np.split(np.arange(len(rows)), breaks) if len(rows) else ():
            first, count = int(rows[run[0]]), len(run)
            q[run] = self._stream(start, first).uniform(0.0, p, size=count)
            uniforms[run] = self._stream(start, n + first * cells).random(
                (count, steps, constants.NUM_DRUM_CLASSES)
            )
        return q, uniforms

    @staticmethod
    def _stream(state: dict, skip: int) -> np.random.Generator:
        bit_generator = np.random.PCG64()
        bit_generator.state = state
        return np.random.Generator(bit_generator.advance(skip))
