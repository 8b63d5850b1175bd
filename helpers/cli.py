"""The command lines' shared kit: their parser, the flags several of them take (each spelled
once, Magenta's spellings as aliases), and how a command ends on a user's error (one `error:`
line) or a bug (its traceback)."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from helpers.config import CONFIG_FILE, CONFIG_MAP, PRECISIONS
from helpers.constants import (
    AUDIO_SUFFIXES,
    DATA_DIR_ENV,
    DEFAULT_TEMPERATURE,
    GMD_ZIP_NAME,
    MIDI_HEADER,
    OUTPUTS_DIR,
    SOUNDFONT_ENV,
)


def command_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The parser of `python -m helpers.<module>`, described by its docstring's first line."""
    return argparse.ArgumentParser(
        prog=f"python -m helpers.{module}", description=doc.split("\n")[0]
    )


def add_run_dir(parser: argparse.ArgumentParser, *aliases: str, **kwargs) -> None:
    """--run-dir (Magenta's --run_dir): a run folder, config.json + history.csv + checkpoints/.

    Args:
      aliases: the spellings this command line took before (e.g. --out, --checkpoint).
      kwargs: for add_argument (required=, help=).
    """
    kwargs.setdefault("help", "run folder: config.json, history.csv, checkpoints/")
    parser.add_argument("--run-dir", "--run_dir", *aliases, dest="run_dir", **kwargs)


def run_folder(text: str) -> str:
    """argparse's type for a run to read (evaluate's --run-dir): a folder holding config.json,
    checked before the command loads the framework to read its checkpoints."""
    path, wanted = Path(text), "give a run folder python -m helpers.train wrote"
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist; {wanted}")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; {wanted}")
    if not (path / CONFIG_FILE).is_file():
        raise argparse.ArgumentTypeError(f"{text} has no {CONFIG_FILE}; {wanted}")
    return text


def add_outputs_dir(parser: argparse.ArgumentParser, *aliases: str) -> None:
    """--outputs-dir: the folder holding cache/, runs/ and samples/ (default the repository's)."""
    parser.add_argument(
        "--outputs-dir",
        "--outputs_dir",
        *aliases,
        dest="outputs_dir",
        default=str(OUTPUTS_DIR),
        help="folder holding cache/, runs/ and samples/ (default: %(default)s)",
    )


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    """--data-dir: GMD's folder or zip; not given, the library reads $GROOVE_DATA_DIR, else the
    user cache or download (helpers.gmd.find_gmd)."""
    parser.add_argument(
        "--data-dir",
        "--data_dir",
        dest="data_dir",
        type=gmd_path,
        help=f"Groove MIDI Dataset folder or zip (default: ${DATA_DIR_ENV}, else download once)",
    )


ZIP_HEADER = b"PK\x03\x04"  # a zip file's first four bytes


def gmd_path(text: str) -> str:
    """argparse's type for --data-dir: a path that exists and, if a file, is a zip by its first
    bytes (a folder's contents are looked into once the data is read)."""
    path, wanted = Path(text).expanduser(), f"give GMD's folder (info.csv) or its {GMD_ZIP_NAME}"
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist; {wanted}")
    if path.is_file():
        with path.open("rb") as opened:
            head = opened.read(len(ZIP_HEADER))
        if not head:
            raise argparse.ArgumentTypeError(f"{text} is empty (0 bytes); {wanted}")
        if head != ZIP_HEADER:
            raise argparse.ArgumentTypeError(f"{text} is not a zip file; {wanted}")
    return text


def add_soundfont(parser: argparse.ArgumentParser) -> None:
    """--soundfont: a General MIDI .sf2 for the .wav files; default $GROOVAE_SOUNDFONT."""
    parser.add_argument(
        "--soundfont",
        default=os.environ.get(SOUNDFONT_ENV) or None,
        help=f"General MIDI .sf2 for the audio (default: ${SOUNDFONT_ENV}, else the system's)",
    )


def add_sampling(parser: argparse.ArgumentParser, num_default: int, num_help: str) -> None:
    """--num (Magenta's --num_outputs): how many grooves; --temperature and --seed: how they are
    drawn. check_sampling checks them."""
    parser.add_argument(
        "--num", "--num_outputs", dest="num", type=int, default=num_default, help=num_help
    )
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    parser.add_argument("--seed", type=int, default=None)


def check_sampling(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses (parser.error) add_sampling's flags out of range, before any work starts."""
    if args.num < 1:
        parser.error(f"--num must be at least 1, got {args.num}")
    # Take i of --num plays with seed + i.
    check_range(parser, "--seed", args.seed, 0, MAX_SEED - args.num + 1)
    if not (math.isfinite(args.temperature) and args.temperature > 0):
        parser.error(f"--temperature must be a finite number above 0, got {args.temperature}")


def count(text: str) -> int:
    """argparse's type for a count (steps, a batch): a whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_training(parser: argparse.ArgumentParser, required: bool) -> None:
    """--config, --steps (Magenta's --num_steps), --batch-size and --precision.

    Args:
      required: --config and --steps must be given; else groovae_4bar and its own steps.
    """
    parser.add_argument(
        "--config",
        required=required,
        default=None if required else "groovae_4bar",
        choices=sorted(CONFIG_MAP),
        metavar="CONFIG",
        help="a CONFIG_MAP name, e.g. groovae_4bar",
    )
    parser.add_argument(
        "--steps",
        "--num_steps",
        dest="steps",
        type=count,
        required=required,
        help="total steps to reach; a rerun continues",
    )
    parser.add_argument("--batch-size", type=count)
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="compute precision (variables stay float32; float16 scales the loss); auto: a run "
        "being continued keeps its own, a new one takes bfloat16 where the hardware has native "
        "bf16 units, float16 on GPUs with float16 tensor cores only (T4, V100), else float32",
    )


def add_process_flags(parser: argparse.ArgumentParser) -> None:
    """--coordinator, --num-processes, --process-id: this process's place among several (JAX,
    TensorFlow)."""
    parser.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="process 0's address, reachable by every process, to train one run over several "
        "(KERAS_BACKEND=jax or tensorflow; on tensorflow process i listens at PORT + i of this "
        "machine: for several machines give $TF_CONFIG); 'auto' on a Cloud TPU pod slice (jax). "
        "Default: $TF_CONFIG, else alone",
    )
    parser.add_argument("--num-processes", type=int, help="processes training the run together")
    parser.add_argument("--process-id", type=int, help="this process, 0 to --num-processes - 1")


# Errors a user's own paths cause, besides the project's: an output name taken (nothing is ever
# overwritten) or a folder the user may not write to.
PATH_ERRORS = (FileExistsError, PermissionError)
MIN_FREE_BYTES = 2**20  # a folder on a disk with less free space than this is refused at once
MAX_SEED = 2**32 - 1  # numpy's seeds


def check_output_folder(parser: argparse.ArgumentParser, flag: str, folder: str) -> None:
    """Refuses (parser.error: one line naming `flag`) an output folder that is a file, cannot be
    made (under a file, or where nothing may be written, e.g. /proc) or sits on a full disk,
    before any work starts. Nothing is made here."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        parser.error(f"{flag} {folder} is a file; give a folder (it is made if missing)")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        parser.error(f"{flag} {folder} cannot be made: {existing} is a file")
    try:
        tempfile.TemporaryDirectory(dir=existing).cleanup()  # the one sure test of writing there
    except OSError as error:
        parser.error(f"{flag} {folder} cannot be written: {error.strerror} in {existing}")
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        parser.error(f"{flag} {folder} is on a full disk ({free:,} bytes free); free some space")


def check_input_file(parser: argparse.ArgumentParser, flag: str, path: str) -> None:
    """Refuses (parser.error: one line naming `flag` and the file) an input file that is missing,
    a folder, unreadable, empty or, unless named as a recording (AUDIO_SUFFIXES), not a Standard
    MIDI File by its first bytes. Reads those bytes only: the libraries that read the whole file
    take seconds to load, and a file refused here is refused at once."""
    where, wanted = f"{flag} ({path})", "give a MIDI file (.mid) or a recording (.wav, .mp3, ...)"
    file = Path(path)
    if not file.exists():
        parser.error(f"{where} does not exist; {wanted}")
    if file.is_dir():
        parser.error(f"{where} is a folder; {wanted}")
    try:
        with file.open("rb") as opened:
            head = opened.read(len(MIDI_HEADER))
    except OSError as error:
        parser.error(f"{where} cannot be read: {error.strerror}")
    if not head:
        parser.error(f"{where} is empty (0 bytes); {wanted}")
    if file.suffix.lower() not in AUDIO_SUFFIXES and head != MIDI_HEADER:
        parser.error(
            f"{where} is not a MIDI file: it starts {head!r}, where a Standard MIDI File starts "
            f"{MIDI_HEADER!r}; {wanted}"
        )


def check_range(
    parser: argparse.ArgumentParser, flag: str, value: float | None, low: float, high: float
) -> None:
    """Refuses (parser.error) a `flag` whose value is not a number from `low` to `high`."""
    if value is not None and not (math.isfinite(value) and low <= value <= high):
        low, high = (f"{x:.0f}" if float(x).is_integer() else f"{x:.6g}" for x in (low, high))
        parser.error(f"{flag} must be from {low} to {high}, got {value}")


def is_user_error(error: BaseException) -> bool:
    """An error whose message is all the user needs: one of the project's own (an `...Error`
    class defined in helpers/, e.g. TrainError, SampleError, DatasetNotFoundError) or a PATH_ERRORS
    one. Anything else is a bug, and its traceback is what fixes it."""
    return isinstance(error, PATH_ERRORS) or any(
        _module_of(cls).partition(".")[0] == "helpers" and cls.__name__.endswith("Error")
        for cls in type(error).__mro__
    )


def _module_of(cls: type) -> str:
    """The module defining `cls`, by its own name also when `python -m` runs it as __main__."""
    if cls.__module__ != "__main__":
        return cls.__module__
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name if spec else "__main__"


def run_command(main: Callable[[], object]) -> None:
    """Runs a command line's `main` as `python -m helpers.<module>` does: a user error ends it
    with status 1 and one line, `error: ...`, on stderr; Ctrl-C with status 130; a bug keeps its
    traceback.
    """
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as error:
        if not is_user_error(error):
            raise
        print("error: " + " ".join(str(error).split()), file=sys.stderr)
        raise SystemExit(1) from None
