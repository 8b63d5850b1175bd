"""Grooves as files: each a MIDI file with its pianoroll (.png) and audio (.wav) beside it.

One rule for every groove written: all the names a call would write are checked before any is
written, and an existing file is replaced only when the caller passes overwrite=True, so a
refusal leaves no partial set behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import note_seq
import numpy as np

from helpers import audio, paths, render
from helpers.constants import DEFAULT_QPM, OUTPUTS_DIR
from helpers.sample import DEFAULT_TEMPERATURE, TrainedModel

NUM_GROOVES = 5  # music_vae_generate.py's --num_outputs
SUFFIXES = (".mid", ".png", ".wav")  # a groove's MIDI, pianoroll and audio


def refuse_existing(targets: list[Path], overwrite: bool) -> None:
    """The overwrite rule: raises FileExistsError naming the first of `targets` that exists,
    unless `overwrite`."""
    existing = [path for path in targets if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass overwrite=True to replace it")


def _write_groove(
    midi_path: Path,
    sequence: note_seq.NoteSequence,
    suffixes: tuple[str, ...],
    overwrite: bool,
    soundfont: str | os.PathLike | None = None,
) -> None:
    """One groove's files, those of `suffixes`, named after `midi_path`."""
    if ".mid" in suffixes:
        audio.write_midi(sequence, midi_path, overwrite=overwrite)
    if ".png" in suffixes:
        fig = render.plot_groove(sequence, title=midi_path.stem)
        render.save_figure(fig, midi_path.with_suffix(".png"), overwrite=overwrite)
        render.plt.close(fig)
    if ".wav" in suffixes:
        wav = midi_path.with_suffix(".wav")
        audio.save_wav(wav, audio.synthesize(sequence, soundfont=soundfont), overwrite=overwrite)


def save_grooves(
    sequences: list[note_seq.NoteSequence],
    out_dir: str | os.PathLike,
    prefix: str = paths.GROOVE_PREFIX,
    overwrite: bool = False,
    suffixes: tuple[str, ...] = SUFFIXES,
    soundfont: str | os.PathLike | None = None,
) -> list[Path]:
    """Writes each groove as out_dir/<prefix>_NN.mid with its .png and .wav beside it.

    Args:
      sequences: the grooves, numbered from 01 in this order (wider numbers past 99).
      prefix: the file names' stem.
      overwrite: replace files of the same names.
      suffixes: which of .mid, .png and .wav to write (e.g. no .wav for committed grooves).
      soundfont: a General MIDI .sf2 for the .wav, tried before the system's.

    Returns:
      The .mid paths, in order (whether or not .mid was written).

    Raises:
      FileExistsError: a file of those names exists and `overwrite` is False; nothing written.
    """
    midi_paths = paths.groove_paths(out_dir, len(sequences), prefix)
    refuse_existing([p.with_suffix(s) for p in midi_paths for s in suffixes], overwrite)
    for path, sequence in zip(midi_paths, sequences):
        _write_groove(path, sequence, suffixes, overwrite, soundfont)
    return midi_paths


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
      (grooves (num, 64, 27) float32, NoteSequences at `qpm`, the .mid paths).
    """
    grooves = groovae.sample_grooves(num, temperature, seed)
    sequences = groovae.grooves_to_note_sequences(grooves, qpm)
    if seed is None:
        stem = f"{groovae.label}-{paths.settings_stem(temperature, qpm)}"
        out_dir = paths.next_free(paths.samples_dir(outputs_dir), stem)
    else:
        out_dir = paths.seeded_samples_dir(outputs_dir, groovae.label, temperature, seed, qpm)
    written = paths.groove_paths(out_dir, num)
    if not all(p.exists() for p in written):
        return grooves, sequences, save_grooves(sequences, out_dir, soundfont=soundfont)
    for path, sequence in zip(written, sequences):
        missing = tuple(s for s in SUFFIXES if not path.with_suffix(s).exists())
        _write_groove(path, sequence, missing, False, soundfont)
    return grooves, sequences, written
