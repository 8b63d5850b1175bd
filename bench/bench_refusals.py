"""How fast each command line answers --help, a bad flag and a 0-byte input file, each in a fresh
process (median of --repeats), against the 1.5 s target, with the frameworks it loaded and its
peak memory: a refusal should answer before TensorFlow, JAX, PyTorch or Keras is imported."""

import argparse
import os
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

TARGET_S = 1.5
FRAMEWORKS = ("tensorflow", "jax", "torch", "keras")
# `python -m helpers.MODULE ARGV`, then a last line naming the frameworks it loaded.
LOADED = f"""
import runpy, sys
module = sys.argv.pop(1)
try:
    runpy.run_module(f"helpers.{{module}}", run_name="__main__", alter_sys=True)
finally:
    print("loaded:", *sorted({{m.split(".")[0] for m in sys.modules}} & set({FRAMEWORKS})))
"""
# Per command line: (case, arguments); {tmp} is a scratch folder holding empty.mid and empty.zip.
CASES = {
    "verbs": [
        ("--help", ["--help"]),
        ("bad flag", ["sample", "--seed", "-1", "--output-dir", "{tmp}/out"]),
        ("0-byte file", ["humanize", "--input", "{tmp}/empty.mid", "--output-dir", "{tmp}/out"]),
    ],
    "train": [
        ("--help", ["--help"]),
        ("bad flag", ["--config", "tiny", "--steps", "1", "--batch-size", "0", "--run-dir", "{tmp}/run"]),
        ("0-byte file", ["--config", "tiny", "--steps", "1", "--run-dir", "{tmp}/run",
                         "--midi-dir", "{tmp}/empty.mid"]),
    ],
    "evaluate": [
        ("--help", ["--help"]),
        ("bad flag", ["--split", "train"]),
        ("0-byte file", ["--run-dir", "{tmp}/empty.mid"]),
    ],
    "export": [
        ("--help", ["--help"]),
        ("bad flag", ["--run-dir", "{tmp}/run", "--format", "onnx"]),
        ("0-byte file", ["--run-dir", "{tmp}/empty.mid", "--no-results-page"]),
    ],
    "pipeline": [
        ("--help", ["--help"]),
        ("bad flag", ["--batch-size", "0"]),
        ("0-byte file", ["--config", "tiny", "--data-dir", "{tmp}/empty.zip",
                         "--outputs-dir", "{tmp}/outputs"]),
    ],
}  # fmt: skip


def answer(module: str, argv: list[str], folder: Path) -> tuple[float, int, str, float, str]:
    """One fresh `python -m helpers.MODULE ARGV` in `folder`.

    Returns:
      (seconds, exit status, frameworks loaded, peak memory in GB, its last line of stderr).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", LOADED, module, *argv],
            cwd=folder,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0), err.seek(0)
        printed, said = out.read().splitlines(), err.read().strip().splitlines()
    loaded = printed[-1].removeprefix("loaded:").strip() if printed else "?"
    peak_gb = usage.ru_maxrss / 2**20  # Linux counts kilobytes
    return (
        seconds,
        os.waitstatus_to_exitcode(status),
        loaded or "none",
        peak_gb,
        said[-1] if said else "",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per case")
    parser.add_argument("--commands", nargs="+", choices=sorted(CASES), default=list(CASES))
    args = parser.parse_args(argv)
    print(f"CPU: {device.cpu_info().describe()}")
    print(f"target: each answer under {TARGET_S} s, no framework loaded; median of {args.repeats}")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "empty.mid").write_bytes(b"")
        (folder / "empty.zip").write_bytes(b"")
        for module in args.commands:
            for case, case_argv in CASES[module]:
                filled = [a.format(tmp=folder) for a in case_argv]
                runs = [answer(module, filled, folder) for _ in range(args.repeats)]
                seconds = statistics.median(r[0] for r in runs)
                _, status, loaded, _, said = runs[-1]
                peak = max(r[3] for r in runs)
                verdict = "ok" if seconds < TARGET_S and loaded == "none" else "MISSED"
                print(
                    f"{module:8} {case:11} {seconds:5.2f} s  exit {status}  peak {peak:.2f} GB  "
                    f"frameworks: {loaded:24} {verdict}" + (f"  ({said[:100]})" if status else "")
                )


if __name__ == "__main__":
    run_watched(main)
