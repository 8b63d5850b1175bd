"""Times the first groove on a fresh runtime: a new Python process imports, loads the bundled model,
samples one groove and renders its audio, as notebook 03 does right after its setup cell.

    python bench/bench_first_groove.py [--name groovae_4bar] [--repeats 3]

Each repeat is a fresh subprocess, so imports and kernel start-up are counted every time (the
operating system's file cache stays warm after the first, as it would in a session).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conditions import run_watched

from helpers.device import cpu_info

TARGET_SECONDS = 60.0

# Run in the fresh process: wall-clock marks after each phase, printed as one JSON line.
FIRST_GROOVE = """
import json, sys, time
marks = {"start": time.perf_counter()}
from helpers import audio, render, sample  # noqa: F401(notebook 03 imports render too)
marks["imports"] = time.perf_counter()
groovae = sample.TrainedModel.pretrained(sys.argv[1])
marks["load"] = time.perf_counter()
(groove,) = groovae.sample(1, temperature=0.5, seed=0)
marks["sample"] = time.perf_counter()
sound = audio.synthesize(groove)
marks["audio"] = time.perf_counter()
assert len(groove.notes) > 0 and sound.size > 0
print(json.dumps({"marks": marks, "step": groovae.step, "notes": len(groove.notes)}))
"""


def first_groove(name: str) -> dict:
    """Phase times of one fresh process, and its total from spawn to exit, in seconds."""
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    spawned = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", FIRST_GROOVE, name],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    total = time.perf_counter() - spawned
    report = json.loads(result.stdout.strip().splitlines()[-1])
    marks = report["marks"]
    phases = ("imports", "load", "sample", "audio")
    previous = ("start", *phases)
    times = {p: marks[p] - marks[q] for p, q in zip(phases, previous)}
    return {"total": total, "step": report["step"], "notes": report["notes"], **times}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="groovae_4bar")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    print(f"CPU: {cpu_info().describe()}, {os.cpu_count()} cores")
    runs = [first_groove(args.name) for _ in range(args.repeats)]
    for i, run in enumerate(runs, 1):
        print(
            f"run {i}: {run['total']:.1f} s to the first groove's audio "
            f"(imports {run['imports']:.1f}, "
            f"load {run['load']:.1f}, sample {run['sample']:.1f}, audio {run['audio']:.1f}; "
            f"{args.name} at step {run['step']}, {run['notes']} notes)"
        )
    worst = max(run["total"] for run in runs)
    verdict = "met" if worst < TARGET_SECONDS else "NOT met"
    print(f"slowest of {len(runs)}: {worst:.1f} s; target under {TARGET_SECONDS:.0f} s: {verdict}")


if __name__ == "__main__":
    run_watched(main)
