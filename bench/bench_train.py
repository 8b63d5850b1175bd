"""Training speed of groovae_4bar in float32 and bfloat16, its share of peak matmul, bf16 loss.

Run: python bench/bench_train.py [--timed-steps 3] [--compare-steps 20]
Magenta's reference (issue): 4.4 s/step at batch 512 (116 examples/s), 0.9 s/step at batch 64.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from helpers.config import get_config  # noqa: E402
from helpers.constants import GROOVE_DEPTH, WINDOW_STEPS  # noqa: E402
from helpers.model import GrooVAE  # noqa: E402
from helpers.steps import make_optimizer  # noqa: E402

MAGENTA_EXAMPLES_PER_S = {512: 512 / 4.4, 64: 64 / 0.9}


def synthetic_grooves(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hits = (rng.random((n, WINDOW_STEPS, 9)) < 0.15).astype(np.float32)
    velocities = hits * rng.random(hits.shape, dtype=np.float32)
    offsets = hits * rng.uniform(-0.9, 0.9, hits.shape).astype(np.float32)
    return np.concatenate([hits, velocities, offsets], axis=-1)


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
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    matmul().numpy()
    start = time.perf_counter()
    for _ in range(reps):
        matmul().numpy()
    return 2 * size**3 * reps / (time.perf_counter() - start) / 1e9


def make_model(mixed_precision: bool, seed: int = 0) -> GrooVAE:
    keras.utils.set_random_seed(seed)
    model = GrooVAE(get_config("groovae_4bar", mixed_precision=mixed_precision))
    model.compile(optimizer=make_optimizer(model.config.train))
    return model


def examples_per_second(mixed_precision: bool, batch_size: int, timed_steps: int) -> float:
    model = make_model(mixed_precision)
    batch = synthetic_grooves(batch_size, seed=0)
    for _ in range(2):  # trace and warm up
        model.train_on_batch(batch, batch)
    start = time.perf_counter()
    for _ in range(timed_steps):
        model.train_on_batch(batch, batch)
    return batch_size * timed_steps / (time.perf_counter() - start)


def validation_loss_after(mixed_precision: bool, seed: int, train, validation, steps, batch):
    """Validation terms after `steps` training steps from the initial weights of `seed`."""
    model = make_model(mixed_precision, seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        picked = train[rng.choice(len(train), batch, replace=False)]
        model.train_on_batch(picked, picked)
    model.reset_eval_noise()
    return model.evaluate(validation, validation, batch_size=batch, verbose=0, return_dict=True)


def load_windows(data_dir, n_validation: int):
    """GMD windows via helpers.data (its cache, else a cold build), or synthetic ones."""
    try:
        from helpers.data import load_groove_4bar

        return (
            load_groove_4bar("train", data_dir, progress=False),
            load_groove_4bar("validation", data_dir, progress=False)[:n_validation],
            "GMD",
        )
    except Exception as error:  # a bench should still run without the dataset
        print(f"(GMD windows unavailable: {error}; using synthetic windows)")
        return synthetic_grooves(4096, 1), synthetic_grooves(n_validation, 2), "synthetic"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timed-steps", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 64])
    parser.add_argument("--compare-steps", type=int, default=20)
    parser.add_argument("--compare-batch", type=int, default=64)
    parser.add_argument("--data-dir")
    args = parser.parse_args()

    config = get_config("groovae_4bar")
    train_flops = 3 * forward_flops_per_example(config)  # forward + backward ~ 3x forward
    peak = matmul_gflops()
    print(f"devices: {[d.device_type for d in tf.config.list_physical_devices()]}")
    print(f"float32 2048^2 matmul: {peak:.1f} GFLOP/s; model {train_flops / 1e6:.1f} MFLOP/example")
    speed = {}
    for batch_size in args.batch_sizes:
        for mixed in (False, True):
            rate = examples_per_second(mixed, batch_size, args.timed_steps)
            speed[batch_size, mixed] = rate
            achieved = rate * train_flops / 1e9
            magenta = MAGENTA_EXAMPLES_PER_S.get(batch_size)
            versus = f", {rate / magenta:.2f}x Magenta" if magenta else ""
            print(
                f"batch {batch_size:4d} {'bf16' if mixed else 'fp32'}: {rate:8.1f} examples/s, "
                f"{batch_size / rate:6.2f} s/step, {achieved:6.1f} GFLOP/s "
                f"= {achieved / peak:.1%} of matmul{versus}"
            )

    train, validation, source = load_windows(args.data_dir, 4 * args.compare_batch)
    # Two seeds per precision: the seed-to-seed spread is the noise a bf16 gap is judged by.
    print(f"validation after {args.compare_steps} steps at batch {args.compare_batch} ({source}):")
    for mixed in (False, True):
        for seed in (0, 1):
            logs = validation_loss_after(
                mixed, seed, train, validation, args.compare_steps, args.compare_batch
            )
            print(
                f"  {'bf16' if mixed else 'fp32'} seed {seed}: loss {logs['loss']:.3f} "
                f"r_loss {logs['r_loss']:.3f} hit_f1 {logs['hit_f1']:.3f}"
            )
    if 512 in args.batch_sizes:
        target = 1.6 * MAGENTA_EXAMPLES_PER_S[512]
        print(f"target bf16 >= {target:.0f} examples/s at 512: {speed[512, True] >= target}")


if __name__ == "__main__":
    main()
