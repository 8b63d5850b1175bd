"""The groove tools on your files: sample, interpolate, humanize, drumify, transfer, infill.

    python -m helpers.verbs VERB --output-dir DIR [--input A.mid ...] [--models bundled|magenta|RUN]
        [--model CONFIG] [--num N] [--temperature T] [--seed S] [--qpm Q] [--overwrite]

    transfer --input HITS.mid --input FEEL.mid   the hits of the first, played with the second's feel
    drumify --input taps.wav                     a recording's onsets as taps (or MIDI taps)

`python -m helpers.sample ...` is the same command; without a verb it samples. Every verb takes
any number of 4/4 bars, in windows of its model's length, and keeps the input's length and tempo.
Magenta's music_vae_generate.py spellings work too (--output_dir, --run_dir, --num_outputs,
--input_midi_1, --input_midi_2), as do --out and --checkpoint (for --models).
"""

from __future__ import annotations

import argparse
import copy
import functools
import os
import sys
from pathlib import Path

import note_seq
import numpy as np

from helpers import audio, constants
from helpers.audio import RecordingError
from helpers.cli import add_num, add_outputs_dir, add_soundfont, command_parser
from helpers.constants import (
    DEFAULT_QPM,
    HITS,
    MAX_MIDI_VELOCITY,
    MIDI_DRUM_CHANNEL,
    NUM_DRUM_CLASSES,
    OUTPUTS_DIR,
    VELOCITIES,
)
from helpers.render import NUM_GROOVES, SUFFIXES, save_grooves, write_groove
from helpers.sample import (
    DEFAULT_TEMPERATURE,
    MODELS,
    VERB_CONFIGS,
    SampleError,
    TrainedModel,
    pick_model,
)
from helpers.windowing import WindowingError, Windows, cycle, load_midi, stitch

VERBS = tuple(VERB_CONFIGS)
# How many inputs each verb takes: (fewest, most).
INPUTS = {
    "sample": (0, 0),
    "interpolate": (2, 2),
    "humanize": (1, None),
    "drumify": (1, None),
    "transfer": (2, 2),
    "infill": (1, None),
}
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
    windows = model.windows(sequence)
    z, _, _ = model.encode([sequence], seed)
    controls = model.controls_of(windows.grooves)
    return _grooves_out(model, model.decode_grooves(z, temperature, seed, controls), windows, qpm)


def play_hits(
    model: TrainedModel, windows: Windows, z: np.ndarray, temperature, seed, qpm
) -> note_seq.NoteSequence:
    """A hits-conditioned model plays exactly the hits of `windows` with the feel z gives."""
    hits = model.controls_of(windows.grooves)
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
    windows = model.windows(groove)
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
    """A MIDI file, or a recording (WAV, MP3, ...) as taps at its detected tempo."""
    if Path(path).suffix.lower() in audio.AUDIO_SUFFIXES:
        return audio.taps_from_recording(path)
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


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The verb and flags; a command line without a verb is read as `sample`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*VERBS, "-h", "--help"):
        argv.insert(0, "sample")
    parser = command_parser("verbs", __doc__)
    parser.add_argument("verb", choices=VERBS)
    parser.add_argument(
        "--output-dir",
        "--output_dir",
        "--out",
        dest="output_dir",
        required=True,
        help="folder for the .mid, .png and .wav files",
    )
    parser.add_argument(
        "--input",
        "--input_midi_1",
        "--input_midi_2",
        dest="input",
        action="append",
        default=[],
        help="a MIDI file (drumify: also a recording); interpolate and transfer take two",
    )
    parser.add_argument(
        "--models",
        "--run-dir",
        "--run_dir",
        "--checkpoint",
        dest="models",
        help=f"which model plays: {' | '.join(MODELS)} | a run or checkpoint folder "
        "(default: your run of the verb's config, else the bundled one)",
    )
    parser.add_argument("--model", help="a config to play instead of the verb's own")
    add_outputs_dir(parser)
    add_soundfont(parser)
    add_num(parser, NUM_GROOVES, "grooves to sample, interpolation steps, or versions")
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--qpm", type=float, default=None, help="tempo; default 120 for sample, else the input's"
    )
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    fewest, most = INPUTS[args.verb]
    if len(args.input) < fewest or (most is not None and len(args.input) > most):
        wanted = f"exactly {fewest}" if fewest == most else f"at least {fewest}"
        parser.error(f"{args.verb} takes {wanted} --input, got {len(args.input)}")
    if args.num < 1:
        parser.error(f"--num must be at least 1, got {args.num}")
    if args.qpm is not None and not 0 < args.qpm <= constants.MAX_QPM:
        parser.error(f"--qpm must be above 0 and at most {constants.MAX_QPM:g}, got {args.qpm}")
    return args


def run(args: argparse.Namespace) -> tuple[list[Path], list[str]]:
    """Does what the command line asks, input by input.

    Returns:
      The .mid files written, and one line per input refused (its path and why).

    Raises:
      SampleError, WindowingError: no model to use, or an interpolate or transfer input that
        cannot be read or encoded.
      FileExistsError: an output name is taken (nothing of that set is written).
    """
    model = pick_model(args.model or args.verb, args.models, args.outputs_dir)
    print(f"model: {model.source}")
    save = functools.partial(save_grooves, overwrite=args.overwrite, soundfont=args.soundfont)
    if args.verb == "sample":
        grooves = model.sample(args.num, args.temperature, args.seed, args.qpm or DEFAULT_QPM)
        return save(grooves, args.output_dir), []
    if args.verb in ("interpolate", "transfer"):
        first, second = (read_groove(path) for path in args.input)
        if args.verb == "transfer":
            seeds = [None if args.seed is None else args.seed + i for i in range(args.num)]
            takes = [transfer(model, first, second, args.temperature, s, args.qpm) for s in seeds]
            return save(takes, args.output_dir, "transfer"), []
        steps = model.interpolate(first, second, args.num, args.temperature, args.seed, args.qpm)
        return save(steps, args.output_dir, "interpolation"), []
    written, refused = [], []
    for path in args.input:
        try:
            takes = versions(
                args.verb, model, read_groove(path), args.num, args.temperature, args.seed, args.qpm
            )
        except (SampleError, WindowingError, RecordingError) as error:
            refused.append(f"{path}: {error}")
            continue
        written += save(takes, args.output_dir, f"{Path(path).stem}_{args.verb}")
    return written, refused


def main(argv: list[str] | None = None) -> list[Path]:
    """`python -m helpers.verbs VERB ...`: prints each file written.

    Raises:
      SampleError: some inputs were refused (after the others were written), each named with
        its reason; and whatever `run` raises. helpers.cli.run_command turns these into one
        `error:` line and status 1.
    """
    args = _parse_args(argv)
    written, refused = run(args)
    for path in written:
        print(path)
    if refused:
        raise SampleError(
            f"refused {len(refused)} of {len(args.input)} inputs: {'; '.join(refused)}"
        )
    return written


if __name__ == "__main__":
    from helpers.cli import run_command

    run_command(main)
