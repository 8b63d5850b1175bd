"""Tests for helpers/audio.py: MIDI files, audio with and without FluidSynth, WAV files, and
recordings heard as taps (drumify from a WAV)."""

import logging
import re
import subprocess
import sys
import warnings
import wave
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, drum_sequence

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


# --- recordings in: taps for drumify -----------------------------------------------------------

CLICK_RATE = 22050
LEAD_IN_S = 0.3  # silence before the first click, which taps_from_recording moves to 0
# Two-bar (four at 160) tap lines in 16th steps, each with rests (a beat or more without a
# click) and off-beat 16ths: 120 qpm's syncopation is heard by librosa at 161 qpm.
CLICK_TRACKS = {
    84.0: [0, 3, 6, 8, 10, 11, 14, 16, 19, 22, 24, 30, 31],
    120.0: [0, 2, 4, 7, 8, 10, 12, 16, 18, 19, 22, 24, 27, 28, 30],
    137.0: [0, 3, 4, 8, 11, 12, 14, 16, 19, 20, 24, 26, 28, 30, 31],
    160.0: [0, 4, 6, 8, 10, 12, 15, 20, 22, 24, 28, 32, 36, 38, 40, 43, 44, 48, 52, 54, 56, 59, 60],
}
ACCENT_EVERY = 8  # steps: clicks on beats 1 and 3 at full level, the rest at half, as played


def click(rng: np.random.Generator) -> np.ndarray:
    """(660,) float64: a 30 ms click, a 1.5 kHz tone and a little noise, decaying in 6 ms."""
    t = np.arange(int(0.03 * CLICK_RATE)) / CLICK_RATE
    return (np.sin(2 * np.pi * 1500 * t) + 0.3 * rng.uniform(-1, 1, t.size)) * np.exp(-t / 0.006)


def write_clicks(path, steps, qpm: float, bars: int, lead_in_s: float = LEAD_IN_S) -> np.ndarray:
    """A WAV of clicks on the given 16th steps at `qpm`, after `lead_in_s` of silence and followed
    by the rest of `bars` bars; accented every ACCENT_EVERY steps.

    Returns:
      (len(steps),) float64: each click's time in seconds from the first click.
    """
    step_s = 15.0 / qpm
    signal = np.zeros(int((lead_in_s + bars * 16 * step_s + 0.5) * CLICK_RATE))
    sound = click(np.random.default_rng(0))
    for step in steps:
        start = int(round((lead_in_s + step * step_s) * CLICK_RATE))
        level = 1.0 if step % ACCENT_EVERY == 0 else 0.5
        signal[start : start + sound.size] += level * sound
    audio.save_wav(path, 0.8 * signal / max(np.abs(signal).max(), 1e-9), CLICK_RATE)
    return (np.asarray(steps) - steps[0]) * step_s


@pytest.mark.parametrize("qpm", CLICK_TRACKS)
def test_taps_from_recording_finds_every_click_and_the_tempo(tmp_path, qpm):
    steps = CLICK_TRACKS[qpm]
    placed = write_clicks(tmp_path / "clicks.wav", steps, qpm, bars=1 + steps[-1] // 16)
    taps = audio.taps_from_recording(tmp_path / "clicks.wav")
    heard = taps.tempos[0].qpm
    np.testing.assert_allclose(heard, qpm, rtol=0.02)
    assert [(ts.numerator, ts.denominator) for ts in taps.time_signatures] == [(4, 4)]
    starts = np.array([note.start_time for note in taps.notes])
    assert len(starts) == len(steps) and starts[0] == 0.0
    np.testing.assert_allclose(starts, placed, atol=15.0 / qpm)  # one 16th
    # Each tap lands on its own step of the grid at the tempo heard, as the converter reads it.
    np.testing.assert_array_equal(np.round(starts * heard / 15.0), np.subtract(steps, steps[0]))
    assert {note.pitch for note in taps.notes} == {audio.TAP_PITCH}


def test_a_click_at_0_s_is_heard(tmp_path):
    steps = CLICK_TRACKS[120.0]
    write_clicks(tmp_path / "clicks.wav", steps, 120.0, bars=2, lead_in_s=0.0)
    taps = audio.taps_from_recording(tmp_path / "clicks.wav")
    assert len(taps.notes) == len(steps)
    np.testing.assert_allclose(taps.tempos[0].qpm, 120.0, rtol=0.02)


def kit_recording(path, bpm: float, swung: bool, bars: int = 4, end_bpm: float | None = None):
    """A drum kit played by the project's synth with a drummer's timing (8 ms spread): kick and
    snare on the beats, a softer hi-hat on each (straight or swung) off-beat eighth, the tempo
    going from `bpm` to `end_bpm` (default steady).

    Returns:
      The seconds of each hit, sorted.
    """
    rng = np.random.default_rng(int(bpm) + swung)
    beats = np.arange(4 * bars + 1)
    # The beat lengthens or shortens evenly from one tempo to the other.
    periods = 60.0 / np.linspace(bpm, end_bpm or bpm, len(beats))
    beat_times = np.concatenate([[0.0], np.cumsum(periods[:-1])])
    notes = []
    for beat, (time, period) in enumerate(zip(beat_times[:-1], periods)):
        after = period * (2 / 3 if swung else 1 / 2)
        for pitch, velocity, at in ((36 if beat % 2 == 0 else 38, 100, 0.0), (42, 60, after)):
            start = max(time + at + rng.normal(0, 0.008), 0.0)
            notes.append((pitch, velocity, start, start + 0.05))
    audio.save_wav(path, audio.synthesize(drum_sequence(notes, qpm=bpm)))
    return np.sort([start for _, _, start, _ in notes])


@pytest.mark.parametrize("bpm", [60.0, 100.0, 140.0, 180.0])
@pytest.mark.parametrize("swung", [False, True], ids=["straight", "swung"])
def test_a_kit_played_straight_or_swung_is_heard_at_its_tempo_every_hit_a_tap(tmp_path, bpm, swung):
    played = kit_recording(tmp_path / "kit.wav", bpm, swung)
    taps = audio.taps_from_recording(tmp_path / "kit.wav")
    heard = taps.tempos[0].qpm
    np.testing.assert_allclose(heard, bpm, rtol=0.02)
    starts = np.array([note.start_time for note in taps.notes])
    assert len(starts) == len(played)
    np.testing.assert_allclose(starts, played - played[0], atol=0.02)
    steps = np.floor(starts * heard / 15.0 + 0.5)  # as the converter puts them on the grid
    assert len(np.unique(steps)) == len(starts)  # every tap a step of its own


def test_an_accelerating_kit_is_heard_between_its_tempi_every_hit_a_tap(tmp_path):
    for end_bpm in (102.0, 104.0):  # faster by the end of its 4 bars
        played = kit_recording(tmp_path / f"{end_bpm}.wav", 100.0, False, end_bpm=end_bpm)
        taps = audio.taps_from_recording(tmp_path / f"{end_bpm}.wav")
        assert 100.0 <= taps.tempos[0].qpm <= end_bpm and len(taps.notes) == len(played)


def test_a_kit_under_noise_is_heard_at_its_tempo(tmp_path):
    kit_recording(tmp_path / "kit.wav", 120.0, True)
    with wave.open(str(tmp_path / "kit.wav")) as file:
        rate, pcm = file.getframerate(), np.frombuffer(file.readframes(-1), "<i2") / 32768
    hiss = np.random.default_rng(0).normal(0, 0.01, pcm.size)  # about 20 dB under the kit
    audio.save_wav(tmp_path / "noisy.wav", pcm + hiss, rate)
    np.testing.assert_allclose(
        audio.taps_from_recording(tmp_path / "noisy.wav").tempos[0].qpm, 120.0, rtol=0.02
    )


def speech_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Syllables: voiced bursts of 80-350 ms with breathy noise, 20-300 ms apart, as speech has
    no beat."""
    signal, time = np.zeros(int(seconds * CLICK_RATE)), 0.0
    while time < seconds - 0.5:
        length, pitch = rng.uniform(0.08, 0.35), rng.uniform(100, 220)
        t = np.arange(int(length * CLICK_RATE)) / CLICK_RATE
        voice = np.sin(2 * np.pi * pitch * t) + 0.5 * np.sin(4 * np.pi * pitch * t)
        syllable = np.sin(np.pi * t / length) ** 2 * (voice + 0.3 * rng.normal(size=t.size))
        start = int(time * CLICK_RATE)
        signal[start : start + t.size] += syllable
        time += length + rng.uniform(0.02, 0.3)
    return 0.5 * signal / np.abs(signal).max()


@pytest.mark.parametrize("kind", ["white noise", "speech"])
def test_noise_and_speech_are_refused_for_want_of_a_pulse(tmp_path, kind):
    rng = np.random.default_rng(0)
    path = tmp_path / "heard.wav"
    if kind == "white noise":
        audio.save_wav(path, rng.normal(0, 0.3, 10 * CLICK_RATE), CLICK_RATE)
    else:
        audio.save_wav(path, speech_like(10.0, rng), CLICK_RATE)
    with pytest.raises(audio.RecordingError, match=re.escape(str(path))) as refused:
        audio.taps_from_recording(path)
    assert audio.NO_PULSE in str(refused.value)


def test_an_unreadable_recording_is_refused_without_decoder_warnings(tmp_path):
    path = tmp_path / "text.wav"
    path.write_text("kick snare kick snare\n")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        with pytest.raises(audio.RecordingError, match="cannot read"):
            audio.taps_from_recording(path)
    assert not said, [str(w.message) for w in said]


@pytest.mark.parametrize("kind", ["silent", "one click", "zero bytes", "text"])
def test_taps_from_recording_refuses_naming_the_file(tmp_path, kind):
    path = tmp_path / f"{kind.replace(' ', '_')}.wav"
    if kind == "silent":
        audio.save_wav(path, np.zeros(2 * CLICK_RATE), CLICK_RATE)
    elif kind == "one click":
        write_clicks(path, [0], 120.0, bars=1)
    elif kind == "zero bytes":
        path.write_bytes(b"")
    else:
        path.write_text("kick snare kick snare\n")
    reason = "cannot read" if kind in ("zero bytes", "text") else "onset"
    with pytest.raises(audio.RecordingError, match=re.escape(str(path))) as refused:
        audio.taps_from_recording(path)
    assert reason in str(refused.value)


@pytest.fixture(scope="module")
def tap_outputs(tmp_path_factory) -> Path:
    """An outputs folder holding a tiny drumify run (2 steps on random grooves) under
    runs/groovae_2bar_tap_fixed_velocity, where pick_model("drumify") finds it. Keras is
    imported here, so the rest of this file runs without it."""
    from conftest import random_grooves

    from helpers import train
    from helpers.config import VERB_CONFIGS, get_config

    outputs = tmp_path_factory.mktemp("outputs")
    name = VERB_CONFIGS["drumify"]
    config = get_config("tiny", name=name, tapify=True, fixed_velocities=True)
    grooves = random_grooves(32)
    train.train(
        config,
        outputs / "runs" / name,
        steps=2,
        windows=(grooves, grooves[:16]),
        options=train.TrainOptions(progress=False),
    )
    return outputs


def test_cli_drumify_a_recording_keeps_its_bars_and_tempo(tap_outputs, tmp_path, capsys):
    import note_seq

    from helpers import tools, verbs
    from helpers.sample import pick_model

    qpm, bars = 120.0, 3
    steps = CLICK_TRACKS[qpm] + [32, 36, 38, 44]  # a third bar, so not a whole 2-bar window
    write_clicks(tmp_path / "clicks.wav", steps, qpm, bars)
    heard = audio.taps_from_recording(tmp_path / "clicks.wav").tempos[0].qpm
    (path,) = verbs.main(
        [
            "drumify",
            "--input",
            str(tmp_path / "clicks.wav"),
            "--outputs-dir",
            str(tap_outputs),
            "--num",
            "1",
            "--seed",
            "0",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert path.name == "clicks_drumify_01.mid"
    (said,) = [line for line in capsys.readouterr().out.splitlines() if "taps over" in line]
    assert said.startswith(f"{tmp_path / 'clicks.wav'}: {len(steps)} taps over ")
    assert said.endswith(f"s, heard at {heard:.1f} qpm")
    groove = note_seq.midi_file_to_note_sequence(str(path))
    np.testing.assert_allclose([t.qpm for t in groove.tempos], [heard], rtol=1e-4)
    np.testing.assert_allclose(heard, qpm, rtol=0.02)
    assert [(ts.numerator, ts.denominator) for ts in groove.time_signatures] == [(4, 4)]
    bar_s = 4 * 60.0 / heard
    last = max(note.start_time for note in groove.notes)
    assert (bars - 1) * bar_s <= last < bars * bar_s  # notes in the third bar, none past it
    # The groove itself (a MIDI file ends at its last note) lasts exactly the recording's bars.
    model = pick_model("drumify", outputs_dir=tap_outputs)
    played = tools.drumify(model, tools.read_groove(tmp_path / "clicks.wav"), seed=0)
    np.testing.assert_allclose(played.total_time, bars * bar_s, rtol=1e-6)
