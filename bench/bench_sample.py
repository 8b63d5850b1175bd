"""Times sampling 5 grooves (64 autoregressive steps) batched against one at a time, after load.

    python bench/bench_sample.py [--config groovae_4bar] [--run_dir DIR] [--num 5] [--repeats 3]

Without --run_dir the model is a fresh, untrained one of the named config: decoding costs the
same whatever the weights.
"""

import argparse
import time

from helpers.config import get_config
from helpers.model import GrooVAE
from helpers.sample import TrainedModel


def best_of(repeats: int, fn) -> float:
    """Shortest wall time of `repeats` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="groovae_4bar")
    parser.add_argument("--run-dir", "--run_dir", default=None)
    parser.add_argument("--num", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    if args.run_dir:
        model = TrainedModel(run_dir=args.run_dir)
    else:
        model = TrainedModel(model=GrooVAE(get_config(args.config)))
    print(f"load: {time.perf_counter() - start:.2f} s ({model.config.name})")

    model.sample(1, seed=0)  # first call traces and warms up the kernels
    batched = best_of(args.repeats, lambda: model.sample(args.num, seed=0))
    one_by_one = best_of(
        args.repeats, lambda: [model.sample(1, seed=i) for i in range(args.num)]
    )
    print(f"sample {args.num} batched:       {batched:.3f} s")
    print(f"sample {args.num} one at a time: {one_by_one:.3f} s")
    print(f"speed-up from batching: {one_by_one / batched:.1f}x")
    print("target: batched under 1 s on 2 cores:", "met" if batched < 1.0 else "NOT met")


if __name__ == "__main__":
    main()
