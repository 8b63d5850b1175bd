"""Across modules: @magenta/music under Node loads our model as helpers.export writes it, and
computes what we do.

A tiny GrooVAE (and a 2-bar tap one) with spread random weights, and the bundled groovae_4bar
(slow), are exported with export_magenta, served on 127.0.0.1 and run by js/groovae_check.js:
magenta-js's z (its encoder's mu) of fixed grooves and of NoteSequences read by its own
GrooveConverter, and its greedy decode of fixed z, against our model's. Needs `node` and
`npm ci --prefix js` (scripts/install_node.sh); skips without them, fails with
GROOVAE_REQUIRE_NODE=1 (CI).
"""

import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
from functools import partial
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import drum_sequence

from helpers.config import get_config, with_overrides
from helpers.constants import HITS, NUM_DRUM_CLASSES, OFFSETS, VELOCITIES
from helpers.converter import encoder_inputs
from helpers.exporting import export_magenta
from helpers.model import GrooVAE
from helpers.sample import TrainedModel

REPO = Path(__file__).resolve().parents[1]
CHECK_SCRIPT = REPO / "js" / "groovae_check.js"
NODE_TIMEOUT_S = 300
REQUIRE_NODE = os.environ.get("GROOVAE_REQUIRE_NODE") == "1"  # CI: a missing Node fails
TINY_WIDTHS = dict(z_size=8, enc_rnn_size=(16,), dec_rnn_size=(16, 16))
# At this temperature our hit draws are exactly logit > 0, magenta-js's greedy decode (spec §3.4).
GREEDY_TEMPERATURE = 1e-30
HIT_MARGIN = 1e-3  # least |hit logit| of a z we decode: float error cannot flip such a hit
ATOL = 1e-3  # z, velocities, offsets and logits: float32 in TF.js's CPU kernels against Keras'


def _node_or_skip() -> None:
    missing = None
    if shutil.which("node") is None:
        missing = "node is not on PATH (bash scripts/install_node.sh installs Node and js/)"
    elif not (REPO / "js" / "node_modules" / "@magenta" / "music").is_dir():
        missing = "js/node_modules is missing: run `npm ci --prefix js --ignore-scripts`"
    if missing and REQUIRE_NODE:
        pytest.fail(f"{missing} (GROOVAE_REQUIRE_NODE=1)")
    if missing:
        pytest.skip(missing)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging each request to stderr."""

    def log_message(self, *args):
        pass


def run_magenta_js(folder, inputs: dict, timeout_s: float = NODE_TIMEOUT_S) -> dict:
    """Serve `folder` on 127.0.0.1 and run js/groovae_check.js on `inputs`; return its output JSON.

    Args:
        folder: a magenta-js checkpoint folder (config.json, weights_manifest.json, shards).
        inputs: any of "tensors" [n, steps, 27], "sequences" (NoteSequence JSON, camelCase) and
            "z" [n, z_size]; see js/groovae_check.js for what comes back.

    Raises:
        RuntimeError: node failed; the message carries its stderr.
    """
    handler = partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            in_path, out_path = Path(tmp, "in.json"), Path(tmp, "out.json")
            in_path.write_text(json.dumps(inputs))
            url = f"http://127.0.0.1:{server.server_address[1]}"
            cmd = [shutil.which("node") or "node", str(CHECK_SCRIPT), "--checkpoint", url]
            cmd += ["--input", str(in_path), "--output", str(out_path)]
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, cwd=REPO, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"groovae_check.js failed ({done.returncode}):\n{done.stderr}")
            return json.loads(out_path.read_text())
    finally:
        server.shutdown()
        server.server_close()


def spread_model(config, seed: int = 0) -> TrainedModel:
    """A model of `config` whose every weight gets Gaussian noise (std 0.1 on biases, 0.5 /
    sqrt(rows) on kernels): Magenta's initial mu and z_to_initial_state are near zero, and with
    them z would hardly matter to the check."""
    keras.utils.set_random_seed(seed)
    model = GrooVAE(config)
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        value = np.asarray(variable)
        std = 0.1 if value.ndim == 1 else 0.5 / np.sqrt(value.shape[0])
        variable.assign(value + rng.normal(0.0, std, value.shape).astype(np.float32))
    return TrainedModel(model=model, step=0, decoding="magenta")


def performed_sequence(steps: int, seed: int, qpm: float = 120.0):
    """A NoteSequence of exactly one window: a kick, snare and hat pattern off the grid by up to
    0.4 step, distinct velocities (so the loudest note of a step is unique), a note on the last
    step, at `qpm`."""
    rng = np.random.default_rng(seed)
    step_s = 60.0 / qpm / 4
    notes = []
    for step in range(steps):
        pitches = [42] if step % 2 == 0 else []
        pitches += [36] if step % 8 == 0 or rng.random() < 0.1 else []
        pitches += [38] if step % 8 == 4 or rng.random() < 0.1 else []
        pitches += [(46, 49, 51, 45, 48, 50)[step % 6]] if rng.random() < 0.15 else []
        pitches += [51] if step == steps - 1 else []
        velocities = rng.choice(np.arange(20, 128), len(pitches), replace=False)
        for pitch, velocity in zip(pitches, velocities):
            start = max(0.0, (step + rng.uniform(-0.4, 0.4)) * step_s)
            notes.append((pitch, int(velocity), start, start + step_s))
    return drum_sequence(notes, qpm)


def sequence_json(sequence) -> dict:
    """A NoteSequence as groovae_check.js takes it (camelCase JSON)."""
    return {
        "tempos": [{"qpm": t.qpm, "time": t.time} for t in sequence.tempos],
        "totalTime": sequence.total_time,
        "notes": [
            {
                "pitch": n.pitch,
                "velocity": n.velocity,
                "startTime": n.start_time,
                "endTime": n.end_time,
                "isDrum": True,
            }
            for n in sequence.notes
        ],
    }


def greedy_decodes(trained: TrainedModel, n: int, seed: int):
    """n codes from N(0, I) whose greedy hit logits all lie HIT_MARGIN from 0, our decode of
    each at GREEDY_TEMPERATURE, and its logits (the decoder teacher-forced on its own output)."""
    model, steps = trained.model, trained.window_steps
    z = np.random.default_rng(seed).standard_normal((8 * n, trained.config.model.z_size))
    z = z.astype(np.float32)
    decoded = trained.decode_grooves(z, GREEDY_TEMPERATURE, seed=0)
    logits = np.asarray(model.reconstruction_logits(decoded, z))
    assert decoded.shape[1] == steps
    clear = np.abs(logits[..., HITS]).min(axis=(1, 2)) >= HIT_MARGIN
    assert clear.sum() >= n, f"only {clear.sum()} of {len(z)} codes decode clear of 0"
    keep = np.flatnonzero(clear)[:n]
    return z[keep], decoded[keep], logits[keep]


def check_against_magenta_js(trained: TrainedModel, folder: Path, grooves: np.ndarray) -> None:
    """Runs magenta-js on `folder` and asserts that it computes what `trained` does; prints the
    largest differences (pytest -s shows them)."""
    steps = trained.window_steps
    tensors = encoder_inputs(grooves, trained.config.converter).astype(np.float32)
    mu = np.asarray(trained.model.encode(tensors)[0])
    sequences = [performed_sequence(steps, seed) for seed in range(2)]
    _, sequence_mu, _ = trained.encode(sequences)
    sequence_inputs = encoder_inputs(
        np.concatenate([trained.windows(s).grooves for s in sequences]), trained.config.converter
    )
    z, decoded, logits = greedy_decodes(trained, 3, seed=1)

    out = run_magenta_js(
        folder,
        {
            "tensors": tensors.tolist(),
            "sequences": [sequence_json(s) for s in sequences],
            "z": z.tolist(),
        },
    )

    assert out["z_dims"] == trained.config.model.z_size and out["num_steps"] == steps
    js_decoded = np.array(out["decoded"])
    np.testing.assert_array_equal(js_decoded[..., HITS], decoded[..., HITS])
    errors = {
        "z (grooves)": np.abs(np.array(out["z"]) - mu).max(),
        "encoder input (NoteSequences)": np.abs(
            np.array(out["sequence_tensors"]) - sequence_inputs
        ).max(),
        "z (NoteSequences)": np.abs(np.array(out["sequence_z"]) - sequence_mu).max(),
        "decoded velocities": np.abs(js_decoded[..., VELOCITIES] - decoded[..., VELOCITIES]).max(),
        "decoded offsets": np.abs(js_decoded[..., OFFSETS] - decoded[..., OFFSETS]).max(),
        "decoder logits": np.abs(np.array(out["decoded_logits"]) - logits).max(),
    }
    hits = f"{int(decoded[..., HITS].sum())} hits decoded alike"
    print(f"{trained.config.name} in magenta-js: {hits}; largest differences:")
    print(", ".join(f"{what} {error:.1e}" for what, error in errors.items()))
    for what, error in errors.items():
        assert error <= ATOL, f"{what}: magenta-js differs from our model by {error:.2e}"
    assert len(out["decoded_sequences"]) == len(z)


def random_grooves(n: int, steps: int, seed: int) -> np.ndarray:
    """(n, steps, 27) float32 grooves: sparse hits, velocities and offsets only where hit."""
    rng = np.random.default_rng(seed)
    hits = (rng.random((n, steps, NUM_DRUM_CLASSES)) < 0.25).astype(np.float32)
    vel = hits * rng.uniform(0.2, 1.0, hits.shape)
    off = hits * rng.uniform(-0.9, 0.9, hits.shape)
    return np.concatenate([hits, vel, off], -1).astype(np.float32)


TINY_CONFIGS = {
    "tiny": get_config("tiny"),
    # tapify + fixed velocities: what magenta-js's tapify does, so its encode matches ours.
    "tap_2bar_tiny": with_overrides(get_config("groovae_2bar_tap_fixed_velocity"), **TINY_WIDTHS),
}


@pytest.mark.parametrize("name", TINY_CONFIGS)
def test_export_magenta_js_runs_in_magenta_js_as_in_keras(tmp_path, name):
    _node_or_skip()
    trained = spread_model(TINY_CONFIGS[name])
    folder = export_magenta(trained, "magenta-js", tmp_path / name)
    check_against_magenta_js(trained, folder, random_grooves(3, trained.window_steps, seed=2))


@pytest.mark.slow
def test_export_magenta_js_bundled_groovae_4bar_runs_in_magenta_js(tmp_path):
    _node_or_skip()
    trained = TrainedModel.pretrained("groovae_4bar", decoding="magenta")
    folder = export_magenta(trained, "magenta-js", tmp_path / "groovae_4bar")
    check_against_magenta_js(trained, folder, random_grooves(3, trained.window_steps, seed=2))


def test_run_magenta_js_groove_converter_to_tensor(tmp_path):
    """magenta-js's GrooveConverter.toTensor on a hand-built sequence, at 120 qpm (0.125 s a step)."""
    _node_or_skip()
    folder = export_magenta(spread_model(get_config("tiny")), "magenta-js", tmp_path / "tiny")
    notes = [  # (pitch, velocity, start_s): kick on 0, a hat 0.02 s early, a snare 0.01 s late
        (36, 100, 0.0),
        (42, 64, 0.23),
        (38, 80, 0.51),
        (38, 90, 0.49),  # same step and class: the louder one stays
        (51, 127, 7.875),  # ride on the last step
    ]
    sequence = drum_sequence([(p, v, s, s + 0.1) for p, v, s in notes])
    expected = np.zeros((64, 27))  # offset = 2 (step time - start) / step length, + = early
    kept = [(0, 0, 100, 0.0), (2, 2, 64, 0.23), (4, 1, 90, 0.49), (63, 8, 127, 7.875)]
    for step, cls, vel, start in kept:  # (step, class, velocity, start_s)
        offset = 2 * (step * 0.125 - start) / 0.125
        expected[step, [cls, NUM_DRUM_CLASSES + cls, 2 * NUM_DRUM_CLASSES + cls]] = (
            1,
            vel / 127,
            offset,
        )

    out = run_magenta_js(folder, {"sequences": [sequence_json(sequence)]})

    np.testing.assert_allclose(np.array(out["sequence_tensors"][0]), expected, atol=1e-6)
