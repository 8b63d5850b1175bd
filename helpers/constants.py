"""The fixed facts every module shares: the drum map, the 16th-note grid, the [steps, 27] layout,
GMD's address, and the layout of outputs/ (cache/, runs/, samples/)."""

from __future__ import annotations

import os
from pathlib import Path

# Drum classes, one tuple of MIDI pitches per class, in the model's class order. The first
# pitch of each tuple is the one written back on output (spec §2.1).
DRUM_CLASS_NAMES = (
    "kick",
    "snare",
    "closed hi-hat",
    "open hi-hat",
    "low tom",
    "mid tom",
    "high tom",
    "crash",
    "ride",
)

# Magenta's ROLAND_DRUM_PITCH_CLASSES: the map groovae_4bar trains and evaluates with.
ROLAND_DRUM_PITCH_CLASSES = (
    (36,),  # kick
    (38, 37, 40),  # snare, side stick, rim
    (42, 22, 44),  # closed hi-hat, its edge, pedal
    (46, 26),  # open hi-hat, its edge
    (43, 58),  # low tom (floor tom, vibraslap on the TD-11)
    (47, 45),  # mid tom
    (50, 48),  # high tom
    (49, 52, 55, 57),  # crash
    (51, 53, 59),  # ride, bell, edge
)

# Magenta's REDUCED_DRUM_PITCH_CLASSES (note-seq's DEFAULT_DRUM_TYPE_PITCHES): the map used in
# 'infer' mode. It disagrees with ROLAND on GMD's 45, 48 and 58 (spec §2.1).
REDUCED_DRUM_PITCH_CLASSES = (
    (36, 35),
    (38, 27, 28, 31, 32, 33, 34, 37, 39, 40, 56, 65, 66, 75, 85),
    (42, 44, 54, 68, 69, 70, 71, 73, 78, 80, 22),
    (46, 67, 72, 74, 79, 81, 26),
    (45, 29, 41, 43, 61, 64, 84),
    (48, 47, 60, 63, 77, 86, 87),
    (50, 30, 62, 76, 83),
    (49, 52, 55, 57, 58),
    (51, 53, 59, 82),
)

NUM_DRUM_CLASSES = 9
STEPS_PER_QUARTER = 4
QUARTERS_PER_BAR = 4
STEPS_PER_BAR = STEPS_PER_QUARTER * QUARTERS_PER_BAR  # 16 sixteenth notes
WINDOW_BARS = 4
WINDOW_STEPS = STEPS_PER_BAR * WINDOW_BARS  # 64 steps in a 4-bar groove

# Feature layout of one step: [hits(9) | velocities(9) | offsets(9)], grouped by feature.
HITS = slice(0, NUM_DRUM_CLASSES)
VELOCITIES = slice(NUM_DRUM_CLASSES, 2 * NUM_DRUM_CLASSES)
OFFSETS = slice(2 * NUM_DRUM_CLASSES, 3 * NUM_DRUM_CLASSES)
GROOVE_DEPTH = 3 * NUM_DRUM_CLASSES  # 27

MIDI_DRUM_CHANNEL = 9  # channel 10 in 1-based MIDI numbering
MAX_MIDI_VELOCITY = 127
SOUNDFONT_ENV = "GROOVAE_SOUNDFONT"  # a General MIDI .sf2 the user prefers
DATA_DIR_ENV = "GROOVE_DATA_DIR"  # a GMD folder (or its zip) the user keeps
DEFAULT_QPM = 120.0  # Magenta writes every decoded groove at 120 quarter notes per minute
# The fastest tempo a groove may have, in quarter notes per minute: a file above it has a broken
# tempo (MIDI's fastest, 1 microsecond a quarter, is 60,000,000) that would cram every note into
# a few microseconds.
MAX_QPM = 1000.0
# The slowest tempo a MIDI file holds: 16,777,215 microseconds a quarter (a 3-byte number).
MIDI_SLOWEST_QPM = 60e6 / 0xFFFFFF
# The longest groove the tools take, in minutes: their audio must fit in memory.
MAX_GROOVE_MINUTES = 30.0
DEFAULT_TEMPERATURE = 0.5  # music_vae_generate.py's default (spec §5)
NUM_GROOVES = 5  # music_vae_generate.py's --num_outputs
MIDI_HEADER = b"MThd"  # a Standard MIDI File's first four bytes
# Recordings drumify hears (any other file is read as MIDI).
AUDIO_SUFFIXES = (".wav", ".mp3", ".ogg", ".flac", ".m4a", ".aiff", ".aif", ".webm")

GMD_SPLITS = ("train", "validation", "test")
GMD_ZIP_URL = (
    "https://storage.googleapis.com/magentadata/datasets/groove/groove-v1.0.0-midionly.zip"
)
GMD_ZIP_NAME = "groove-v1.0.0-midionly.zip"
GMD_ZIP_SHA256 = "651cbc524ffb891be1a3e46d89dc82a1cecb09a57c748c7b45b844c4841dcc1e"

# Everything the suite writes (caches, runs, samples) goes under the repository's outputs/ folder.
OUTPUTS_DIR = Path(__file__).resolve().parents[1] / "outputs"


CACHE = "cache"  # GMD's (and your MIDI folders') windows as .npz, per split
RUNS = "runs"  # one folder per run: config.json, history.csv, checkpoints/
SAMPLES = "samples"  # one folder per set of written grooves
GROOVE_PREFIX = "groove"  # groove_01.mid, groove_02.mid, ...


def cache_dir(outputs_dir: str | os.PathLike = OUTPUTS_DIR) -> Path:
    """outputs_dir/cache: the window cache."""
    return Path(outputs_dir) / CACHE


def runs_dir(outputs_dir: str | os.PathLike = OUTPUTS_DIR) -> Path:
    """outputs_dir/runs: the folder holding every run."""
    return Path(outputs_dir) / RUNS


def run_dir(outputs_dir: str | os.PathLike, name: str) -> Path:
    """outputs_dir/runs/<name>: the run folder of a config name (or any run name)."""
    return runs_dir(outputs_dir) / name


def samples_dir(outputs_dir: str | os.PathLike = OUTPUTS_DIR) -> Path:
    """outputs_dir/samples: the folder holding every set of written grooves."""
    return Path(outputs_dir) / SAMPLES


def settings_stem(temperature: float, qpm: float, seed: int | None = None) -> str:
    """'T0.5-seed0-120bpm' ('T0.5-120bpm' unseeded): sampling settings in a folder name."""
    seeded = "" if seed is None else f"-seed{seed}"
    return f"T{temperature:g}{seeded}-{qpm:g}bpm"


def seeded_samples_dir(
    outputs_dir: str | os.PathLike, label: str, temperature: float, seed: int, qpm: float
) -> Path:
    """outputs_dir/samples/<model label>-T<temperature>-seed<seed>-<qpm>bpm.

    The same model and settings give the same grooves, so they always land in the same folder.
    """
    return samples_dir(outputs_dir) / f"{label}-{settings_stem(temperature, qpm, seed)}"


def next_free(folder: str | os.PathLike, stem: str) -> Path:
    """folder/stem-001, -002, ...: the first that does not exist, so nothing is overwritten."""
    index = 1
    while (Path(folder) / f"{stem}-{index:03d}").exists():
        index += 1
    return Path(folder) / f"{stem}-{index:03d}"


def groove_paths(out_dir: str | os.PathLike, n: int, prefix: str = GROOVE_PREFIX) -> list[Path]:
    """out_dir/{prefix}_01.mid, _02.mid, ...: the names grooves are written under (wider past 99)."""
    width = max(2, len(str(n)))
    return [Path(out_dir) / f"{prefix}_{i:0{width}d}.mid" for i in range(1, n + 1)]
