"""Tests for helpers/pipeline.py: the main job, preprocess -> train -> five grooves."""

import note_seq
import pandas as pd
import pytest
from conftest import random_grooves

from helpers import data, pipeline
from helpers import train as training
from helpers.constants import DEFAULT_QPM, NUM_GROOVES, REDUCED_DRUM_PITCH_CLASSES

FOUR_BARS = 16 * 60.0 / DEFAULT_QPM  # seconds of one decoded groove


@pytest.fixture
def random_gmd(monkeypatch):
    """GMD stays out of the unit tests: both the summary and train's loader get random grooves."""
    splits = {"train": random_grooves(32, seed=6), "validation": random_grooves(16, seed=7)}
    summary = pd.DataFrame(
        {"performances": [1, 1], "clips": [1, 1], "windows": [32, 16]},
        index=pd.Index(["train", "validation"], name="split"),
    )
    monkeypatch.setattr(data, "groove_4bar_summary", lambda *a, **k: summary)
    monkeypatch.setattr(training, "load_groove_4bar", lambda split, *a, **k: splits[split])


# "--outputs" is the spelling `make run` users typed before --outputs-dir.
@pytest.mark.parametrize("outputs_flag", ["--outputs-dir", "--outputs"])
def test_main_tiny_trains_and_writes_five_grooves(tmp_path, random_gmd, outputs_flag):
    paths = pipeline.main(["--config", "tiny", "--steps", "2", outputs_flag, str(tmp_path)])
    assert training.latest_checkpoint(tmp_path / "runs" / "tiny").name == "ckpt-000000002.npz"
    assert len(paths) == NUM_GROOVES == 5
    drum_pitches = {pitch for pitches in REDUCED_DRUM_PITCH_CLASSES for pitch in pitches}
    patterns = []
    for path in paths:
        assert path.is_relative_to(tmp_path / "samples")
        notes = note_seq.midi_file_to_note_sequence(str(path)).notes
        assert notes and all(n.is_drum and n.pitch in drum_pitches for n in notes)
        starts = [n.start_time for n in notes]
        assert 0.0 <= min(starts) and max(starts) < FOUR_BARS
        patterns.append(frozenset((n.pitch, round(n.start_time, 3)) for n in notes))
    assert len(set(patterns)) == 5


def test_main_again_resumes_and_finds_its_seeded_grooves(tmp_path, random_gmd):
    argv = ["--config", "tiny", "--steps", "2", "--outputs-dir", str(tmp_path), "--seed", "1"]
    first = pipeline.main(argv)
    written = {p: p.stat().st_mtime_ns for p in first}
    again = pipeline.main(argv)
    assert again == first and {p: p.stat().st_mtime_ns for p in again} == written
