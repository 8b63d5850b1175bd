"""The command lines' common ground: one parser shape, each shared flag spelled once.

Every module with a command line has `main(argv)` building its parser here, so a flag means the
same and is spelled the same everywhere: `--run-dir` for a run folder, `--outputs-dir` for the
folder holding cache/, runs/ and samples/, `--data-dir` for GMD. Magenta's names
(`--run_dir`, `--num_outputs`, ...) and the spellings this project used before are accepted as
aliases, so a command line that worked once still works. The environment is read here, at the
edge (GROOVE_DATA_DIR as `--data-dir`'s default, GROOVAE_SOUNDFONT as `--soundfont`'s), and
handed down as arguments.
"""

from __future__ import annotations

import argparse
import os

from helpers.audio import SOUNDFONT_ENV
from helpers.constants import OUTPUTS_DIR
from helpers.device import PRECISIONS

DATA_DIR_ENV = "GROOVE_DATA_DIR"  # a GMD folder (or its zip) the user keeps


def data_dir_from_env() -> str | None:
    """$GROOVE_DATA_DIR, or None: where the user keeps GMD (else the user cache, or download)."""
    return os.environ.get(DATA_DIR_ENV) or None


def parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The parser of `python -m helpers.<module>`, described by its docstring's first line."""
    return argparse.ArgumentParser(prog=f"python -m helpers.{module}", description=doc.split("\n")[0])


def add_run_dir(parser: argparse.ArgumentParser, *aliases: str, **kwargs) -> None:
    """--run-dir (Magenta's --run_dir): a run folder, config.json + history.csv + checkpoints/.

    Args:
      aliases: the spellings this command line took before (e.g. --out, --checkpoint).
      kwargs: for add_argument (required=, help=).
    """
    kwargs.setdefault("help", "run folder: config.json, history.csv, checkpoints/")
    parser.add_argument("--run-dir", "--run_dir", *aliases, dest="run_dir", **kwargs)


def add_outputs_dir(parser: argparse.ArgumentParser, *aliases: str) -> None:
    """--outputs-dir: the folder holding cache/, runs/ and samples/ (default the repository's)."""
    parser.add_argument(
        "--outputs-dir", "--outputs_dir", *aliases, dest="outputs_dir", default=str(OUTPUTS_DIR),
        help="folder holding cache/, runs/ and samples/ (default: %(default)s)",
    )


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    """--data-dir: GMD's folder or zip; default $GROOVE_DATA_DIR, else the user cache or download."""
    parser.add_argument(
        "--data-dir", "--data_dir", dest="data_dir", default=data_dir_from_env(),
        help=f"Groove MIDI Dataset folder or zip (default: ${DATA_DIR_ENV}, else download once)",
    )


def add_soundfont(parser: argparse.ArgumentParser) -> None:
    """--soundfont: a General MIDI .sf2 for the .wav files; default $GROOVAE_SOUNDFONT."""
    parser.add_argument(
        "--soundfont", default=os.environ.get(SOUNDFONT_ENV) or None,
        help=f"General MIDI .sf2 for the audio (default: ${SOUNDFONT_ENV}, else the system's)",
    )


def add_num(parser: argparse.ArgumentParser, default: int, help: str) -> None:
    """--num (Magenta's --num_outputs): how many grooves."""
    parser.add_argument("--num", "--num_outputs", dest="num", type=int, default=default, help=help)


def add_training(parser: argparse.ArgumentParser, required: bool) -> None:
    """--config, --steps (Magenta's --num_steps), --batch-size and --precision.

    Args:
      required: --config and --steps must be given; else groovae_4bar and its own steps.
    """
    parser.add_argument("--config", required=required, default=None if required
                        else "groovae_4bar", help="a CONFIG_MAP name, e.g. groovae_4bar")
    parser.add_argument("--steps", "--num_steps", dest="steps", type=int, required=required,
                        help="total steps to reach; a rerun continues")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="auto",
        help="compute precision (variables stay float32); auto: a run being continued keeps "
        "its own, a new one takes bfloat16 only where the hardware has native bf16 units",
    )
