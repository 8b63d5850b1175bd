"""Pictures and sound of grooves: drum pianorolls, audio, MIDI files and the notebooks' plots."""

from __future__ import annotations

import logging
import os
import wave
from pathlib import Path

import matplotlib.pyplot as plt
import note_seq
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from helpers.constants import (
    DRUM_CLASS_NAMES,
    GROOVE_DEPTH,
    HITS,
    MAX_MIDI_VELOCITY,
    MIDI_DRUM_CHANNEL,
    NUM_DRUM_CLASSES,
    OFFSETS,
    REDUCED_DRUM_PITCH_CLASSES,
    STEPS_PER_BAR,
    STEPS_PER_QUARTER,
    VELOCITIES,
    WINDOW_STEPS,
)
from helpers.converter import GrooveConverter, Rejected

logger = logging.getLogger(__name__)

# Where Debian/Ubuntu (and so Colab after `apt-get install fluidsynth`) and Homebrew put a General
# MIDI soundfont; GROOVAE_SOUNDFONT, when set, is tried first.
SOUNDFONT_ENV = "GROOVAE_SOUNDFONT"
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


class RenderError(Exception):
    """Something given to a render function cannot be drawn or written."""


# ------------------------------------------------------------------------------------------------
# Pianoroll


def note_sequence_to_groove(note_sequence: note_seq.NoteSequence) -> np.ndarray:
    """The first 4 bars of a drum NoteSequence on the grid, via the converter in infer mode.

    Infer mode reads the REDUCED pitch map (spec §2.1), which knows nearly every GM drum pitch and
    is the map decoded grooves are written with. Unlike the converter's windows, a sequence
    shorter than 4 bars is drawn too (padded with silence).

    Returns:
      (64, 27) float32 groove.

    Raises:
      RenderError: the converter rejects the sequence (several tempos, not 4/4, no drum notes).
    """
    converter = GrooveConverter()
    converter.set_mode("infer")
    try:
        grid = converter.note_sequence_to_groove(note_sequence)[:WINDOW_STEPS]
    except Rejected as rejected:
        raise RenderError(
            f"cannot draw this sequence: {rejected.reason}; give drums in 4/4 at one tempo"
        ) from None
    return np.pad(grid, [(0, WINDOW_STEPS - len(grid)), (0, 0)]).astype(np.float32)


def _as_groove(groove: np.ndarray | note_seq.NoteSequence) -> np.ndarray:
    if isinstance(groove, note_seq.NoteSequence):
        return note_sequence_to_groove(groove)
    groove = np.asarray(groove, np.float32)
    if groove.shape != (WINDOW_STEPS, GROOVE_DEPTH):
        raise RenderError(
            f"a groove is a ({WINDOW_STEPS}, {GROOVE_DEPTH}) array, got shape {groove.shape}; "
            "pass one window, e.g. grooves[i]"
        )
    return groove


def plot_groove(
    groove: np.ndarray | note_seq.NoteSequence,
    ax: plt.Axes | None = None,
    title: str | None = None,
    colorbar: bool = True,
) -> Figure:
    """Draws a drum pianoroll: one row per drum class, one column per 16th-note step.

    Each hit is a box whose colour is its velocity. Microtiming moves the box off its grid cell by
    offset / 2 of a step: a positive offset (played early) sits left of the grid line.

    Args:
      groove: (64, 27) float array [hits | velocities | offsets], or a NoteSequence (its first
        4-bar window is drawn).
      ax: axes to draw on, e.g. one of several side by side; a new figure when None.
      title: axes title.
      colorbar: add a velocity colour bar.

    Returns:
      The Figure holding the axes.
    """
    groove = _as_groove(groove)
    if ax is None:
        _, ax = plt.subplots(figsize=(12, 3.2), layout="constrained")
    cmap = plt.get_cmap("viridis")
    hits = groove[:, HITS] > 0.5
    for step, drum in zip(*np.nonzero(hits)):
        velocity = float(np.clip(groove[step, VELOCITIES][drum], 0.0, 1.0))
        left = step - groove[step, OFFSETS][drum] / 2.0
        ax.add_patch(
            Rectangle(
                (left + 0.05, drum - 0.4), 0.9, 0.8, facecolor=cmap(velocity), edgecolor="black",
                linewidth=0.4, zorder=2,
            )
        )
    for step in range(WINDOW_STEPS + 1):
        if step % STEPS_PER_BAR == 0:
            ax.axvline(step, color="black", linewidth=1.2, zorder=0)
        elif step % STEPS_PER_QUARTER == 0:
            ax.axvline(step, color="grey", linewidth=0.6, zorder=0)
        else:
            ax.axvline(step, color="lightgrey", linewidth=0.3, zorder=0)
    ax.set_xlim(-0.5, WINDOW_STEPS + 0.5)
    ax.set_ylim(-0.5, NUM_DRUM_CLASSES - 0.5)
    ax.set_yticks(range(NUM_DRUM_CLASSES), DRUM_CLASS_NAMES)
    ax.set_xticks(range(0, WINDOW_STEPS, STEPS_PER_BAR), [f"bar {i + 1}" for i in range(4)])
    ax.set_xlabel("16th-note step")
    if title:
        ax.set_title(title)
    fig = ax.figure
    if colorbar:
        mappable = plt.cm.ScalarMappable(norm=plt.Normalize(0, MAX_MIDI_VELOCITY), cmap=cmap)
        fig.colorbar(mappable, ax=ax, label="velocity", fraction=0.03, pad=0.01)
    return fig


def plot_grooves(
    grooves: list[np.ndarray | note_seq.NoteSequence] | np.ndarray,
    titles: list[str] | None = None,
) -> Figure:
    """Pianorolls stacked one above the other, e.g. a sample and its nearest training window.

    Args:
      grooves: (n, 64, 27) array or a list of grooves / NoteSequences.
      titles: one title per groove.

    Returns:
      A Figure with n axes sharing the step axis.
    """
    grooves = list(grooves)
    titles = titles or [None] * len(grooves)
    if len(titles) != len(grooves):
        raise RenderError(f"{len(grooves)} grooves but {len(titles)} titles")
    fig, axes = plt.subplots(
        len(grooves), 1, figsize=(12, 2.8 * len(grooves)), sharex=True, squeeze=False,
        layout="constrained",
    )
    for ax, groove, title in zip(axes[:, 0], grooves, titles):
        plot_groove(groove, ax=ax, title=title, colorbar=False)
    return fig


def _check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig: Figure, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Writes `fig` as a PNG (150 dpi), creating folders; refuses to replace a file unless asked."""
    path = _check_writable(path, overwrite)
    fig.savefig(path, dpi=150, format="png")
    return path


# ------------------------------------------------------------------------------------------------
# MIDI and audio


def write_midi(
    note_sequence: note_seq.NoteSequence, path: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Writes a NoteSequence as a MIDI file, creating folders.

    Raises:
      FileExistsError: `path` exists and `overwrite` is False.
    """
    path = _check_writable(path, overwrite)
    note_seq.sequence_proto_to_midi_file(note_sequence, str(path))
    return path


def find_soundfont() -> Path | None:
    """The first General MIDI .sf2 found: $GROOVAE_SOUNDFONT, then the usual system places."""
    candidates = [os.environ.get(SOUNDFONT_ENV)] + list(SOUNDFONT_PATHS)
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
      soundfont: an .sf2 file; `find_soundfont()` when None.

    Returns:
      (num_samples,) float32 audio peak-normalised to 0.9 (silence stays 0): up to the last note
      end plus one second of tail.
    """
    global _fallback_warned
    fluidsynth = _load_fluidsynth()
    soundfont = soundfont or find_soundfont()
    if fluidsynth is not None and soundfont is not None:
        audio = _synthesize_fluidsynth(fluidsynth, note_sequence, sample_rate, soundfont)
    else:
        if not _fallback_warned:
            logger.warning("FluidSynth or a soundfont is missing; using a synthetic drum kit: %s",
                           FALLBACK_HINT)
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
    path = _check_writable(path, overwrite)
    pcm = (np.clip(np.asarray(audio, np.float32), -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return path


def _as_note_sequence(groove: np.ndarray | note_seq.NoteSequence) -> note_seq.NoteSequence:
    if isinstance(groove, note_seq.NoteSequence):
        return groove
    converter = GrooveConverter()
    converter.set_mode("infer")
    return converter.from_tensors(_as_groove(groove)[None])[0]


def audio_player(
    groove: np.ndarray | note_seq.NoteSequence, sample_rate: int = DEFAULT_SAMPLE_RATE
):
    """An IPython audio widget playing a NoteSequence or a (64, 27) groove (at 120 qpm)."""
    from IPython.display import Audio

    audio = synthesize(_as_note_sequence(groove), sample_rate)
    return Audio(audio, rate=sample_rate, normalize=False)


def show_groove(groove: np.ndarray | note_seq.NoteSequence, title: str | None = None) -> None:
    """Displays a groove's pianoroll and an audio player inline in a notebook."""
    from IPython.display import display

    fig = plot_groove(groove, title=title)
    display(fig)
    plt.close(fig)  # already shown; keeps the inline backend from drawing it twice
    display(audio_player(groove))


# ------------------------------------------------------------------------------------------------
# Notebook plots: the data (01), training (02), samples against data (03)


def plot_tempo_histogram(info: pd.DataFrame, column: str = "bpm", ax: plt.Axes | None = None):
    """Histogram of tempi, one bar per 5 bpm, e.g. over GMD's info.csv."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    bpm = info[column].to_numpy(float)
    ax.hist(bpm, bins=np.arange(np.floor(bpm.min() / 5) * 5, bpm.max() + 5, 5), color="tab:blue")
    ax.set_xlabel("tempo (bpm)")
    ax.set_ylabel("performances")
    return ax.figure


def plot_style_counts(info: pd.DataFrame, column: str = "style", ax: plt.Axes | None = None):
    """Horizontal bar chart of performances per primary style ("funk/groove1" counts as funk)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    counts = info[column].astype(str).str.split("/").str[0].value_counts(ascending=True)
    ax.barh(counts.index, counts.to_numpy(), color="tab:blue")
    ax.set_xlabel("performances")
    return ax.figure


# Panels of the training plot: title -> metric names, after "losses/" and "metrics/" are dropped.
TRAINING_PANELS = {
    "loss": ("loss",),
    "r_loss": ("r_loss",),
    "kl_bits": ("kl_bits",),
    "per-timestep losses": ("hits_loss", "velocities_loss", "offsets_loss"),
    "hits": ("hit_accuracy", "hit_f1"),
}


def _long_history(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (step, split) with short metric names, from train.py's history.csv (a `split`
    column, Magenta's "losses/r_loss" names) or a Keras-style table (`val_` columns)."""
    frame = frame.rename(columns=lambda c: c.split("/")[-1])
    if "split" in frame.columns:
        return frame
    validation = [c for c in frame.columns if c.startswith("val_")]
    train_rows = frame.drop(columns=validation).assign(split="train")
    val_rows = frame[validation].rename(columns=lambda c: c.removeprefix("val_"))
    val_rows = val_rows.assign(split="validation")
    for column in ("step", "epoch"):
        if column in frame.columns:
            val_rows[column] = frame[column]
    return pd.concat([train_rows, val_rows], ignore_index=True)


def plot_training_curves(
    history: pd.DataFrame | str | os.PathLike, free_bits: float | None = None
) -> Figure:
    """Training and validation curves from a run's history (DataFrame or history.csv path).

    Draws each panel of TRAINING_PANELS that has data, one line per metric and split; kl_bits
    gets the free-bits floor as a dashed line. The x axis is `step`, else `epoch`, else the row.

    Raises:
      RenderError: no known metric in the history.
    """
    frame = pd.read_csv(history) if isinstance(history, (str, os.PathLike)) else history
    frame = _long_history(frame)
    x_name = next((c for c in ("step", "epoch") if c in frame.columns), None)
    panels = {
        title: [m for m in metrics if m in frame.columns and frame[m].notna().any()]
        for title, metrics in TRAINING_PANELS.items()
    }
    panels = {title: metrics for title, metrics in panels.items() if metrics}
    if not panels:
        raise RenderError(f"no loss columns in history; columns are {list(frame.columns)}")
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False, layout="constrained"
    )
    for ax, (title, metrics) in zip(axes[0], panels.items()):
        for split, rows in frame.groupby("split", sort=False):
            for metric in metrics:
                rows_with = rows[rows[metric].notna()]
                if rows_with.empty:
                    continue
                x = rows_with[x_name] if x_name else rows_with.index
                marker = "." if len(rows_with) < 30 else None  # few points: show each one
                label = split if len(TRAINING_PANELS[title]) == 1 else f"{metric} ({split})"
                ax.plot(x, rows_with[metric], label=label, marker=marker)
        if title == "kl_bits" and free_bits is not None:
            ax.axhline(free_bits, color="black", linestyle="--", label="free bits")
        ax.set_title(title)
        ax.set_xlabel(x_name or "row")
        ax.legend(fontsize="small")
    return fig


def plot_groove_statistics(sets: dict[str, np.ndarray]) -> Figure:
    """Compares sets of grooves: hit density per drum, velocity and timing histograms over hits.

    Args:
      sets: name -> (n, 64, 27) grooves, e.g. {"test": real, "samples T=0.5": samples}.

    Returns:
      A Figure with three panels.
    """
    fig, (density_ax, velocity_ax, timing_ax) = plt.subplots(1, 3, figsize=(15, 3.5),
                                                              layout="constrained")
    width = 0.8 / max(len(sets), 1)
    for i, (name, grooves) in enumerate(sets.items()):
        grooves = np.asarray(grooves, np.float32).reshape(-1, WINDOW_STEPS, GROOVE_DEPTH)
        hits = grooves[..., HITS] > 0.5
        density_ax.bar(np.arange(NUM_DRUM_CLASSES) + i * width, hits.mean(axis=(0, 1)), width,
                       label=name)
        velocity_ax.hist(grooves[..., VELOCITIES][hits] * MAX_MIDI_VELOCITY, bins=32,
                         range=(0, MAX_MIDI_VELOCITY), density=True, histtype="step", label=name)
        timing_ax.hist(grooves[..., OFFSETS][hits], bins=40, range=(-1, 1), density=True,
                       histtype="step", label=name)
    density_ax.set_xticks(np.arange(NUM_DRUM_CLASSES) + 0.4 - width / 2, DRUM_CLASS_NAMES,
                          rotation=45, ha="right")
    density_ax.set_title("hits per step")
    velocity_ax.set_title("velocity of hits")
    velocity_ax.set_xlabel("MIDI velocity")
    timing_ax.set_title("timing offset of hits")
    timing_ax.set_xlabel("offset (+ early, - late; 1 = half a step)")
    for ax in (density_ax, velocity_ax, timing_ax):
        ax.legend(fontsize="small")
    return fig
