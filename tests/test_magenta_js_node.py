"""@magenta/music under Node loads a folder from write_magenta_js and computes what we compute.

The weights are random arrays under Magenta's TF1 names for a small GrooVAE, and the expected
numbers come from `_reference_encode`/`_reference_decode`, a numpy rendering of spec §3 written for
this test alone, so the check does not depend on our Keras model. Needs `node` and
`npm ci --prefix js`; skips without them.
"""

import http.server
import json
import shutil
import subprocess
import tempfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from helpers.constants import ROLAND_DRUM_PITCH_CLASSES
from helpers.magenta_js import groovae_config_json, write_magenta_js

REPO = Path(__file__).resolve().parents[1]
CHECK_SCRIPT = REPO / "js" / "groovae_check.js"
NODE_TIMEOUT_S = 300
# A small GrooVAE: z 8, one bidirectional encoder layer of 16, decoder 16 + 16, 32 steps.
Z_SIZE, ENC, DEC, STEPS, DEPTH, CLASSES = 8, 16, (16, 16), 32, 27, 9


def _node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH (install Node 20 to run the magenta-js check)")
    if not (REPO / "js" / "node_modules" / "@magenta" / "music").is_dir():
        pytest.skip("js/node_modules is missing: run `npm ci --prefix js`")
    return node


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


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging each request to stderr."""

    def log_message(self, *args):
        pass


def _lstm_names(prefix: str, n_in: int, units: int) -> dict[str, tuple]:
    return {f"{prefix}/kernel": (n_in + units, 4 * units), f"{prefix}/bias": (4 * units,)}


def small_groovae_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 weights under Magenta's TF1 names (spec §3.4) for the small GrooVAE."""
    shapes = {}
    for direction in ("fw", "bw"):
        prefix = f"encoder/cell_0/bidirectional_rnn/{direction}/multi_rnn_cell/cell_0/lstm_cell"
        shapes.update(_lstm_names(prefix, DEPTH, ENC))
    for head in ("mu", "sigma"):
        shapes[f"encoder/{head}/kernel"] = (2 * ENC, Z_SIZE)
        shapes[f"encoder/{head}/bias"] = (Z_SIZE,)
    shapes["decoder/z_to_initial_state/kernel"] = (Z_SIZE, 2 * sum(DEC))
    shapes["decoder/z_to_initial_state/bias"] = (2 * sum(DEC),)
    n_in = DEPTH + Z_SIZE
    for layer, units in enumerate(DEC):
        shapes.update(_lstm_names(f"decoder/multi_rnn_cell/cell_{layer}/lstm_cell", n_in, units))
        n_in = units
    shapes["decoder/output_projection/kernel"] = (DEC[-1], DEPTH)
    shapes["decoder/output_projection/bias"] = (DEPTH,)
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0.0, 0.4, shape).astype(np.float32) for name, shape in shapes.items()}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _lstm(w, prefix, x, c, h):
    """TF1 LSTMBlockCell: fused kernel over [x, h], gates [i, g, f, o], forget bias +1 (spec §3.1)."""
    z = np.concatenate([x, h], -1) @ w[f"{prefix}/kernel"] + w[f"{prefix}/bias"]
    i, g, f, o = np.split(z, 4, axis=-1)
    c = _sigmoid(f + 1.0) * c + _sigmoid(i) * np.tanh(g)
    return c, _sigmoid(o) * np.tanh(c)


def _reference_encode(w, x):
    """mu for grooves x (batch, steps, 27): fw last h and bw h after step 0 (spec §3.3)."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    finals = []
    for direction, order in (("fw", range(x.shape[1])), ("bw", reversed(range(x.shape[1])))):
        prefix = f"encoder/cell_0/bidirectional_rnn/{direction}/multi_rnn_cell/cell_0/lstm_cell"
        c = h = np.zeros((x.shape[0], ENC))
        for t in order:
            c, h = _lstm(w, prefix, x[:, t], c, h)
        finals.append(h)
    return np.concatenate(finals, -1) @ w["encoder/mu/kernel"] + w["encoder/mu/bias"]


def _reference_decode(w, z):
    """Greedy decode (hit where logit > 0) and the logits, both (batch, steps, 27) (spec §3.4)."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    init = "decoder/z_to_initial_state"
    state = np.tanh(z @ w[f"{init}/kernel"] + w[f"{init}/bias"])
    parts = np.split(state, np.cumsum([u for u in DEC for _ in "ch"])[:-1], axis=-1)
    cs, hs = list(parts[0::2]), list(parts[1::2])  # [c1, h1, c2, h2]
    y, outputs, logits = np.zeros((z.shape[0], DEPTH)), [], []
    for _ in range(STEPS):
        x = np.concatenate([y, z], -1)
        for layer in range(len(DEC)):
            prefix = f"decoder/multi_rnn_cell/cell_{layer}/lstm_cell"
            cs[layer], hs[layer] = _lstm(w, prefix, x, cs[layer], hs[layer])
            x = hs[layer]
        out = x @ w["decoder/output_projection/kernel"] + w["decoder/output_projection/bias"]
        hits, vel, off = np.split(out, 3, axis=-1)
        y = np.concatenate([(hits > 0).astype(float), _sigmoid(vel), np.tanh(off)], -1)
        outputs.append(y)
        logits.append(out)
    return np.stack(outputs, 1), np.stack(logits, 1)


def random_grooves(n: int, seed: int = 1) -> np.ndarray:
    """(n, STEPS, 27) float32 grooves: sparse hits, velocities and offsets only where hit."""
    rng = np.random.default_rng(seed)
    hits = (rng.random((n, STEPS, CLASSES)) < 0.25).astype(np.float32)
    vel = hits * rng.uniform(0.2, 1.0, hits.shape)
    off = hits * rng.uniform(-0.9, 0.9, hits.shape)
    return np.concatenate([hits, vel, off], -1).astype(np.float32)


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    weights = small_groovae_weights()
    config = groovae_config_json(STEPS, pitch_classes=ROLAND_DRUM_PITCH_CLASSES)
    return weights, write_magenta_js(weights, config, tmp_path_factory.mktemp("mjs") / "small")


def test_run_magenta_js_encode_decode_match_numpy(small_checkpoint):
    _node_or_skip()
    weights, folder = small_checkpoint
    grooves = random_grooves(3)
    mu = _reference_encode(weights, grooves.astype(np.float64))
    z = np.random.default_rng(2).normal(size=(2, Z_SIZE))
    decoded, logits = _reference_decode(weights, z)
    # A hit logit within 1e-3 of 0 could flip between float32 and float64; this seed has none.
    assert np.abs(logits[..., :CLASSES]).min() > 1e-3

    out = run_magenta_js(folder, {"tensors": grooves.tolist(), "z": z.tolist()})

    assert out["backend"] == "cpu" and out["z_dims"] == Z_SIZE and out["num_steps"] == STEPS
    np.testing.assert_allclose(np.array(out["z"]), mu, atol=1e-4)
    np.testing.assert_allclose(np.array(out["decoded_logits"]), logits, atol=1e-3)
    np.testing.assert_array_equal(np.array(out["decoded"])[..., :CLASSES], decoded[..., :CLASSES])
    np.testing.assert_allclose(np.array(out["decoded"]), decoded, atol=1e-3)
    assert len(out["decoded_sequences"]) == 2


def test_run_magenta_js_groove_converter_to_tensor(small_checkpoint):
    """magenta-js's GrooveConverter.toTensor on a hand-built sequence, at 120 qpm (0.125 s a step)."""
    _node_or_skip()
    weights, folder = small_checkpoint
    notes = [  # (pitch, velocity, start_s): kick on 0, a hat 0.02 s early, a snare 0.01 s late
        (36, 100, 0.0),
        (42, 64, 0.23),
        (38, 80, 0.51),
        (38, 90, 0.49),  # same step and class: the louder one stays
        (51, 127, 3.875),  # ride on the last step
    ]
    sequence = {
        "tempos": [{"qpm": 120.0, "time": 0.0}],
        "totalTime": 4.0,
        "notes": [
            {"pitch": p, "velocity": v, "startTime": s, "endTime": s + 0.1, "isDrum": True}
            for p, v, s in notes
        ],
    }
    expected = np.zeros((STEPS, DEPTH))  # offset = 2 (step time - start) / step length, + = early
    kept = [(0, 0, 100, 0.0), (2, 2, 64, 0.23), (4, 1, 90, 0.49), (31, 8, 127, 3.875)]
    for step, cls, vel, start in kept:  # (step, class, velocity, start_s)
        offset = 2 * (step * 0.125 - start) / 0.125
        expected[step, [cls, CLASSES + cls, 2 * CLASSES + cls]] = 1, vel / 127, offset

    out = run_magenta_js(folder, {"sequences": [sequence]})

    np.testing.assert_allclose(np.array(out["sequence_tensors"][0]), expected, atol=1e-6)
    np.testing.assert_allclose(
        out["sequence_z"], _reference_encode(weights, expected[None]), atol=1e-4
    )
