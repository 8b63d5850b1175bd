"""Tests for helpers/quiet.py: TensorFlow's start-up and info lines dropped, everything else passed
on, in this process and in a fresh one that decodes."""

import os
import re
import subprocess
import sys
from pathlib import Path

from helpers import quiet

REPO = Path(__file__).resolve().parents[1]


def test_quiet_startup_drops_only_tensorflows_startup_lines(capfd):
    with quiet.quiet_startup():
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. You may see\n")
        os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR\n")
        os.write(2, b"W0000 a real warning\nand a line without its end")
    assert capfd.readouterr().err == "W0000 a real warning\nand a line without its end"


# A fresh process: helpers first, as the command lines and notebooks import it; a decode of the
# bundled model and a Keras evaluate (the compiled functions after which TensorFlow 2.20 logged
# XLA's first compile through Abseil); then an error line from TensorFlow's C++ and a warning of
# our own, which must still show.
FRESH = """
import sys
import warnings

import numpy as np

from helpers.backends import make_optimizer
from helpers.config import get_config
from helpers.model import GrooVAE
from helpers.sample import TrainedModel

import tensorflow as tf  # after helpers, as the command lines and notebooks import it

TrainedModel.pretrained("groovae_4bar").sample(2, temperature=0.5, seed=0)
model = GrooVAE(get_config("tiny"))
model.compile(optimizer=make_optimizer(model.config.train))
grooves = np.zeros((4, 64, 27), np.float32)
model.evaluate(grooves, grooves, batch_size=4, verbose=0)
tf.print("an error of TensorFlow's", output_stream=tf.compat.v1.logging.error, end="")
warnings.warn("a warning of ours")
print("done", file=sys.stderr)
"""


def test_a_fresh_process_prints_only_its_own_lines_on_stderr():
    """~10 s: TensorFlow's import and two compiled functions. TF_CPP_MIN_LOG_LEVEL is left to
    helpers (2: errors only), on TensorFlow, whatever the suite runs under."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": "tensorflow"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    done = subprocess.run(
        [sys.executable, "-c", FRESH], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    # Python 3.13 prints the warning's source line under -c too; earlier ones do not.
    lines = [line for line in lines if line != '  warnings.warn("a warning of ours")']
    assert len(lines) == 3, done.stderr  # TensorFlow's error, the warning and "done"
    assert re.search(r"\bE.*logging_ops\.cc:\d+\] an error of TensorFlow's$", lines[0]), done.stderr
    assert "UserWarning: a warning of ours" in lines[1] and lines[2] == "done", done.stderr
