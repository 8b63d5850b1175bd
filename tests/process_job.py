"""One process of a tiny training run that tests/test_processes.py starts several of, as a script:
`python tests/process_job.py RUN_DIR STEPS [--coordinator HOST:PORT --num-processes N
--process-id I] [--devices D]` with KERAS_BACKEND set. It prints one JSON line: the run's train
losses and global norms, as process 0 wrote them to history.csv.
"""

import argparse
import json
import os

import keras
from conftest import random_grooves

from helpers import train
from helpers.cli import run_command
from helpers.config import get_config
from helpers.processes import layout_from

# Dropout off: TensorFlow's replicas draw their own masks. A checkpoint every 2 steps, so that a
# worker killed mid-run leaves some behind; a row every step.
CONFIG = get_config("tiny", dropout_keep_prob=1.0, checkpoint_every_steps=2, eval_every_steps=4)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("steps", type=int)
    parser.add_argument("--coordinator")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    parser.add_argument("--devices", type=int, default=1)
    args = parser.parse_args()
    if args.devices > 1 and keras.backend.backend() == "tensorflow":
        # JAX takes XLA_FLAGS from the test; TensorFlow's CPU is cut into logical devices here.
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        several = [tf.config.LogicalDeviceConfiguration()] * args.devices
        tf.config.set_logical_device_configuration(cpu, several)
    options = train.TrainOptions(
        log_every_steps=1,
        progress=False,
        devices=args.devices,
        processes=layout_from(args.coordinator, args.num_processes, args.process_id),
    )
    windows = random_grooves(64), random_grooves(16, seed=1)
    history = train.train(CONFIG, args.run_dir, args.steps, windows, options)
    rows = history[history.split == "train"]
    report = {name: rows[name].tolist() for name in ("step", "loss", "global_norm")}
    report["backend"] = keras.backend.backend()
    report["pid"] = os.getpid()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    run_command(main)
