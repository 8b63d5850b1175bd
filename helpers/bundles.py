"""A bundled model: its folder in pretrained/, its float16 weights, and the words and tables
written from its files (its model card and README Results)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.config import CONFIG_FILE, CONFIG_MAP, GrooVAEConfig, with_overrides
from helpers.device import PRECISION_WORDS
from helpers.model import GrooVAE

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
WEIGHTS_FILE = "weights.npz"
MAX_BUNDLE_BYTES = 10 * 1024 * 1024
FLOAT16_MAX = float(np.finfo(np.float16).max)


class BundleError(Exception):
    """A bundle that is missing, unknown, damaged, or does not fit its config."""


def bundled_names(root: str | os.PathLike = PRETRAINED_DIR) -> list[str]:
    """Names of the bundles under `root` (folders holding weights and a config)."""
    folders = (p.parent for p in Path(root).glob(f"*/{WEIGHTS_FILE}"))
    return sorted(f.name for f in folders if (f / CONFIG_FILE).exists())


def bundle_dir(name: str, root: str | os.PathLike = PRETRAINED_DIR) -> Path:
    """The folder of bundle `name`.

    Raises:
      BundleError: no bundle of that name, listing the ones there are.
    """
    folder = Path(root) / name
    if not (folder / WEIGHTS_FILE).exists() or not (folder / CONFIG_FILE).exists():
        known = ", ".join(bundled_names(root)) or "none"
        raise BundleError(
            f"no bundled model {name!r} in {root} (needs {WEIGHTS_FILE} and {CONFIG_FILE}); "
            f"bundled: {known}"
        )
    return folder


def save_weights(model: GrooVAE, path: str | os.PathLike, step: int) -> Path:
    """Writes the model's trainable weights as float16, with their paths and the training step.

    Only the weights are kept: optimizer state and random-stream states are not needed to
    encode or decode, and float16 halves the size at a rounding error of about 1e-3 relative.

    Raises:
      BundleError: a weight too large for float16.
    """
    arrays = {}
    for i, variable in enumerate(model.trainable_variables):
        value = np.asarray(variable, np.float32)
        if np.abs(value).max() > FLOAT16_MAX:
            raise BundleError(f"{variable.path} exceeds float16's range; cannot bundle it")
        arrays[f"weight_{i:04d}"] = value.astype(np.float16)
    arrays["paths"] = np.array([v.path for v in model.trainable_variables])
    arrays["step"] = np.array(step, np.int64)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def load_weights(model: GrooVAE, path: str | os.PathLike) -> int:
    """Assigns float16 bundle weights to `model` as float32.

    Returns:
      The step the weights were trained to.

    Raises:
      BundleError: the file is missing, truncated or not a bundle, or does not fit the model.
    """
    path = Path(path)
    if not path.exists():
        raise BundleError(
            f"{path} is missing; restore it (git checkout -- {path}) or re-export the bundle"
        )
    try:
        with np.load(path) as saved:
            arrays = {name: saved[name] for name in saved.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise BundleError(
            f"{path} is damaged or truncated ({type(error).__name__}: {error}); restore it "
            f"(git checkout -- {path}; with Git LFS, git lfs pull) or re-export the bundle"
        ) from error
    variables = model.trainable_variables
    names = sorted(k for k in arrays if k.startswith("weight_"))
    if "step" not in arrays or "paths" not in arrays or len(names) != len(variables):
        raise BundleError(f"{path} is not a bundle of this model's weights")
    for variable, name, saved_path in zip(variables, names, arrays["paths"]):
        if tuple(arrays[name].shape) != tuple(variable.shape):
            raise BundleError(
                f"{path}: {saved_path} has shape {arrays[name].shape}, the config's model "
                f"{tuple(variable.shape)}; weights and config.json are from different models"
            )
        variable.assign(arrays[name].astype(np.float32))
    return int(arrays["step"])


def load_bundle(name: str, root: str | os.PathLike = PRETRAINED_DIR) -> tuple[GrooVAE, int]:
    """The bundled GrooVAE `name`, float32, and the step it was trained to.

    Raises:
      BundleError: unknown name, damaged weights or config.
    """
    folder = bundle_dir(name, root)
    try:
        config = GrooVAEConfig.read(folder / CONFIG_FILE)
    except (ValueError, KeyError, TypeError) as error:
        raise BundleError(f"{folder / CONFIG_FILE} is not a GrooVAE config: {error}") from error
    # float32 compute whatever the run trained with: the weights are stored at float16 either way.
    model = GrooVAE(with_overrides(config, precision="float32"))
    return model, load_weights(model, folder / WEIGHTS_FILE)


def bundle_bytes(folder: str | os.PathLike) -> int:
    """Total size of the files in a bundle folder."""
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())


TARGET_STEPS = 3000  # the original task's recipe
TARGET_F1 = 0.70  # greedy test hit F1 asked of the final bundle
GMD_CREDIT = (
    "The Groove MIDI Dataset (GMD) v1.0.0 by Jon Gillick, Adam Roberts, Jesse Engel, Douglas Eck "
    "and David Bamman (Google Magenta), under the "
    "[Creative Commons Attribution 4.0 International]"
    "(https://creativecommons.org/licenses/by/4.0/) "
    'license: "Learning to Groove with Inverse Sequence Transformations", ICML 2019, '
    "<https://magenta.tensorflow.org/datasets/groove>."
)


TOOL_FIGURES = "tool_figures.md"  # bench/bench_tools.py --write-cards: what it does as a tool
FIGURES = {"curves": "training_curves.png", "samples": "samples.png"}  # files in a bundle


def wall_seconds(history: pd.DataFrame) -> float:
    """Training wall time from history.csv's `seconds`, which restarts at 0 when a run resumes."""
    seconds = history["seconds"].dropna().to_numpy()
    restarts = [i for i in range(1, len(seconds)) if seconds[i] < seconds[i - 1]]
    ends = [seconds[i - 1] for i in restarts] + ([seconds[-1]] if len(seconds) else [])
    return float(sum(ends))


def _f(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _reconstruction_rows(columns: dict[str, dict]) -> list[str]:
    """Markdown rows of reconstruction figures, one column per named metrics dict."""
    rows = [
        ("r_loss (Magenta's eval, per sequence)", lambda m: _f(m["eval"]["r_loss"], 1)),
        (
            "hits / velocities / offsets loss per step",
            lambda m: " / ".join(
                _f(m["eval"][k], 2) for k in ("hits_loss", "velocities_loss", "offsets_loss")
            ),
        ),
        (
            "hit accuracy (all drum-by-step cells)",
            lambda m: _f(m["reconstruction"]["hit_accuracy"]),
        ),
        (
            "hit precision / recall / **F1**",
            lambda m: " / ".join(_f(m["reconstruction"][k]) for k in ("precision", "recall", "f1")),
        ),
        (
            "velocity MAE, true hits / hits found (MIDI)",
            lambda m: " / ".join(
                _f(m["reconstruction"][k], 1) for k in ("velocity_mae", "velocity_mae_found")
            ),
        ),
        (
            "timing MAE, true hits / hits found (ms)",
            lambda m: " / ".join(
                _f(m["reconstruction"][k], 1) for k in ("timing_mae_ms", "timing_mae_found_ms")
            ),
        ),
    ]
    header = ["| test windows | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    return header + [
        f"| {name} | " + " | ".join(cell(m) for m in columns.values()) + " |" for name, cell in rows
    ]


def _sample_rows(sets: dict[str, dict]) -> list[str]:
    """Markdown rows of sample statistics against the test windows, one row per set."""
    lines = [
        "| set | W1 hit density per drum | W1 hits per bar | W1 velocity (MIDI) | W1 timing offset "
        "| nearest training window (hit cells apart) | copies |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, report in sets.items():
        d, n = report["distance_to_real"], report["novelty"]
        lines.append(
            f"| {name} | {_f(d['hit_density_mean'])} | {_f(d['hits_per_bar'], 2)} | "
            f"{_f(d['velocity'], 1)} | {_f(d['offset'])} | {_f(n['nearest_hamming_mean'], 1)} | "
            f"{n['copy_fraction']:.0%} |"
        )
    return lines


def step_columns(metrics: dict) -> dict[str, dict]:
    """Metrics by column title: each milestone step, the bundled step, the untrained model."""
    columns = {
        f"step {int(step):,}": m
        for step, m in sorted(metrics.get("milestones", {}).items(), key=lambda i: int(i[0]))
        if int(step) < metrics["bundle"]["step"]
    }
    columns[f"**step {metrics['bundle']['step']:,}** (bundled)"] = metrics
    columns["untrained model"] = metrics["baselines"]["untrained"]
    return columns


def gaps(metrics: dict) -> list[str]:
    """What the bundle does not (yet) do that was asked of it, from its own numbers."""
    step, found = metrics["bundle"]["step"], []
    config = CONFIG_MAP.get(metrics.get("config"))
    if config is not None and config.converter.split_bars != 4:  # targets set for 4-bar models
        return found
    if step < TARGET_STEPS:
        found.append(
            f"{TARGET_STEPS:,} steps not yet reached: the bundled model is at step {step:,}."
        )
    f1 = metrics["reconstruction"]["f1"]
    if f1 < TARGET_F1:
        found.append(f"Greedy test hit F1 is {f1:.3f}, short of the {TARGET_F1:.2f} target.")
    samples = metrics["samples"]["temperature_0.5"]["distance_to_real"]
    for name, baseline in metrics["baselines"].items():
        for key, words in (("hit_density_mean", "hit density"), ("hits_per_bar", "hits per bar")):
            if samples[key] >= baseline["distance_to_real"][key]:
                found.append(
                    f"Samples at temperature 0.5 do not beat the {name} baseline on {words} "
                    f"(W1 {samples[key]:.3f} against {baseline['distance_to_real'][key]:.3f})."
                )
    return found


def training_summary(config: GrooVAEConfig, history: pd.DataFrame, metrics: dict) -> str:
    """One paragraph: recipe, steps, epochs, wall time and machine."""
    t, bundle = config.train, metrics["bundle"]
    epochs = bundle["step"] * t.batch_size / metrics["num_train_windows"]
    precision = PRECISION_WORDS[t.precision]
    hours = wall_seconds(history[history["step"] <= bundle["step"]]) / 3600
    return (
        f"`{config.name}` as configured (Magenta's architecture and objective), batch "
        f"{t.batch_size}, {precision}, on all {metrics['num_train_windows']:,} GMD training "
        f"windows, trained to **step {bundle['step']:,}** ({epochs:.1f} epochs) in "
        f"{hours:.1f} hours of wall time on {bundle['trained_on']}. Evaluated on the "
        f"{metrics['num_test_windows']:,} test windows ({bundle['num_samples']:,} samples per set, "
        "seed 0) with the bundled float16 weights loaded back at float32."
    )


def results_markdown(
    config: GrooVAEConfig,
    history: pd.DataFrame,
    metrics: dict,
    figures: dict[str, str],
    summary: bool = True,
) -> str:
    """The Results section body: summary, tables, figures and gaps, all from the bundle's files.

    Args:
      figures: {"curves": path, "samples": path} as the page that shows them should link them.
      summary: open with the training summary paragraph.
    """
    sets = {f"samples, temperature {k.split('_')[1]}": v for k, v in metrics["samples"].items()}
    sets["untrained model"] = metrics["baselines"]["untrained"]
    sets["per-cell marginal sampler"] = metrics["baselines"]["marginal"]
    test = metrics["test_novelty"]
    found = gaps(metrics) or ["None of the targets is missed."]
    return "\n".join(
        [
            *([training_summary(config, history, metrics), ""] if summary else []),
            f"![training curves]({figures['curves']})",
            "",
            "**Reconstruction** of the test windows from the posterior mean, decoded greedily:",
            "",
            *_reconstruction_rows(step_columns(metrics)),
            "",
            "**Samples against real drummers**: Wasserstein-1 distance from each set's distribution to "
            "the test windows' (lower is closer), and novelty as the mean Hamming distance from each "
            "groove's hits to its nearest training window's:",
            "",
            *_sample_rows(sets),
            f"| real test windows | | | | | {_f(test['nearest_hamming_mean'], 1)} | "
            f"{test['copy_fraction']:.0%} |",
            "",
            f"Five grooves from the bundled model (temperature 0.5, seed {metrics['bundle']['seed']}):",
            "",
            f"![five grooves]({figures['samples']})",
            "",
            "**Gaps:**",
            "",
            *[f"- {line}" for line in found],
        ]
    )


# How each objective (ModelConfig.velocity_offset_loss) trains velocities and offsets.
OBJECTIVES = {
    "all_cells": "Trained on Magenta's objective: velocity and offset errors count in every cell, "
    "hit or not, so its outputs are p(hit) times the value given a hit.",
    "hit_cells": "Trained with velocity and offset errors only where the drummer played (the "
    "Groove Transformer's masking), so its outputs are the values given a hit.",
}


DECODING_WORDS = {"per_hit": "per-hit decoding", "magenta": "Magenta's decoding"}


def model_card(
    config: GrooVAEConfig, history: pd.DataFrame, metrics: dict, tool_figures: str = ""
) -> str:
    """MODEL_CARD.md of a bundle: data and credit, recipe, steps, machine, metrics, what it
    does as a tool (`tool_figures`, the bench's tables, when measured), limits."""
    bundle = metrics["bundle"]
    decoding = bundle.get("decoding", "magenta")  # bundles exported before per-hit decoding
    bars = config.converter.split_bars
    controls = ", its decoder told which hits to play" if config.converter.hits_as_controls else ""
    return (
        "\n".join(
            [
                f"# {bundle['name']}: a GrooVAE trained on the Groove MIDI Dataset",
                "",
                f"A {bars}-bar drum groove VAE (BiLSTM encoder, LSTM decoder, 256-dimensional z) "
                "that writes hits, velocities and microtiming for a 9-piece kit on a 16th-note grid"
                f"{controls}. Load it with "
                f'`TrainedModel.pretrained("{bundle["name"]}")`. Weights are stored as float16 and '
                "loaded back at float32.",
                "",
                "## Data",
                "",
                GMD_CREDIT
                + f" The TFDS `groove/{bars}bar-midionly` train split; no GMD file is in this folder.",
                "",
                "## Training",
                "",
                training_summary(config, history, metrics),
                f"Exported from the run's `{bundle['checkpoint']}` by `python -m helpers.export`.",
                "",
                "## Objective and decoding",
                "",
                OBJECTIVES[config.model.velocity_offset_loss],
                "Its grooves play with per-hit decoding by default: each drawn hit at the velocity "
                "and offset the model expects given that hit, plus a residual drawn from how GMD's "
                "drummers stray from it (hit_residuals.json, measured on training windows), scaled "
                "by the square root of the temperature. "
                '`TrainedModel.pretrained(..., decoding="magenta")` plays Magenta\'s exact decoding. '
                f"The Results were measured with {DECODING_WORDS[decoding]} as the bundle was "
                "exported; the tables under As a tool give both decodings.",
                "",
                "## Results",
                "",
                results_markdown(config, history, metrics, FIGURES, summary=False),
                "",
                *(["## As a tool", "", tool_figures.strip(), ""] if tool_figures else []),
                "## Known limits",
                "",
                "- Trained on GMD alone: ten drummers on one electronic kit (Roland TD-11), 4/4 only; "
                "other meters, kits and styles lie outside what it has seen.",
                "- A drawn hit's spread comes from one residual distribution per drum, the same in "
                "every context, so a ghost note and an accent stray alike around what the model expects.",
                "- Reconstruction figures are for the posterior mean decoded greedily; sampled decodes "
                "differ from them.",
                "- Files are read with Magenta's reduced drum map at inference: toms 45/48 and 58 land in "
                'other classes than in training (pass `encode_mode="eval"` for GMD files).',
            ]
        )
        + "\n"
    )
