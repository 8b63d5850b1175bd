"""The model on Keras's other backends: Magenta parity with KERAS_BACKEND=torch or jax.

Each backend runs in its own interpreter, since Keras fixes its backend at import. A backend whose
package is not installed is skipped (CI installs TensorFlow only; a GPU machine may have PyTorch).
"""

import importlib.util
import os
import subprocess
import sys

import pytest

CHECK = """
import sys
import numpy as np
import keras
from helpers import model as groovae
from helpers.config import get_config

oracle = dict(np.load(sys.argv[1]))
model = groovae.GrooVAE(get_config("groovae_4bar"))
groovae.load_magenta_weights(model, {k[2:]: v for k, v in oracle.items() if k.startswith("w/")})
mu, sigma = (keras.ops.convert_to_numpy(t) for t in model.encode(oracle["x"]))
np.testing.assert_allclose(mu, oracle["mu"], rtol=1e-5, atol=1e-4)
np.testing.assert_allclose(sigma, oracle["sigma"], rtol=1e-5, atol=1e-4)
logits = keras.ops.convert_to_numpy(model.reconstruction_logits(oracle["x"], oracle["z"]))
np.testing.assert_allclose(logits, oracle["logits"], atol=1e-4)
greedy = keras.ops.convert_to_numpy(model.decode(oracle["z"], temperature=1e-6, seed=0))
np.testing.assert_array_equal(greedy[..., :9], oracle["greedy"][..., :9])
np.testing.assert_allclose(greedy[..., 9:], oracle["greedy"][..., 9:], atol=1e-4)
assert keras.backend.backend() == sys.argv[2]
assert "tensorflow" not in sys.modules, "the model pulled in TensorFlow"
"""


@pytest.mark.parity
@pytest.mark.parametrize("backend, package", [("torch", "torch"), ("jax", "jax")])
def test_model_matches_magenta_on_backend(backend, package, parity_dir):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    oracle = parity_dir / "model_oracle_groovae_4bar.npz"
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(oracle), backend],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
