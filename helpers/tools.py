"""The groove tools on grooves of any number of 4/4 bars: humanize, drumify, transfer and infill
(each in windows of its model's length, keeping the input's length and tempo), and samples written
to a folder. Their command line is `python -m helpers.verbs` (helpers/verbs.py).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import note_seq
import numpy as np

from helpers import audio, constants
from helpers.config import VERB_CONFIGS
from helpers.constants import (
    AUDIO_SUFFIXES,
    DEFAULT_QPM,
    DEFAULT_TEMPERATURE,
    HITS,
    MAX_MIDI_VELOCITY,
    MIDI_DRUM_CHANNEL,
    NUM_DRUM_CLASSES,
    NUM_GROOVES,
    OUTPUTS_DIR,
    VELOCITIES,
)
from helpers.render import SUFFIXES, save_grooves, write_groove
from helpers.sample import SampleError, TrainedModel
from helpers.windowing import Windows, cycle, load_midi, stitch

CLOSED_HI_HAT = 2  # the drum class groovae_2bar_add_closed_hh learns to add


def _grooves_out(
    model: TrainedModel, grooves: np.ndarray, windows: Windows, qpm
) -> note_seq.NoteSequence:
    """Decoded windows stitched back to the input's length, at `qpm` or the input's tempo."""
    whole = stitch(grooves, windows.bars)[None]
    return model.grooves_to_note_sequences(whole, qpm or windows.qpm)[0]


def reencode(
    model: TrainedModel, sequence, temperature=DEFAULT_TEMPERATURE, seed=None, qpm=None
) -> note_seq.NoteSequence:
    """Each window through the posterior (a sample of it) and the decoder: Magenta's humanize,
    drumify and infill, whichever encoder inputs the model's config derives."""
    windows = model.windows(sequence, "groove")
    z, _, _ = model.encode([sequence], seed)
    controls = model.model.controls_of(windows.grooves)
    return _grooves_out(model, model.decode_grooves(z, temperature, seed, controls), windows, qpm)


def play_hits(
    model: TrainedModel, windows: Windows, z: np.ndarray, temperature, seed, qpm
) -> note_seq.NoteSequence:
    """A hits-conditioned model plays exactly the hits of `windows` with the feel z gives."""
    hits = model.model.controls_of(windows.grooves)
    grooves = model.decode_grooves(z, temperature, seed, controls=hits, hits=hits)
    return _grooves_out(model, grooves, windows, qpm)


def _needs(model: TrainedModel, ok: bool, verb: str) -> None:
    if not ok:
        raise SampleError(
            f"{model.config.name} cannot {verb}; it needs a {VERB_CONFIGS[verb]} model "
            f"(pick_model({verb!r}) finds one)"
        )


def humanize(model: TrainedModel, score, temperature=DEFAULT_TEMPERATURE, seed=None, qpm=None):
    """Velocities and microtiming for a drum score. A hits-conditioned model keeps exactly the
    score's hits, played with the feel of a sample of the score's own posterior (a feel drawn
    from the prior instead plays at a third of a drummer's loudness: bench/bench_tools.py); a
    humanize model (Magenta's groovae_2bar_humanize) re-draws the hits from the score's."""
    if model.config.converter.hits_as_controls:
        windows = model.windows(score, "score")
        z, _, _ = model.encode([score], seed)
        return play_hits(model, windows, z, temperature, seed, qpm)
    _needs(model, model.config.converter.humanize, "humanize")
    return reencode(model, score, temperature, seed, qpm)


def drumify(model: TrainedModel, taps, temperature=DEFAULT_TEMPERATURE, seed=None, qpm=None):
    """Any rhythm (taps, a melody, a drum part) as a full kit, with a tap model: every note
    counts as a tap, and the converter keeps the loudest per step on one line (spec §2.4)."""
    _needs(model, model.config.converter.tapify, "drumify")
    taps = copy.deepcopy(taps)
    for note in taps.notes:
        note.pitch, note.is_drum, note.instrument = audio.TAP_PITCH, True, MIDI_DRUM_CHANNEL
    return reencode(model, taps, temperature, seed, qpm)


def transfer(
    model: TrainedModel, hits, feel, temperature=DEFAULT_TEMPERATURE, seed=None, qpm=None
) -> note_seq.NoteSequence:
    """Groove transfer: every hit of `hits`, none added, played with the feel of `feel` (the
    posterior mean of its windows, taken in turn), at the length and tempo of `hits`."""
    _needs(model, model.config.converter.hits_as_controls, "transfer")
    windows = model.windows(hits, "hits")
    _, mu, _ = model.encode([feel])
    return play_hits(model, windows, cycle(mu, len(windows.grooves)), temperature, seed, qpm)


def infill(model: TrainedModel, groove, temperature=DEFAULT_TEMPERATURE, seed=None, qpm=None):
    """A closed hi-hat part for a groove, with a model trained to add it (its encoder never sees
    closed hi-hats): the decoder writes a whole kit, of which only the closed hi-hats are taken;
    every other drum stays as you played it."""
    _needs(model, CLOSED_HI_HAT in model.config.converter.add_instruments, "infill")
    windows = model.windows(groove, "groove")
    z, _, _ = model.encode([groove], seed)
    decoded = model.decode_grooves(z, temperature, seed)
    filled = windows.grooves.astype(np.float32)
    filled[..., CLOSED_HI_HAT::NUM_DRUM_CLASSES] = decoded[..., CLOSED_HI_HAT::NUM_DRUM_CLASSES]
    return _grooves_out(model, filled, windows, qpm)


TOOLS = {"humanize": humanize, "drumify": drumify, "infill": infill}


def quantized_score(grooves: np.ndarray, velocity: int = 80) -> np.ndarray:
    """The hits of (n, steps, 27) grooves on the grid at one velocity: a score to humanize."""
    score = np.zeros_like(grooves)
    score[..., HITS] = grooves[..., HITS]
    score[..., VELOCITIES] = grooves[..., HITS] * velocity / MAX_MIDI_VELOCITY
    return score


def read_groove(path: str | os.PathLike) -> note_seq.NoteSequence:
    """A MIDI file, or a recording (WAV, MP3, ...) as taps at its detected tempo, with a line
    saying how much of it was heard."""
    if Path(path).suffix.lower() in AUDIO_SUFFIXES:
        taps = audio.taps_from_recording(path)
        print(
            f"{path}: {len(taps.notes)} taps over {taps.total_time:.1f} s, heard at "
            f"{taps.tempos[0].qpm:.1f} qpm"
        )
        return taps
    return load_midi(path)


def versions(
    verb: str,
    model: TrainedModel,
    groove,
    num: int,
    temperature=DEFAULT_TEMPERATURE,
    seed=None,
    qpm=None,
) -> list[note_seq.NoteSequence]:
    """`num` takes of one tool on one groove, seeds seed, seed + 1, ..."""
    seeds = [None if seed is None else seed + i for i in range(num)]
    return [TOOLS[verb](model, groove, temperature, s, qpm) for s in seeds]


def write_samples(
    groovae: TrainedModel,
    num: int = NUM_GROOVES,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int | None = None,
    qpm: float = DEFAULT_QPM,
    outputs_dir: str | os.PathLike = OUTPUTS_DIR,
    soundfont: str | os.PathLike | None = None,
) -> tuple[np.ndarray, list[note_seq.NoteSequence], list[Path]]:
    """Samples `num` grooves and saves them under outputs_dir/samples/<model>-<settings>/.

    A seeded call names its folder by model (run and checkpoint, or the bundled model),
    temperature, seed and tempo, so running it again finds the same grooves already written and
    leaves them as they are, adding only a missing .png or .wav; an unseeded call takes a new
    numbered folder. Nothing is ever overwritten.

    Returns:
      (grooves (num, steps, 27) float32, NoteSequences at `qpm`, the .mid paths).
    """
    grooves = groovae.sample_grooves(num, temperature, seed)
    sequences = groovae.grooves_to_note_sequences(grooves, qpm)
    if seed is None:
        stem = f"{groovae.label}-{constants.settings_stem(temperature, qpm)}"
        out_dir = constants.next_free(constants.samples_dir(outputs_dir), stem)
    else:
        out_dir = constants.seeded_samples_dir(outputs_dir, groovae.label, temperature, seed, qpm)
    written = constants.groove_paths(out_dir, num)
    if not all(p.exists() for p in written):
        return grooves, sequences, save_grooves(sequences, out_dir, soundfont=soundfont)
    for path, sequence in zip(written, sequences):
        missing = tuple(s for s in SUFFIXES if not path.with_suffix(s).exists())
        write_groove(path, sequence, missing, False, soundfont)
    return grooves, sequences, written
