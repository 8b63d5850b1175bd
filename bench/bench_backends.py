"""Training speed of groovae_4bar on each Keras backend, side by side, measured in one run.

Run: python bench/bench_backends.py [--batch-sizes 64 512] [--timed-steps 3]
Each backend trains in a subprocess of its own (Keras fixes the backend at import) with the same
float32 model, step (helpers.backends) and synthetic batch; the table shows examples/s after two
warm-up steps, which absorb tracing and XLA compilation.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conditions import run_watched

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "jax", "torch")


def measure(batch_sizes: list[int], timed_steps: int) -> dict:
    """Examples/s of this process's backend at each batch size (runs in the subprocess)."""
    import keras
    import numpy as np

    from helpers.backends import make_optimizer
    from helpers.config import get_config
    from helpers.model import GrooVAE

    rates = {}
    for batch_size in batch_sizes:
        keras.utils.set_random_seed(0)
        model = GrooVAE(get_config("groovae_4bar"))
        model.compile(optimizer=make_optimizer(model.config.train))
        hits = np.random.default_rng(0).random((batch_size, 64, 9)) < 0.15
        batch = np.concatenate([hits, 0.8 * hits, 0.0 * hits], axis=-1).astype(np.float32)
        for _ in range(2):
            model.train_on_batch(batch, batch)
        start = time.perf_counter()
        for _ in range(timed_steps):
            logs = model.train_on_batch(batch, batch, return_dict=True)
        rates[batch_size] = batch_size * timed_steps / (time.perf_counter() - start)
        assert all(float(v) == float(v) for v in logs.values()), "a NaN in the timed steps"
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--timed-steps", type=int, default=3)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the subprocess's side
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.batch_sizes, args.timed_steps)))
        return

    from helpers.device import cpu_info

    print(f"CPU: {cpu_info().describe()}, {os.cpu_count()} cores; groovae_4bar, float32")
    sizes = [str(b) for b in args.batch_sizes]
    results = {}
    for backend in BACKENDS:
        command = [sys.executable, __file__, "--measure", "1", "--batch-sizes", *sizes]
        command += ["--timed-steps", str(args.timed_steps)]
        env = {**os.environ, "KERAS_BACKEND": backend}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode:
            print(f"{backend}: failed\n{done.stderr[-2000:]}")
            continue
        results[backend] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{'backend':<12}" + "".join(f"{'batch ' + s + ' ex/s':>18}" for s in sizes))
    for backend, rates in results.items():
        print(f"{backend:<12}" + "".join(f"{rates[s]:>18.1f}" for s in sizes))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    if "--measure" in sys.argv:  # a backend's subprocess: its one JSON line only
        main()
    else:
        run_watched(main)
