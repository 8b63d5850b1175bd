"""The models as a browser instrument: a static folder (index.html, its scripts, the models in
magenta-js's format and the kit's drum sounds) that plays Generate, Drumify and Humanize with no
network access, a server for it on 127.0.0.1, and the page under a notebook cell (Colab's too).

The page's sources are js/page/; its script (@magenta/music's browser build, which carries
TensorFlow.js) is copied from the npm packages pinned in js/ into js/dist/ by js/build_page.js,
which `make setup` runs. The page steps the decoder cells itself (js/page/groovae_page.js), as
helpers/model.py does, so hits-conditioned models play there too; its matrix products run in a
small WebAssembly SIMD kernel the script carries (plain JavaScript where a browser lacks SIMD).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import note_seq
import numpy as np

from helpers import audio, magenta, magenta_js
from helpers.constants import DRUM_CLASS_NAMES, MIDI_DRUM_CHANNEL, REDUCED_DRUM_PITCH_CLASSES
from helpers.sample import TrainedModel

JS_DIR = Path(__file__).resolve().parents[1] / "js"
INSTALL_NODE = (
    JS_DIR.parent / "scripts" / "install_node.sh"
)  # Node, js/ and js/dist: make setup's step
PAGE_SOURCES = JS_DIR / "page"
SCRIPTS = (JS_DIR / "dist" / "magentamusic.js",)
MODELS_DIR = "models"
SOUNDS_DIR = "sounds"
INDEX = "index.json"
PANELS = ("generate", "drumify", "humanize")
# How the page is opened headless (the tests and the bench): Debian's chromium, with its calls
# home switched off, since nothing outside 127.0.0.1 may be reached.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SOUND_SECONDS = 1.0  # each drum's sample: its note and ring, the rest cut
SOUND_RATE = audio.DEFAULT_SAMPLE_RATE


class WebPageError(Exception):
    """A page that cannot be built as asked: its scripts not built, or no models to put on it."""


def page_panels(model: TrainedModel) -> tuple[list[str], str | None]:
    """Which panels of the page `model` plays, or why the page cannot run it.

    Returns:
      (panels, reason): panels among PANELS, empty with a one-line reason when none fits.
    """
    c, m = model.config.converter, model.config.model
    if len(m.enc_rnn_size) != 1:
        return [], f"its encoder has {len(m.enc_rnn_size)} layers; the page's encoder runs one"
    if c.add_instruments:
        drums = ", ".join(DRUM_CLASS_NAMES[d] for d in c.add_instruments)
        return [], (
            f"it adds drums ({drums}) to a groove, and the page has no infill panel; "
            "python -m helpers.verbs infill plays it"
        )
    if c.tapify:
        return ["drumify"], None
    if c.hits_as_controls or c.humanize:
        return ["humanize"], None
    return ["generate"], None


def model_entry(name: str, model: TrainedModel) -> dict:
    """What the page reads of one model in models/index.json: sizes, converter options, map."""
    c, m = model.config.converter, model.config.model
    panels, reason = page_panels(model)
    return {
        "name": name,
        "folder": name,
        "source": model.source,
        "panels": panels,
        "unavailable": reason,
        "steps": m.max_seq_len,
        "z_size": m.z_size,
        "dec_rnn_size": list(m.dec_rnn_size),
        "converter": {
            "humanize": c.humanize,
            "tapify": c.tapify,
            "fixed_velocities": c.fixed_velocities,
            "hits_as_controls": c.hits_as_controls,
            "add_instruments": list(c.add_instruments),
        },
        "pitch_classes": [list(p) for p in REDUCED_DRUM_PITCH_CLASSES],
        # The page's DECODINGS play each of helpers.model's DECODINGS as TrainedModel does.
        "decoding": model.decoding,
        "velocity_offset_loss": m.velocity_offset_loss,
        "residuals": model.residuals.array().round(6).tolist(),
    }


def drum_sound(drum: int) -> np.ndarray:
    """One hit of drum class `drum` at full velocity from the project's kit (FluidSynth's
    General MIDI drums where installed, else helpers.audio's synthetic kit): (samples,) float32."""
    sequence = note_seq.NoteSequence()
    sequence.tempos.add(qpm=120.0)
    pitch = REDUCED_DRUM_PITCH_CLASSES[drum][0]
    note = dict(pitch=pitch, velocity=127, start_time=0.0, end_time=0.1)
    sequence.notes.add(**note, is_drum=True, instrument=MIDI_DRUM_CHANNEL)
    sequence.total_time = 0.1
    return audio.synthesize(sequence, SOUND_RATE)[: int(SOUND_SECONDS * SOUND_RATE)]


def _write_sounds(folder: Path) -> None:
    folder.mkdir()
    names = []
    for drum, drum_name in enumerate(DRUM_CLASS_NAMES):
        names.append(f"{drum}_{drum_name.replace(' ', '_')}.wav")
        audio.save_wav(folder / names[-1], drum_sound(drum), SOUND_RATE)
    (folder / INDEX).write_text(json.dumps(names) + "\n")


def build_page(
    models: dict[str, TrainedModel], out_dir: str | os.PathLike, quantization: str = "float16"
) -> Path:
    """Writes the page for `models` ({name: model}) into `out_dir`, whole or not at all.

    Each model goes to models/<name>/ in magenta-js's format (float16 weights by default; a
    float16 bundle loses nothing), listed in models/index.json with the panels it plays or the
    reason it cannot run there.

    Raises:
      WebPageError: js/dist not built (run `make setup`), or no models.
      MagentaJsError: `out_dir` exists and was not written by this exporter.
    """
    missing = [p for p in (*SCRIPTS, PAGE_SOURCES) if not p.exists()]
    if missing:
        raise WebPageError(
            f"{missing[0]} is missing: run `make setup` (scripts/install_node.sh installs js/ "
            "and builds the page's scripts with node js/build_page.js)"
        )
    if not models:
        raise WebPageError("no models to put on the page")

    def fill(folder: Path) -> None:
        for source in PAGE_SOURCES.iterdir():
            shutil.copy(source, folder / source.name)
        for script in SCRIPTS:
            shutil.copy(script, folder / script.name)
        entries = []
        for name, model in models.items():
            c = model.config.converter
            config_json = magenta_js.groovae_config_json(
                model.window_steps, REDUCED_DRUM_PITCH_CLASSES, c.humanize, c.tapify
            )
            magenta_js.write_magenta_js(
                magenta.magenta_weights(model.model),
                config_json,
                folder / MODELS_DIR / name,
                quantization,
            )
            entries.append(model_entry(name, model))
        (folder / MODELS_DIR / INDEX).write_text(json.dumps({"models": entries}, indent=1))
        _write_sounds(folder / SOUNDS_DIR)

    return magenta_js.write_whole_folder(out_dir, fill)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(folder: str | os.PathLike, port: int = 0) -> tuple[http.server.HTTPServer, str]:
    """Serves `folder` on 127.0.0.1:`port` (0: a free one) from a background thread.

    Returns:
      (server, its address "http://127.0.0.1:PORT/"); server.shutdown() stops it.
    """
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


NOTEBOOK_HEIGHT = 720  # pixels: the page's transport row, a panel and the pianoroll
_shown: dict[str, http.server.HTTPServer] = {}  # the server of the page shown last, per folder


def show_in_notebook(
    models: list[TrainedModel], out_dir: str | os.PathLike, height: int = NOTEBOOK_HEIGHT
) -> str | None:
    """Builds the page of `models` into `out_dir` and shows it under the running cell, served by
    a background thread of the kernel: in Colab through Colab's proxy of the kernel's port,
    elsewhere as a frame of http://127.0.0.1:PORT/ (for a browser on the kernel's machine). The
    cell returns at once; running it again replaces the page and stops the server it started.

    Each model goes on the page under its label (a run's folder and checkpoint, or the bundled
    name); a model given twice goes on once.

    In Colab, where a fresh clone lacks the page's scripts, it first builds them as `make setup`
    does (scripts/install_node.sh: Node through apt where missing, then js/'s pinned packages
    through npm), once a runtime.

    Returns:
      The page's address in the kernel, or None, with the reason printed, where the page cannot
      be built here (its scripts not built: `make setup`).
    """
    from IPython.display import IFrame, display

    from helpers.notebook import in_colab

    previous = _shown.pop(str(out_dir), None)
    if previous is not None:  # it serves the folder about to be replaced
        previous.shutdown()
        previous.server_close()
    if in_colab() and not all(p.exists() for p in SCRIPTS):
        print("building the page's scripts (Node and js/, once a runtime)...", flush=True)
        subprocess.run(["bash", str(INSTALL_NODE)], check=False)  # it says what it could not do
    named = {model.label: model for model in models}
    try:
        folder = build_page(named, out_dir)
    except WebPageError as err:
        print(f"The page is not shown: {err}")
        return None
    server, address = serve(folder)
    _shown[str(out_dir)] = server
    if in_colab():
        from google.colab import output

        output.serve_kernel_port_as_iframe(server.server_address[1], height=str(height))
    else:
        display(IFrame(address, width="100%", height=height))
    print(f"the page of {', '.join(named)}, served by the kernel at {address}")
    return address
