"""Trains or continues a GrooVAE run: GMD's splits or your MIDI folder, checkpoints and history.csv.

    python -m helpers.train --config CONFIG --steps N --run-dir RUN [--batch-size B]
        [--precision auto|float32|bfloat16|float16] [--data-dir GMD] [--midi-dir FOLDER]
        [--init-from pretrained[:NAME]|RUN [--continue-step]] [--devices D]
        [--velocity-offset-loss all_cells|hit_cells]
        [--coordinator HOST:PORT --num-processes N --process-id I]

Run again on the same --run-dir, it resumes from the newest checkpoint. The training loop itself is
helpers/training.py; this command line checks every flag and folder before loading it.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from helpers.cli import (
    add_data_dir,
    add_process_flags,
    add_run_dir,
    add_training,
    check_output_folder,
    command_parser,
    count,
    run_folder,
)
from helpers.config import VELOCITY_OFFSET_LOSSES
from helpers.processes import ProcessError, joined_layout, layout_from

PRETRAINED = "pretrained"  # --init-from's word for a bundled model (pretrained[:NAME])


def _start_point(text: str) -> str:
    """argparse's type for --init-from: 'pretrained[:NAME]', or a run folder holding config.json
    (helpers.cli.run_folder), checked before the framework loads."""
    if text.partition(":")[0] == PRETRAINED:
        return text
    return run_folder(text)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The flags, each checked (with the run and MIDI folders) before anything loads the model's
    framework: a refusal is one `error:` line in well under a second."""
    parser = command_parser("train", __doc__)
    add_training(parser, required=True)
    add_run_dir(parser, "--out", required=True)
    add_data_dir(parser)
    parser.add_argument("--midi-dir", help="train on the .mid/.midi files under this folder")
    parser.add_argument(
        "--init-from",
        type=_start_point,
        help="fine-tune from 'pretrained' (bundled) or a run folder",
    )
    parser.add_argument(
        "--continue-step",
        action="store_true",
        help="with --init-from: continue its training at its step (same config) instead of anew",
    )
    parser.add_argument(
        "--devices",
        type=count,
        default=1,
        help="local devices sharing each batch (jax, tensorflow)",
    )
    parser.add_argument(
        "--velocity-offset-loss",
        choices=VELOCITY_OFFSET_LOSSES,
        default="all_cells",
        help="where velocity and offset errors count: all_cells (Magenta's objective) or "
        "hit_cells (only where the drummer played, so a drawn hit gets its own loudness)",
    )
    add_process_flags(parser)
    args = parser.parse_args(argv)
    if args.continue_step and args.init_from is None:
        parser.error("--continue-step takes --init-from (the run or bundle to continue)")
    try:  # the layout's own checks; the processes join once the flags are all checked
        layout_from(args.coordinator, args.num_processes, args.process_id)
    except ProcessError as error:
        parser.error(str(error))
    if args.midi_dir is not None:
        # Only with a folder to check: reading MIDI loads note-seq (a second), which --help and
        # the other refusals do without.
        from helpers.midi_folder import MidiFolderError, find_midi_files

        try:
            find_midi_files(args.midi_dir)
        except MidiFolderError as error:
            parser.error(f"--midi-dir: {error}")
    check_output_folder(parser, "--run-dir", args.run_dir)
    return args


def main(argv: list[str] | None = None) -> None:
    """`python -m helpers.train`: trains or continues a run; prints its last history rows."""
    args = _parse_args(argv)
    layout = joined_layout(args)  # before run_config asks the backend for its devices
    # Imported only now, once every flag and folder is checked: the training loop loads the
    # model's framework (TensorFlow, JAX or PyTorch: seconds), and --help or a refusal answers
    # without it.
    from helpers import midi_folder, runs, training

    config = runs.run_config(
        args.config, args.run_dir, args.precision, velocity_offset_loss=args.velocity_offset_loss
    )
    options = training.TrainOptions(
        batch_size=args.batch_size,
        data_dir=args.data_dir,
        devices=args.devices,
        init_from=args.init_from,
        continue_step=args.continue_step,
        processes=layout,
    )
    windows = None  # GMD's splits
    if args.midi_dir:  # the folder's, and a batch lowered to fit them when they are few
        windows, batch_size = midi_folder.folder_windows(args.midi_dir, config, args.batch_size)
        options = replace(options, batch_size=batch_size)
    history = training.train(config, args.run_dir, args.steps, windows, options)
    print(history.tail(3).to_string(index=False))


if __name__ == "__main__":
    from helpers.cli import run_command

    run_command(main)
