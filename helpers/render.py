"""Grooves made visible and kept as files: drum pianorolls, the notebooks' plots, inline players,
and each groove written as MIDI with its pianoroll (.png) and audio (.wav) under one rule: every
name a call would write is checked first, and nothing is replaced unless the caller asks."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import note_seq
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from helpers import audio, constants
from helpers.audio import DEFAULT_SAMPLE_RATE, synthesize, writable_path, write_whole
from helpers.constants import (
    DEFAULT_QPM,
    DRUM_CLASS_NAMES,
    GROOVE_DEPTH,
    HITS,
    MAX_MIDI_VELOCITY,
    NUM_DRUM_CLASSES,
    OFFSETS,
    STEPS_PER_BAR,
    STEPS_PER_QUARTER,
    VELOCITIES,
)
from helpers.converter import GrooveConverter, Rejected


class RenderError(Exception):
    """Something given to a render function cannot be drawn or written."""


# ------------------------------------------------------------------------------------------------
# Pianoroll


def note_sequence_to_groove(note_sequence: note_seq.NoteSequence) -> np.ndarray:
    """A drum NoteSequence on the grid, whole bars, via the converter in infer mode.

    Infer mode reads the REDUCED pitch map (spec §2.1), which knows nearly every GM drum pitch and
    is the map decoded grooves are written with. Unlike the converter's windows, a sequence of
    any length is drawn, to its last bar (by its notes or its total_time), at least one bar.

    Returns:
      (16 * bars, 27) float32 groove.

    Raises:
      RenderError: the converter rejects the sequence (several tempos, not 4/4, no drum notes).
    """
    converter = GrooveConverter()
    converter.set_mode("infer")
    try:
        grid = converter.note_sequence_to_groove(note_sequence)
    except Rejected as rejected:
        raise RenderError(
            f"cannot draw this sequence: {rejected.reason}; give drums in 4/4 at one tempo"
        ) from None
    qpm = note_sequence.tempos[0].qpm if note_sequence.tempos else DEFAULT_QPM
    by_time = round(note_sequence.total_time / (60.0 / qpm * 4))
    steps = max(len(grid), by_time * STEPS_PER_BAR, STEPS_PER_BAR)
    return np.pad(grid, [(0, steps - len(grid)), (0, 0)]).astype(np.float32)


def _as_groove(groove: np.ndarray | note_seq.NoteSequence) -> np.ndarray:
    if isinstance(groove, note_seq.NoteSequence):
        return note_sequence_to_groove(groove)
    groove = np.asarray(groove, np.float32)
    if groove.ndim != 2 or groove.shape[1] != GROOVE_DEPTH or len(groove) % STEPS_PER_BAR:
        raise RenderError(
            f"a groove is a (16 * bars, {GROOVE_DEPTH}) array, got shape {groove.shape}; "
            "pass one groove, e.g. grooves[i]"
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
                (left + 0.05, drum - 0.4),
                0.9,
                0.8,
                facecolor=cmap(velocity),
                edgecolor="black",
                linewidth=0.4,
                zorder=2,
            )
        )
    steps = len(groove)
    for step in range(steps + 1):
        if step % STEPS_PER_BAR == 0:
            ax.axvline(step, color="black", linewidth=1.2, zorder=0)
        elif step % STEPS_PER_QUARTER == 0:
            ax.axvline(step, color="grey", linewidth=0.6, zorder=0)
        else:
            ax.axvline(step, color="lightgrey", linewidth=0.3, zorder=0)
    ax.set_xlim(-0.5, steps + 0.5)
    ax.set_ylim(-0.5, NUM_DRUM_CLASSES - 0.5)
    ax.set_yticks(range(NUM_DRUM_CLASSES), DRUM_CLASS_NAMES)
    bar_ticks = range(0, steps, STEPS_PER_BAR * max(1, steps // 256))  # a label every bar up to 16
    ax.set_xticks(bar_ticks, [f"bar {i // STEPS_PER_BAR + 1}" for i in bar_ticks])
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
        len(grooves),
        1,
        figsize=(12, 2.8 * len(grooves)),
        sharex=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, groove, title in zip(axes[:, 0], grooves, titles):
        plot_groove(groove, ax=ax, title=title, colorbar=False)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Writes `fig` as a PNG (150 dpi), creating folders, and closes it (a saved figure left open
    would be drawn again inline); refuses to replace a file unless asked."""
    try:
        return write_whole(
            writable_path(path, overwrite),
            lambda partial: fig.savefig(partial, dpi=150, format="png"),
        )
    finally:
        plt.close(fig)


def _as_note_sequence(groove: np.ndarray | note_seq.NoteSequence) -> note_seq.NoteSequence:
    if isinstance(groove, note_seq.NoteSequence):
        return groove
    converter = GrooveConverter()
    converter.set_mode("infer")
    return converter.from_tensors(_as_groove(groove)[None])[0]


def audio_player(
    groove: np.ndarray | note_seq.NoteSequence,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    soundfont: str | os.PathLike | None = None,
):
    """An IPython audio widget playing a NoteSequence or a (64, 27) groove (at 120 qpm).

    `soundfont`, an .sf2 file, is tried before the system's (see `audio.synthesize`).
    """
    from IPython.display import Audio

    audio = synthesize(_as_note_sequence(groove), sample_rate, soundfont)
    return Audio(audio, rate=sample_rate, normalize=False)


def show_groove(
    groove: np.ndarray | note_seq.NoteSequence,
    title: str | None = None,
    soundfont: str | os.PathLike | None = None,
) -> None:
    """Displays a groove's pianoroll and an audio player (`soundfont` tried first) inline."""
    from IPython.display import display

    fig = plot_groove(groove, title=title)
    display(fig)
    plt.close(fig)  # already shown; keeps the inline backend from drawing it twice
    display(audio_player(groove, soundfont=soundfont))


# ------------------------------------------------------------------------------------------------
# Notebook plots: the data (01), training (02), samples against data (03)


TRAINING_PANELS = {
    "loss": ("loss",),
    "r_loss": ("r_loss",),
    "kl_bits": ("kl_bits",),
    "per-timestep losses": ("hits_loss", "velocities_loss", "offsets_loss"),
    "hits": ("hit_accuracy", "hit_f1"),
}


def plot_training_curves(
    history: pd.DataFrame | str | os.PathLike, free_bits: float | None = None
) -> Figure:
    """Training and validation curves from a run's history (DataFrame or history.csv path).

    Reads train.py's layout: one row per (step, split), Magenta's "losses/r_loss" names. Draws
    each panel of TRAINING_PANELS that has data, one line per metric and split against `step`;
    kl_bits gets the free-bits floor as a dashed line.

    Raises:
      RenderError: no known metric, or no `step` and `split` columns, in the history.
    """
    frame = pd.read_csv(history) if isinstance(history, (str, os.PathLike)) else history
    frame = frame.rename(columns=lambda c: c.split("/")[-1])  # "losses/r_loss" -> "r_loss"
    panels = {
        title: [m for m in metrics if m in frame.columns and frame[m].notna().any()]
        for title, metrics in TRAINING_PANELS.items()
    }
    panels = {title: metrics for title, metrics in panels.items() if metrics}
    if not panels:
        raise RenderError(f"no loss columns in history; columns are {list(frame.columns)}")
    if not {"step", "split"} <= set(frame.columns):
        raise RenderError(
            f"a history has step and split columns (train.py's history.csv); columns are "
            f"{list(frame.columns)}"
        )
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False, layout="constrained"
    )
    for ax, (title, metrics) in zip(axes[0], panels.items()):
        for split, rows in frame.groupby("split", sort=False):
            for metric in metrics:
                rows_with = rows[rows[metric].notna()]
                if rows_with.empty:
                    continue
                marker = "." if len(rows_with) < 30 else None  # few points: show each one
                label = split if len(TRAINING_PANELS[title]) == 1 else f"{metric} ({split})"
                ax.plot(rows_with["step"], rows_with[metric], label=label, marker=marker)
        if title == "kl_bits" and free_bits is not None:
            ax.axhline(free_bits, color="black", linestyle="--", label="free bits")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize="small")
    return fig


def plot_groove_statistics(sets: dict[str, np.ndarray]) -> Figure:
    """Compares sets of grooves: hit density per drum, velocity and timing histograms over hits.

    Args:
      sets: name -> (n, 64, 27) grooves, e.g. {"test": real, "samples T=0.5": samples}.

    Returns:
      A Figure with three panels.
    """
    fig, (density_ax, velocity_ax, timing_ax) = plt.subplots(
        1, 3, figsize=(15, 3.5), layout="constrained"
    )
    width = 0.8 / max(len(sets), 1)
    for i, (name, grooves) in enumerate(sets.items()):
        grooves = np.asarray(grooves, np.float32)
        grooves = grooves.reshape(-1, grooves.shape[-2], GROOVE_DEPTH)
        hits = grooves[..., HITS] > 0.5
        density_ax.bar(
            np.arange(NUM_DRUM_CLASSES) + i * width, hits.mean(axis=(0, 1)), width, label=name
        )
        velocity_ax.hist(
            grooves[..., VELOCITIES][hits] * MAX_MIDI_VELOCITY,
            bins=32,
            range=(0, MAX_MIDI_VELOCITY),
            density=True,
            histtype="step",
            label=name,
        )
        timing_ax.hist(
            grooves[..., OFFSETS][hits],
            bins=40,
            range=(-1, 1),
            density=True,
            histtype="step",
            label=name,
        )
    density_ax.set_xticks(
        np.arange(NUM_DRUM_CLASSES) + 0.4 - width / 2, DRUM_CLASS_NAMES, rotation=45, ha="right"
    )
    density_ax.set_title("hits per step")
    velocity_ax.set_title("velocity of hits")
    velocity_ax.set_xlabel("MIDI velocity")
    timing_ax.set_title("timing offset of hits")
    timing_ax.set_xlabel("offset (+ early, - late; 1 = half a step)")
    for ax in (density_ax, velocity_ax, timing_ax):
        ax.legend(fontsize="small")
    return fig


SUFFIXES = (".mid", ".png", ".wav")  # a groove's MIDI, pianoroll and audio


def refuse_existing(targets: list[Path], overwrite: bool) -> None:
    """The overwrite rule: raises FileExistsError naming the first of `targets` that exists,
    unless `overwrite`."""
    existing = [path for path in targets if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing[0]} exists; give --overwrite (overwrite=True in Python) to replace it"
        )


def write_groove(
    midi_path: Path,
    sequence: note_seq.NoteSequence,
    suffixes: tuple[str, ...],
    overwrite: bool,
    soundfont: str | os.PathLike | None = None,
) -> None:
    """One groove's files, those of `suffixes`, named after `midi_path`."""
    if ".mid" in suffixes:
        audio.write_midi(sequence, midi_path, overwrite=overwrite)
    if ".png" in suffixes:
        fig = plot_groove(sequence, title=midi_path.stem)
        save_figure(fig, midi_path.with_suffix(".png"), overwrite=overwrite)
    if ".wav" in suffixes:
        wav = midi_path.with_suffix(".wav")
        audio.save_wav(wav, audio.synthesize(sequence, soundfont=soundfont), overwrite=overwrite)


def save_grooves(
    sequences: list[note_seq.NoteSequence],
    out_dir: str | os.PathLike,
    prefix: str = constants.GROOVE_PREFIX,
    overwrite: bool = False,
    suffixes: tuple[str, ...] = SUFFIXES,
    soundfont: str | os.PathLike | None = None,
) -> list[Path]:
    """Writes each groove as out_dir/<prefix>_NN.mid with its .png and .wav beside it.

    Args:
      sequences: the grooves, numbered from 01 in this order (wider numbers past 99).
      prefix: the file names' stem.
      overwrite: replace files of the same names.
      suffixes: which of .mid, .png and .wav to write (e.g. no .wav for committed grooves).
      soundfont: a General MIDI .sf2 for the .wav, tried before the system's.

    Returns:
      The .mid paths, in order (whether or not .mid was written).

    Raises:
      FileExistsError: a file of those names exists and `overwrite` is False; nothing written.
    """
    midi_paths = constants.groove_paths(out_dir, len(sequences), prefix)
    refuse_existing([p.with_suffix(s) for p in midi_paths for s in suffixes], overwrite)
    for path, sequence in zip(midi_paths, sequences):
        write_groove(path, sequence, suffixes, overwrite, soundfont)
    return midi_paths
