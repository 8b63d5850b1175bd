"""Magenta's verbs on your files: sample, interpolate, humanize, drumify -> MIDI, PNG and WAV.

    python -m helpers.verbs sample|interpolate|humanize|drumify --output-dir DIR
        [--input A.mid] [--input B.mid] [--run-dir RUN] [--num N] [--temperature T]
        [--seed S] [--qpm Q] [--overwrite]

`python -m helpers.sample ...` is the same command. Without a verb it samples. Magenta's
music_vae_generate.py spellings work too (--output_dir, --run_dir, --num_outputs,
--input_midi_1, --input_midi_2), as do --out and --checkpoint. Notebook 03 runs every verb on
one uploaded groove with `your_groove`.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import note_seq

from helpers import cli, paths
from helpers.constants import DEFAULT_QPM
from helpers.groove_files import NUM_GROOVES, save_grooves
from helpers.pretrained import PretrainedError
from helpers.sample import (
    DEFAULT_TEMPERATURE,
    SampleError,
    TrainedModel,
    config_model,
    drumify,
    humanize,
    load_midi,
    newest_or_bundled,
)
from helpers.checkpoints import TrainError

VERBS = ("sample", "interpolate", "humanize", "drumify")
# The config a run must have been trained with for the verbs that need a variant.
VARIANT_CONFIGS = {"humanize": "groovae_4bar_humanize", "drumify": "groovae_4bar_tap"}
TRANSFORMS = {"humanize": humanize, "drumify": drumify}
# How many inputs each verb takes: (fewest, most).
INPUTS = {"sample": (0, 0), "interpolate": (2, 2), "humanize": (1, None), "drumify": (1, None)}


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The verb and flags; a command line without a verb is read as `sample`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*VERBS, "-h", "--help"):
        argv.insert(0, "sample")
    parser = cli.parser("verbs", __doc__)
    parser.add_argument("verb", choices=VERBS)
    parser.add_argument(
        "--output-dir", "--output_dir", "--out", dest="output_dir", required=True,
        help="folder for the .mid, .png and .wav files",
    )
    parser.add_argument(
        "--input", "--input_midi_1", "--input_midi_2", dest="input", action="append", default=[],
        help="a MIDI file; interpolate takes two",
    )
    cli.add_run_dir(parser, "--checkpoint", help="run folder (default: the newest, or bundled)")
    cli.add_outputs_dir(parser)
    cli.add_soundfont(parser)
    cli.add_num(parser, NUM_GROOVES, "grooves to sample, interpolation steps, or versions")
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
    return args


def load_model(verb: str, run_dir: str | None, outputs_dir: str | Path) -> TrainedModel:
    """The run named; else the verb's variant run (humanize, drumify), or for sample and
    interpolate the newest run, else the bundled model.

    Raises:
      SampleError: no variant run for humanize or drumify.
    """
    if run_dir is not None:
        return TrainedModel(run_dir)
    if verb not in VARIANT_CONFIGS:
        return newest_or_bundled(outputs_dir)
    model = config_model(VARIANT_CONFIGS[verb], outputs_dir)
    if model is None:
        raise SampleError(f"{verb} needs a {VARIANT_CONFIGS[verb]} run; pass --run-dir")
    return model


def versions(
    verb: str,
    model: TrainedModel,
    groove: note_seq.NoteSequence,
    num: int,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int | None = None,
    qpm: float | None = None,
) -> list[note_seq.NoteSequence]:
    """`num` humanized or drumified takes on one groove, seeds seed, seed + 1, ..."""
    transform = TRANSFORMS[verb]
    seeds = [None if seed is None else seed + i for i in range(num)]
    return [transform(model, groove, temperature, s, qpm) for s in seeds]


def your_groove(
    path: str | Path,
    model: TrainedModel,
    out_root: str | Path,
    humanizer: TrainedModel | None = None,
    drumifier: TrainedModel | None = None,
    num_steps: int = 5,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int | None = None,
    soundfont: str | Path | None = None,
) -> dict[str, tuple[list[note_seq.NoteSequence], list[Path]]]:
    """One groove of yours through every verb there is a model for, saved in a new folder.

    Humanized and drumified need those models (config_model finds them); the interpolation
    walks from your groove to a new sample of `model` at your tempo. Every result keeps your
    groove's length and tempo. The files go to out_root/<file name>-001/ (-002, ... when that
    exists), so nothing is overwritten.

    Returns:
      {"yours" / "humanized" / "drumified" / "interpolation": (NoteSequences, .mid paths)}.

    Raises:
      SampleError: the file cannot be read or encoded (the message says why).
    """
    groove = load_midi(path)
    results = {"yours": [groove]}
    for verb, variant, name in (("humanize", humanizer, "humanized"),
                                ("drumify", drumifier, "drumified")):
        if variant is not None:
            results[name] = versions(verb, variant, groove, 1, temperature, seed)
    qpm = model.windows(groove).qpm
    new = model.sample(1, temperature, seed, qpm)[0]
    results["interpolation"] = model.interpolate(groove, new, num_steps, temperature, seed)
    out_dir = paths.next_free(out_root, Path(path).stem)
    return {
        name: (seqs, save_grooves(seqs, out_dir, name, soundfont=soundfont))
        for name, seqs in results.items()
    }


def run(args: argparse.Namespace) -> tuple[list[Path], list[str]]:
    """Does what the command line asks, input by input.

    Returns:
      The .mid files written, and one line per input refused (its path and why).

    Raises:
      SampleError: no run to use, or an interpolate input that cannot be read or encoded.
      FileExistsError: an output name is taken (nothing of that set is written).
    """
    model = load_model(args.verb, args.run_dir, args.outputs_dir)
    print(f"model: {model.source}")
    save = functools.partial(save_grooves, overwrite=args.overwrite, soundfont=args.soundfont)
    if args.verb == "sample":
        grooves = model.sample(args.num, args.temperature, args.seed, args.qpm or DEFAULT_QPM)
        return save(grooves, args.output_dir), []
    if args.verb == "interpolate":
        start, end = (load_midi(path) for path in args.input)
        steps = model.interpolate(start, end, args.num, args.temperature, args.seed, args.qpm)
        return save(steps, args.output_dir, "interpolation"), []
    written, refused = [], []
    for path in args.input:
        try:
            takes = versions(args.verb, model, load_midi(path), args.num, args.temperature,
                             args.seed, args.qpm)
        except SampleError as error:
            refused.append(f"{path}: {error}")
            continue
        prefix = f"{Path(path).stem}_{args.verb}"
        written += save(takes, args.output_dir, prefix)
    return written, refused


def main(argv: list[str] | None = None) -> list[Path]:
    """`python -m helpers.verbs VERB ...`: prints each file written and each input refused.

    Exits with status 1 (a message, no traceback) when anything was refused.
    """
    args = _parse_args(argv)
    try:
        written, refused = run(args)
    except (SampleError, FileExistsError, TrainError, PretrainedError) as error:
        sys.exit(f"error: {error}")
    for path in written:
        print(path)
    if refused:
        sys.exit("refused:\n  " + "\n  ".join(refused))
    return written


if __name__ == "__main__":
    main()
