"""The main job behind `make run`: preprocess GMD, train a config, write five grooves.

    python -m helpers.pipeline [--config groovae_4bar] [--steps N] [--batch-size B]
        [--precision auto|float32|bfloat16|float16] [--data-dir GMD] [--outputs-dir DIR]
        [--num 5] [--temperature 0.5] [--seed S]
        [--coordinator HOST:PORT --num-processes N --process-id I]

Run again, it resumes the run and finds the seeded grooves already written. Started on several
processes (docs/several_machines.md), they train together and process 0 writes the grooves.
"""

from __future__ import annotations

from pathlib import Path

from helpers import constants
from helpers.cli import (
    add_data_dir,
    add_outputs_dir,
    add_process_flags,
    add_sampling,
    add_soundfont,
    add_training,
    check_sampling,
    command_parser,
)
from helpers.constants import NUM_GROOVES
from helpers.device import describe_device, detect
from helpers.processes import joined_layout


def main(argv: list[str] | None = None) -> list[Path]:
    """`python -m helpers.pipeline`: prints each step and the grooves written; returns their paths."""
    parser = command_parser("pipeline", __doc__)
    add_training(parser, required=False)
    add_data_dir(parser)
    add_outputs_dir(parser, "--outputs")
    add_soundfont(parser)
    add_sampling(parser, NUM_GROOVES, "grooves to write")
    add_process_flags(parser)
    args = parser.parse_args(argv)
    check_sampling(parser, args)  # here, not after training
    layout = joined_layout(args)  # before anything asks the backend for its devices
    # Imported only now, once the flags are checked: they load the model's framework (TensorFlow,
    # JAX or PyTorch: seconds), and --help or a refusal answers without it.
    from helpers import data, runs, sample, training
    from helpers.tools import write_samples

    print("1/3 preprocess: GMD -> 4-bar groove tensors")
    cache_dir = constants.cache_dir(args.outputs_dir)
    summary = data.groove_4bar_summary(args.data_dir, cache_dir=cache_dir)
    print(summary[["performances", "clips", "windows"]].to_string())

    print(f"2/3 train {args.config}")
    device = detect()
    print(describe_device(device))
    run_dir = constants.run_dir(args.outputs_dir, args.config)
    config = runs.run_config(args.config, run_dir, args.precision, device)
    options = training.TrainOptions(
        batch_size=args.batch_size, data_dir=args.data_dir, cache_dir=cache_dir, processes=layout
    )
    training.train(config, run_dir, args.steps, options=options)
    if not layout.writes:
        print(f"3/3 left to process 0 ({layout.describe()})")
        return []

    print(f"3/3 sample {args.num} grooves")
    groovae = sample.pick_model(args.config, run_dir)  # the run just trained
    print(f"model: {groovae.source}")
    _, _, midi_paths = write_samples(
        groovae,
        args.num,
        args.temperature,
        args.seed,
        outputs_dir=args.outputs_dir,
        soundfont=args.soundfont,
    )
    for path in midi_paths:
        print(path)
    return midi_paths


if __name__ == "__main__":
    from helpers.cli import run_command

    run_command(main)
