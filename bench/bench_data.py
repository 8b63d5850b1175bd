"""Times the GMD 4-bar data path: cold build of all three splits, then a warm reload."""

import argparse
import sys
import tempfile
import time
from pathlib import Path

from conditions import run_watched

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import constants, data, device  # noqa: E402
from helpers.cli import add_data_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_data_dir(parser)
    parser.add_argument("--workers", type=int, default=None, help="processes; default all cores")
    args = parser.parse_args(argv)
    print(f"CPU: {device.cpu_info().describe()}")

    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        data.load_groove_4bar("train", args.data_dir, cache_dir=cache_dir, workers=args.workers)
        cold = time.perf_counter() - start

        start = time.perf_counter()
        shapes = {
            s: data.load_groove_4bar(s, args.data_dir, cache_dir=cache_dir).shape
            for s in constants.GMD_SPLITS
        }
        warm = time.perf_counter() - start
        print(data.groove_4bar_summary(args.data_dir, cache_dir=cache_dir).T.to_string())

    print(f"windows: {shapes}")
    print(f"cold build, all splits: {cold:.1f} s")
    print(f"warm load, all splits:  {warm:.2f} s")
    print(f"cold / warm:            {cold / warm:.0f}x")


if __name__ == "__main__":
    run_watched(main)
