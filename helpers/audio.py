"""Grooves as sound: MIDI files, and audio from FluidSynth or a small numpy kit written as WAV."""

from __future__ import annotations

import logging
import os
import wave
from pathlib import Path

import note_seq
import numpy as np

from helpers.constants import (
    MAX_MIDI_VELOCITY,
    MIDI_DRUM_CHANNEL,
    NUM_DRUM_CLASSES,
    REDUCED_DRUM_PITCH_CLASSES,
    SOUNDFONT_ENV,
)

logger = logging.getLogger(__name__)

# Where Debian/Ubuntu (and so Colab after `apt-get install fluidsynth`) and Homebrew put a General
# MIDI soundfont. The command lines and notebooks pass $GROOVAE_SOUNDFONT, tried first, as `soundfont`.
SOUNDFONT_PATHS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
)
DEFAULT_SAMPLE_RATE = 22050
TAIL_SECONDS = 1.0  # room after the last note for cymbals to ring out
FALLBACK_HINT = (
    "install FluidSynth and a GM soundfont for real drum sounds "
    "(Colab/Debian: `apt-get install fluidsynth fluid-soundfont-gm && pip install pyfluidsynth`), "
    f"or point {SOUNDFONT_ENV} at an .sf2 file"
)
_fallback_warned = False


def writable_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """`path`, its folders created; refuses to replace an existing file unless asked.

    Raises:
      FileExistsError: `path` exists and `overwrite` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_midi(
    note_sequence: note_seq.NoteSequence, path: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Writes a NoteSequence as a MIDI file, creating folders.

    Raises:
      FileExistsError: `path` exists and `overwrite` is False.
    """
    path = writable_path(path, overwrite)
    note_seq.sequence_proto_to_midi_file(note_sequence, str(path))
    return path


def find_soundfont(preferred: str | os.PathLike | None = None) -> Path | None:
    """The first General MIDI .sf2 found: `preferred`, then the usual system places."""
    candidates = [preferred, *SOUNDFONT_PATHS]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _load_fluidsynth():
    """pyfluidsynth's module, or None. Its import raises when libfluidsynth is missing."""
    try:
        import fluidsynth
    except (ImportError, OSError) as err:
        logger.debug("pyfluidsynth unavailable: %s", err)
        return None
    return fluidsynth


def _drum_events(note_sequence: note_seq.NoteSequence) -> list[tuple[float, int, int, int]]:
    """(time, is_on, pitch, velocity) sorted by time, offs before ons; negative times clamp to 0."""
    events = []
    for note in note_sequence.notes:
        start = max(note.start_time, 0.0)
        events.append((start, 1, note.pitch, note.velocity))
        events.append((max(note.end_time, start), 0, note.pitch, 0))
    return sorted(events)


def _synthesize_fluidsynth(fluidsynth, note_sequence, sample_rate, soundfont) -> np.ndarray:
    synth = fluidsynth.Synth(samplerate=float(sample_rate))
    try:
        font = synth.sfload(str(soundfont))
        synth.program_select(MIDI_DRUM_CHANNEL, font, 128, 0)  # bank 128: GM percussion kits
        chunks, now = [], 0
        for time, is_on, pitch, velocity in _drum_events(note_sequence):
            frame = int(round(time * sample_rate))
            if frame > now:
                chunks.append(synth.get_samples(frame - now))
                now = frame
            if is_on:
                synth.noteon(MIDI_DRUM_CHANNEL, pitch, velocity)
            else:
                synth.noteoff(MIDI_DRUM_CHANNEL, pitch)
        chunks.append(synth.get_samples(int(TAIL_SECONDS * sample_rate)))
    finally:
        synth.delete()
    stereo = np.concatenate(chunks).astype(np.float32).reshape(-1, 2)
    return stereo.mean(axis=1) / 32768.0


# The fallback kit, per drum class: (kind, pitch Hz, decay seconds). Kinds are made in `_drum_hit`.
FALLBACK_KIT = (
    ("thump", 55.0, 0.35),  # kick: sine swept down from 3x its pitch
    ("snare", 190.0, 0.18),  # noise burst plus a tone
    ("hat", 0.0, 0.05),  # high-passed noise, short
    ("hat", 0.0, 0.35),  # the same, ringing
    ("tom", 100.0, 0.3),
    ("tom", 150.0, 0.25),
    ("tom", 210.0, 0.22),
    ("cymbal", 0.0, 1.2),  # crash: long bright noise
    ("cymbal", 0.0, 0.8),  # ride
)
_PITCH_TO_CLASS = {p: c for c, pitches in enumerate(REDUCED_DRUM_PITCH_CLASSES) for p in pitches}


def _drum_hit(drum: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    kind, freq, decay = FALLBACK_KIT[drum]
    t = np.arange(int(sample_rate * min(4 * decay, 2.0))) / sample_rate
    envelope = np.exp(-t / decay)
    noise = rng.uniform(-1, 1, t.size)
    if kind == "thump":
        phase = 2 * np.pi * np.cumsum(freq * (1 + 2 * np.exp(-t / 0.03))) / sample_rate
        return np.sin(phase) * envelope
    if kind == "tom":
        phase = 2 * np.pi * np.cumsum(freq * (1 + 0.5 * np.exp(-t / 0.05))) / sample_rate
        return np.sin(phase) * envelope
    if kind == "snare":
        tone = np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.05)
        return 0.6 * noise * envelope + 0.5 * tone
    bright = np.diff(noise, prepend=0.0)  # first difference: a crude high-pass
    return (0.5 if kind == "hat" else 0.35) * bright * envelope


def _synthesize_numpy(note_sequence: note_seq.NoteSequence, sample_rate: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    sounds = [_drum_hit(d, sample_rate, rng) for d in range(NUM_DRUM_CLASSES)]
    end = max((max(n.end_time, 0.0) for n in note_sequence.notes), default=0.0)
    audio = np.zeros(int((end + TAIL_SECONDS) * sample_rate) + max(map(len, sounds)))
    for note in note_sequence.notes:
        sound = sounds[_PITCH_TO_CLASS.get(note.pitch, 1)]  # unknown percussion: a snare-like hit
        start = int(round(max(note.start_time, 0.0) * sample_rate))
        audio[start : start + len(sound)] += sound * note.velocity / MAX_MIDI_VELOCITY
    return audio[: int((end + TAIL_SECONDS) * sample_rate)].astype(np.float32)


def synthesize(
    note_sequence: note_seq.NoteSequence,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    soundfont: str | os.PathLike | None = None,
) -> np.ndarray:
    """Renders a drum NoteSequence to mono audio, never failing for lack of an audio stack.

    Uses FluidSynth with a General MIDI soundfont on the drum channel. Without libfluidsynth,
    pyfluidsynth or a soundfont it falls back to a small synthetic kit made in numpy and warns once.

    Args:
      note_sequence: drum notes (any channel; every note is played as GM percussion).
      sample_rate: Hz.
      soundfont: an .sf2 file tried first; the system's (`find_soundfont`) when None or missing.

    Returns:
      (num_samples,) float32 audio peak-normalised to 0.9 (silence stays 0): up to the last note
      end plus one second of tail.
    """
    global _fallback_warned
    fluidsynth = _load_fluidsynth()
    soundfont = find_soundfont(soundfont)
    if fluidsynth is not None and soundfont is not None:
        audio = _synthesize_fluidsynth(fluidsynth, note_sequence, sample_rate, soundfont)
    else:
        if not _fallback_warned:
            logger.warning(
                "FluidSynth or a soundfont is missing; using a synthetic drum kit: %s",
                FALLBACK_HINT,
            )
            _fallback_warned = True
        audio = _synthesize_numpy(note_sequence, sample_rate)
    peak = float(np.max(np.abs(audio), initial=0.0))
    return (audio * (0.9 / peak) if peak > 0 else audio).astype(np.float32)


def save_wav(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    overwrite: bool = False,
) -> Path:
    """Writes mono float audio in [-1, 1] as a 16-bit PCM WAV file, creating folders."""
    path = writable_path(path, overwrite)
    pcm = (np.clip(np.asarray(audio, np.float32), -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return path


# --- recordings in: taps for drumify -----------------------------------------------------------

AUDIO_SUFFIXES = (".wav", ".mp3", ".ogg", ".flac", ".m4a", ".aiff", ".aif", ".webm")
TAP_PITCH = 42  # any drum pitch: tapify keeps the loudest onset of each step on one line
# Samples between onset-strength frames: about 6 ms at 22,050 Hz. librosa's default 512 (23 ms)
# puts a tap up to a quarter of a 16th off at 160 qpm, which drumify would keep as microtiming.
ONSET_HOP = 128
# Tempi librosa's estimate confuses with the one played: half, double, and the 3-against-4 of
# syncopated parts (a 120 qpm groove heard at 160). The 16th grid the onsets fit decides.
METRICAL_RATIOS = (1 / 2, 2 / 3, 3 / 4, 1, 4 / 3, 3 / 2, 2)
GRID_SLACK_S = 0.002  # how much worse than the best grid (RMS seconds) a grid may fit and count


class RecordingError(ValueError):
    """A recording that cannot be read, or in which no rhythm was heard."""


def fit_tempo(onsets: np.ndarray, qpm: float) -> float:
    """The tempo within 8 % of `qpm` whose 16th-note grid, started on the first onset, fits the
    onsets (seconds) best, refined by least squares: librosa's tempo estimate alone is only as
    fine as its tempogram bins, a few percent."""
    gaps = np.asarray(onsets, np.float64) - onsets[0]
    candidates = qpm * np.linspace(0.92, 1.08, 641)
    phase = gaps[None, :] * candidates[:, None] / 15.0  # onsets in 16ths of each candidate
    best = candidates[np.argmin(((phase - np.round(phase)) ** 2).sum(axis=1))]
    steps = np.round(gaps * best / 15.0)
    return float(15.0 * np.dot(steps, steps) / np.dot(steps, gaps)) if steps.any() else best


def grid_residual(onsets: np.ndarray, qpm: float) -> float:
    """RMS distance in seconds of the onsets (seconds) from the 16th grid at `qpm` that starts
    on the first onset."""
    step = 15.0 / qpm
    phase = (np.asarray(onsets, np.float64) - onsets[0]) / step
    return float(np.sqrt(np.mean((phase - np.round(phase)) ** 2)) * step)


def pick_tempo(onsets: np.ndarray, coarse: float) -> float:
    """The tempo, near a metrical ratio of librosa's `coarse` estimate, whose 16th grid the
    onsets (seconds) fit: of those that fit about as well as the best, the one nearest `coarse`,
    so a finer grid (a double tempo) that fits as well wins only where librosa heard it."""
    candidates = [fit_tempo(onsets, coarse * ratio) for ratio in METRICAL_RATIOS]
    residuals = np.array([grid_residual(onsets, qpm) for qpm in candidates])
    fitting = residuals <= 1.2 * residuals.min() + GRID_SLACK_S
    return float(min(np.compress(fitting, candidates), key=lambda qpm: abs(np.log(qpm / coarse))))


def taps_from_recording(
    path: str | os.PathLike, sample_rate: int = DEFAULT_SAMPLE_RATE
) -> note_seq.NoteSequence:
    """A recording (claps, beatbox, any instrument) as taps: one drum note per onset, at the tempo
    heard, the first onset on the downbeat, in 4/4 (librosa, which Colab preinstalls). A tap's
    velocity follows its onset's strength, a rough guide to loudness that the fixed-velocity tap
    model ignores. The converter then puts the taps on the 16th grid, microtiming kept.

    Raises:
      RecordingError: the file cannot be decoded, or fewer than two onsets are heard.
    """
    import librosa

    path = Path(path)
    try:
        signal, rate = librosa.load(path, sr=sample_rate, mono=True)
    except Exception as error:  # soundfile and audioread raise many types for a bad file
        raise RecordingError(
            f"cannot read {path} as audio ({type(error).__name__}: {error}); give a WAV or MP3"
        ) from None
    hop = {"sr": rate, "hop_length": ONSET_HOP}
    strength = librosa.onset.onset_strength(y=signal, **hop)
    frames = librosa.onset.onset_detect(onset_envelope=strength, backtrack=False, **hop)
    onsets = librosa.frames_to_time(frames, **hop)
    if len(onsets) < 2:
        raise RecordingError(f"{path}: heard {len(onsets)} onset(s); a rhythm needs more")
    coarse = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=strength, **hop))[0])
    qpm = pick_tempo(onsets, coarse)
    loudness = strength[frames] / max(float(strength[frames].max()), 1e-9)
    taps = note_seq.NoteSequence(ticks_per_quarter=note_seq.STANDARD_PPQ, filename=str(path))
    taps.tempos.add(qpm=qpm, time=0.0)
    taps.time_signatures.add(numerator=4, denominator=4, time=0.0)
    for onset, level in zip(onsets - onsets[0], loudness):
        velocity = int(np.clip(round(40 + 87 * level), 1, MAX_MIDI_VELOCITY))
        taps.notes.add(
            pitch=TAP_PITCH,
            velocity=velocity,
            start_time=onset,
            end_time=onset + 0.05,
            instrument=MIDI_DRUM_CHANNEL,
            is_drum=True,
        )
    taps.total_time = float(onsets[-1] - onsets[0]) + 0.05
    return taps
