"""Tests for helpers/constants.py: the drum maps, the [steps, 27] layout and outputs/' folder names."""

from pathlib import Path

from helpers import constants


def test_the_two_drum_maps_have_one_tuple_per_class_and_no_pitch_twice():
    for pitch_classes in (
        constants.ROLAND_DRUM_PITCH_CLASSES,
        constants.REDUCED_DRUM_PITCH_CLASSES,
    ):
        assert len(pitch_classes) == constants.NUM_DRUM_CLASSES == len(constants.DRUM_CLASS_NAMES)
        pitches = [p for drum in pitch_classes for p in drum]
        assert len(pitches) == len(set(pitches))


def test_the_step_layout_is_hits_then_velocities_then_offsets():
    steps = list(range(constants.GROOVE_DEPTH))
    assert steps[constants.HITS] + steps[constants.VELOCITIES] + steps[constants.OFFSETS] == steps
    assert constants.WINDOW_STEPS == 64 and constants.GROOVE_DEPTH == 27


def test_outputs_folders_are_named_under_the_outputs_folder(tmp_path):
    assert constants.cache_dir(tmp_path) == tmp_path / "cache"
    assert constants.run_dir(tmp_path, "tiny") == tmp_path / "runs" / "tiny"
    seeded = constants.seeded_samples_dir(tmp_path, "tiny-step2", 0.5, 0, 120.0)
    assert seeded == tmp_path / "samples" / "tiny-step2-T0.5-seed0-120bpm"
    assert constants.settings_stem(1.0, 97.5) == "T1-97.5bpm"


def test_next_free_skips_folders_that_exist(tmp_path):
    (tmp_path / "take-001").mkdir()
    (tmp_path / "take-002").mkdir()
    assert constants.next_free(tmp_path, "take") == tmp_path / "take-003"


def test_groove_paths_widen_past_99():
    assert [p.name for p in constants.groove_paths("out", 2)] == ["groove_01.mid", "groove_02.mid"]
    wide = constants.groove_paths("out", 100, prefix="take")
    assert wide[0] == Path("out") / "take_001.mid" and wide[-1].name == "take_100.mid"
