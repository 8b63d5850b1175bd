"""Reference fixtures for Magenta's GrooVAE family, each written by Magenta 2.1.4's own code.

    python bench/magenta_family.py [--full] [--configs groovae_4bar ...] [--out DIR]

For each config in CONFIGS this starts itself as a worker in Magenta's side environment
(bench/magenta_side.py, built on first use) and there:
  1. takes Magenta's config, with tiny widths (TINY_HPARAMS, applied as `--hparams` would be)
     unless --full; everything else, the data converter included, is Magenta's;
  2. builds Magenta's graph as its MusicVAE does (`model.build(hparams, output_depth,
     is_training=False)`, then `encode` and the decoder's `reconstruction_loss`), initialises it
     under a fixed TF seed, spreads the weights (SPREAD, below) and saves a TF1 checkpoint in the
     layout of Magenta's released archives: `<name>.tar` holding `<name>/model.ckpt-0.*` and
     `<name>/checkpoint`;
  3. converts a few synthetic grooves (made here, no GMD) with Magenta's own converter;
  4. records the encoder's mu and sigma, the teacher-forced output logits given z = mu, r_loss and
     kl_bits per window, and a greedy decode from z = mu through Magenta's own TrainedModel loading
     the .tar (temperature TEMPERATURE makes its Bernoulli hit sampling exact: hit = logit > 0);
  5. checks that a numpy forward pass wired as the README there says (encoder [x, controls];
     decoder step t [previous output, z, controls[t]]) reproduces Magenta's numbers;
  6. writes `<out>/<name>.tar` and `<out>/<name>.npz` (<name> = <config>_tiny or <config>_full).

Tiny fixtures go to tests/fixtures/magenta (committed, a few hundred KB in all); --full ones
default to outputs/magenta_family (tens of MB, not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from magenta_side import DEFAULT_ROOT, side_python, trained_model_greedy

REPO = Path(__file__).resolve().parents[1]
CONFIGS = (
    "groovae_4bar",
    "groovae_2bar_humanize",
    "groovae_2bar_tap_fixed_velocity",
    "groovae_2bar_tap_fixed_velocity_note_dropout",
    "groovae_2bar_add_closed_hh",
    "groovae_2bar_hits_control_tfds",
)
# Applied with HParams.parse, as music_vae_train.py applies its --hparams flag.
TINY_HPARAMS = "z_size=8,enc_rnn_size=[16],dec_rnn_size=[16,16]"
# Seeds. Config k tries offsets 10k, 10k + 1, ... added to TF_SEED and SPREAD_SEED (HIT_MARGIN),
# so no two configs share weights.
TF_SEED = 2019  # graph-level seed for Magenta's own initialisers
SPREAD_SEED = 7  # numpy seed for the spread added to every weight (SPREAD)
GROOVE_SEED = 123  # numpy seed for the synthetic grooves (the same grooves for every config)
DROPOUT_SEED = 6  # np.random.seed before converting (note dropout draws from np.random); with
# this seed the note dropout config's input differs from tap_fixed_velocity's in every window
# Magenta's initialisers leave every bias at 0 and mu, sigma and z_to_initial_state at std 0.001,
# so a swapped gate bias or a lost z would go unseen. Each weight therefore gets, after its own
# initialiser, Gaussian noise: std 0.1 on biases, 0.5 / sqrt(rows) on kernels.
SPREAD = "bias += N(0, 0.1^2); kernel += N(0, (0.5 / sqrt(kernel rows))^2)"
# Hits are Bernoulli(logits / temperature) sampled as `uniform < sigmoid(logits / temperature)`;
# at 1e-30 the sigmoid is exactly 0 or 1 in float32 for any logit not exactly 0.
TEMPERATURE = 1e-30
HIT_MARGIN = 1e-4  # least |hit logit| accepted in a greedy decode fixture
# Pitches that fall in the same class under Magenta's training (Roland) and inference (reduced)
# pitch maps, so windows do not depend on the converter's mode; class order is Magenta's.
SAFE_PITCHES = (
    (36,),  # kick
    (38, 37, 40),  # snare
    (42, 22, 44),  # closed hi-hat
    (46, 26),  # open hi-hat
    (43,),  # low tom
    (47,),  # mid tom
    (50,),  # high tom
    (49, 52, 55, 57),  # crash
    (51, 53, 59),  # ride
)
CHECKPOINT_STEP = 0  # the global_step saved (Magenta's initial value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--full", action="store_true", help="Magenta's full widths")
    parser.add_argument("--out", type=Path, help="output folder")
    args = parser.parse_args(argv)
    default = "outputs/magenta_family" if args.full else "tests/fixtures/magenta"
    out = (args.out or REPO / default).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)  # the worker must see Magenta's stack, not the project's
    log = DEFAULT_ROOT / "family.log"
    python = side_python()
    command = [str(python), __file__, "--worker", str(out), str(int(args.full)), *args.configs]
    with open(log, "w") as stderr:
        worker = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    for line in worker.stdout.splitlines():
        print(line)
    if worker.returncode:
        sys.exit(f"Magenta's worker failed (exit {worker.returncode}); see {log}")
    total = sum(p.stat().st_size for p in out.iterdir() if p.suffix in (".tar", ".npz"))
    print(f"{out}: {total / 1024:.0f} KiB of .tar and .npz")


def _synthetic_groove(qpm: float, bars: int):
    """A NoteSequence of `bars` 4/4 bars of drums (channel 9) with random velocity and timing."""
    import note_seq
    import numpy as np

    rng = np.random.default_rng([GROOVE_SEED, int(qpm), bars])
    step_seconds = 60.0 / qpm / 4
    sequence = note_seq.NoteSequence(ticks_per_quarter=220)
    sequence.tempos.add(qpm=qpm)
    sequence.time_signatures.add(numerator=4, denominator=4)

    def add(step: int, drum: int, velocity: int | None = None) -> None:
        pitches = SAFE_PITCHES[drum]
        pitch = pitches[rng.integers(len(pitches))]
        velocity = int(rng.integers(20, 128)) if velocity is None else velocity
        # Off the grid by under 0.45 step either way; never before time 0.
        shift = rng.uniform(0.0 if step == 0 else -0.45, 0.45)
        start = (step + shift) * step_seconds
        end = start + rng.uniform(0.2, 1.5) * step_seconds
        sequence.notes.add(
            pitch=int(pitch),
            velocity=velocity,
            start_time=start,
            end_time=end,
            instrument=9,
            is_drum=True,
        )

    for step in range(16 * bars):
        beat, last_bar = step % 16, step // 16 == bars - 1
        if beat in (0, 10) or rng.random() < 0.1:
            add(step, 0)
        if beat in (4, 12) or rng.random() < 0.08:
            add(step, 1)
        if beat % 2 == 0 and rng.random() < 0.9:
            add(step, 2)
        if beat == 6:  # two notes of one class on one step: Magenta keeps the louder
            add(step, 2, velocity=int(rng.integers(20, 70)))
            add(step, 2, velocity=int(rng.integers(70, 128)))
        if beat == 14 and rng.random() < 0.6:
            add(step, 3)
        if last_bar and beat >= 12:
            add(step, 4 + beat % 3)  # a tom fill
        if beat == 0 and step // 16 % 2 == 0:
            add(step, 7)
        if rng.random() < 0.05:
            add(step, 8)
    sequence.total_time = max(note.end_time for note in sequence.notes)
    return sequence


def _windows(config, sequences) -> dict:
    """Magenta's converter on `sequences`, its arrays stacked as it returns them (float64, bool)."""
    import copy

    import numpy as np

    converted = {}
    for mode in ("infer", "eval"):
        converter = copy.deepcopy(config.data_converter)
        converter.set_mode(mode)
        np.random.seed(DROPOUT_SEED)
        converted[mode] = [converter.to_tensors(s) for s in sequences]
    arrays = {"window_sequence": [], "window_start": []}
    for key in ("inputs", "outputs", "controls", "lengths"):
        rows = [row for tensors in converted["infer"] for row in getattr(tensors, key)]
        other = [row for tensors in converted["eval"] for row in getattr(tensors, key)]
        assert all(np.array_equal(a, b) for a, b in zip(rows, other)), f"{key}: modes differ"
        arrays[key] = np.stack(rows)
    for index, tensors in enumerate(converted["infer"]):
        for start, _ in enumerate(tensors.inputs):
            arrays["window_sequence"].append(index)
            arrays["window_start"].append(start * len(tensors.inputs[0]))
    arrays["window_sequence"] = np.array(arrays["window_sequence"], np.int32)
    arrays["window_start"] = np.array(arrays["window_start"], np.int32)
    arrays["lengths"] = arrays["lengths"].astype(np.int32)
    return arrays


def _build_and_save(config, windows: dict, name: str, tar_path: Path, offset: int) -> dict:
    """Magenta's graph, initialised and spread, saved as `tar_path`; its teacher-forced outputs."""
    import copy
    import tarfile
    import tempfile

    import numpy as np
    import tensorflow.compat.v1 as tf
    import tensorflow_probability as tfp

    config = copy.deepcopy(config)
    n, steps, _ = windows["outputs"].shape
    hparams, converter = config.hparams, config.data_converter
    hparams.batch_size = n
    with tf.Graph().as_default():
        tf.set_random_seed(TF_SEED + offset)
        model = config.model
        model.build(hparams, converter.output_depth, is_training=False)
        inputs = tf.placeholder(tf.float32, [n, steps, converter.input_depth])
        outputs = tf.placeholder(tf.float32, [n, steps, converter.output_depth])
        lengths = tf.placeholder(tf.int32, [n])
        # music_vae_train.py passes control_sequence=None when control_depth is 0.
        controls = None
        if converter.control_depth:
            controls = tf.placeholder(tf.float32, [n, steps, converter.control_depth])
        # What MusicVAE._compute_model_loss builds, with z = mu instead of a draw from q(z|x).
        q_z = model.encode(inputs, lengths, controls)
        x_input = tf.pad(outputs[:, : steps - 1], [(0, 0), (1, 0), (0, 0)])
        r_loss, _, decoded = model.decoder.reconstruction_loss(
            x_input, outputs, lengths, q_z.loc, controls
        )
        p_z = tfp.distributions.MultivariateNormalDiag(
            loc=[0.0] * hparams.z_size, scale_diag=[1.0] * hparams.z_size
        )
        kl_bits = tfp.distributions.kl_divergence(q_z, p_z) / tf.math.log(2.0)
        fetches = {
            "mu": q_z.loc,
            "sigma": q_z.scale.diag,
            "logits": decoded.rnn_output,
            "r_loss": r_loss,
            "kl_bits": kl_bits,
        }
        feed = {inputs: windows["inputs"], outputs: windows["outputs"], lengths: windows["lengths"]}
        if controls is not None:
            feed[controls] = windows["controls"]
        rng = np.random.RandomState(SPREAD_SEED + offset)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            for variable in sorted(tf.trainable_variables(), key=lambda v: v.name):
                value = session.run(variable)
                std = 0.1 if value.ndim == 1 else 0.5 / np.sqrt(value.shape[0])
                variable.load(value + rng.normal(0.0, std, value.shape), session)
            result = session.run(fetches, feed)
            result["weights"] = {v.name[:-2]: session.run(v) for v in tf.trainable_variables()}
            with tempfile.TemporaryDirectory() as temp:
                folder = Path(temp) / name
                saver = tf.train.Saver(save_relative_paths=True)
                prefix = saver.save(
                    session,
                    str(folder / "model.ckpt"),
                    global_step=CHECKPOINT_STEP,
                    write_meta_graph=False,
                )
                result["variables"] = [
                    [v, list(shape)] for v, shape in tf.train.list_variables(prefix)
                ]

                def plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
                    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                    return info

                with tarfile.open(tar_path, "w", format=tarfile.GNU_FORMAT) as tar:
                    tar.add(folder, arcname=name, recursive=False, filter=plain)
                    for path in sorted(folder.iterdir()):
                        tar.add(path, arcname=f"{name}/{path.name}", filter=plain)
    return result


def _greedy(config, tar_path: Path, windows: dict) -> dict:
    """Magenta's TrainedModel on the .tar: its encode and a greedy decode from z = mu."""
    from magenta.models.music_vae.trained_model import TrainedModel

    n = len(windows["outputs"])
    model = TrainedModel(config, batch_size=n, checkpoint_dir_or_path=str(tar_path))
    _, mu, sigma = model.encode_tensors(
        list(windows["inputs"]), list(windows["lengths"]), list(windows["controls"])
    )
    samples, logits = trained_model_greedy(
        model, mu, windows["controls"], windows["outputs"].shape, TEMPERATURE
    )
    return {
        "mu_trained_model": mu,
        "sigma_trained_model": sigma,
        "greedy": samples,
        "greedy_logits": logits,
    }


def _numpy_forward(weights: dict, windows: dict, greedy: bool):
    """Our reading of Magenta's wiring in numpy: (mu, decoder logits given z = mu).

    Encoder input [x, controls]; decoder input at step t [previous output, z, controls[t]], the
    previous output being the target at t - 1 (teacher forcing) or the sample at t - 1 (greedy),
    zeros at t = 0; LSTMBlockCell: [input, h] @ kernel + bias split [i, g, f, o], forget bias 1.
    One encoder layer, as in every GrooVAE config.
    """
    import numpy as np

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    def lstm(scope, x, state):
        c, h = state
        gates = np.concatenate([x, h], -1) @ weights[f"{scope}/kernel"] + weights[f"{scope}/bias"]
        i, g, f, o = np.split(gates, 4, -1)
        c = sigmoid(f + 1.0) * c + sigmoid(i) * np.tanh(g)
        return c, sigmoid(o) * np.tanh(c)

    x, c = windows["inputs"], windows["controls"].astype(np.float64)
    n, steps, depth = windows["outputs"].shape
    enc = np.concatenate([x, c], -1)
    finals = []
    for direction, order in (("fw", range(steps)), ("bw", reversed(range(steps)))):
        scope = f"encoder/cell_0/bidirectional_rnn/{direction}/multi_rnn_cell/cell_0/lstm_cell"
        units = weights[f"{scope}/bias"].shape[0] // 4
        state = (np.zeros((n, units)), np.zeros((n, units)))
        for t in order:
            state = lstm(scope, enc[:, t], state)
        finals.append(state[1])
    hidden = np.concatenate(finals, -1)
    mu = hidden @ weights["encoder/mu/kernel"] + weights["encoder/mu/bias"]
    initial = np.tanh(
        mu @ weights["decoder/z_to_initial_state/kernel"]
        + weights["decoder/z_to_initial_state/bias"]
    )
    layers = sorted({k.split("/")[2] for k in weights if k.startswith("decoder/multi_rnn_cell")})
    parts = np.split(initial, 2 * len(layers), -1)  # flat state order: c0, h0, c1, h1, ...
    states = [(parts[2 * k], parts[2 * k + 1]) for k in range(len(layers))]
    logits = np.zeros((n, steps, depth))
    previous = np.zeros((n, depth))
    for t in range(steps):
        h = np.concatenate([previous, mu, c[:, t]], -1)
        for k, layer in enumerate(layers):
            states[k] = lstm(f"decoder/multi_rnn_cell/{layer}/lstm_cell", h, states[k])
            h = states[k][1]
        out = h @ weights["decoder/output_projection/kernel"]
        logits[:, t] = out + weights["decoder/output_projection/bias"]
        if greedy:
            hits, vel, off = np.split(logits[:, t], 3, -1)
            previous = np.concatenate([(hits > 0).astype(float), sigmoid(vel), np.tanh(off)], -1)
        else:
            previous = windows["outputs"][:, t]
    return mu, logits


def _fixture(name: str, config_name: str, full: bool, out: Path) -> dict:
    """Writes `<out>/<name>.tar` and `.npz` for one config; returns a summary."""
    import copy
    import importlib.metadata

    import note_seq
    import numpy as np
    import tensorflow.compat.v1 as tf
    import tensorflow_probability as tfp
    from magenta.models.music_vae import configs

    config = copy.deepcopy(configs.CONFIG_MAP[config_name])
    if not full:
        config.hparams.parse(TINY_HPARAMS)
    converter, hparams = config.data_converter, config.hparams
    hparams.batch_size = 1  # set to the number of windows where a graph is built
    window_bars = hparams.max_seq_len // 16
    # One window at 120 qpm; two and a dropped bar at 97 qpm.
    grooves = [(120.0, window_bars), (97.0, 2 * window_bars + 1)]
    sequences = [_synthetic_groove(qpm, bars) for qpm, bars in grooves]
    windows = _windows(config, sequences)
    dtypes = {k: str(windows[k].dtype) for k in ("inputs", "outputs", "controls")}
    tar_path = out / f"{name}.tar"
    # Seeds are tried in turn until no greedy hit logit lies within HIT_MARGIN of 0, so that a
    # hit cannot flip on float error in another backend.
    for offset in range(10 * CONFIGS.index(config_name), 10 * CONFIGS.index(config_name) + 10):
        graph = _build_and_save(config, windows, name, tar_path, offset)
        greedy = _greedy(config, tar_path, windows)
        if np.abs(greedy["greedy_logits"][..., :9]).min() >= HIT_MARGIN:
            break
    else:
        raise RuntimeError(f"{name}: no seed keeps greedy hit logits {HIT_MARGIN} from 0")

    # Checks: the .tar reloads to the same encoder; step 0 has the same decoder input in both
    # decodes ([zeros, z, controls[0]]); greedy hits are logit > 0, vel/off their activations.
    np.testing.assert_allclose(greedy["mu_trained_model"], graph["mu"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(greedy["sigma_trained_model"], graph["sigma"], rtol=1e-5)
    np.testing.assert_allclose(greedy["greedy_logits"][:, 0], graph["logits"][:, 0], atol=1e-5)
    hit_logits = greedy["greedy_logits"][..., :9]
    assert np.array_equal(greedy["greedy"][..., :9], (hit_logits > 0).astype(np.float32))
    activated = 1 / (1 + np.exp(-greedy["greedy_logits"][..., 9:18]))
    np.testing.assert_allclose(greedy["greedy"][..., 9:18], activated, atol=1e-5)
    np.testing.assert_allclose(
        greedy["greedy"][..., 18:], np.tanh(greedy["greedy_logits"][..., 18:]), atol=1e-5
    )

    # Our reading of the wiring (see _numpy_forward) reproduces both of Magenta's decodes.
    weights = graph.pop("weights")
    mu, logits = _numpy_forward(weights, windows, greedy=False)
    np.testing.assert_allclose(mu, graph["mu"], atol=1e-5)
    np.testing.assert_allclose(logits, graph["logits"], atol=1e-4)
    # r_loss: tf.losses.log_loss (epsilon 1e-7) on sigmoid hits, squared error on sigmoid velocity
    # and tanh offset, summed over the 27 values and the steps.
    hits, vel, off = np.split(logits, 3, -1)
    target_hits, target_vel, target_off = np.split(windows["outputs"], 3, -1)
    p = 1 / (1 + np.exp(-hits))
    r_loss = (
        -target_hits * np.log(p + 1e-7)
        - (1 - target_hits) * np.log(1 - p + 1e-7)
        + (1 / (1 + np.exp(-vel)) - target_vel) ** 2
        + (np.tanh(off) - target_off) ** 2
    ).sum((1, 2))
    np.testing.assert_allclose(r_loss, graph["r_loss"], rtol=1e-5)
    _, logits = _numpy_forward(weights, windows, greedy=True)
    np.testing.assert_allclose(logits, greedy["greedy_logits"], atol=1e-4)

    notes = [
        [i, n.pitch, n.velocity, n.start_time, n.end_time]
        for i, s in enumerate(sequences)
        for n in s.notes
    ]
    settings = {
        k.lstrip("_"): v
        for k, v in vars(converter).items()
        if isinstance(v, (bool, int, float, str, list, type(None)))
        and "map" not in k
        and k != "_mode"
    }
    meta = {
        "config": config_name,
        "size": "full" if full else "tiny",
        "hparams_override": None if full else TINY_HPARAMS,
        "hparams": hparams.values(),
        "converter": type(converter).__name__,
        "converter_settings": settings,
        "converter_mode": "infer (eval gives the same windows for these pitches)",
        "input_depth": converter.input_depth,
        "output_depth": converter.output_depth,
        "control_depth": converter.control_depth,
        "converter_dtypes": dtypes,
        "tf_seed": TF_SEED + offset,
        "weights": f"Magenta's initialisers under tf seed {TF_SEED + offset}, then {SPREAD} "
        f"(numpy RandomState({SPREAD_SEED + offset}), trainable variables in name order)",
        "dropout_seed": DROPOUT_SEED,
        "groove_seed": GROOVE_SEED,
        "grooves": [{"qpm": q, "bars": b} for q, b in grooves],
        "temperature": TEMPERATURE,
        "min_abs_greedy_hit_logit": float(np.abs(hit_logits).min()),
        "hit_margin": f"seeds tried in turn until every greedy hit logit is >= {HIT_MARGIN} from 0",
        "checkpoint": f"{name}/model.ckpt-{CHECKPOINT_STEP}",
        "logits": "teacher-forced decoder pre-activations given z = mu",
        "r_loss": "decoder.reconstruction_loss with z = mu (eval draws z ~ q(z|x) instead)",
        "greedy": "TrainedModel's sample graph, z = mu, max_length = max_seq_len, "
        "temperature above; [hits, sigmoid(vel), tanh(off)]",
        "magenta": importlib.metadata.version("magenta"),
        "tensorflow": tf.__version__,
        "tensorflow_probability": tfp.__version__,
        "note_seq": note_seq.__version__,
        "numpy": np.__version__,
    }
    arrays = {
        "inputs": windows["inputs"],
        "outputs": windows["outputs"],
        "controls": windows["controls"],
        "lengths": windows["lengths"],
        "window_sequence": windows["window_sequence"],
        "window_start": windows["window_start"],
        "sequence_notes": np.array(notes, np.float64),  # (seq, pitch, velocity, start, end)
        "sequence_qpm": np.array([q for q, _ in grooves], np.float64),
        "mu": graph["mu"],
        "sigma": graph["sigma"],
        "logits": graph["logits"],
        "r_loss": graph["r_loss"],
        "kl_bits": graph["kl_bits"],
        "greedy": greedy["greedy"],
        "greedy_logits": greedy["greedy_logits"],
        "temperature": np.float32(TEMPERATURE),
        "variables": np.array(json.dumps(graph["variables"])),
        "meta": np.array(json.dumps(meta)),
    }
    _save_npz(out / f"{name}.npz", arrays)
    return {
        "name": name,
        "windows": int(len(windows["inputs"])),
        "control_depth": converter.control_depth,
        "min_abs_hit_logit": float(np.abs(hit_logits).min()),
        "greedy_hits": float(greedy["greedy"][..., :9].mean()),
        "r_loss": [round(float(v), 4) for v in graph["r_loss"]],
        "tar_kib": round(tar_path.stat().st_size / 1024, 1),
        "npz_kib": round((out / f"{name}.npz").stat().st_size / 1024, 1),
    }


def _save_npz(path: Path, arrays: dict) -> None:
    """np.savez_compressed with fixed zip timestamps, so a rerun writes the same bytes."""
    import io
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def _worker(out: str, full: bool, names: list[str]) -> None:
    """Runs in the side environment: one fixture per config, a JSON summary line for each."""
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
    for config_name in names:
        name = f"{config_name}_{'full' if full else 'tiny'}"
        print(json.dumps(_fixture(name, config_name, full, Path(out))), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker(sys.argv[2], bool(int(sys.argv[3])), sys.argv[4:])
    else:
        main()
