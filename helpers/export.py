"""Exporting a trained run as the repository's bundled model, with everything that describes it.

One command writes pretrained/<name>/ (float16 weights, config.json, history.csv, metrics.json,
MODEL_CARD.md, training_curves.png, samples.png), the five committed grooves under
outputs/samples/<name>-pretrained-T0.5-seed0-120bpm/ (MIDI and pianoroll, no audio) and the
bundle's block on docs/results.md, so a later checkpoint is shipped by running it again.

`--format magenta-js` or `--format magenta-tf1` writes a run (or, with --bundled, a bundled
model) in Magenta's formats instead: a folder for magenta-js's MusicVAE, or a TF1 checkpoint
and .tar for Magenta's TrainedModel. `--format web` writes a static page that plays runs or
bundled models (all bundled ones by default) in a browser; `--serve` serves it on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import bundles, constants, device, magenta, magenta_js, render, web_page
from helpers.cli import add_data_dir, add_run_dir, command_parser
from helpers.config import CONFIG_FILE, GrooVAEConfig
from helpers.constants import DEFAULT_QPM, NUM_GROOVES, OUTPUTS_DIR
from helpers.converter import GrooveConverter, encoder_inputs
from helpers.data import GrooveSplit, load_groove_4bar_split
from helpers.evaluate import evaluate_model, json_ready, magenta_eval_losses
from helpers.render import save_grooves
from helpers.runs import CHECKPOINT_DIR, HISTORY_FILE, checkpoint_step, restore_model
from helpers.sample import TrainedModel

RESULTS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "results.md"
RESULTS_BEGIN = "<!-- bundled results: written by python -m helpers.export; edit there -->"
RESULTS_END = "<!-- end of bundled results -->"
EXPORTED_BY = "helpers.export"
MILESTONE_STEPS = (1500, 3000)
SAMPLES_SEED = 0
SAMPLES_TEMPERATURE = 0.5
CHECK_WINDOWS = 256  # test windows whose loss a bundle records, for tests to reproduce
MAGENTA_FORMATS = ("magenta-js", "magenta-tf1")
# hit-residuals: re-measure a bundle's HitResiduals on GMD's training split (--bundled).
FORMATS = ("bundle", *MAGENTA_FORMATS, "web", "hit-residuals")
METRICS_FILE = "metrics.json"  # a bundle's evaluation, written by export
ZIP_COMMENT = b"groovae-drum-lab: Magenta export"  # marks a .zip magenta_zip may replace


# What a user of Magenta's own decoder loses, by the model's objective (ModelConfig).
MAGENTA_DECODING_NOTE = {
    "all_cells": "Magenta's decoders play each drawn hit at its network output, which Magenta's "
    "objective shrinks by the model's doubt about the hit: quieter and nearer the grid than this "
    "project's per-hit decoding, with no drawn spread (hit_residuals.json, beside the weights, "
    "holds what per-hit decoding draws from)",
    "hit_cells": "this model was trained on hit cells only; Magenta's decoders feed its per-hit "
    "values back in every cell, which it never saw in training, and draw no spread: expect "
    "louder, busier grooves than this project's per-hit decoding (hit_residuals.json, beside "
    "the weights, holds what that decoding draws from)",
}


class ExportError(Exception):
    """A run, checkpoint, bundle folder or results page that an export cannot use as asked."""


def find_checkpoint(run_dir: Path, step: int | None, search_dirs: tuple[Path, ...] = ()) -> Path:
    """The run's checkpoint at `step` (its newest if None), looked for also in `search_dirs`.

    Raises:
      ExportError: no checkpoint of that step.
    """
    folders = (run_dir / CHECKPOINT_DIR, *search_dirs)
    found = sorted({p.name: p for f in folders for p in Path(f).glob("ckpt-*.npz")}.items())
    if step is None:
        if not found:
            raise ExportError(f"{run_dir / CHECKPOINT_DIR} holds no checkpoint to export")
        return found[-1][1]
    for _, path in found:
        if checkpoint_step(path) == step:
            return path
    steps = ", ".join(str(checkpoint_step(p)) for _, p in found) or "none"
    raise ExportError(
        f"no checkpoint of step {step} in {', '.join(map(str, folders))}; there are: {steps}"
    )


def as_bundled(model):
    """The model with its weights rounded as a bundle stores them (float16), in place."""
    for variable in model.trainable_variables:
        variable.assign(np.asarray(variable, np.float32).astype(np.float16).astype(np.float32))
    return model


def reference_losses(model, test: np.ndarray, windows: int = CHECK_WINDOWS, seed: int = 0) -> dict:
    """Magenta's eval losses on the first `windows` test windows: a bundle's fingerprint."""
    test = np.asarray(test[:windows], np.float32)
    inputs = encoder_inputs(test, model.config.converter, seed)
    return {"windows": len(test), "seed": seed, **magenta_eval_losses(model, inputs, test, seed)}


def _claim(folder: Path, overwrite: bool) -> dict:
    """The metrics.json of the bundle in `folder` if this exporter wrote it ({} if none).

    Raises:
      ExportError: the folder holds files this exporter did not write, and overwrite is False.
    """
    metrics_path = folder / METRICS_FILE
    if metrics_path.exists():
        previous = json.loads(metrics_path.read_text())
        if previous.get("bundle", {}).get("exported_by") == EXPORTED_BY:
            return previous
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise ExportError(
            f"{folder} holds a bundle this exporter did not write; pass --overwrite to replace it"
        )
    return {}


def _evaluate(model, splits: tuple[GrooveSplit, GrooveSplit], num_samples: int) -> dict:
    test, train = splits
    qpm = test.meta["bpm"].to_numpy(np.float64)
    return evaluate_model(model, test.outputs, train.outputs, num_samples, qpm=qpm, seed=0)


def _milestones(
    run_dir: Path, search_dirs, steps, bundled_step, previous: dict, splits, num_samples
) -> dict:
    """Test metrics of each milestone step before the bundled one: reused if exported before."""
    done = previous.get("milestones", {})
    if previous.get("bundle", {}).get("step") in steps:
        done = {**done, str(previous["bundle"]["step"]): previous}
    found = {}
    for step in (s for s in steps if s < bundled_step):
        if str(step) in done:
            found[str(step)] = {k: v for k, v in done[str(step)].items() if k != "milestones"}
            continue
        try:
            checkpoint = find_checkpoint(run_dir, step, search_dirs)
        except ExportError:
            continue  # not reached, or not kept: the card says which steps it shows
        print(f"evaluating the step {step} milestone")
        model = as_bundled(restore_model(run_dir, checkpoint))
        found[str(step)] = json_ready({**_evaluate(model, splits, num_samples), "step": step})
    return found


def _replace_results(page: Path, block: str) -> str:
    """The page's text with the block between the results markers replaced.

    Raises:
      ExportError: the markers are missing or out of order.
    """
    text = page.read_text()
    begin, end = text.find(RESULTS_BEGIN), text.find(RESULTS_END)
    if begin < 0 or end < begin:
        raise ExportError(f"{page} lacks the lines {RESULTS_BEGIN!r} ... {RESULTS_END!r}")
    return text[: begin + len(RESULTS_BEGIN)] + "\n" + block + "\n" + text[end:]


def write_results(folder: str | os.PathLike, page: str | os.PathLike = RESULTS_PAGE) -> None:
    """Rewrites the block between the results markers on `page` (docs/results.md) from the
    bundle's own files: config.json, history.csv and metrics.json.

    Raises:
      ExportError: the page lacks the markers.
    """
    folder, page = Path(folder), Path(page)
    _replace_results(page, "")  # refuse before reading anything
    figures = {
        key: Path(os.path.relpath(folder / file, page.parent)).as_posix()
        for key, file in bundles.FIGURES.items()
    }
    block = bundles.results_markdown(
        GrooVAEConfig.read(folder / CONFIG_FILE),
        pd.read_csv(folder / HISTORY_FILE),
        json.loads((folder / METRICS_FILE).read_text()),
        figures,
    )
    page.write_text(_replace_results(page, block))


def _write_samples(
    groovae: TrainedModel, folder: Path, outputs_dir: Path, test: np.ndarray
) -> list[Path]:
    """The five grooves (MIDI + pianoroll) and their one-figure view in the bundle; a
    hits-conditioned model plays the hits of the first five test windows."""
    controls = groovae.model.controls_of(test[:NUM_GROOVES])
    grooves = groovae.sample_grooves(NUM_GROOVES, SAMPLES_TEMPERATURE, SAMPLES_SEED, controls)
    sequences = groovae.grooves_to_note_sequences(grooves, DEFAULT_QPM)
    out_dir = constants.seeded_samples_dir(
        outputs_dir, groovae.label, SAMPLES_TEMPERATURE, SAMPLES_SEED, DEFAULT_QPM
    )
    for stale in out_dir.glob("groove_*.wav"):  # audio of the grooves this replaces
        stale.unlink()
    midi_paths = save_grooves(sequences, out_dir, overwrite=True, suffixes=(".mid", ".png"))
    fig = render.plot_grooves(sequences, [p.stem for p in midi_paths])
    render.save_figure(fig, folder / bundles.FIGURES["samples"], overwrite=True)
    return midi_paths


@dataclasses.dataclass(frozen=True)
class BundleOptions:
    """How export() makes a bundle; the defaults are `python -m helpers.export --run-dir RUN`'s.

    Attributes:
      step: the checkpoint to export; the newest if None.
      root: the folder of bundles (pretrained/); the bundle goes to root/<name>.
      outputs_dir: where the five grooves go (outputs_dir/samples/...).
      search_dirs: more folders of ckpt-<step>.npz files (e.g. kept milestones).
      milestone_steps: earlier steps to evaluate too, where their checkpoints exist.
      data_dir: GMD's folder (default $GROOVE_DATA_DIR, else the user cache or download).
      splits: (test, train) GrooveSplits instead of GMD's.
      trained_on: the training machine in words; default this machine's CPU.
      num_samples: samples per set in the metrics.
      overwrite: replace a bundle folder this exporter did not write.
    """

    step: int | None = None
    root: str | os.PathLike = bundles.PRETRAINED_DIR
    outputs_dir: str | os.PathLike = OUTPUTS_DIR
    search_dirs: tuple[str | os.PathLike, ...] = ()
    milestone_steps: tuple[int, ...] = MILESTONE_STEPS
    data_dir: str | os.PathLike | None = None
    splits: tuple[GrooveSplit, GrooveSplit] | None = None
    trained_on: str | None = None
    num_samples: int = 1000
    overwrite: bool = False


def export(run_dir: str | os.PathLike, name: str, options: BundleOptions | None = None) -> Path:
    """Writes a run's checkpoint as bundle `name`, with its metrics, card, figures and grooves
    (write_results then puts its figures on docs/results.md).

    Args:
      run_dir: a run folder (config.json, history.csv, checkpoints/).
      name: the bundle's name, its folder under `options.root`.
      options: which checkpoint, where to, on which data; None: BundleOptions()'s defaults.

    Returns:
      The bundle folder.

    Raises:
      ExportError: no such checkpoint, or a foreign bundle in the way.
    """
    options = options or BundleOptions()
    step, root, outputs_dir = options.step, options.root, options.outputs_dir
    splits, num_samples = options.splits, options.num_samples
    run_dir, folder = Path(run_dir), Path(root) / name
    search_dirs = tuple(Path(d) for d in options.search_dirs)
    checkpoint = find_checkpoint(run_dir, step, search_dirs)
    step = checkpoint_step(checkpoint)
    previous = _claim(folder, options.overwrite)
    if splits is None:  # GMD in the run's own 2- or 4-bar cut
        run_config = GrooVAEConfig.read(run_dir / CONFIG_FILE)
        converter = GrooveConverter.from_config(run_config.converter)
        splits = tuple(
            load_groove_4bar_split(s, options.data_dir, converter) for s in ("test", "train")
        )

    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / bundles.WEIGHTS_FILE
    bundles.save_weights(restore_model(run_dir, checkpoint), weights, step)
    shutil.copy(run_dir / CONFIG_FILE, folder / CONFIG_FILE)
    history = pd.read_csv(run_dir / HISTORY_FILE)
    history = history[history["step"] <= step]
    history.to_csv(folder / HISTORY_FILE, index=False)

    measure_hit_residuals(name, splits[1].outputs, root)
    groovae = TrainedModel.pretrained(name, root)  # what users get: the float16 weights
    print(f"evaluating step {step} on {len(splits[0].outputs)} test windows")
    metrics = json_ready(
        {
            **_evaluate(groovae.model, splits, num_samples),
            "bundle": {
                "name": name,
                "step": step,
                "checkpoint": checkpoint.name,
                "trained_on": options.trained_on
                or f"{device.cpu_info().describe()}, {os.cpu_count()} cores",
                "seed": SAMPLES_SEED,
                "num_samples": num_samples,
                "exported_by": EXPORTED_BY,
                "decoding": groovae.decoding,
                "check": reference_losses(groovae.model, splits[0].outputs),
            },
            "milestones": _milestones(
                run_dir, search_dirs, options.milestone_steps, step, previous, splits, num_samples
            ),
        }
    )
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")

    fig = render.plot_training_curves(history, free_bits=groovae.config.model.free_bits)
    render.save_figure(fig, folder / bundles.FIGURES["curves"], overwrite=True)
    _write_samples(groovae, folder, Path(outputs_dir), splits[0].outputs)
    write_model_card(folder)  # with the tool figures bench_tools measured, kept from before
    size = bundles.bundle_bytes(folder)
    if size > bundles.MAX_BUNDLE_BYTES:
        raise ExportError(f"{folder} is {size / 2**20:.1f} MiB, over the 10 MiB a bundle may take")
    return folder


def measure_hit_residuals(
    name: str, train: np.ndarray, root: str | os.PathLike = bundles.PRETRAINED_DIR
) -> Path:
    """Measures bundle `name`'s HitResiduals (what per-hit decoding draws from) on its float16
    weights and (n, steps, 27) training windows; writes them into its folder."""
    model, _ = bundles.load_bundle(name, root)
    inputs = encoder_inputs(train, model.config.converter, model.config.train.seed)
    return model.measure_hit_residuals(inputs, train).write(Path(root) / name)


def write_model_card(folder: str | os.PathLike) -> Path:
    """(Re)writes a bundle folder's MODEL_CARD.md from its config.json, history.csv,
    metrics.json and, where the bench measured them, its tool figures."""
    folder = Path(folder)
    tools = folder / bundles.TOOL_FIGURES
    card = bundles.model_card(
        GrooVAEConfig.read(folder / CONFIG_FILE),
        pd.read_csv(folder / HISTORY_FILE),
        json.loads((folder / METRICS_FILE).read_text()),
        tools.read_text() if tools.exists() else "",
    )
    path = folder / "MODEL_CARD.md"
    path.write_text(card)
    return path


def export_magenta(
    model: TrainedModel,
    fmt: str,
    out_dir: str | os.PathLike,
    quantization: str | None = None,
) -> Path:
    """Writes `model` into the folder `out_dir` (absent, or this exporter's) in Magenta's format
    `fmt`: "magenta-js" (for `new mm.MusicVAE(url)`; `quantization` "float16" or "uint8" prints
    the largest weight change) or "magenta-tf1" (a TF1 checkpoint, <name>.tar and
    load_in_magenta.py, for Magenta's TrainedModel). Prints a note for each way magenta-js
    encodes NoteSequences otherwise than the model was trained.

    Raises:
      ExportError: an unknown format, or quantization asked of a TF1 checkpoint.
      MagentaJsError: a hits-conditioned model for magenta-js, or `out_dir` not ours.
      MagentaError: `out_dir` not ours, for a TF1 checkpoint.
    """
    weights = magenta.magenta_weights(model.model)
    if fmt == "magenta-js":
        config_json, notes = magenta_js.magenta_js_config(model.config)
        folder = magenta_js.write_magenta_js(weights, config_json, out_dir, quantization)
        for note in notes:
            print(f"note: {note}")
        if quantization is not None:
            error = magenta_js.quantization_error(weights, quantization)
            print(f"{quantization} weights: largest change {error:.2e}")
    elif fmt == "magenta-tf1":
        if quantization is not None:
            raise ExportError("a TF1 checkpoint is float32; quantization is for magenta-js")
        folder = magenta.write_tf1(weights, model.config, out_dir, model.step or 0)
    else:
        raise ExportError(f"format must be one of {MAGENTA_FORMATS}, not {fmt!r}")
    # Magenta's decoders (magenta-js's MusicVAE, Magenta's TrainedModel) play Magenta's
    # decoding; the residuals per-hit decoding draws from travel beside the weights.
    model.residuals.write(folder)
    print(f"note: {MAGENTA_DECODING_NOTE[model.config.model.velocity_offset_loss]}")
    return folder


def magenta_zip(
    model: TrainedModel,
    fmt: str,
    out_dir: str | os.PathLike,
    quantization: str | None = None,
) -> Path:
    """export_magenta into `out_dir`, then its files in `out_dir`.zip beside it (one download).

    Raises:
      ExportError: the .zip exists and was not written here; else as export_magenta.
    """
    folder = export_magenta(model, fmt, out_dir, quantization)
    archive = folder.with_name(f"{folder.name}.zip")
    # A zip's comment is its last bytes (the end of its central directory record).
    if archive.exists() and not archive.read_bytes().endswith(ZIP_COMMENT):
        raise ExportError(f"{archive} exists and was not written by this exporter")
    partial = archive.with_name(f".{archive.name}.partial")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zipped:
            zipped.comment = ZIP_COMMENT
            for path in sorted(folder.iterdir()):
                if not path.name.startswith("."):  # the exporter's marker is no part of the model
                    zipped.write(path, f"{folder.name}/{path.name}")
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)
    return archive


def _run_model(run_dir: str, step: int | None) -> TrainedModel:
    return TrainedModel(run_dir, checkpoint=find_checkpoint(Path(run_dir), step))


def page_models(
    bundled: list[str] | None, run_dirs: list[str] | None, step: int | None = None
) -> dict[str, TrainedModel]:
    """The models a web page plays, by name: bundled ones by their name, runs by their folder's;
    every bundled model when neither is given.

    Raises:
      ExportError: two models of one name.
    """
    if not bundled and not run_dirs:
        bundled = bundles.bundled_names()
    named = [(name, TrainedModel.pretrained(name)) for name in bundled or ()]
    named += [(Path(run).resolve().name, _run_model(run, step)) for run in run_dirs or ()]
    models = dict(named)
    if len(models) < len(named):
        names = [name for name, _ in named]
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ExportError(
            f"two models named {', '.join(twice)}: give runs in differently named folders"
        )
    return models


def main(argv: list[str] | None = None) -> Path:
    """`python -m helpers.export --run-dir RUN`: prints the bundle folder and its size; with
    --format magenta-js or magenta-tf1 (and --run-dir or --bundled, and --out), that folder;
    with --format web (and --out), the page's folder, then serves it with --serve."""
    parser = command_parser("export", __doc__)
    add_run_dir(parser, nargs="+")
    parser.add_argument(
        "--format", choices=FORMATS, default="bundle", help="what to write (default: %(default)s)"
    )
    parser.add_argument(
        "--bundled", nargs="+", help="bundled model(s) instead of a run (web: several)"
    )
    parser.add_argument("--out", help="the Magenta format's or the web page's folder")
    parser.add_argument(
        "--quantize", choices=magenta_js.QUANTIZATIONS[1:], help="magenta-js and web only"
    )
    parser.add_argument("--serve", action="store_true", help="web: serve the page on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="web: --serve's port (0: any free)")
    parser.add_argument("--name", default="groovae_4bar", help="bundle name (pretrained/<name>)")
    parser.add_argument("--step", type=int, help="checkpoint step to export (default: newest)")
    parser.add_argument(
        "--milestones",
        action="append",
        default=[],
        help="another folder of ckpt-<step>.npz files (repeatable)",
    )
    add_data_dir(parser)
    parser.add_argument("--trained-on", help="training machine in words (default: this CPU)")
    parser.add_argument(
        "--no-results-page", action="store_true", help="leave docs/results.md alone"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a bundle this exporter did not write"
    )
    args = parser.parse_args(argv)
    if args.format == "hit-residuals":
        if args.bundled is None or len(args.bundled) != 1 or args.run_dir is not None:
            parser.error("--format hit-residuals takes one --bundled NAME")
        config = GrooVAEConfig.read(bundles.bundle_dir(args.bundled[0]) / CONFIG_FILE)
        converter = GrooveConverter.from_config(config.converter)
        train = load_groove_4bar_split("train", args.data_dir, converter).outputs
        path = measure_hit_residuals(args.bundled[0], train)
        print(f"wrote {path}")
        return path
    if args.format == "web":
        if args.out is None:
            parser.error("--format web takes --out DIR")
        models = page_models(args.bundled, args.run_dir, args.step)
        folder = web_page.build_page(models, args.out, args.quantize or "float16")
        print(f"wrote a page of {', '.join(models)} to {folder}")
        if args.serve:
            server, address = web_page.serve(folder, args.port)
            print(f"serving {folder} at {address} (Ctrl-C stops)", flush=True)
            try:
                threading.Event().wait()
            finally:
                server.shutdown()
        return folder
    if args.format != "bundle":
        one_run = args.run_dir is not None and len(args.run_dir) == 1 and args.bundled is None
        one_bundle = args.bundled is not None and len(args.bundled) == 1 and args.run_dir is None
        if args.out is None or not (one_run or one_bundle):
            parser.error(f"--format {args.format} takes --out and one --run-dir or --bundled")
        if one_bundle:
            model = TrainedModel.pretrained(args.bundled[0])
        else:
            model = _run_model(args.run_dir[0], args.step)
        folder = export_magenta(model, args.format, args.out, args.quantize)
        size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        print(f"wrote {model.source} as {args.format} to {folder} ({size:.1f} MiB)")
        return folder
    if args.run_dir is None or len(args.run_dir) != 1:
        parser.error("the bundle format takes one --run-dir")
    if not args.no_results_page:
        _replace_results(RESULTS_PAGE, "")  # refuse before the long part, not after it
    options = BundleOptions(
        step=args.step,
        search_dirs=tuple(args.milestones),
        data_dir=args.data_dir,
        trained_on=args.trained_on,
        overwrite=args.overwrite,
    )
    folder = export(args.run_dir[0], args.name, options)
    if not args.no_results_page:
        write_results(folder)
    print(f"bundled {folder} ({bundles.bundle_bytes(folder) / 2**20:.1f} MiB)")
    return folder


if __name__ == "__main__":
    from helpers.cli import run_command

    run_command(main)
