"""How well generate, humanize, drumify, transfer and infill play against GMD's test windows.

    python bench/bench_tools.py [--models bundled|magenta|RUN] [--outputs-dir DIR]
        [--tools generate humanize drumify transfer infill] [--windows N] [--data-dir DIR]

Each tool plays every test window (or the first N) as its verb does, at the array level in
batches: the model `pick_model(verb, --models, --outputs-dir)` finds, its default temperature,
seeded, under both decodings: per-hit (the default) and Magenta's. `--outputs-dir ~` plays the
runs under ~/runs/<config>. The figures:

  generate  4-bar grooves from the prior at temperatures 0.5 and 1.0 against GMD's 4-bar test
            windows: velocity and offset means, spreads and Wasserstein-1 distances, hits per
            bar, swingness and poly-offset std, beside the per-cell marginal sampler; the
            field's groove features compared as MGEval does (KL, overlapping area); and the
            hit F1 of greedy reconstructions of the test windows.
  humanize  the score (the window's hits at one velocity, on the grid) played: hits kept and
            added, velocity and timing MAE against the drummer on the kept hits, and the
            Wasserstein-1 distance of the velocity and timing distributions to the drummer's,
            beside the score itself and the drummer's mean velocity per drum (training split).
            A hits-conditioned model plays twice: with z from the score's posterior, as the
            verb does, and with z from the prior.
  drumify   the window's taps (the tap converter's one line) as a kit: hit F1 against the
            drummer's kit, all drums and per drum, beside a fixed typical beat.
  transfer  window A's hits with window B's feel (B: the window half the split away): hits kept
            and added, and how far the per-drum mean velocity and offset lie from B's, beside A
            as it was.
  infill    windows with closed hi-hats, their closed hi-hats removed, filled: closed hi-hat F1
            against the drummer's, beside the training split's typical hi-hat pattern.
"""

import argparse
import contextlib
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from conditions import run_watched

from helpers import device
from helpers.bundles import PRETRAINED_DIR, TOOL_FIGURES, BundleError
from helpers.cli import add_data_dir, add_outputs_dir
from helpers.config import MODELS, ConverterConfig
from helpers.constants import (
    DEFAULT_TEMPERATURE,
    DRUM_CLASS_NAMES,
    HITS,
    MAX_MIDI_VELOCITY,
    OFFSETS,
    STEPS_PER_BAR,
    VELOCITIES,
)
from helpers.converter import GrooveConverter, encoder_inputs
from helpers.data import load_groove_4bar_split
from helpers.evaluate import GREEDY_TEMPERATURE
from helpers.exporting import write_model_card
from helpers.magenta import MagentaError
from helpers.metrics import (
    MarginalSampler,
    compare_sets,
    groove_features,
    wasserstein_1d,
)
from helpers.runs import RunError
from helpers.sample import SampleError, TrainedModel, pick_model
from helpers.tools import CLOSED_HI_HAT, quantized_score

TOOLS = ("generate", "humanize", "drumify", "transfer", "infill")
GENERATE_TEMPERATURES = (0.5, 1.0)
GENERATE_BARS = 4  # generate plays groovae_4bar's windows
SPLIT_BARS = 2  # every tool's model reads 2-bar windows, as Magenta's do
# What a model's converter must do to play each tool (the verbs refuse the others).
CAN_PLAY: dict[str, Callable[[ConverterConfig], bool]] = {
    "generate": lambda c: not (c.humanize or c.tapify or c.hits_as_controls or c.add_instruments),
    "humanize": lambda c: c.hits_as_controls or c.humanize,
    "drumify": lambda c: c.tapify,
    "transfer": lambda c: c.hits_as_controls,
    "infill": lambda c: CLOSED_HI_HAT in c.add_instruments,
}


def hits_of(grooves: np.ndarray) -> np.ndarray:
    """(n, steps, 9) bool hits of (n, steps, 27) grooves."""
    return grooves[..., HITS] > 0.5


def f1_counts(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-drum (precision, recall, F1) and over all drums (last entry) of (..., 9) bool hits;
    NaN where there is nothing to count."""
    axes = tuple(range(true.ndim - 1))
    tp, n_pred, n_true = (a.sum(axes) for a in (true & pred, pred, true))
    tp, n_pred, n_true = (np.append(a, a.sum()).astype(np.float64) for a in (tp, n_pred, n_true))
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / n_pred, tp / n_true, 2 * tp / (n_pred + n_true)


def ms_per_offset(bpm: np.ndarray) -> np.ndarray:
    """(n, 1, 1) milliseconds of one offset unit at each window's tempo: half a 16th, so
    0.5 * 15 / bpm seconds."""
    return (7500.0 / np.asarray(bpm, np.float64))[:, None, None]


def per_drum_means(grooves: np.ndarray, part: slice) -> np.ndarray:
    """(n, 9) mean of a part (velocities or offsets) over each window's hits of each drum; NaN
    for a drum the window does not play."""
    hits = hits_of(grooves)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (grooves[..., part] * hits).sum(1) / hits.sum(1)


def typical_pattern(train: np.ndarray) -> np.ndarray:
    """(steps, 9) bool: the cells hit in over half the training windows, one beat for all."""
    return hits_of(train).mean(0) > 0.5


def table(header: list[str], rows: list[list]) -> None:
    """Prints rows under a header: the first column left-aligned, numbers to 3 figures."""

    def cell(value) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, int):
            return f"{value:,}"
        return "-" if np.isnan(value) else f"{value:.3g}"

    cells = [header] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        print(
            "  " + r[0].ljust(widths[0]) + "".join(f"  {c:>{w}}" for c, w in zip(r[1:], widths[1:]))
        )


def kept_and_added(score: np.ndarray, played: np.ndarray) -> tuple[float, float]:
    """Fractions of the score's hits that are played, and of extra hits, per score hit."""
    n = score.sum()
    return float((score & played).sum() / n), float((played & ~score).sum() / n)


def swingness(grooves: np.ndarray) -> float:
    """Mean GrooveEvaluator swingness of (n, steps, 27) grooves."""
    return float(np.mean(groove_features(grooves)["swingness"]))


def spread_row(name: str, grooves: np.ndarray, features: dict, real: np.ndarray) -> list:
    """Velocity and offset of the hits of (n, steps, 27) grooves against the drummers', and two of
    the grooves' `features` (groove_features of them)."""
    hits, true = hits_of(grooves), hits_of(real)
    velocity = grooves[..., VELOCITIES][hits] * MAX_MIDI_VELOCITY
    offset = grooves[..., OFFSETS][hits]
    return [
        name,
        velocity.mean(),
        velocity.std(),
        offset.std(),
        wasserstein_1d(velocity, real[..., VELOCITIES][true] * MAX_MIDI_VELOCITY),
        wasserstein_1d(offset, real[..., OFFSETS][true]),
        hits.sum() / len(grooves) / (grooves.shape[1] / STEPS_PER_BAR),
        float(np.mean(features["swingness"])),
        float(np.mean(features["poly_offset_std"])),
    ]


def bench_generate(
    model: TrainedModel,
    real: np.ndarray,
    bpm: np.ndarray,
    train: np.ndarray,
    temperature: float,
    seed: int,
) -> None:
    """Prints generate's tables (arguments as bench_humanize's, on 4-bar windows; the
    temperatures are GENERATE_TEMPERATURES)."""
    n = len(real)
    reference = groove_features(real, bpm)
    print(
        f"generate: {n:,} grooves per row against {n:,} test windows; velocity in MIDI units, "
        "offsets in half steps (GMD's own tempo), swingness and poly-offset std as GrooveEvaluator"
    )
    # Swingness and poly-offset std do not read the tempo: the reference serves the real row.
    rows = [spread_row("the drummers (test windows)", real, reference, real)]
    comparisons = {}
    played = {}
    for t in GENERATE_TEMPERATURES:
        for decoding, grooves in model.under_each_decoding(
            lambda t=t: model.sample_grooves(n, t, seed)
        ).items():
            played[f"T {t}, {decoding} decoding"] = grooves
    played["per-cell marginal sampler"] = MarginalSampler(train).sample(n, seed)
    for name, grooves in played.items():
        features = groove_features(grooves)
        rows.append(spread_row(name, grooves, features, real))
        comparisons[name] = compare_sets(features, reference)
    header = ["", "mean vel", "vel std", "offset std", "W1 vel", "W1 offset", "hits/bar"]
    table([*header, "swingness", "poly-offset std"], rows)
    print("\n  groove features against the test windows (MGEval): KL / overlapping area")
    features = list(reference)
    table(
        ["", *features],
        [
            [name, *(f"{c[f].kl:.3f}/{c[f].overlap:.2f}" for f in features)]
            for name, c in comparisons.items()
        ],
    )
    inputs = encoder_inputs(real, model.config.converter, seed)
    mu, _ = model.model.encode(inputs)
    f1 = {
        decoding: f1_counts(hits_of(real), hits_of(greedy))[2][-1]
        for decoding, greedy in model.under_each_decoding(
            lambda: model.decode_grooves(np.asarray(mu), GREEDY_TEMPERATURE, seed)
        ).items()
    }
    print(
        "\n  hit F1 of greedy reconstructions (z = mu): "
        + ", ".join(f"{k} decoding {v:.3f}" for k, v in f1.items())
    )


def bench_humanize(
    model: TrainedModel,
    real: np.ndarray,
    bpm: np.ndarray,
    train: np.ndarray,
    temperature: float,
    seed: int,
) -> None:
    """Prints humanize's table. real: (n, 32, 27) test windows; bpm: (n,) their tempi;
    train: (m, 32, 27) training windows, for the baselines."""
    score = quantized_score(real)
    if model.config.converter.hits_as_controls:
        hits = model.model.controls_of(score)
        prior = np.random.default_rng(seed).standard_normal((len(real), model.config.model.z_size))
        codes = {
            # The score's own code: where the encoder puts grooves, which the prior may not be.
            "the model, z from the score's posterior (the verb)": posterior_sample(
                model, score, seed
            ),
            "the model, z from the prior": prior.astype(np.float32),
        }
        played = {
            f"{name}, {decoding} decoding": grooves
            for name, z in codes.items()
            for decoding, grooves in model.under_each_decoding(
                lambda z=z: model.decode_grooves(z, temperature, seed, controls=hits, hits=hits),
            ).items()
        }
    else:  # Magenta's humanize model re-encodes the score's hits and draws its own
        played = {
            f"the model, the score re-encoded (the verb), {decoding} decoding": grooves
            for decoding, grooves in model.under_each_decoding(
                lambda: reencode(model, score, temperature, seed)
            ).items()
        }
    given, ms = hits_of(real), ms_per_offset(bpm)
    drum_mean = np.nanmean(np.where(hits_of(train), train[..., VELOCITIES], np.nan), axis=(0, 1))
    guesses = {
        **played,
        "the score: one velocity, the grid": score,
        "drummer's mean velocity per drum (training split), the grid": np.concatenate(
            [real[..., HITS], given * drum_mean, np.zeros_like(real[..., OFFSETS])], axis=-1
        ),
    }
    velocity, offset = real[..., VELOCITIES] * MAX_MIDI_VELOCITY, real[..., OFFSETS] * ms
    rows = []
    for name, guess in guesses.items():
        kept, added = kept_and_added(given, hits_of(guess))
        both = given & hits_of(guess)
        guess_velocity = guess[..., VELOCITIES] * MAX_MIDI_VELOCITY
        guess_offset = guess[..., OFFSETS] * ms
        rows.append(
            [
                name,
                100 * kept,
                100 * added,
                guess_velocity[hits_of(guess)].mean(),
                np.abs(guess_velocity - velocity)[both].mean(),
                np.abs(guess_offset - offset)[both].mean(),
                wasserstein_1d(guess_velocity[hits_of(guess)], velocity[given]),
                wasserstein_1d(guess_offset[hits_of(guess)], offset[given]),
                swingness(guess),
            ]
        )
    rows.append(
        ["the drummer", 100.0, 0.0, velocity[given].mean(), 0.0, 0.0, 0.0, 0.0, swingness(real)]
    )
    print(
        f"humanize: {given.sum():,} hits of the drummer in {len(real):,} windows, at "
        f"{velocity[given].mean():.1f} on average; velocities in MIDI units, timing at each "
        "window's tempo"
    )
    table(
        [
            "",
            "kept %",
            "added %",
            "mean vel",
            "vel MAE",
            "timing MAE ms",
            "W1 vel",
            "W1 timing ms",
            "swingness",
        ],
        rows,
    )


def posterior_sample(model: TrainedModel, grooves: np.ndarray, seed: int) -> np.ndarray:
    """(n, z_size) float32: z = mu + sigma * eps of each window's posterior."""
    mu, sigma = model.posterior(grooves)
    return mu + sigma * np.random.default_rng(seed).standard_normal(mu.shape).astype(np.float32)


def reencode(model: TrainedModel, grooves: np.ndarray, temperature: float, seed: int) -> np.ndarray:
    """tools.reencode on arrays: a sample of each window's posterior, decoded."""
    return model.decode_grooves(posterior_sample(model, grooves, seed), temperature, seed)


def bench_drumify(
    model: TrainedModel,
    real: np.ndarray,
    bpm: np.ndarray,
    train: np.ndarray,
    temperature: float,
    seed: int,
) -> None:
    """Prints drumify's table (arguments as bench_humanize's)."""
    # The posterior sees the window as the tap converter makes it: one line of taps.
    decoded = model.under_each_decoding(lambda: hits_of(reencode(model, real, temperature, seed)))
    played, magenta = decoded[model.decoding], decoded["magenta"]
    given = hits_of(real)
    typical = np.broadcast_to(typical_pattern(train), given.shape)
    model_p, model_r, model_f1 = f1_counts(given, played)
    _, _, magenta_f1 = f1_counts(given, magenta)
    _, _, typical_f1 = f1_counts(given, typical)
    support = np.append(given.sum((0, 1)), given.sum())
    names = [*DRUM_CLASS_NAMES, "all drums"]
    rows = [
        [name, int(s), p, r, f, m, t]
        for name, s, p, r, f, m, t in zip(
            names, support, model_p, model_r, model_f1, magenta_f1, typical_f1
        )
    ]
    print(
        f"drumify: {len(real):,} windows' taps; the model plays {played.sum() / len(real):.1f} "
        f"hits a window (per-hit decoding), the drummer {given.sum() / len(real):.1f}"
    )
    header = ["drum", "drummer's hits", "precision", "recall", "F1", "F1 magenta dec."]
    table([*header, "typical beat F1"], rows)
    low, high = bootstrap_f1_gain(given, played, typical, seed)
    print(
        f"  F1 over the typical beat, 95 % bootstrap interval over windows: {low:+.3f} to {high:+.3f}"
    )


def bootstrap_f1_gain(
    true: np.ndarray, pred: np.ndarray, baseline: np.ndarray, seed: int, draws: int = 1000
) -> tuple[float, float]:
    """95 % interval of F1(pred) - F1(baseline) over all drums, windows resampled with
    replacement. true, pred, baseline: (n, steps, 9) bool."""
    counts = [
        np.stack([(true & guess).sum((1, 2)), guess.sum((1, 2)), true.sum((1, 2))], 1)
        for guess in (pred, baseline)
    ]  # (n, 3) per window: true positives, predicted, true
    rows = np.random.default_rng(seed).integers(0, len(true), (draws, len(true)))
    gains = []
    for sample in rows:
        f1 = [2 * c[sample, 0].sum() / (c[sample, 1].sum() + c[sample, 2].sum()) for c in counts]
        gains.append(f1[0] - f1[1])
    return tuple(float(v) for v in np.quantile(gains, [0.025, 0.975]))


def bench_transfer(
    model: TrainedModel,
    real: np.ndarray,
    bpm: np.ndarray,
    train: np.ndarray,
    temperature: float,
    seed: int,
) -> None:
    """Prints transfer's table (arguments as bench_humanize's)."""
    feel = np.roll(real, len(real) // 2, axis=0)  # B: mostly another performance than A's
    mu, _ = model.posterior(feel)
    hits = model.model.controls_of(real)
    played = model.under_each_decoding(
        lambda: model.decode_grooves(mu, temperature, seed, controls=hits, hits=hits)
    )
    ms = ms_per_offset(bpm)  # offsets at A's tempo, the one the transfer plays at

    def distance(a: np.ndarray, b: np.ndarray, part: slice, scale: float | np.ndarray) -> float:
        return float(np.nanmean(np.abs(per_drum_means(a, part) - per_drum_means(b, part)) * scale))

    rows = []
    grooves = {f"transfer, {d} decoding: A's hits, B's feel": g for d, g in played.items()}
    for name, groove in (*grooves.items(), ("A as it was", real)):
        kept, added = kept_and_added(hits_of(real), hits_of(groove))
        rows.append(
            [
                name,
                100 * kept,
                100 * added,
                distance(groove, feel, VELOCITIES, MAX_MIDI_VELOCITY),
                distance(groove, feel, OFFSETS, ms[:, 0]),
                distance(groove, real, VELOCITIES, MAX_MIDI_VELOCITY),
                distance(groove, real, OFFSETS, ms[:, 0]),
            ]
        )
    print(
        f"transfer: {len(real):,} pairs; per-drum mean velocity (MIDI) and offset (ms) "
        "differences, over drums both play"
    )
    table(["", "kept %", "added %", "vel to B", "offset to B", "vel to A", "offset to A"], rows)


def bench_infill(
    model: TrainedModel,
    real: np.ndarray,
    bpm: np.ndarray,
    train: np.ndarray,
    temperature: float,
    seed: int,
) -> None:
    """Prints infill's table (arguments as bench_humanize's)."""
    with_hats = hits_of(real)[..., CLOSED_HI_HAT].any(1)
    real = real[with_hats]
    without = real.copy()
    without[..., [part.start + CLOSED_HI_HAT for part in (HITS, VELOCITIES, OFFSETS)]] = 0.0
    decoded = model.under_each_decoding(lambda: reencode(model, without, temperature, seed))
    played = hits_of(decoded["per_hit"])
    given = hits_of(real)
    train = train[hits_of(train)[..., CLOSED_HI_HAT].any(1)]
    typical = np.broadcast_to(typical_pattern(train), given.shape)
    others = [d for d in range(len(DRUM_CLASS_NAMES)) if d != CLOSED_HI_HAT]
    rows = []
    for name, grooves in (*decoded.items(), ("the drummer", real)):
        hats = hits_of(grooves)[..., CLOSED_HI_HAT]
        p, r, f1 = (a[CLOSED_HI_HAT] for a in f1_counts(given, hits_of(grooves)))
        velocity = grooves[..., VELOCITIES.start + CLOSED_HI_HAT][hats] * MAX_MIDI_VELOCITY
        label = name if name == "the drummer" else f"the model, {name} decoding"
        rows.append([label, p, r, f1, hats.sum() / len(real), velocity.mean()])
    p, r, f1 = (a[CLOSED_HI_HAT] for a in f1_counts(given, typical))
    rows.append(
        ["typical hi-hat pattern", p, r, f1, typical[..., CLOSED_HI_HAT].sum() / len(real), np.nan]
    )
    print(
        f"infill: {len(real):,} windows with closed hi-hats, "
        f"{given[..., CLOSED_HI_HAT].sum() / len(real):.1f} a window by the drummer"
    )
    table(["closed hi-hats", "precision", "recall", "F1", "a window", "mean vel"], rows)
    # The decoder writes a whole kit; the verb keeps only its closed hi-hats, so this is what
    # returning the whole decoded kit would have done to the drums the user played.
    kit_f1 = f1_counts(given[..., others], played[..., others])[2][-1]
    print(f"  the other drums as decoded (the verb keeps yours instead): F1 {kit_f1:.3g}")


BENCHES = {
    "generate": bench_generate,
    "humanize": bench_humanize,
    "drumify": bench_drumify,
    "transfer": bench_transfer,
    "infill": bench_infill,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        help=f"which model plays: {' | '.join(MODELS)} | a run or checkpoint folder "
        "(default: your run of each tool's config under --outputs-dir, else the bundled one)",
    )
    add_outputs_dir(parser)
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--windows", type=int, default=None, help="first N test windows")
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    parser.add_argument("--seed", type=int, default=0)
    add_data_dir(parser)
    parser.add_argument(
        "--write-cards",
        action="store_true",
        help="keep each bundled model's figures beside it (TOOL_FIGURES), for its model card",
    )
    args = parser.parse_args(argv)
    cpu = device.cpu_info().describe()
    print(f"CPU: {cpu}")

    splits = {}

    def gmd(bars: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """GMD's (test windows, their tempi, training windows) in `bars`-bar windows."""
        if bars not in splits:
            converter = GrooveConverter(split_bars=bars)
            test = load_groove_4bar_split("test", args.data_dir, converter, progress=False)
            train = load_groove_4bar_split("train", args.data_dir, converter, progress=False)
            real, bpm = test.outputs[: args.windows], test.meta["bpm"].to_numpy()[: args.windows]
            splits[bars] = real, bpm, train.outputs
            print(f"GMD's {bars}-bar test split: {len(real):,} windows")
        return splits[bars]

    print(
        f"temperature {args.temperature} (generate: both of {GENERATE_TEMPERATURES}), seed {args.seed}"
    )
    written = set()  # the bundles' figure files this run has begun
    for tool in args.tools:
        print()
        try:
            model = pick_model(
                "sample" if tool == "generate" else tool, args.models, args.outputs_dir
            )
        except MagentaError as error:
            print(f"{tool}: not possible here: {error}")
            continue
        except (SampleError, RunError, BundleError) as error:
            print(f"{tool}: no model: {error}")
            continue
        print(f"{tool}: model: {model.source}")
        if not CAN_PLAY[tool](model.config.converter):
            print(f"{tool}: {model.config.name} cannot play it")
            continue
        start, shown = time.perf_counter(), io.StringIO()
        with contextlib.redirect_stdout(shown):
            BENCHES[tool](
                model,
                *gmd(GENERATE_BARS if tool == "generate" else SPLIT_BARS),
                args.temperature,
                args.seed,
            )
        print(shown.getvalue(), end="")
        print(f"  ({time.perf_counter() - start:.1f} s)")
        if args.write_cards and model.label.endswith("-pretrained"):
            figures = PRETRAINED_DIR / model.config.name / TOOL_FIGURES
            with figures.open("a" if figures in written else "w") as out:  # this run's only
                written.add(figures)
                out.write(
                    f"{tool}, from `bench/bench_tools.py` on GMD's test windows "
                    f"(temperature {args.temperature}, seed {args.seed}; {cpu}, "
                    f"{time.strftime('%Y-%m-%d')}):\n\n```\n{shown.getvalue()}```\n\n"
                )
    for figures in written:  # once each, with every tool's figures in
        write_model_card(figures.parent)


if __name__ == "__main__":
    run_watched(main)
