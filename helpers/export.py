"""Exporting a trained run as the repository's bundled model, with everything that describes it.

One command writes pretrained/<name>/ (float16 weights, config.json, history.csv, metrics.json,
MODEL_CARD.md, training_curves.png, samples.png), the five committed grooves under
outputs/samples/<name>-pretrained-T0.5-seed0-120bpm/ (MIDI and pianoroll, no audio) and the
bundle's block on docs/results.md, so a later checkpoint is shipped by running it again.

`--format magenta-js` or `--format magenta-tf1` writes a run (or, with --bundled, a bundled
model) in Magenta's formats instead: a folder for magenta-js's MusicVAE, or a TF1 checkpoint
and .tar for Magenta's TrainedModel. `--format web` writes a static page that plays runs or
bundled models (all bundled ones by default) in a browser; `--serve` serves it on 127.0.0.1.
The exporting itself is helpers/exporting.py; this command line checks every flag and folder
before loading it.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from helpers import magenta_js
from helpers.cli import (
    add_data_dir,
    add_run_dir,
    check_output_folder,
    check_range,
    command_parser,
    count,
    run_folder,
)
from helpers.config import CONFIG_FILE, GrooVAEConfig
from helpers.constants import MAGENTA_FORMATS

# hit-residuals: re-measure a bundle's HitResiduals on GMD's training split (--bundled).
FORMATS = ("bundle", *MAGENTA_FORMATS, "web", "hit-residuals")
MAX_PORT = 65535


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The flags, each checked (with the run and output folders) before anything loads the
    model's framework: a refusal is one `error:` line in well under a second."""
    parser = command_parser("export", __doc__)
    add_run_dir(parser, nargs="+", type=run_folder)
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
    parser.add_argument("--step", type=count, help="checkpoint step to export (default: newest)")
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
    runs, bundled = args.run_dir or [], args.bundled or []
    if args.format == "hit-residuals" and (len(bundled) != 1 or runs):
        parser.error("--format hit-residuals takes one --bundled NAME")
    if args.format in MAGENTA_FORMATS and (args.out is None or len(runs) + len(bundled) != 1):
        parser.error(f"--format {args.format} takes --out and one --run-dir or --bundled")
    if args.format == "web" and args.out is None:
        parser.error("--format web takes --out DIR")
    if args.format == "bundle" and len(runs) != 1:
        parser.error("the bundle format takes one --run-dir")
    if args.quantize is not None and args.format not in ("magenta-js", "web"):
        parser.error(f"--quantize is for --format magenta-js and web, not {args.format}")
    if args.serve and args.format != "web":
        parser.error("--serve is for --format web")
    check_range(parser, "--port", args.port, 0, MAX_PORT)
    for folder in args.milestones:
        if not Path(folder).is_dir():
            parser.error(f"--milestones {folder} is not a folder; give a folder of ckpt-*.npz")
    if args.out is not None:
        check_output_folder(parser, "--out", args.out)
    return args


def main(argv: list[str] | None = None) -> Path:
    """`python -m helpers.export --run-dir RUN`: prints the bundle folder and its size; with
    --format magenta-js or magenta-tf1 (and --run-dir or --bundled, and --out), that folder;
    with --format web (and --out), the page's folder, then serves it with --serve."""
    args = _parse_args(argv)
    # Imported only now, once every flag and folder is checked: exporting loads the model's
    # framework (TensorFlow, JAX or PyTorch: seconds) and note-seq (a second), and --help or a
    # refusal answers without them.
    from helpers import bundles, converter, data, exporting, sample, web_page

    if args.format == "hit-residuals":
        config = GrooVAEConfig.read(bundles.bundle_dir(args.bundled[0]) / CONFIG_FILE)
        cut = converter.GrooveConverter.from_config(config.converter)
        train = data.load_groove_4bar_split("train", args.data_dir, cut).outputs
        path = exporting.measure_hit_residuals(args.bundled[0], train)
        print(f"wrote {path}")
        return path
    if args.format == "web":
        models = exporting.page_models(args.bundled, args.run_dir, args.step)
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
    if args.format in MAGENTA_FORMATS:
        if args.bundled:
            model = sample.TrainedModel.pretrained(args.bundled[0])
        else:
            model = exporting.run_model(args.run_dir[0], args.step)
        folder = exporting.export_magenta(model, args.format, args.out, args.quantize)
        size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        print(f"wrote {model.source} as {args.format} to {folder} ({size:.1f} MiB)")
        return folder
    if not args.no_results_page:
        exporting.check_results_page()  # refuse before the long part, not after it
    options = exporting.BundleOptions(
        step=args.step,
        search_dirs=tuple(args.milestones),
        data_dir=args.data_dir,
        trained_on=args.trained_on,
        overwrite=args.overwrite,
    )
    folder = exporting.export(args.run_dir[0], args.name, options)
    if not args.no_results_page:
        exporting.write_results(folder)
    print(f"bundled {folder} ({bundles.bundle_bytes(folder) / 2**20:.1f} MiB)")
    return folder


if __name__ == "__main__":
    from helpers.cli import run_command

    run_command(main)
