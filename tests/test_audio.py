"""Tests for helpers/audio.py: MIDI files, audio with and without FluidSynth, WAV files."""

import logging
import subprocess
import sys
import wave

import numpy as np
import pytest
from conftest import REPO

from helpers import audio


def test_write_midi_round_trips_and_refuses_to_overwrite(tmp_path, make_drums):
    import note_seq

    ns = make_drums([(36, 100, 0.0, 0.125), (38, 80, 0.5, 0.625)])
    path = audio.write_midi(ns, tmp_path / "g.mid")
    back = note_seq.midi_file_to_note_sequence(str(path))
    assert [(n.pitch, n.velocity) for n in back.notes] == [(36, 100), (38, 80)]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        audio.write_midi(ns, path)
    audio.write_midi(ns, path, overwrite=True)


@pytest.mark.parametrize("backend", ["fluidsynth", "numpy"])
def test_synthesize_onsets_where_the_notes_are(backend, monkeypatch, make_drums):
    if backend == "numpy":
        monkeypatch.setattr(audio, "_load_fluidsynth", lambda: None)
    elif audio._load_fluidsynth() is None or audio.find_soundfont() is None:
        pytest.skip("FluidSynth or a GM soundfont is not installed")
    ns = make_drums([(36, 120, 0.0, 0.1), (38, 120, 1.0, 1.1)])
    sound = audio.synthesize(ns, sample_rate=16000)
    assert sound.dtype == np.float32 and sound.ndim == 1
    assert len(sound) == pytest.approx(16000 * (1.1 + audio.TAIL_SECONDS), abs=16000 * 0.01)
    np.testing.assert_allclose(np.abs(sound).max(), 0.9, atol=1e-4)
    quiet_before_snare = np.abs(sound[int(0.95 * 16000) : int(0.99 * 16000)]).max()
    loud_at_snare = np.abs(sound[16000 : int(1.05 * 16000)]).max()
    assert loud_at_snare > 4 * quiet_before_snare


def test_synthesize_fallback_warns_once(monkeypatch, make_drums, caplog):
    monkeypatch.setattr(audio, "_load_fluidsynth", lambda: None)
    monkeypatch.setattr(audio, "_fallback_warned", False)
    ns = make_drums([(42, 90, 0.0, 0.1)])
    with caplog.at_level(logging.WARNING, logger="helpers.audio"):
        audio.synthesize(ns)
        audio.synthesize(ns)
    warnings = [r for r in caplog.records if "fluidsynth" in r.getMessage().lower()]
    assert len(warnings) == 1 and "apt-get install fluidsynth" in warnings[0].getMessage()


def test_synthesize_fallback_every_drum_class_sounds(monkeypatch, make_drums):
    monkeypatch.setattr(audio, "_load_fluidsynth", lambda: None)
    pitches = [36, 38, 42, 46, 45, 48, 50, 49, 51]
    for pitch in pitches:
        sound = audio.synthesize(make_drums([(pitch, 100, 0.0, 0.1)]), sample_rate=8000)
        assert np.all(np.isfinite(sound)) and np.abs(sound).max() == pytest.approx(0.9, abs=1e-4)


def test_synthesize_empty_sequence_is_silence(monkeypatch, make_drums):
    monkeypatch.setattr(audio, "_load_fluidsynth", lambda: None)
    sound = audio.synthesize(make_drums([]), sample_rate=8000)
    assert len(sound) == 8000 and not sound.any()


def test_synthesize_without_libfluidsynth_does_not_crash(tmp_path):
    # A process where ctypes finds no libfluidsynth: pyfluidsynth's import raises, we fall back.
    script = (
        "import ctypes.util; ctypes.util.find_library = lambda name: None\n"
        "from helpers import audio\n"
        "import sys; sys.path.insert(0, 'tests')  # Colab's IPython has a `tests` package\n"
        "from conftest import drum_sequence\n"
        "sound = audio.synthesize(drum_sequence([(36, 100, 0.0, 0.1)]), sample_rate=8000)\n"
        "assert audio._fallback_warned and sound.any()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "synthetic drum kit" in done.stderr


def test_save_wav_reads_back(tmp_path):
    sound = np.sin(np.linspace(0, 100, 800)).astype(np.float32) * 0.5
    path = audio.save_wav(tmp_path / "a.wav", sound, 8000)
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        back = np.frombuffer(wav.readframes(wav.getnframes()), "<i2") / 32767
    np.testing.assert_allclose(back, sound, atol=1 / 32767)
    with pytest.raises(FileExistsError):
        audio.save_wav(path, sound, 8000)


def test_find_soundfont_tries_the_given_file_first_and_reads_no_environment(tmp_path, monkeypatch):
    font = tmp_path / "kit.sf2"
    font.write_bytes(b"RIFF")
    system = audio.find_soundfont()
    assert audio.find_soundfont(font) == font
    assert audio.find_soundfont(tmp_path / "missing.sf2") == system
    # The command lines and notebooks read $GROOVAE_SOUNDFONT and pass it; the library does not.
    monkeypatch.setenv(audio.SOUNDFONT_ENV, str(font))
    assert audio.find_soundfont() == system
