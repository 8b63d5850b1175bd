"""The main job (preprocess -> train -> sample) and the notebook pieces that join several modules."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import note_seq
import numpy as np
import pandas as pd

from helpers import audio, data, render, sample, train
from helpers.config import get_config
from helpers.constants import DEFAULT_QPM, HITS, MAX_MIDI_VELOCITY, OUTPUTS_DIR, VELOCITIES
from helpers.device import PRECISIONS, describe_device, detect
from helpers.metrics import nearest_neighbours

NUM_GROOVES = 5  # music_vae_generate.py's --num_outputs
RENDERED_SUFFIXES = (".mid", ".png", ".wav")  # what save_grooves writes per groove


def save_grooves(
    sequences: list[note_seq.NoteSequence],
    out_dir: str | Path,
    prefix: str = "groove",
    overwrite: bool = False,
    audio: bool = True,
) -> list[Path]:
    """Writes each groove as <prefix>_NN.mid with its pianoroll .png and audio .wav beside it.

    Args:
      audio: False leaves out the .wav files.

    Raises:
      FileExistsError: a file of that name exists and overwrite is False; nothing is written.
    """
    suffixes = RENDERED_SUFFIXES if audio else RENDERED_SUFFIXES[:-1]
    if not overwrite:
        targets = sample.groove_paths(out_dir, len(sequences), prefix)
        existing = [
            path.with_suffix(suffix)
            for path in targets
            for suffix in suffixes
            if path.with_suffix(suffix).exists()
        ]
        if existing:
            raise FileExistsError(f"{existing[0]} exists; pass overwrite=True to replace it")
    midi_paths = sample.write_grooves(sequences, out_dir, prefix=prefix, overwrite=overwrite)
    for path, sequence in zip(midi_paths, sequences):
        _render_beside(path, sequence, suffixes, overwrite)
    return midi_paths


def _render_beside(
    midi_path: Path, sequence: note_seq.NoteSequence, suffixes: tuple[str, ...], overwrite: bool
) -> None:
    """The groove's pianoroll (.png) and audio (.wav) beside its MIDI file, as `suffixes` ask."""
    if ".png" in suffixes:
        fig = render.plot_groove(sequence, title=midi_path.stem)
        render.save_figure(fig, midi_path.with_suffix(".png"), overwrite=overwrite)
        render.plt.close(fig)
    if ".wav" in suffixes:
        wav = midi_path.with_suffix(".wav")
        audio.save_wav(wav, audio.synthesize(sequence), overwrite=overwrite)


def samples_folder(
    groovae: sample.TrainedModel, temperature: float, seed: int, qpm: float,
    outputs_dir: str | Path = OUTPUTS_DIR,
) -> Path:
    """outputs_dir/samples/<model label>-T<temperature>-seed<seed>-<qpm>bpm: seeded samples' home."""
    return Path(outputs_dir) / "samples" / f"{groovae.label}-T{temperature:g}-seed{seed}-{qpm:g}bpm"


def write_samples(
    groovae: sample.TrainedModel,
    num: int = NUM_GROOVES,
    temperature: float = sample.DEFAULT_TEMPERATURE,
    seed: int | None = None,
    qpm: float = DEFAULT_QPM,
    outputs_dir: str | Path = OUTPUTS_DIR,
) -> tuple[np.ndarray, list[note_seq.NoteSequence], list[Path]]:
    """Samples `num` grooves and saves them under outputs_dir/samples/<run>-<checkpoint>-<settings>/.

    A seeded call names its folder by model (run and checkpoint, or the bundled model),
    temperature, seed and tempo, so running it again finds the same grooves already written and
    leaves them as they are, adding only a missing .png or .wav; an unseeded call takes a new
    numbered folder. Nothing is ever overwritten.

    Returns:
      (grooves (num, 64, 27) float32, NoteSequences at `qpm`, the .mid paths).
    """
    grooves = groovae.sample_grooves(num, temperature, seed)
    sequences = groovae.grooves_to_note_sequences(grooves, qpm)
    if seed is None:
        stem = f"{groovae.label}-T{temperature:g}-{qpm:g}bpm"
        out_dir = _next_free(Path(outputs_dir) / "samples", stem)
    else:
        out_dir = samples_folder(groovae, temperature, seed, qpm, outputs_dir)
    written = sample.groove_paths(out_dir, num)
    if all(p.exists() for p in written):
        for path, sequence in zip(written, sequences):
            missing = [s for s in RENDERED_SUFFIXES if not path.with_suffix(s).exists()]
            _render_beside(path, sequence, tuple(missing), overwrite=False)
        return grooves, sequences, written
    return grooves, sequences, save_grooves(sequences, out_dir)


def back_to_back(sequences: list[note_seq.NoteSequence]) -> note_seq.NoteSequence:
    """One sequence playing the given 4-bar grooves one after another."""
    return note_seq.sequences_lib.concatenate_sequences(sequences)


def quantized_score(grooves: np.ndarray, velocity: int = 80) -> np.ndarray:
    """The hits of (n, 64, 27) grooves on the grid at one velocity: a humanize model's kind of input."""
    score = np.zeros_like(grooves)
    score[..., HITS] = grooves[..., HITS]
    score[..., VELOCITIES] = grooves[..., HITS] * velocity / MAX_MIDI_VELOCITY
    return score


def novelty_table(
    grooves: np.ndarray, train_split: data.GrooveSplit, k: int = 20
) -> tuple[pd.DataFrame, np.ndarray]:
    """Each groove's nearest training windows by hit pattern (velocity, then timing, break ties).

    Args:
      grooves: (n, 64, 27) generated grooves.
      train_split: the training windows with their metadata.
      k: neighbours looked at per groove.

    Returns:
      A table with one row per groove (distance to the nearest window in differing hit cells out
      of 576, the mean over the k nearest, and which GMD file and clip the nearest is), and the
      (n, k) indices of the neighbours in `train_split.outputs`.
    """
    found = nearest_neighbours(grooves, train_split.outputs, k=k)
    nearest = train_split.meta.iloc[found.indices[:, 0]]
    table = pd.DataFrame(
        {
            "groove": [f"groove_{i + 1:02d}" for i in range(len(grooves))],
            "hits": (grooves[..., HITS] > 0.5).sum(axis=(1, 2)),
            "nearest distance": found.hamming[:, 0],
            f"mean distance of {k} nearest": found.hamming.mean(axis=1).round(1),
            "nearest window": [f"{m.midi_filename} clip {m.clip}" for m in nearest.itertuples()],
        }
    )
    return table, found.indices


def find_config_run(config_name: str, outputs_dir: str | Path = OUTPUTS_DIR) -> Path | None:
    """The run folder trained with `config_name` under outputs_dir/runs, or None with a hint."""
    run_dir = Path(outputs_dir) / "runs" / config_name
    if train.latest_checkpoint(run_dir) is None:
        print(
            f"No {config_name} checkpoint in {run_dir}. Train one in 02_train with "
            f'CONFIG_NAME = "{config_name}", or run: python -m helpers.train --config '
            f"{config_name} --steps 3000 --out {run_dir}"
        )
        return None
    return run_dir


def midi_download_link(path: str | Path):
    """An HTML link that downloads the MIDI file from the notebook page, in Colab or Jupyter alike."""
    from IPython.display import HTML

    path = Path(path)
    payload = base64.b64encode(path.read_bytes()).decode("ascii")
    return HTML(
        f'<a download="{path.name}" href="data:audio/midi;base64,{payload}">download {path.name}</a>'
    )


def _next_free(folder: Path, stem: str) -> Path:
    """folder/stem-001, -002, ...: the first that does not exist, so nothing is overwritten."""
    index = 1
    while (folder / f"{stem}-{index:03d}").exists():
        index += 1
    return folder / f"{stem}-{index:03d}"


def show_grooves(sequences: list[note_seq.NoteSequence], paths: list[Path]) -> None:
    """Displays each groove's pianoroll, audio player and MIDI download link inline."""
    from IPython.display import display

    for sequence, path in zip(sequences, paths):
        render.show_groove(sequence, title=path.stem)
        display(midi_download_link(path))


def generate_panel(
    groovae: sample.TrainedModel,
    out_dir: str | Path,
    num: int = NUM_GROOVES,
    temperature: float = sample.DEFAULT_TEMPERATURE,
    seed: int = 0,
    qpm: int = 120,
):
    """An ipywidgets panel: temperature, number of grooves, seed and tempo, and a Generate button.

    Each click samples, saves MIDI/PNG/WAV into a new numbered folder under `out_dir` and redraws
    the rolls, players and download links. Nothing is generated before the first click, so a
    headless run (CI) just shows the controls.

    Returns:
      The panel widget (display it, or leave it as a cell's last expression).
    """
    import ipywidgets as widgets

    temperature_w = widgets.FloatSlider(
        value=temperature, min=0.05, max=1.5, step=0.05, description="temperature"
    )
    num_w = widgets.IntSlider(value=num, min=1, max=8, description="grooves")
    seed_w = widgets.IntText(value=seed, description="seed")
    qpm_w = widgets.IntSlider(value=qpm, min=60, max=200, description="tempo (bpm)")
    button = widgets.Button(description="Generate", button_style="success", icon="music")
    shown = widgets.Output()

    def generate(_=None):
        with shown:
            shown.clear_output()
            sequences = groovae.sample(num_w.value, temperature_w.value, seed_w.value, qpm_w.value)
            stem = f"T{temperature_w.value:.2f}-seed{seed_w.value}-{qpm_w.value}bpm"
            paths = save_grooves(sequences, _next_free(Path(out_dir), stem))
            show_grooves(sequences, paths)

    button.on_click(generate)
    controls = widgets.HBox([widgets.VBox([temperature_w, num_w]), widgets.VBox([seed_w, qpm_w])])
    return widgets.VBox([controls, button, shown])


def main(argv: list[str] | None = None) -> list[Path]:
    """`python -m helpers.pipeline`: preprocess GMD, train a config, write five grooves."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--config", default="groovae_4bar")
    parser.add_argument("--steps", type=int, default=None, help="total training steps")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--data-dir", default=None, help="GMD folder or zip; default: download")
    parser.add_argument("--outputs", default=str(OUTPUTS_DIR))
    parser.add_argument("--num", type=int, default=NUM_GROOVES)
    parser.add_argument("--temperature", type=float, default=sample.DEFAULT_TEMPERATURE)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)

    print("1/3 preprocess: GMD -> 4-bar groove tensors")
    summary = data.groove_4bar_summary(args.data_dir)
    print(summary[["performances", "clips", "windows"]].to_string())

    print(f"2/3 train {args.config}")
    device = detect()
    print(describe_device(device))
    run_dir = Path(args.outputs) / "runs" / args.config
    bfloat16 = train.mixed_precision_for(args.precision, run_dir, device)
    config = get_config(args.config, mixed_precision=bfloat16)
    train.train(config, run_dir, data_dir=args.data_dir, steps=args.steps, batch_size=args.batch_size)

    print(f"3/3 sample {args.num} grooves")
    groovae = sample.TrainedModel(run_dir)
    _, _, paths = write_samples(
        groovae, args.num, args.temperature, args.seed, outputs_dir=args.outputs
    )
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    main()
