"""Training step of groovae_4bar, ours against Magenta's own graph, timed alternately in one run.

    python bench/bench_train.py [--batch-sizes 512 64] [--steps 7] [--data-dir DIR]

Magenta's graph runs in its side environment (bench/magenta_side.py, built on first use); ours
runs here. Both train on the same real GMD training windows, step i on the same rows, one step
of Magenta's then one of ours, so both see the same load on a shared machine; figures are medians.
Ours in bfloat16 is timed too, in the same alternation, only where the hardware computes bf16
natively (helpers.device).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from magenta_side import MagentaStepper  # noqa: E402

from helpers import device  # noqa: E402
from helpers.backends import make_optimizer  # noqa: E402
from helpers.config import (
    add_data_dir,
    get_config,  # noqa: E402
)
from helpers.constants import GROOVE_DEPTH  # noqa: E402
from helpers.data import load_groove_4bar  # noqa: E402
from helpers.model import GrooVAE  # noqa: E402


def forward_flops_per_example(config) -> float:
    """Multiply-adds x 2 of every LSTM and dense matmul in one teacher-forced pass."""
    m, steps = config.model, config.model.max_seq_len
    flops, width = 0.0, GROOVE_DEPTH
    for units in m.enc_rnn_size:
        flops += 2 * steps * 2 * (width + units) * 4 * units  # forward and backward directions
        width = 2 * units
    flops += 2 * 2 * width * m.z_size  # mu and sigma
    flops += 2 * m.z_size * 2 * sum(m.dec_rnn_size)  # z -> initial states
    width = GROOVE_DEPTH + m.z_size
    for units in m.dec_rnn_size:
        flops += steps * 2 * (width + units) * 4 * units
        width = units
    return flops + steps * 2 * width * GROOVE_DEPTH


def matmul_gflops(size: int = 2048, reps: int = 10) -> float:
    """The float32 rate of a large square matmul here: the ceiling a training step is judged by."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    matmul().numpy()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        matmul().numpy()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


class OurStepper:
    """Our GrooVAE training at one batch size and precision; step i on Magenta's rows."""

    def __init__(self, windows: np.ndarray, batch_size: int, precision: str):
        keras.utils.set_random_seed(0)
        config = get_config(
            "groovae_4bar", batch_size=batch_size, mixed_precision=precision == "bfloat16"
        )
        self.model = GrooVAE(config)
        self.model.compile(optimizer=make_optimizer(config.train))
        self.windows, self.batch_size = windows, batch_size

    def step(self, index: int) -> float:
        rows = np.arange(index * self.batch_size, (index + 1) * self.batch_size) % len(self.windows)
        batch = self.windows[rows]
        start = time.perf_counter()
        self.model.train_on_batch(batch, batch)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 64])
    parser.add_argument("--steps", type=int, default=7, help="timed steps of each, alternating")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each first")
    add_data_dir(parser)
    args = parser.parse_args(argv)

    hardware = device.detect("tensorflow")
    precisions = ["float32"]
    if device.default_precision(hardware) == "bfloat16":
        precisions.append("bfloat16")
    windows = load_groove_4bar("train", args.data_dir, progress=False)
    rows = max(args.batch_sizes) * (args.warmup + args.steps)
    windows = windows[:rows]
    peak = matmul_gflops()
    train_flops = 3 * forward_flops_per_example(get_config("groovae_4bar"))  # fwd + bwd ~ 3x fwd
    print(f"CPU: {hardware.cpu.describe()}, {os.cpu_count()} cores; device: {hardware.kind}")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    print(
        f"float32 2048x2048 matmul: {peak:.0f} GFLOP/s; "
        f"groovae_4bar step: {train_flops / 1e6:.0f} MFLOP per example"
    )
    if "bfloat16" not in precisions:
        print("bfloat16 not timed: this hardware has no native bf16 (AVX512_BF16 / AMX / GPU)")

    with tempfile.TemporaryDirectory() as scratch:
        windows_path = Path(scratch) / "windows.npy"
        np.save(windows_path, windows)
        for batch_size in args.batch_sizes:
            runners = {}
            with MagentaStepper(windows_path, batch_size) as magenta:
                runners["Magenta (TF1 graph, LSTMBlockCell)"] = magenta
                for precision in precisions:
                    runners[f"ours {precision}"] = OurStepper(windows, batch_size, precision)
                for i in range(args.warmup):
                    for runner in runners.values():
                        runner.step(i)
                times = {name: [] for name in runners}
                for i in range(args.warmup, args.warmup + args.steps):
                    for name, runner in runners.items():
                        times[name].append(runner.step(i))
            report(batch_size, times, peak, train_flops, hardware.cpu.model)


def report(batch_size: int, times: dict, peak: float, train_flops: float, cpu: str) -> None:
    """One line per runner: median s/step, examples/s, share of the matmul rate, x Magenta."""
    medians = {name: statistics.median(t) for name, t in times.items()}
    magenta = next(iter(medians.values()))
    print(
        f"batch {batch_size} on {cpu}, median of {len(next(iter(times.values())))} "
        "alternating steps:"
    )
    for name, seconds in medians.items():
        share = batch_size * train_flops / seconds / 1e9 / peak
        print(
            f"  {name:<36} {seconds:6.2f} s/step  {batch_size / seconds:6.1f} examples/s  "
            f"{share:5.1%} of matmul  {magenta / seconds:.2f}x Magenta"
        )


if __name__ == "__main__":
    main()
