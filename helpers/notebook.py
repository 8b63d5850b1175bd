"""Notebook-only code: the Colab setup cell and outputs/ on Google Drive, grooves shown with
players and download links, the Generate panel, the novelty table, the MIDI upload box, and your
groove through every tool."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import note_seq
import numpy as np
import pandas as pd

from helpers import constants, render
from helpers.constants import (
    AUDIO_SUFFIXES,
    DEFAULT_TEMPERATURE,
    HITS,
    NUM_GROOVES,
    OUTPUTS_DIR,
)
from helpers.data import GrooveSplit
from helpers.metrics import compare_sets, comparison_markdown, groove_features, nearest_neighbours
from helpers.render import save_grooves
from helpers.runs import write_atomic
from helpers.sample import TrainedModel
from helpers.tools import read_groove, versions

MIDI_ACCEPT = ".mid,.midi"
RECORDING_ACCEPT = ",".join(AUDIO_SUFFIXES)


# --- grooves on the page ---------------------------------------------------------------------


def midi_download_link(path: str | os.PathLike):
    """An HTML link that downloads the MIDI file from the notebook page, in Colab or Jupyter alike."""
    from IPython.display import HTML

    path = Path(path)
    payload = base64.b64encode(path.read_bytes()).decode("ascii")
    return HTML(
        f'<a download="{path.name}" href="data:audio/midi;base64,{payload}">download {path.name}</a>'
    )


def offer_download(path: str | os.PathLike):
    """A file to take away (a model's .zip): Colab downloads it to your computer; elsewhere a link
    to it (data links would copy the whole file into the notebook)."""
    if in_colab():
        from google.colab import files

        files.download(str(path))
        return None
    from IPython.display import FileLink

    return FileLink(os.path.relpath(path))


def show_grooves(
    sequences: list[note_seq.NoteSequence],
    midi_paths: list[Path],
    soundfont: str | os.PathLike | None = None,
) -> None:
    """Displays each groove's pianoroll, audio player (`soundfont` tried first) and MIDI link."""
    from IPython.display import display

    for sequence, path in zip(sequences, midi_paths):
        render.show_groove(sequence, title=path.stem, soundfont=soundfont)
        display(midi_download_link(path))


def before_after(
    tool: str,
    inputs: dict[str, note_seq.NoteSequence],
    result: note_seq.NoteSequence,
    out_root: str | os.PathLike,
    soundfont: str | os.PathLike | None = None,
) -> Path:
    """One tool's input grooves and its result, seen (pianorolls one above the other, each at its
    own length) and heard (a player each), the result saved under a new folder of `out_root`
    (<tool>-001, -002, ...) and offered as a MIDI download.

    Returns:
      The result's .mid path.
    """
    from IPython.display import display

    names, sequences = [*inputs, tool], [*inputs.values(), result]
    render.plot_grooves(sequences, names)
    (midi_path,) = save_grooves(
        [result], constants.next_free(out_root, tool), tool, soundfont=soundfont
    )
    for name, sequence in zip(names, sequences):
        print(name)
        display(render.audio_player(sequence, soundfont=soundfont))
    display(midi_download_link(midi_path))
    return midi_path


def decodings_side_by_side(
    model: TrainedModel,
    test: GrooveSplit,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int = 0,
    qpm: float = constants.DEFAULT_QPM,
    num_samples: int = 200,
    soundfont: str | os.PathLike | None = None,
) -> dict[str, np.ndarray]:
    """One latent code played through Magenta's decoding and per-hit decoding: pianorolls one
    above the other (shading is velocity) and a player each; then the field's groove features
    of `num_samples` grooves per decoding against the test windows, as MGEval compares sets.

    Returns:
      {decoding: (num_samples, steps, 27) grooves}, the first of each the one shown.
    """
    from IPython.display import Markdown, display

    z = np.random.default_rng(seed).standard_normal((num_samples, model.config.model.z_size))
    played = model.under_each_decoding(
        lambda: model.decode_grooves(z.astype(np.float32), temperature, seed)
    )
    grooves = {decoding: played[decoding] for decoding in ("magenta", "per_hit")}
    names = [f"{decoding} decoding" for decoding in grooves]
    firsts = model.grooves_to_note_sequences(np.stack([g[0] for g in grooves.values()]), qpm)
    render.plot_grooves(firsts, names)
    plt.show()
    for name, sequence in zip(names, firsts):
        print(name)
        display(render.audio_player(sequence, soundfont=soundfont))
    reference = groove_features(test.outputs, test.meta["bpm"].to_numpy())
    for name, played in zip(names, grooves.values()):
        display(
            Markdown(
                f"**{name}**, {num_samples} grooves against GMD's {len(test.outputs):,} "
                f"test windows\n\n"
                + comparison_markdown(compare_sets(groove_features(played), reference))
            )
        )
    return grooves


RECORD_JS = """
async function record(seconds) {
  const stream = await navigator.mediaDevices.getUserMedia({audio: true});
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  recorder.start();
  await new Promise((done) => setTimeout(done, seconds * 1000));
  recorder.stop();
  await new Promise((done) => (recorder.onstop = done));
  stream.getTracks().forEach((track) => track.stop());
  const buffer = await new Blob(chunks).arrayBuffer();
  let binary = "";
  new Uint8Array(buffer).forEach((b) => (binary += String.fromCharCode(b)));
  return btoa(binary);
}
"""


def record_taps(seconds: float, folder: str | os.PathLike) -> Path | None:
    """Colab: records `seconds` from the browser's microphone (it asks for permission once) into
    `folder`, as the browser encodes it (WebM/Ogg, read by librosa); elsewhere None."""
    if not in_colab():
        print("Recording needs Colab's browser page; upload a WAV or MP3 instead.")
        return None
    from google.colab.output import eval_js

    print(f"Recording {seconds:g} s: tap, clap or beatbox now...")
    audio = base64.b64decode(eval_js(RECORD_JS + f"record({float(seconds)})"))
    return save_upload("recording.webm", audio, folder)


def generate_panel(
    groovae: TrainedModel,
    out_dir: str | os.PathLike,
    num: int = NUM_GROOVES,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int = 0,
    qpm: int = 120,
    soundfont: str | os.PathLike | None = None,
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
            # Two decimals: the slider's steps of 0.05 carry float noise (0.35000000000000003).
            stem = f"T{temperature_w.value:.2f}-seed{seed_w.value}-{qpm_w.value}bpm"
            out = constants.next_free(out_dir, stem)
            midi_paths = save_grooves(sequences, out, soundfont=soundfont)
            show_grooves(sequences, midi_paths, soundfont)

    button.on_click(generate)
    controls = widgets.HBox([widgets.VBox([temperature_w, num_w]), widgets.VBox([seed_w, qpm_w])])
    return widgets.VBox([controls, button, shown])


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
def novelty_table(
    grooves: np.ndarray, train_split: GrooveSplit, k: int = 20
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


# --- your MIDI file in -----------------------------------------------------------------------


def in_colab() -> bool:
    return "google.colab" in sys.modules


def choose(accept: str = MIDI_ACCEPT) -> Any:
    """Colab: the files chosen in its upload box ({name: bytes}). Elsewhere: a FileUpload widget
    for files of `accept` (MIDI by default), to pick from before calling `received`."""
    if in_colab():
        from google.colab import files

        return files.upload()
    import ipywidgets as widgets

    return widgets.FileUpload(accept=accept, multiple=False, description="file")


def uploaded_files(chosen: Any) -> dict[str, bytes]:
    """{file name: bytes} from Colab's upload result, a FileUpload widget or its value.

    Names lose any folder part, so a file is never written outside the folder it is saved to.
    """
    value = getattr(chosen, "value", chosen)
    if isinstance(value, dict):  # Colab, or ipywidgets 7
        items = [
            (name, item["content"] if isinstance(item, dict) else item)
            for name, item in value.items()
        ]
    else:  # ipywidgets 8
        items = [(item["name"], item["content"]) for item in value or ()]
    return {Path(name).name: bytes(content) for name, content in items}


def save_upload(name: str, content: bytes, folder: str | os.PathLike) -> Path:
    """Writes an uploaded file into `folder`, never over another: the same bytes under the same
    name are found again, different ones get the first free name-2.mid, name-3.mid, ...

    The name keeps no folder part or unprintable character and at most 100 characters of stem
    (upload.mid when nothing is left); the file appears whole or not at all.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = "".join(c for c in Path(name).name if c.isprintable()).strip()
    stem, suffix = Path(name).stem[:100], Path(name).suffix[:16]
    stem, suffix = (stem, suffix) if stem.strip(".") else ("upload", ".mid")
    path, n = folder / f"{stem}{suffix}", 1
    while path.exists() and (not path.is_file() or path.read_bytes() != content):
        n += 1
        path = folder / f"{stem}-{n}{suffix}"
    if not path.exists():
        write_atomic(path, lambda temp: temp.write_bytes(content))
    return path


def received(chosen: Any, folder: str | os.PathLike) -> Path | None:
    """The chosen file, saved into `folder`; None (with a hint) before anything is chosen."""
    files = uploaded_files(chosen)
    if not files:
        print("No file chosen yet: pick a file above, then run this cell again.")
        return None
    name, content = next(iter(files.items()))
    return save_upload(name, content, folder)


def your_groove(
    path: str | Path,
    models: dict[str, TrainedModel],
    out_root: str | Path,
    num_steps: int = 5,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int | None = None,
    soundfont: str | Path | None = None,
) -> dict[str, tuple[list[note_seq.NoteSequence], list[Path]]]:
    """One groove of yours through every tool `models` has ({verb: model}, as pick_model gives
    them), saved in a new folder: humanized, drumified, with hi-hats added, and walked in
    `num_steps` to a new sample of the "sample" model at your tempo. Every result keeps your
    groove's length and tempo. The files go to out_root/<file name>-001/ (-002, ... when that
    exists), so nothing is overwritten.

    Returns:
      {"yours", then each result's name: (NoteSequences, .mid paths)}.

    Raises:
      WindowingError, SampleError: the file cannot be read or encoded (the message says why).
    """
    groove = read_groove(path)
    results = {"yours": [groove]}
    for verb, name in (("humanize", "humanized"), ("drumify", "drumified"), ("infill", "hi-hats")):
        if verb in models:
            results[name] = versions(verb, models[verb], groove, 1, temperature, seed)
    if "sample" in models:
        model = models["sample"]
        new = model.sample(1, temperature, seed, model.windows(groove).qpm)[0]
        results["interpolation"] = model.interpolate(groove, new, num_steps, temperature, seed)
    out_dir = constants.next_free(out_root, Path(path).stem)
    return {
        name: (seqs, save_grooves(seqs, out_dir, name.replace(" ", "_"), soundfont=soundfont))
        for name, seqs in results.items()
    }


REPO_URL = "https://github.com/groovae-lab/groovae-drum-lab.git"
CLONE_DIR = "/content/groovae-drum-lab"  # Colab's working folder is /content
DRIVE_MOUNT = Path("/content/drive")  # where google.colab.drive mounts My Drive's parent
DRIVE_FOLDER = "groovae-drum-lab"  # MyDrive/groovae-drum-lab/outputs/ holds cache, runs, samples

SETUP_CELL = f"""\
# Colab only: fetch the repository (or update it on a rerun) and install what Colab lacks.
import os, subprocess, sys
REPO_URL = "{REPO_URL}"
REPO_DIR = "{CLONE_DIR}"
if "google.colab" in sys.modules:
    if os.path.isdir(os.path.join(REPO_DIR, ".git")):
        subprocess.run(["git", "-C", REPO_DIR, "pull", "-q", "--ff-only"], check=True)
    else:
        subprocess.run(["git", "clone", "-q", REPO_URL, REPO_DIR], check=True)
    subprocess.run(["bash", os.path.join(REPO_DIR, "scripts", "install_audio.sh")], check=True)
    requirements = os.path.join(REPO_DIR, "requirements.txt")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", requirements], check=True)
    if REPO_DIR not in sys.path:
        sys.path.insert(0, REPO_DIR)"""


def github_path() -> str:
    """owner/name of the repository, as the notebooks' Open-in-Colab badges spell it."""
    return REPO_URL.removeprefix("https://github.com/").removesuffix(".git")


def outputs_dir(outputs: str | Path | None = None, use_drive: bool = False) -> Path:
    """The folder that holds cache/, runs/ and samples/.

    Args:
      outputs: an explicit folder; it wins over Drive.
      use_drive: mount Google Drive (Colab asks for permission once) and keep everything under
        MyDrive/groovae-drum-lab/outputs/, so the three notebooks, each on its own Colab machine,
        share one run, and a training run survives a disconnect.

    Returns:
      `outputs`, else the Drive folder when use_drive, else the repository's outputs/.
    """
    if outputs:
        return Path(outputs)
    if not use_drive:
        return OUTPUTS_DIR
    from google.colab import drive  # only importable in Colab

    drive.mount(str(DRIVE_MOUNT))
    folder = DRIVE_MOUNT / "MyDrive" / DRIVE_FOLDER / "outputs"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"outputs on Google Drive: {folder}")
    return folder
