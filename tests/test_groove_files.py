"""Tests for helpers/render.py: grooves as MIDI, PNG and WAV, and the one overwrite rule."""

import wave

import note_seq
import numpy as np
import pytest

from helpers import render, sample, verbs


@pytest.fixture(scope="module")
def groovae(tiny_run):
    return sample.TrainedModel(tiny_run)


def _two_grooves(make_drums):
    """Two 4-bar grooves: a kick on every downbeat, then a snare on every backbeat."""
    kicks = make_drums([(36, 100, bar * 2.0, bar * 2.0 + 0.1) for bar in range(4)])
    snares = make_drums([(38, 90, beat * 0.5, beat * 0.5 + 0.1) for beat in range(1, 16, 2)])
    return [kicks, snares]


def _four_bars(make_drums):
    """Kick on every downbeat of 4 bars at 120 qpm, snare on beat 2 of bar 1: 5 notes."""
    notes = [(36, 100, i * 2.0, i * 2.0 + 0.1) for i in range(4)]
    return make_drums(notes + [(38, 90, 0.5, 0.6)])


def test_save_grooves_writes_midi_png_and_wav_per_groove(tmp_path, make_drums):
    sequences = _two_grooves(make_drums)
    paths = render.save_grooves(sequences, tmp_path / "out")
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
        render.save_grooves(_two_grooves(make_drums), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["groove_02.mid"]
    assert (tmp_path / "groove_02.mid").read_bytes() == b"keep"


def test_save_grooves_existing_wav_refused_and_nothing_written(tmp_path, make_drums):
    (tmp_path / "groove_02.wav").write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="groove_02.wav"):
        render.save_grooves(_two_grooves(make_drums), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["groove_02.wav"]


def test_write_samples_seeded_reuses_its_folder(groovae, tmp_path):
    grooves, _, paths = verbs.write_samples(groovae, num=2, seed=3, outputs_dir=tmp_path)
    folder = paths[0].parent
    assert folder.parent == tmp_path / "samples" and "-seed3-" in folder.name
    written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert len(written) == 6  # .mid, .png and .wav per groove
    again, _, paths_again = verbs.write_samples(groovae, num=2, seed=3, outputs_dir=tmp_path)
    assert paths_again == paths
    np.testing.assert_array_equal(again, grooves)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == written


def test_write_samples_unseeded_takes_new_numbered_folders(groovae, tmp_path):
    first = verbs.write_samples(groovae, num=1, outputs_dir=tmp_path)[2][0].parent
    second = verbs.write_samples(groovae, num=1, outputs_dir=tmp_path)[2][0].parent
    assert first.name.endswith("-001") and second.name.endswith("-002")
    assert first.name[:-4] == second.name[:-4] and first.parent == second.parent
    assert all(len(list(folder.iterdir())) == 3 for folder in (first, second))


def test_save_grooves_midi_only_numbers_files_and_refuses_to_overwrite(tmp_path, make_drums):
    sequences = [_four_bars(make_drums) for _ in range(3)]
    midi_only = {"suffixes": (".mid",)}
    paths = render.save_grooves(sequences, tmp_path / "out", **midi_only)
    assert [p.name for p in paths] == ["groove_01.mid", "groove_02.mid", "groove_03.mid"]
    back = note_seq.midi_file_to_note_sequence(str(paths[0]))
    assert len(back.notes) == 5
    (tmp_path / "out" / "groove_02.mid").write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="groove_01.mid"):
        render.save_grooves(sequences, tmp_path / "out", **midi_only)
    assert (tmp_path / "out" / "groove_02.mid").read_bytes() == b"keep"
    render.save_grooves(sequences, tmp_path / "out", overwrite=True, **midi_only)
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir()) == [".mid"] * 3


def test_save_grooves_more_than_99_get_wider_numbers(tmp_path, make_drums):
    paths = render.save_grooves([_four_bars(make_drums)] * 100, tmp_path, suffixes=(".mid",))
    assert paths[0].name == "groove_001.mid" and paths[-1].name == "groove_100.mid"


def test_write_samples_adds_only_missing_audio(groovae, tmp_path):
    _, _, paths = verbs.write_samples(groovae, num=2, seed=3, outputs_dir=tmp_path)
    midi_before = paths[0].read_bytes()
    paths[1].with_suffix(".wav").unlink()
    verbs.write_samples(groovae, num=2, seed=3, outputs_dir=tmp_path)
    assert paths[1].with_suffix(".wav").exists() and paths[0].read_bytes() == midi_before


def test_save_grooves_hands_the_soundfont_to_the_synthesizer(tmp_path, make_drums, monkeypatch):
    fonts = []
    real = render.audio.synthesize

    def recording(sequence, sample_rate=22050, soundfont=None):
        fonts.append(soundfont)
        return real(sequence, sample_rate, soundfont)

    monkeypatch.setattr(render.audio, "synthesize", recording)
    render.save_grooves(_two_grooves(make_drums), tmp_path, soundfont=tmp_path / "kit.sf2")
    assert fonts == [tmp_path / "kit.sf2"] * 2
