"""Times sampling 5 grooves after load, and a whole `python -m helpers.evaluate` on the test split.

    python bench/bench_sample.py [--run-dir DIR] [--num 5] [--repeats 5] [--no-evaluate]

Without --run-dir the model is a groovae_4bar run trained for one step in a scratch folder:
decoding and evaluation cost the same whatever the weights. Targets (issue #13, this 2-core
CPU): 5 samples under 0.2 s after load; the evaluation under 30 s wall, start-up included.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conditions import run_watched

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from helpers import device  # noqa: E402
from helpers.cli import add_data_dir  # noqa: E402
from helpers.config import get_config  # noqa: E402
from helpers.sample import TrainedModel  # noqa: E402
from helpers.training import TrainOptions, train  # noqa: E402

SAMPLE_TARGET_S = 0.2
EVALUATE_TARGET_S = 30.0


def scratch_run(folder: Path, data_dir: str | None) -> Path:
    """A groovae_4bar run of one step at batch 8: a checkpoint to load, quickly."""
    run_dir = folder / "groovae_4bar"
    config = get_config("groovae_4bar", batch_size=8, eval_batches=1)
    train(config, run_dir, steps=1, options=TrainOptions(data_dir=data_dir, progress=False))
    return run_dir


def median_of(repeats: int, fn) -> float:
    """Median wall time of `repeats` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def children_cpu_seconds() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default=None)
    add_data_dir(parser)
    parser.add_argument("--num", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-evaluate", action="store_true", help="time sampling only")
    args = parser.parse_args(argv)
    cpu = device.cpu_info()
    print(f"CPU: {cpu.describe()}, {os.cpu_count()} cores")

    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(args.run_dir) if args.run_dir else scratch_run(Path(scratch), args.data_dir)
        start = time.perf_counter()
        model = TrainedModel(run_dir)
        print(f"load {run_dir.name}: {time.perf_counter() - start:.2f} s")
        start = time.perf_counter()
        model.sample(args.num, seed=0)
        print(f"first sample call (compiles the decoder): {time.perf_counter() - start:.2f} s")
        batched = median_of(args.repeats, lambda: model.sample(args.num, seed=0))
        met = "met" if batched < SAMPLE_TARGET_S else "NOT met"
        print(
            f"sample {args.num} grooves after load, median of {args.repeats}: {batched:.3f} s "
            f"on {cpu.model} (target < {SAMPLE_TARGET_S} s: {met})"
        )

        if not args.no_evaluate:
            command = [
                sys.executable,
                "-m",
                "helpers.evaluate",
                "--run-dir",
                str(run_dir),
                "--split",
                "test",
            ]
            if args.data_dir:
                command += ["--data-dir", args.data_dir]
            load = os.getloadavg()[0]
            start, cpu_start = time.perf_counter(), children_cpu_seconds()
            subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - start
            cpu_seconds = children_cpu_seconds() - cpu_start
            met = "met" if wall < EVALUATE_TARGET_S else "NOT met"
            print(
                f"python -m helpers.evaluate --split test (1,901 greedy reconstructions, "
                f"2 x 1,000 samples, two baselines), start-up included: {wall:.1f} s on "
                f"{cpu.model} (target < {EVALUATE_TARGET_S:.0f} s: {met})"
            )
            # Other processes on the cores stretch the wall time far more than the CPU time.
            print(
                f"  the same run's CPU time (user + sys): {cpu_seconds:.1f} s; load average "
                f"{load:.1f} on {os.cpu_count()} cores when it started"
            )


if __name__ == "__main__":
    run_watched(main)
