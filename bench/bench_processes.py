"""Training over several processes on this machine (JAX by default, or TensorFlow): examples
per second and the resident memory of each process, training on a memory-mapped window cache
far larger than memory.

Run: python bench/bench_processes.py [--windows 1000000] [--processes 1 2] [--config groovae_4bar]
    [--backend jax|tensorflow]
A synthetic corpus of --windows training windows (float32, 6,912 bytes each: 1,000,000 is 6.9 GB)
is written once as a window cache (helpers.data.save_split) in a temporary folder under the home
directory, removed at the end. For each process count, that many processes of --backend (one CPU
device each, meeting on 127.0.0.1 as tests/test_processes.py's do) train one run on it, each process
reading only its rows of every global batch from the cache; examples/s is taken from process 0's
history after --warmup steps (tracing and XLA compilation), and each process reports its peak
resident memory (any of the cache's mapped pages included, shown apart as they stand at the end)
against the target of 2 GB per process. Cost of the smallest run (--windows 512 --config tiny
--steps 1 --warmup 1 --processes 2): 28 s on 2 busy cores, JAX's start-up and compile.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conditions import run_watched

REPO = Path(__file__).resolve().parents[1]
WINDOW_SHAPE = (64, 27)
WINDOW_BYTES = 4 * WINDOW_SHAPE[0] * WINDOW_SHAPE[1]
CHUNK_WINDOWS = 8192  # windows generated and written at a time
VALIDATION_WINDOWS = 2048
TARGET_BYTES = 2 * 10**9  # resident memory per process (issue: under 2 GB)
DISK_MARGIN = 1.1  # free space asked beyond the cache's size
# A process starved of CPU on a shared 2-core machine is not taken for a stopped one.
PATIENT = {"GROOVAE_HEARTBEAT_TIMEOUT": "300", "GROOVAE_JOIN_TIMEOUT": "300"}


def write_corpus(folder: Path, windows: int) -> None:
    """A synthetic train split of `windows` windows and a small validation split, as caches
    (each with its metadata table, which a process loads whole)."""
    import numpy as np

    from helpers import data

    def chunks(total: int, seed: int):
        for start in range(0, total, CHUNK_WINDOWS):
            rng = np.random.default_rng([seed, start])
            shape = (min(CHUNK_WINDOWS, total - start), WINDOW_SHAPE[0], 9)
            hits = (rng.random(shape, np.float32) < 0.15).astype(np.float32)
            velocities = hits * rng.random(shape, np.float32)
            offsets = hits * (rng.random(shape, np.float32) - 0.5)
            yield np.concatenate([hits, velocities, offsets], axis=-1)

    def meta(split: str, total: int):  # as a MIDI folder's: 8 windows a file
        return ((split, "", "", 120, "", f"groove_{i // 8:07d}.mid", i % 8) for i in range(total))

    for split, total, seed in (("train", windows, 0), ("validation", VALIDATION_WINDOWS, 1)):
        data.save_split(folder / split, chunks(total, seed), meta(split, total), {}, WINDOW_SHAPE)


def memory_figures() -> dict:
    """This process's peak resident memory, and the resident pages of its cache maps now."""
    from helpers import data

    mapped, in_cache = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header: address range ... path
            in_cache = fields[-1].endswith(f"/{data.OUTPUTS_FILE}")
        elif in_cache and fields[0] == "Rss:":
            mapped += int(fields[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak": peak, "mapped": mapped}


def worker(args: argparse.Namespace) -> None:
    """One process of one run (the subprocess's side): trains, prints one JSON line."""
    import pandas as pd

    from helpers import data, training
    from helpers.config import get_config
    from helpers.processes import layout_from

    config = get_config(
        args.config,
        checkpoint_every_steps=10**9,
        checkpoint_every_minutes=10**9,
        eval_every_steps=10**9,
    )
    corpus = Path(args.corpus)
    windows = tuple(data.load_split(corpus / split).outputs for split in ("train", "validation"))
    options = training.TrainOptions(
        batch_size=args.batch_size,
        log_every_steps=1,
        progress=False,
        processes=layout_from(args.coordinator, args.num_processes, args.process_id),
    )
    history = training.train(config, args.run_dir, args.warmup + args.steps, windows, options)
    report = {"memory": memory_figures(), "batch_size": args.batch_size or config.train.batch_size}
    rows = history[history.split == "train"].set_index("step")
    if len(rows):
        seconds = pd.to_numeric(rows.seconds)
        report["seconds"] = float(seconds[args.warmup + args.steps] - seconds[args.warmup])
    print(json.dumps(report), flush=True)


def run_layout(args: argparse.Namespace, processes: int, corpus: Path, run_dir: Path) -> list:
    """Trains one run over `processes` processes of `args.backend`; their reports, process 0's
    first."""
    from helpers.processes import free_ports

    flags = [
        "--worker",
        "--corpus",
        str(corpus),
        "--run-dir",
        str(run_dir),
        "--config",
        args.config,
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ]
    if args.batch_size:
        flags += ["--batch-size", str(args.batch_size)]
    if processes > 1:
        # On TensorFlow process i listens at the coordinator's port + i: all must be free.
        coordinator = f"127.0.0.1:{free_ports(processes)}"
        flags += ["--coordinator", coordinator, "--num-processes", str(processes)]
    env = {**os.environ, "KERAS_BACKEND": args.backend, "PYTHONPATH": str(REPO), **PATIENT}
    started = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                *flags,
                *(["--process-id", str(i)] if processes > 1 else []),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    reports = []
    for i, process in enumerate(started):
        out, err = process.communicate()
        if process.returncode:
            for other in started:
                other.kill()
            raise SystemExit(f"error: process {i} of {processes} failed:\n{err[-3000:]}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def corpus_windows(requested: int, home: Path) -> int:
    """The windows the home directory's free disk holds, at most `requested`; says so if fewer."""
    free = shutil.disk_usage(home).free
    needed = (requested + VALIDATION_WINDOWS) * WINDOW_BYTES * DISK_MARGIN
    if needed <= free:
        return requested
    fits = int(free / DISK_MARGIN / WINDOW_BYTES) - VALIDATION_WINDOWS
    print(
        f"{requested:,} windows need {needed / 1e9:.1f} GB; {home} has {free / 1e9:.1f} GB free: "
        f"scaled down to {fits:,} windows"
    )
    return fits


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--windows", type=int, default=1_000_000, help="training windows")
    parser.add_argument(
        "--baseline-windows",
        type=int,
        default=4096,
        help="the same runs on a corpus this small, to tell the corpus's memory from the model's "
        "(0: none)",
    )
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--config", default="groovae_4bar", help="e.g. tiny for a quick run")
    parser.add_argument("--backend", choices=("jax", "tensorflow"), default="jax")
    parser.add_argument("--batch-size", type=int, help="default: the config's")
    parser.add_argument("--steps", type=int, default=4, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="steps before the timed ones")
    worker_side = parser.add_argument_group("the subprocess's side")
    worker_side.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for flag in ("--corpus", "--run-dir", "--coordinator"):
        worker_side.add_argument(flag, help=argparse.SUPPRESS)
    for flag in ("--num-processes", "--process-id"):
        worker_side.add_argument(flag, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return

    from helpers.device import cpu_info

    cores = os.cpu_count() or 1
    print(
        f"CPU: {cpu_info().describe()}, {cores} cores; {args.config}, {args.backend}, "
        "one CPU device each"
    )
    home = Path.home()
    windows = corpus_windows(args.windows, home)
    scratch = Path(tempfile.mkdtemp(prefix="groovae-bench-processes-", dir=home))
    try:
        began = time.monotonic()
        write_corpus(scratch / "corpus", windows)
        size = sum(p.stat().st_size for p in (scratch / "corpus").rglob("*"))
        print(
            f"corpus: {windows:,} training windows, a {size / 1e9:.2f} GB memory-mapped cache "
            f"under {home}, written in {time.monotonic() - began:.0f} s"
        )
        if args.baseline_windows:
            write_corpus(scratch / "baseline", args.baseline_windows)
        print(
            f"{'processes':>9} {'examples/s':>11} {'peak RSS per process':>21} "
            f"{'with ' + format(args.baseline_windows, ',') + ' windows':>18} "
            f"{'cache map (at end)':>19} {'under 2 GB':>10}"
        )
        for processes in args.processes:
            reports = run_layout(args, processes, scratch / "corpus", scratch / f"run-{processes}")
            rate = reports[0]["batch_size"] * args.steps / reports[0]["seconds"]
            peak = max(r["memory"]["peak"] for r in reports)
            mapped = max(r["memory"]["mapped"] for r in reports)
            baseline = "-"
            if args.baseline_windows:
                small = run_layout(
                    args, processes, scratch / "baseline", scratch / f"b-{processes}"
                )
                baseline = f"{max(r['memory']['peak'] for r in small) / 1e9:.2f} GB"
            under = "yes" if peak < TARGET_BYTES else "NO"
            print(
                f"{processes:>9} {rate:>11.1f} {peak / 1e9:>18.2f} GB {baseline:>18} "
                f"{mapped / 1e9:>16.2f} GB {under:>10}"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if cores <= 2:
        print(
            f"On {cores} cores, processes share the same cores: this shows the overhead of "
            "several processes (collectives, a batch split in two), not a speed-up; the speed-up "
            "comes from a device or machine per process."
        )
    else:
        print(
            f"On one machine of {cores} cores the processes share its cores and memory bandwidth: "
            "a speed-up needs a device or machine per process."
        )


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    if "--worker" in sys.argv:  # one process of a run: its one JSON line
        main()
    else:
        run_watched(main)
