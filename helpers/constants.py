"""Shared numbers of the groove representation: drum classes, grid and tensor layout."""

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
DEFAULT_QPM = 120.0  # Magenta writes every decoded groove at 120 quarter notes per minute

GMD_SPLITS = ("train", "validation", "test")
GMD_ZIP_URL = (
    "https://storage.googleapis.com/magentadata/datasets/groove/groove-v1.0.0-midionly.zip"
)
GMD_ZIP_NAME = "groove-v1.0.0-midionly.zip"
GMD_ZIP_SHA256 = "651cbc524ffb891be1a3e46d89dc82a1cecb09a57c748c7b45b844c4841dcc1e"

# Everything the suite writes (caches, runs, samples) goes under the repository's outputs/ folder.
OUTPUTS_DIR = Path(__file__).resolve().parents[1] / "outputs"
