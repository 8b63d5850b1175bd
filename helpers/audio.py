"""Grooves as sound: MIDI files, and audio from FluidSynth or a small numpy kit written as WAV."""

from __future__ import annotations

import errno
import logging
import os
import warnings
import wave
from collections.abc import Callable
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


class WriteError(OSError):
    """A file that could not be written whole (a full disk, a read-only folder); nothing of it
    is left behind."""


def writable_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """`path`, its folders created; refuses to replace an existing file unless asked.

    Raises:
      FileExistsError: `path` exists and `overwrite` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} exists; give --overwrite (overwrite=True in Python) to replace it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_whole(path: Path, write: Callable[[Path], object]) -> Path:
    """Calls write(partial) on a hidden file beside `path`, then renames it to `path`: a write
    cut short (a full disk, Ctrl-C) leaves neither a partial file nor a damaged old one.

    Raises:
      WriteError: the disk filled or the folder cannot be written.
    """
    partial = path.with_name(f".{path.name}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise WriteError(
                error.errno,
                f"cannot write {path}: {os.strerror(error.errno)}; nothing of it was left. "
                "Free some space or give another --output-dir",
            ) from None
        raise
    return path


def write_midi(
    note_sequence: note_seq.NoteSequence, path: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Writes a NoteSequence as a MIDI file, creating folders; whole or not at all.

    Raises:
      FileExistsError: `path` exists and `overwrite` is False.
      WriteError: the disk filled.
    """
    return write_whole(
        writable_path(path, overwrite),
        lambda partial: note_seq.sequence_proto_to_midi_file(note_sequence, str(partial)),
    )


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
    """Writes mono float audio in [-1, 1] as a 16-bit PCM WAV file, creating folders; whole or
    not at all (WriteError)."""
    pcm = (np.clip(np.asarray(audio, np.float32), -1.0, 1.0) * 32767).astype("<i2")

    def write(partial: Path) -> None:
        with wave.open(str(partial), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(sample_rate)
            out.writeframes(pcm.tobytes())

    return write_whole(writable_path(path, overwrite), write)


# --- recordings in: taps for drumify -----------------------------------------------------------

TAP_PITCH = 42  # any drum pitch: tapify keeps the loudest onset of each step on one line
# Samples between onset-strength frames: about 6 ms at 22,050 Hz. librosa's default 512 (23 ms)
# puts a tap up to a quarter of a 16th off at 160 qpm, which drumify would keep as microtiming.
ONSET_HOP = 128
# Tempi librosa's estimate confuses with the one played: half, double, and the 3-against-4 of
# syncopated parts (a 120 qpm groove heard at 160). Where the taps fall decides.
METRICAL_RATIOS = (1 / 2, 2 / 3, 3 / 4, 1, 4 / 3, 3 / 2, 2)
# How much worse than the best grid (RMS seconds) a grid may fit and count: about a player's
# spread of timing, for a finer grid always fits a little better.
GRID_SLACK_S = 0.015
FIT_SECONDS = 20.0  # the stretch a tempo is first searched over (`fit_tempo`)
# What a tempo an octave from librosa's estimate must make up in `beat_salience` to win over it.
OCTAVE_DOUBT = 0.25
# Where a tap may fall in a beat: straight 16ths and swung (triplet) eighths.
BEAT_GRID = np.array([0, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1])
# A recording is read in blocks of this many seconds (plus a little either side), so its memory
# does not grow with its length: librosa's spectrogram at ONSET_HOP is 9 MB a second.
BLOCK_SECONDS = 30.0
# Silence heard before the recording, so that an onset at 0.0 s rises from something.
LEAD_SAMPLES = 2048
# The least autocorrelation of the onset strength at some beat period (40-240 bpm) a rhythm
# shows; noise and speech stay below it (tests/test_audio.py).
MIN_PULSE = 0.3
NO_PULSE = "no steady pulse"
N_FFT = 2048
LOUDNESS_SECONDS = 0.03  # how long after an onset its peak is looked for
# The quietest sound heard, against the recording's peak (-80 dB): below it a ringing tail's
# fading would read as onsets.
FLOOR = 1e-4


class RecordingError(ValueError):
    """A recording that cannot be read, or in which no rhythm was heard."""


def grid_fit(onsets: np.ndarray, qpm: float) -> tuple[float, float]:
    """How the onsets (seconds, from the first) fit the beats at about `qpm`, each on a 16th or
    a swung eighth: (the tempo refined by least squares, the RMS distance in seconds)."""
    beats = np.asarray(onsets, np.float64) * qpm / 60.0
    whole, part = np.divmod(beats, 1.0)
    nearest = whole + BEAT_GRID[np.argmin(np.abs(part[:, None] - BEAT_GRID[None, :]), axis=1)]
    if nearest.any():
        qpm = float(60.0 * np.dot(nearest, nearest) / np.dot(nearest, onsets))
    return qpm, float(np.sqrt(np.mean((onsets - nearest * 60.0 / qpm) ** 2)))


def fit_tempo(onsets: np.ndarray, qpm: float) -> tuple[float, float]:
    """The tempo within 8 % of `qpm` whose beats the onsets (seconds, from the first) fit best
    (`grid_fit`), and its RMS distance: librosa's estimate is only as fine as its tempogram
    bins, a few percent. The search takes the first FIT_SECONDS, then the fit is refined over
    twice as long a stretch at a time: over minutes, a search step's error would add up to
    beats.
    """
    onsets = np.asarray(onsets, np.float64)
    span = FIT_SECONDS
    heard = onsets[onsets <= span]
    fits = [grid_fit(heard, q) for q in qpm * np.linspace(0.92, 1.08, 161)]
    qpm, residual = min(fits, key=lambda fit: fit[1])
    while span < onsets[-1]:
        span *= 2
        qpm, residual = grid_fit(onsets[onsets <= span], qpm)
    return qpm, residual


def beat_salience(onsets: np.ndarray, strengths: np.ndarray, qpm: float) -> float:
    """How much the beats at `qpm` stand out: the share of beats (first to last onset) with an
    onset on them, plus how much louder those are than the onsets between beats."""
    beats = np.asarray(onsets, np.float64) * qpm / 60.0
    on_beat = np.abs(beats - np.round(beats)) < 1 / 8
    covered = len(np.unique(np.round(beats[on_beat]))) / (np.floor(beats[-1] + 1 / 8) + 1)
    between = strengths[~on_beat].mean() if (~on_beat).any() else strengths[on_beat].mean()
    return float(covered + strengths[on_beat].mean() - between)


def pick_tempo(onsets: np.ndarray, strengths: np.ndarray, coarse: float) -> float:
    """The tempo, near a metrical ratio of librosa's `coarse` estimate, whose beats the onsets
    (seconds, from the first; `strengths` 0-1) fit: of those that fit about as well as the best,
    the one whose beats stand out most (`beat_salience`), less OCTAVE_DOUBT per octave away
    from `coarse`, for librosa's ear is right more often than not."""
    fits = [fit_tempo(onsets, coarse * ratio) for ratio in METRICAL_RATIOS]
    best = min(residual for _, residual in fits)
    fitting = [qpm for qpm, residual in fits if residual <= best + GRID_SLACK_S]
    return max(
        fitting,
        key=lambda q: beat_salience(onsets, strengths, q) - OCTAVE_DOUBT * abs(np.log2(q / coarse)),
    )


def read_recording(path: Path, sample_rate: int) -> np.ndarray:
    """A recording as mono float32 at `sample_rate`, without librosa's warnings about the
    decoders it falls back on.

    Raises:
      RecordingError: the file cannot be decoded.
    """
    import librosa

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "PySoundFile failed. Trying audioread instead."
            signal, _ = librosa.load(path, sr=sample_rate, mono=True)
    except Exception as error:  # soundfile and audioread raise many types for a bad file
        raise RecordingError(
            f"cannot read {path} as audio ({type(error).__name__}: {error}); give a WAV or MP3"
        ) from None
    return signal


def onset_strength(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """Onset strength at ONSET_HOP, a block of BLOCK_SECONDS at a time, after LEAD_SAMPLES of
    silence: frame k is at (k * ONSET_HOP - LEAD_SAMPLES) / sample_rate s.

    The rise of the spectrum in decibels on a linear frequency axis: librosa's default mel
    bands average a hi-hat's rise away under a ringing snare (8ths at 180 bpm lost 3 in 32)."""
    import librosa

    peak = max(float(np.abs(signal).max(initial=0.0)), 1e-9)  # a quiet take hears as a loud one
    signal = np.concatenate([np.zeros(LEAD_SAMPLES, np.float32), signal / peak])
    block = int(BLOCK_SECONDS * sample_rate) // ONSET_HOP * ONSET_HOP
    margin = 16 * ONSET_HOP  # more than the spectrogram's window either side
    parts = []
    for start in range(0, len(signal), block):
        left = max(start - margin, 0)
        piece = signal[left : start + block + margin]
        spectrum = np.abs(librosa.stft(piece, n_fft=N_FFT, hop_length=ONSET_HOP))
        # amin applies before ref: the spectrum is scaled to 1 at a full-scale sine first.
        decibels = librosa.amplitude_to_db(spectrum / (N_FFT / 2), amin=FLOOR, top_db=None)
        strength = librosa.onset.onset_strength(S=decibels, sr=sample_rate, hop_length=ONSET_HOP)
        first = (start - left) // ONSET_HOP
        parts.append(strength[first : first + block // ONSET_HOP])
    return np.concatenate(parts)[: len(signal) // ONSET_HOP + 1]


def onset_loudness(signal: np.ndarray, onsets: np.ndarray, sample_rate: int) -> np.ndarray:
    """Each onset's peak level in the LOUDNESS_SECONDS after it, 1 for the loudest."""
    starts = np.round(onsets * sample_rate).astype(np.int64)
    width = int(LOUDNESS_SECONDS * sample_rate)
    peaks = np.array([np.abs(signal[start : start + width]).max(initial=0.0) for start in starts])
    return peaks / max(float(peaks.max(initial=0.0)), 1e-9)


def pulse(strength: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """(how steady, bpm): the largest autocorrelation of the onset strength (mean removed,
    1 at lag 0) at a beat period of 40-240 bpm, averaged over blocks of BLOCK_SECONDS, and
    librosa's tempo estimate, the median over those blocks."""
    import librosa

    frames_per_second = sample_rate / ONSET_HOP
    block = int(BLOCK_SECONDS * frames_per_second)
    shortest, longest = int(frames_per_second * 60 / 240), int(frames_per_second * 60 / 40)
    steadiness, tempi = [], []
    for start in range(0, len(strength), block):
        part = strength[start : start + block]
        if len(part) < 2 * longest and start:
            break  # a short last block: too short to tell, the others have told
        centred = part - part.mean()
        correlation = librosa.autocorrelate(centred, max_size=longest + 1)
        if correlation[0] <= 0:
            steadiness.append(0.0)
            continue
        steadiness.append(float(correlation[shortest:].max() / correlation[0]))
        tempi.append(
            float(
                np.atleast_1d(
                    librosa.feature.tempo(onset_envelope=part, sr=sample_rate, hop_length=ONSET_HOP)
                )[0]
            )
        )
    return float(np.mean(steadiness)), float(np.median(tempi)) if tempi else 0.0


def taps_from_recording(
    path: str | os.PathLike, sample_rate: int = DEFAULT_SAMPLE_RATE
) -> note_seq.NoteSequence:
    """A recording (claps, beatbox, any instrument) as taps: one drum note per onset, at the tempo
    heard, the first onset on the downbeat, in 4/4 (librosa, which Colab preinstalls). A tap's
    velocity follows its onset's loudness (its peak), a rough guide that the fixed-velocity tap
    model ignores. The converter then puts the taps on the 16th grid, microtiming kept.

    Straight and swung playing are both heard (a tap may fall on a 16th or a swung eighth);
    memory stays bounded by reading the onsets a block at a time (bench/bench_recording.py).

    Raises:
      RecordingError: the file cannot be decoded, fewer than two onsets are heard, or they have
        no steady pulse (noise, speech).
    """
    import librosa

    path = Path(path)
    signal = read_recording(path, sample_rate)
    strength = onset_strength(signal, sample_rate)
    hop = {"sr": sample_rate, "hop_length": ONSET_HOP}
    frames = librosa.onset.onset_detect(onset_envelope=strength, backtrack=False, **hop)
    onsets = np.maximum(librosa.frames_to_time(frames, **hop) - LEAD_SAMPLES / sample_rate, 0.0)
    if len(onsets) < 2:
        raise RecordingError(
            f"{path}: {NO_PULSE}: heard {len(onsets)} onset(s); a rhythm needs more"
        )
    steadiness, coarse = pulse(strength, sample_rate)
    if steadiness < MIN_PULSE or coarse <= 0:
        raise RecordingError(
            f"{path}: {NO_PULSE} in its {len(onsets)} onsets (noise or speech?); give a "
            "recording of a rhythm played on a beat (claps, beatbox, drums, an instrument)"
        )
    loudness = onset_loudness(signal, onsets, sample_rate)
    qpm = pick_tempo(onsets - onsets[0], loudness, coarse)
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
