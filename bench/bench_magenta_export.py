"""Our models exported as TF1 checkpoints (helpers.exporting, magenta-tf1), run by Magenta's own code.

    python bench/bench_magenta_export.py [--models tiny hits_2bar_tiny ... groovae_4bar] [--out DIR]

Each model (tiny widths with spread random weights, or a bundled one) is exported with
`export_magenta(model, "magenta-tf1", folder)`. A worker in Magenta 2.1.4's side environment
(bench/magenta_side.py, built on first use) then, for each export:
  1. imports the export's load_in_magenta.py and builds Magenta's TrainedModel from the .tar with
     the Config that file makes: its encode_tensors (mu, sigma), and a greedy decode from our mu
     (temperature 1e-30: hit = logit > 0) with its logits;
  2. builds Magenta's graph as its training does (`model.build`, `encode`, the decoder's
     `reconstruction_loss`) and restores the export's folder with a plain tf.train.Saver, every
     variable global_step included: the teacher-forced logits given z = mu.
Our model computes the same on the same windows. Prints the largest differences, and fails when
mu, sigma or a logit differs by more than TOLERANCE or a greedy hit differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conditions import run_watched

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from magenta_side import DEFAULT_ROOT, side_python, trained_model_greedy  # noqa: E402

TINY_WIDTHS = dict(z_size=8, enc_rnn_size=(16,), dec_rnn_size=(16, 16))
TINY_MODELS = {  # name: (config, widths overridden): one of each converter path of the loader
    "tiny": ("tiny", {}),
    "humanize_4bar_tiny": ("groovae_4bar_humanize", TINY_WIDTHS),  # no Magenta config has it
    "tap_2bar_tiny": ("groovae_2bar_tap_fixed_velocity", TINY_WIDTHS),
    "hits_2bar_tiny": ("groovae_2bar_hits_control_tfds", TINY_WIDTHS),
}
WINDOWS = 4
TEMPERATURE = 1e-30  # hit = Bernoulli(sigmoid(logit / T)) is exactly logit > 0 in float32
HIT_MARGIN = 1e-4  # a window's greedy decode is compared only if no hit logit is this close to 0
TOLERANCE = 1e-4


def spread_model(config, seed: int = 0):
    """A GrooVAE of `config` whose every weight gets Gaussian noise (std 0.1 on biases, 0.5 /
    sqrt(rows) on kernels), so that z and every gate matter to the outputs."""
    import keras
    import numpy as np

    from helpers.model import GrooVAE

    keras.utils.set_random_seed(seed)
    model = GrooVAE(config)
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        value = np.asarray(variable)
        std = 0.1 if value.ndim == 1 else 0.5 / np.sqrt(value.shape[0])
        variable.assign(value + rng.normal(0.0, std, value.shape).astype(np.float32))
    return model


def trained_model(name: str):
    """A TrainedModel for a name of TINY_MODELS or a bundled model."""
    from helpers.config import get_config, with_overrides
    from helpers.sample import TrainedModel

    if name in TINY_MODELS:
        config, widths = TINY_MODELS[name]
        model = spread_model(with_overrides(get_config(config), name=name, **widths))
        return TrainedModel(model=model, step=7, decoding="magenta")
    return TrainedModel.pretrained(name, decoding="magenta")


def ours(trained, seed: int = 0) -> dict:
    """Our model on WINDOWS random grooves: the worker's inputs and what it must reproduce."""
    import numpy as np

    from helpers.constants import GROOVE_DEPTH, HITS, NUM_DRUM_CLASSES, OFFSETS, VELOCITIES
    from helpers.converter import encoder_inputs

    model, steps = trained.model, trained.window_steps
    rng = np.random.default_rng(seed)
    hits = rng.random((WINDOWS, steps, NUM_DRUM_CLASSES)) < 0.25
    grooves = np.zeros((WINDOWS, steps, GROOVE_DEPTH), np.float32)
    grooves[..., HITS] = hits
    grooves[..., VELOCITIES] = hits * rng.uniform(0.2, 1.0, hits.shape)
    grooves[..., OFFSETS] = hits * rng.uniform(-0.9, 0.9, hits.shape)
    inputs = encoder_inputs(grooves, trained.config.converter, seed)
    controls = trained.model.controls_of(grooves)
    mu, sigma = (np.asarray(v) for v in model.encode(inputs, controls))
    greedy = trained.decode_grooves(mu, TEMPERATURE, 0, controls)
    return {
        "inputs": inputs,
        "outputs": grooves,
        "controls": np.zeros((WINDOWS, steps, 0), np.float32) if controls is None else controls,
        "mu": mu,
        "sigma": sigma,
        "logits": np.asarray(model.reconstruction_logits(grooves, mu, controls)),
        "greedy": greedy,
        "greedy_logits": np.asarray(model.reconstruction_logits(greedy, mu, controls)),
    }


def compare(mine: dict, theirs: dict) -> dict:
    """Largest differences (floats), and counts (ints): greedy windows, those alike hit for hit
    and those with a hit logit within HIT_MARGIN of 0 (where float error may flip a hit), and
    the global_step Magenta restored. Greedy logits are compared where the hits agree."""
    import numpy as np

    from helpers.constants import HITS

    def worst(ours, magentas) -> float:
        return float(np.max(np.abs(ours - magentas), initial=0.0))

    clear = np.abs(mine["greedy_logits"][..., HITS]).min(axis=(1, 2)) >= HIT_MARGIN
    alike = (mine["greedy"][..., HITS] == theirs["greedy"][..., HITS]).all(axis=(1, 2))
    return {
        "mu (TrainedModel)": worst(mine["mu"], theirs["trained_model_mu"]),
        "sigma (TrainedModel)": worst(mine["sigma"], theirs["trained_model_sigma"]),
        "mu (Saver graph)": worst(mine["mu"], theirs["graph_mu"]),
        "logits (teacher-forced)": worst(mine["logits"], theirs["graph_logits"]),
        "greedy logits": worst(mine["greedy_logits"][alike], theirs["greedy_logits"][alike]),
        "greedy windows": len(alike),
        "greedy windows alike": int(alike.sum()),
        "greedy windows near 0": int((~clear).sum()),
        "differ clear of 0": int((~alike & clear).sum()),
        "global_step": int(theirs["global_step"]),
    }


def run(names: list[str], out: Path) -> dict[str, dict]:
    """Exports each model to `out`/<name>, runs Magenta's worker on all of them, compares.

    Returns:
      {name: compare(...)} plus each model's seconds in Magenta's worker.

    Raises:
      RuntimeError: the worker failed (its log is named).
    """
    import numpy as np

    from helpers.exporting import export_magenta

    jobs, mine = [], {}
    for name in names:
        trained = trained_model(name)
        folder = export_magenta(trained, "magenta-tf1", out / name)
        mine[name] = ours(trained)
        np.savez(out / f"{name}.inputs.npz", **mine[name])
        jobs.append({"name": name, "folder": str(folder), "steps": trained.window_steps})
    (out / "jobs.json").write_text(json.dumps(jobs))
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)  # the worker must see Magenta's stack, not the project's
    log = DEFAULT_ROOT / "export.log"
    command = [str(side_python()), __file__, "--worker", str(out)]
    with open(log, "w") as stderr:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"Magenta's worker failed (exit {done.returncode}); see {log}")
    results = {}
    for job in jobs:
        with np.load(out / f"{job['name']}.magenta.npz") as theirs:
            results[job["name"]] = {
                **compare(mine[job["name"]], dict(theirs)),
                "seconds": float(theirs["seconds"]),
            }
    return results


def failures(results: dict[str, dict]) -> list[str]:
    """What exceeds TOLERANCE, or greedy windows that differ, model by model."""
    bad = []
    for name, figures in results.items():
        for key, value in figures.items():
            if isinstance(value, float) and key != "seconds" and value > TOLERANCE:
                bad.append(f"{name}: {key} differs by {value:.2e}")
        if figures["differ clear of 0"]:
            bad.append(f"{name}: greedy hits differ in {figures['differ clear of 0']} window(s)")
    return bad


def main(argv: list[str] | None = None) -> None:
    from helpers import device
    from helpers.bundles import bundled_names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    models = [*TINY_MODELS, *bundled_names()]
    parser.add_argument("--models", nargs="+", default=models, choices=models)
    parser.add_argument("--out", type=Path, help="where the exports go (default: a temp folder)")
    args = parser.parse_args(argv)
    print(f"CPU: {device.cpu_info().describe()}, {os.cpu_count()} cores")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as temp:
        out = args.out or Path(temp)
        out.mkdir(parents=True, exist_ok=True)
        results = run(args.models, out)
    for name, figures in results.items():
        cells = ", ".join(
            f"{k} {v:.1f}"
            if k == "seconds"
            else f"{k} {v:.1e}"
            if isinstance(v, float)
            else f"{k} {v}"
            for k, v in figures.items()
        )
        print(f"{name}: {cells}")
    print(f"{time.perf_counter() - began:.0f} s in all")
    bad = failures(results)
    if bad:
        sys.exit("\n".join(bad))


def _worker(out: str) -> None:
    """Runs in Magenta's side environment: each export loaded by Magenta, its numbers saved."""
    import copy
    import importlib.util

    import numpy as np
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
    for job in json.loads(Path(out, "jobs.json").read_text()):
        began = time.perf_counter()
        folder, steps = Path(job["folder"]), job["steps"]
        loader = importlib.util.spec_from_file_location(
            f"loader_{job['name']}", folder / "load_in_magenta.py"
        )
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
        with np.load(Path(out, f"{job['name']}.inputs.npz")) as saved:
            mine = dict(saved)
        n = len(mine["inputs"])
        lengths = [steps] * n
        found = {}

        model = module.trained_model(batch_size=n)
        _, found["trained_model_mu"], found["trained_model_sigma"] = model.encode_tensors(
            list(mine["inputs"]), lengths, list(mine["controls"])
        )
        found["greedy"], found["greedy_logits"] = trained_model_greedy(
            model, mine["mu"], mine["controls"], mine["outputs"].shape, TEMPERATURE
        )

        config = copy.deepcopy(module.magenta_config())
        config.hparams.batch_size = n
        converter = config.data_converter
        with tf.Graph().as_default():
            config.model.build(config.hparams, converter.output_depth, is_training=False)
            inputs = tf.placeholder(tf.float32, [n, steps, converter.input_depth])
            outputs = tf.placeholder(tf.float32, [n, steps, converter.output_depth])
            controls = None  # as music_vae_train.py passes it without controls
            feed = {inputs: mine["inputs"], outputs: mine["outputs"]}
            if converter.control_depth:
                controls = tf.placeholder(tf.float32, [n, steps, converter.control_depth])
                feed[controls] = mine["controls"]
            q_z = config.model.encode(inputs, tf.fill([n], steps), controls)
            previous = tf.pad(outputs[:, : steps - 1], [(0, 0), (1, 0), (0, 0)])
            _, _, decoded = config.model.decoder.reconstruction_loss(
                previous, outputs, tf.fill([n], steps), q_z.loc, controls
            )
            with tf.Session() as session:
                tf.train.Saver().restore(session, tf.train.latest_checkpoint(str(folder)))
                fetched = session.run([q_z.loc, decoded.rnn_output, config.model.global_step], feed)
        found["graph_mu"], found["graph_logits"], found["global_step"] = fetched
        found["seconds"] = time.perf_counter() - began
        np.savez(Path(out, f"{job['name']}.magenta.npz"), **found)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker(sys.argv[2])
    else:
        run_watched(main)
