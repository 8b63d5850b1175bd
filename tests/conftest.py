"""Shared test builders: NoteSequences from note tuples, the GMD location, the tiny config."""

import os
from pathlib import Path

import note_seq
import pytest

from helpers.constants import MIDI_DRUM_CHANNEL

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PARITY_DIR = SHARED / "parity"


def drum_sequence(notes, qpm=120.0, time_signature=(4, 4)):
    """A NoteSequence from (pitch, velocity, start_s, end_s) tuples, all on the drum channel."""
    ns = note_seq.NoteSequence(ticks_per_quarter=220)
    ns.tempos.add(qpm=qpm, time=0.0)
    if time_signature is not None:
        ns.time_signatures.add(numerator=time_signature[0], denominator=time_signature[1], time=0.0)
    for pitch, velocity, start, end in notes:
        ns.notes.add(
            pitch=pitch,
            velocity=velocity,
            start_time=start,
            end_time=end,
            instrument=MIDI_DRUM_CHANNEL,
            is_drum=True,
        )
    ns.total_time = max((n.end_time for n in ns.notes), default=0.0)
    return ns


@pytest.fixture
def make_drums():
    return drum_sequence


@pytest.fixture(scope="session")
def gmd_dir() -> Path:
    """The GMD folder from GROOVE_DATA_DIR or ../shared; tests that need it skip without it."""
    path = Path(os.environ.get("GROOVE_DATA_DIR", SHARED / "data" / "groove"))
    if not (path / "info.csv").exists():
        pytest.skip(f"Groove MIDI Dataset not found at {path} (set GROOVE_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    if not PARITY_DIR.exists():
        pytest.skip(f"parity arrays not found at {PARITY_DIR}")
    return PARITY_DIR


@pytest.fixture
def tiny_config():
    from helpers.config import get_config

    return get_config("tiny")
