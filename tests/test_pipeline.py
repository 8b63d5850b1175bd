"""Tests for helpers/pipeline.py: saved grooves, sample folders, notebook tables, the main job."""

import wave

import note_seq
import numpy as np
import pandas as pd
import pytest
from conftest import random_grooves

from helpers import data, pipeline, sample
from helpers.config import get_config
from helpers import train as training
from helpers.constants import DEFAULT_QPM, HITS, OFFSETS, REDUCED_DRUM_PITCH_CLASSES, VELOCITIES

FOUR_BARS = 16 * 60.0 / DEFAULT_QPM  # seconds of one decoded groove


@pytest.fixture(scope="module")
def groovae(tiny_run):
    return sample.TrainedModel(tiny_run)


def _two_grooves(make_drums):
    """Two 4-bar grooves: a kick on every downbeat, then a snare on every backbeat."""
    kicks = make_drums([(36, 100, bar * 2.0, bar * 2.0 + 0.1) for bar in range(4)])
    snares = make_drums([(38, 90, beat * 0.5, beat * 0.5 + 0.1) for beat in range(1, 16, 2)])
    return [kicks, snares]


def test_save_grooves_writes_midi_png_and_wav_per_groove(tmp_path, make_drums):
    sequences = _two_grooves(make_drums)
    paths = pipeline.save_grooves(sequences, tmp_path / "out")
    assert [p.name for p in paths] == ["groove_01.mid", "groove_02.mid"]
    for path, sequence in zip(paths, sequences):
        back = note_seq.midi_file_to_note_sequence(str(path))
        assert sorted(n.pitch for n in back.notes) == sorted(n.pitch for n in sequence.notes)
        assert path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with wave.open(str(path.with_suffix(".wav"))) as audio:
            assert audio.getnchannels() == 1 and audio.getnframes() > audio.getframerate()
    assert len(list((tmp_path / "out").iterdir())) == 6


def test_save_grooves_existing_midi_refused_and_nothing_written(tmp_path, make_drums):
    (tmp_path / "groove_02.mid").write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="groove_02.mid"):
        pipeline.save_grooves(_two_grooves(make_drums), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["groove_02.mid"]
    assert (tmp_path / "groove_02.mid").read_bytes() == b"keep"


def test_save_grooves_existing_wav_refused_and_nothing_written(tmp_path, make_drums):
    (tmp_path / "groove_02.wav").write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="groove_02.wav"):
        pipeline.save_grooves(_two_grooves(make_drums), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["groove_02.wav"]


def test_write_samples_seeded_reuses_its_folder(groovae, tmp_path):
    grooves, _, paths = pipeline.write_samples(groovae, num=2, seed=3, outputs_dir=tmp_path)
    folder = paths[0].parent
    assert folder.parent == tmp_path / "samples" and "-seed3-" in folder.name
    written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert len(written) == 6  # .mid, .png and .wav per groove
    again, _, paths_again = pipeline.write_samples(groovae, num=2, seed=3, outputs_dir=tmp_path)
    assert paths_again == paths
    np.testing.assert_array_equal(again, grooves)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == written


def test_write_samples_unseeded_takes_new_numbered_folders(groovae, tmp_path):
    first = pipeline.write_samples(groovae, num=1, outputs_dir=tmp_path)[2][0].parent
    second = pipeline.write_samples(groovae, num=1, outputs_dir=tmp_path)[2][0].parent
    assert first.name.endswith("-001") and second.name.endswith("-002")
    assert first.name[:-4] == second.name[:-4] and first.parent == second.parent
    assert all(len(list(folder.iterdir())) == 3 for folder in (first, second))


def test_quantized_score_keeps_hits_flat_velocity_no_offsets():
    grooves = random_grooves(3, seed=2)
    before = grooves.copy()
    score = pipeline.quantized_score(grooves, velocity=80)
    np.testing.assert_array_equal(score[..., HITS], grooves[..., HITS])
    np.testing.assert_allclose(score[..., VELOCITIES], grooves[..., HITS] * 80 / 127, rtol=1e-6)
    np.testing.assert_array_equal(score[..., OFFSETS], 0.0)
    np.testing.assert_array_equal(grooves, before)  # input untouched


def test_back_to_back_plays_grooves_in_turn(groovae):
    qpm = 100.0
    sequences = groovae.grooves_to_note_sequences(random_grooves(3, seed=5), qpm)
    joined = pipeline.back_to_back(sequences)
    four_bars = 16 * 60.0 / qpm
    np.testing.assert_allclose(joined.total_time, sum(s.total_time for s in sequences), rtol=1e-9)
    np.testing.assert_allclose(joined.total_time, 3 * four_bars, rtol=1e-9)
    expected = sorted(
        (i * four_bars + n.start_time, n.pitch) for i, s in enumerate(sequences) for n in s.notes
    )
    got = sorted((n.start_time, n.pitch) for n in joined.notes)
    assert [p for _, p in got] == [p for _, p in expected]
    np.testing.assert_allclose([t for t, _ in got], [t for t, _ in expected], atol=1e-9)


def test_novelty_table_finds_an_exact_copy():
    outputs = random_grooves(30, seed=4)
    meta = pd.DataFrame({"midi_filename": [f"perf_{i // 3}.mid" for i in range(30)],
                         "clip": [i % 3 for i in range(30)]})
    split = data.GrooveSplit(outputs=outputs, meta=meta, summary={})
    fresh = random_grooves(1, seed=99)
    queries = np.concatenate([outputs[[4, 17]], fresh])
    table, indices = pipeline.novelty_table(queries, split, k=5)
    assert indices.shape == (3, 5) and list(indices[:2, 0]) == [4, 17]
    assert list(table["groove"]) == ["groove_01", "groove_02", "groove_03"]
    assert list(table["nearest window"][:2]) == ["perf_1.mid clip 1", "perf_5.mid clip 2"]
    brute = ((fresh[:, None, :, HITS] > 0.5) != (outputs[None, :, :, HITS] > 0.5)).sum(axis=(2, 3))
    assert list(table["nearest distance"]) == [0, 0, brute.min()] and brute.min() > 0
    np.testing.assert_array_equal(table["hits"], (queries[..., HITS] > 0.5).sum(axis=(1, 2)))


def test_find_config_run_missing_prints_training_hint(tmp_path, capsys):
    assert pipeline.find_config_run("tiny", tmp_path) is None
    hint = capsys.readouterr().out
    assert "No tiny checkpoint" in hint and "python -m helpers.train --config tiny" in hint


def test_find_config_run_finds_a_trained_run(tiny_run):
    assert pipeline.find_config_run("tiny", tiny_run.parents[1]) == tiny_run


def test_main_tiny_trains_and_writes_five_grooves(tmp_path, monkeypatch):
    splits = {"train": random_grooves(32, seed=6), "validation": random_grooves(16, seed=7)}
    summary = pd.DataFrame({"performances": [1, 1], "clips": [1, 1], "windows": [32, 16]},
                           index=pd.Index(["train", "validation"], name="split"))
    # GMD stays out of the unit tests: both the summary and train's loader get random grooves.
    monkeypatch.setattr(data, "groove_4bar_summary", lambda *a, **k: summary)
    monkeypatch.setattr(training, "load_groove_4bar", lambda split, *a, **k: splits[split])
    paths = pipeline.main(["--config", "tiny", "--steps", "2", "--outputs", str(tmp_path)])
    assert training.latest_checkpoint(tmp_path / "runs" / "tiny").name == "ckpt-000000002.npz"
    assert len(paths) == pipeline.NUM_GROOVES == 5
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


def test_generate_panel_each_click_writes_a_new_folder(groovae, tmp_path):
    panel = pipeline.generate_panel(groovae, tmp_path, num=2, seed=4)
    assert list(tmp_path.iterdir()) == []  # nothing before the first click
    button = panel.children[1]
    button.click()
    button.click()
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders == ["T0.50-seed4-120bpm-001", "T0.50-seed4-120bpm-002"]
    for folder in folders:
        names = sorted(p.name for p in (tmp_path / folder).iterdir())
        assert names == [f"groove_0{i}{ext}" for i in (1, 2) for ext in (".mid", ".png", ".wav")]


@pytest.mark.parametrize("variant", ["humanize", "tapify"])
def test_variant_runs_turn_a_score_into_a_groove(variant, tmp_path):
    """The path of 03's humanize and drumify sections, on tiny runs of each variant."""
    grooves = random_grooves(32)
    run_dir = tmp_path / "runs" / f"groovae_4bar_{variant}"
    config = get_config("tiny", name=f"groovae_4bar_{variant}", **{variant: True})
    training.train(config, run_dir, steps=2, train_data=grooves, validation_data=grooves[:16],
                   progress=False)
    assert pipeline.find_config_run(f"groovae_4bar_{variant}", tmp_path) == run_dir
    groovae = sample.TrainedModel(run_dir)
    score = groovae.grooves_to_note_sequences(pipeline.quantized_score(grooves[:1]))[0]
    transform = sample.humanize if variant == "humanize" else sample.drumify
    played = transform(groovae, score, temperature=0.5, seed=0)
    assert played.notes, f"{variant} played no notes"
    assert all(n.is_drum and 0 <= n.start_time < FOUR_BARS for n in played.notes)
