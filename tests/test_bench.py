"""Across modules: every script in bench/ runs with its smallest arguments, in a process of its
own, and prints its figures and the machine's conditions, so a change cannot break one silently.

The scripts that build or use Magenta's side environment (bench/magenta_side.py: bench_train,
bench_magenta_export, magenta_family) need that environment, which `pip` builds from the network on
first use; they skip without it. Measured on a 2-core CPU shared with two training runs (load
average about 18, so each took several times what it takes alone): bench_humanize 94 s,
bench_tools 74-361 s; marked slow: bench_first_groove 194 s, bench_web_page (it needs chromium,
as tests/test_web_page.py does), bench_data 293 s (a cold build of
every GMD split), bench_family 350 s, bench_processes 28 s (two JAX processes start and compile;
--windows sets the corpus, 512 windows here), bench_sample 393 s (a one-step groovae_4bar run
first), bench_backends (three backends, the full model) and the side-environment ones.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))

from magenta_side import DEFAULT_ROOT  # noqa: E402  (bench/ is no package)

GMD = "gmd"  # needs the Groove MIDI Dataset (the gmd_dir fixture)
SIDE = "side"  # needs Magenta's side environment

# script: (smallest arguments, what it needs, marks)
RUNS = {
    "bench_first_groove.py": (["--repeats", "1"], (), (pytest.mark.slow,)),
    "bench_recording.py": (["--minutes", "0.05"], (), ()),
    "bench_refusals.py": (["--repeats", "1", "--commands", "verbs"], (), ()),
    "bench_web_page.py": (["--repeats", "1"], (), (pytest.mark.slow,)),  # needs chromium
    "bench_family.py": (["--size", "tiny"], (), (pytest.mark.slow,)),
    "bench_sample.py": (
        ["--num", "1", "--repeats", "1", "--no-evaluate"],
        (GMD,),
        (pytest.mark.slow,),
    ),
    "bench_humanize.py": (["--windows", "4"], (GMD,), ()),
    "bench_tools.py": (
        ["--models", "bundled", "--windows", "4", "--tools", "humanize", "infill"],
        (GMD,),
        (),
    ),
    "bench_data.py": (["--workers", "1"], (GMD,), (pytest.mark.slow,)),
    "bench_backends.py": (["--batch-sizes", "2", "--timed-steps", "1"], (), (pytest.mark.slow,)),
    "bench_train.py": (
        ["--batch-sizes", "2", "--backends", "tensorflow", "--steps", "1", "--warmup", "0"],
        (GMD, SIDE),
        (pytest.mark.slow,),
    ),
    "bench_magenta_export.py": (
        ["--models", "tiny"],
        (SIDE,),
        (pytest.mark.slow,),
    ),
    "bench_processes.py": (
        [
            "--windows",
            "512",
            "--baseline-windows",
            "0",
            "--config",
            "tiny",
            "--steps",
            "1",
            "--warmup",
            "1",
            "--processes",
            "2",
        ],
        (),
        (pytest.mark.slow,),
    ),
    "magenta_family.py": (
        ["--configs", "groovae_4bar", "--out", "{tmp}"],
        (SIDE,),
        (pytest.mark.slow,),
    ),
}
MODULES = {"conditions.py", "magenta_side.py"}  # imported by the scripts, not run


def test_every_bench_script_is_run_here():
    assert {p.name for p in BENCH.glob("*.py")} == set(RUNS) | MODULES


@pytest.mark.parametrize(
    "script",
    [pytest.param(name, marks=marks) for name, (_, _, marks) in RUNS.items()],
)
def test_bench_runs_with_its_smallest_arguments(script, request, tmp_path):
    args, needs, _ = RUNS[script]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if GMD in needs:
        env["GROOVE_DATA_DIR"] = str(request.getfixturevalue("gmd_dir"))
    if SIDE in needs and not (DEFAULT_ROOT / "magenta-venv" / ".installed").exists():
        pytest.skip(f"Magenta's side environment is not built under {DEFAULT_ROOT}")
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *(a.format(tmp=tmp_path) for a in args)],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "conditions:" in done.stdout, done.stdout[-2000:]
