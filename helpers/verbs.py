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
import functools
import sys
from pathlib import Path

from helpers import constants
from helpers.cli import (
    add_outputs_dir,
    add_sampling,
    add_soundfont,
    check_input_file,
    check_output_folder,
    check_range,
    check_sampling,
    command_parser,
)
from helpers.config import MODELS, VERB_CONFIGS
from helpers.constants import DEFAULT_QPM, MIDI_SLOWEST_QPM, NUM_GROOVES

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


class RefusedInputsError(Exception):
    """Some inputs were refused (the others were written), each named with its reason."""


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
    add_sampling(parser, NUM_GROOVES, "grooves to sample, interpolation steps, or versions")
    parser.add_argument(
        "--qpm", type=float, default=None, help="tempo; default 120 for sample, else the input's"
    )
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    fewest, most = INPUTS[args.verb]
    if len(args.input) < fewest or (most is not None and len(args.input) > most):
        wanted = f"exactly {fewest}" if fewest == most else f"at least {fewest}"
        parser.error(f"{args.verb} takes {wanted} --input, got {len(args.input)}")
    check_sampling(parser, args)
    check_range(parser, "--qpm", args.qpm, MIDI_SLOWEST_QPM, constants.MAX_QPM)
    for number, path in enumerate(args.input, 1):
        check_input_file(parser, f"--input {number}", path)
    check_output_folder(parser, "--output-dir", args.output_dir)
    return args


def run(args: argparse.Namespace) -> tuple[list[Path], list[str]]:
    """Does what the command line asks, input by input.

    Returns:
      The .mid files written, and one line per input refused: its flag, its file and why
      (interpolate and transfer write nothing when either input is refused).

    Raises:
      SampleError: no model to use.
      FileExistsError: an output name is taken (nothing of that set is written).
    """
    # Imported only now, once every flag and file is checked: the model's framework (TensorFlow,
    # JAX or PyTorch) takes seconds to load, and --help or a refusal answers without it.
    from helpers import audio, render, sample, tools, windowing

    refusals = (sample.SampleError, windowing.WindowingError, audio.RecordingError)
    model = sample.pick_model(args.model or args.verb, args.models, args.outputs_dir)
    print(f"model: {model.source}")
    save = functools.partial(
        render.save_grooves, overwrite=args.overwrite, soundfont=args.soundfont
    )
    if args.verb == "sample":
        grooves = model.sample(args.num, args.temperature, args.seed, args.qpm or DEFAULT_QPM)
        return save(grooves, args.output_dir), []
    written, refused, pair = [], [], []
    for number, path in enumerate(args.input, 1):
        try:  # each error names the file, and the line its flag
            groove = tools.read_groove(path)
            if args.verb in ("interpolate", "transfer"):
                model.windows(groove, "groove")  # both checked before any work
                pair.append(groove)
                continue
            takes = tools.versions(
                args.verb, model, groove, args.num, args.temperature, args.seed, args.qpm
            )
        except refusals as error:
            refused.append(f"--input {number}: {error}")
            continue
        written += save(takes, args.output_dir, f"{Path(path).stem}_{args.verb}")
    if refused or args.verb not in ("interpolate", "transfer"):
        return written, refused
    first, second = pair
    if args.verb == "transfer":
        seeds = [None if args.seed is None else args.seed + i for i in range(args.num)]
        takes = [tools.transfer(model, first, second, args.temperature, s, args.qpm) for s in seeds]
        return save(takes, args.output_dir, "transfer"), []
    steps = model.interpolate(first, second, args.num, args.temperature, args.seed, args.qpm)
    return save(steps, args.output_dir, "interpolation"), []


def main(argv: list[str] | None = None) -> list[Path]:
    """`python -m helpers.verbs VERB ...`: prints each file written.

    Raises:
      RefusedInputsError: some inputs were refused (after the others were written), each named
        with its reason; and whatever `run` raises. helpers.cli.run_command turns these into one
        `error:` line and status 1.
    """
    args = _parse_args(argv)
    written, refused = run(args)
    for path in written:
        print(path)
    if refused:
        raise RefusedInputsError(
            f"refused {len(refused)} of {len(args.input)} inputs: {'; '.join(refused)}"
        )
    return written


if __name__ == "__main__":
    from helpers.cli import run_command

    run_command(main)
