"""How much the bundled humanize model puts back of a drummer's dynamics and timing.

    python bench/bench_humanize.py [--name groovae_4bar_humanize] [--windows 400] [--data-dir DIR]

The encoder sees only the hits of real GMD test windows (the humanize converter); the decoder
writes velocities and offsets greedily from the posterior mean. On the hits both the drummer and
the model played, its velocities and offsets are compared with the drummer's, beside two plain
guesses: the score's one velocity (what the model was given) and the drummer's mean velocity;
zero offsets (the grid).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from conditions import run_watched

from helpers import device
from helpers.cli import add_data_dir
from helpers.constants import HITS, MAX_MIDI_VELOCITY, OFFSETS, VELOCITIES
from helpers.converter import encoder_inputs
from helpers.data import load_groove_4bar
from helpers.sample import TrainedModel
from helpers.tools import quantized_score


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="groovae_4bar_humanize", help="bundle name")
    parser.add_argument("--windows", type=int, default=400, help="first N test windows")
    add_data_dir(parser)
    args = parser.parse_args(argv)
    print(f"CPU: {device.cpu_info().describe()}")

    real = load_groove_4bar("test", args.data_dir, progress=False)[: args.windows]
    humanizer = TrainedModel.pretrained(args.name)
    mu, _ = humanizer.model.encode(encoder_inputs(real, humanizer.config.converter, 0))
    played = np.asarray(humanizer.model.decode(mu, temperature=1e-6, seed=0))
    drummer_hits = real[..., HITS] > 0.5
    both = drummer_hits & (played[..., HITS] > 0.5)
    print(
        f"{args.name} at step {humanizer.step}, {len(real)} test windows: it keeps "
        f"{both.sum() / drummer_hits.sum():.1%} of the drummer's {drummer_hits.sum():,} hits"
    )

    velocity = real[..., VELOCITIES][both] * MAX_MIDI_VELOCITY
    guesses = {
        "the model": played[..., VELOCITIES][both] * MAX_MIDI_VELOCITY,
        "the score's one velocity": quantized_score(real)[..., VELOCITIES][both]
        * MAX_MIDI_VELOCITY,
        "the drummer's mean velocity": np.full_like(velocity, velocity.mean()),
    }
    for name, guess in guesses.items():
        print(f"  velocity MAE, {name}: {np.abs(guess - velocity).mean():.1f} MIDI")
    print(
        f"  velocity correlation with the drummer: "
        f"{np.corrcoef(guesses['the model'], velocity)[0, 1]:.2f}"
    )
    offset, guess = real[..., OFFSETS][both], played[..., OFFSETS][both]
    print(
        f"  offset MAE (fraction of a 16th), the model: {np.abs(guess - offset).mean():.3f}; "
        f"the grid: {np.abs(offset).mean():.3f}; "
        f"correlation {np.corrcoef(guess, offset)[0, 1]:.2f}"
    )


if __name__ == "__main__":
    run_watched(main)
