"""Training step of groovae_4bar: Magenta's own graph and ours on each backend, in one run.

    python bench/bench_train.py [--batch-sizes 512 64] [--backends tensorflow jax] [--steps 7]
        [--max-isa avx2]

Every runner is a worker process holding one model (Keras fixes its backend per process;
Magenta's graph runs in its side environment, bench/magenta_side.py, built on first use). All
train on the same real GMD training windows, step i on the same rows, one step of each in turn,
so all see the same load on a shared machine; figures are medians. Ours in bfloat16 is timed too,
in the same alternation, where the hardware computes bf16 natively (helpers.device). The run's
load and steal are watched (conditions.py): figures from a loaded machine are marked noisy.
`--max-isa avx2` caps every library's vector code at AVX2, so a CPU with AVX-512 times what an
AVX2-only one of its clock would (the targets are set for such CPUs).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import numpy as np  # noqa: E402
from conditions import Conditions  # noqa: E402
from magenta_side import MagentaStepper, StepWorker, batch_rows, serve  # noqa: E402

from helpers import device  # noqa: E402
from helpers.cli import add_data_dir  # noqa: E402
from helpers.config import get_config  # noqa: E402
from helpers.constants import GROOVE_DEPTH  # noqa: E402
from helpers.data import load_groove_4bar  # noqa: E402

# The project's targets against Magenta's graph, float32, for the fastest backend (issue 23).
TARGETS = {512: 1.10, 64: 1.5}
# --max-isa: the variables that cap oneDNN's JIT (TensorFlow's and Magenta's matmuls) and
# OpenBLAS (the matmul ceiling), and the flag that caps XLA's code generator (JAX workers only:
# TensorFlow reads XLA_FLAGS too). TensorFlow's own Eigen kernels are built for AVX, below the cap.
ISA_ENV = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_CORETYPE": "Haswell"}}
XLA_ISA_FLAG = {"avx2": "--xla_cpu_max_isa=AVX2"}


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
    """The float32 rate of a large square matmul (numpy's BLAS): the ceiling a step is judged by."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def our_worker(windows_path: str, batch_size: int, precision: str) -> None:
    """The worker side of OurStepper: this process's backend (KERAS_BACKEND) trains our model."""
    import keras

    from helpers.backends import make_optimizer, train_on_batch
    from helpers.model import GrooVAE

    keras.utils.set_random_seed(0)
    config = get_config("groovae_4bar", batch_size=batch_size, precision=precision)
    model = GrooVAE(config)
    model.compile(optimizer=make_optimizer(config.train))
    windows = np.load(windows_path)

    def train_step(index: int) -> None:
        batch = windows[batch_rows(index, batch_size, len(windows))]
        train_on_batch(model, batch, batch)  # returns floats: the step has finished

    serve(train_step, {"backend": keras.backend.backend(), "keras": keras.__version__})


class OurStepper(StepWorker):
    """Our GrooVAE training on one backend, batch size and precision, in a worker process."""

    def __init__(
        self, windows_path: Path, batch_size: int, backend: str, precision: str, max_isa: str | None
    ):
        command = [sys.executable, __file__, "--worker", str(windows_path)]
        command += ["--batch-sizes", str(batch_size), "--precision", precision]
        env = {**os.environ, "KERAS_BACKEND": backend}
        if max_isa and backend == "jax":
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {XLA_ISA_FLAG[max_isa]}".strip()
        log = windows_path.parent / f"ours-{backend}-{precision}-{batch_size}.log"
        super().__init__(command, env, log)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 64])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--steps", type=int, default=7, help="timed steps of each, alternating")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each first")
    parser.add_argument(
        "--max-isa", choices=sorted(ISA_ENV), help="cap every library's vector code at this ISA"
    )
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a worker's windows file
    add_data_dir(parser)
    args = parser.parse_args(argv)
    if args.worker:
        our_worker(args.worker, args.batch_sizes[0], args.precision)
        return
    caps = ISA_ENV.get(args.max_isa, {})
    if any(os.environ.get(k) != v for k, v in caps.items()):
        # OpenBLAS reads its cap when numpy loads it: start again with the caps set.
        argv = sys.argv[1:] if argv is None else argv
        os.execve(sys.executable, [sys.executable, __file__, *argv], {**os.environ, **caps})

    cpu = device.cpu_info()
    precisions = ["float32", "bfloat16"] if cpu.bfloat16 and not caps else ["float32"]
    windows = load_groove_4bar("train", args.data_dir, progress=False)
    windows = windows[: max(args.batch_sizes) * (args.warmup + args.steps)]
    print(f"CPU: {cpu.describe()}, {os.cpu_count()} cores")
    if caps:
        flags = ", ".join(f"{k}={v}" for k, v in caps.items())
        print(f"capped at {args.max_isa.upper()}: {flags}, JAX {XLA_ISA_FLAG[args.max_isa]}")
    if "bfloat16" not in precisions:
        print("bfloat16 not timed: no native bf16 (AVX512_BF16 / AMX) here or under the cap")
    with Conditions() as machine, tempfile.TemporaryDirectory() as scratch:
        peak = matmul_gflops()
        train_flops = 3 * forward_flops_per_example(get_config("groovae_4bar"))  # fwd + bwd
        print(
            f"float32 2048x2048 matmul: {peak:.0f} GFLOP/s; "
            f"groovae_4bar step: {train_flops / 1e6:.0f} MFLOP per example"
        )
        windows_path = Path(scratch) / "windows.npy"
        np.save(windows_path, windows)
        for batch_size in args.batch_sizes:
            with MagentaStepper(windows_path, batch_size) as magenta:
                runners = {"Magenta (TF1 graph, LSTMBlockCell)": magenta}
                for backend in args.backends:
                    for precision in precisions:
                        runners[f"ours {backend} {precision}"] = OurStepper(
                            windows_path, batch_size, backend, precision, args.max_isa
                        )
                try:
                    times = alternate(runners, args.warmup, args.steps)
                finally:
                    for runner in runners.values():
                        if runner is not magenta:
                            runner.close()
            cpu_name = f"{cpu.model} capped at {args.max_isa.upper()}" if caps else cpu.model
            report(batch_size, times, peak, train_flops, cpu_name, machine)
    print(machine.verdict())


def alternate(runners: dict, warmup: int, steps: int) -> dict[str, list[float]]:
    """Each runner's step times, one step of each in turn, after `warmup` untimed rounds."""
    for i in range(warmup):
        for runner in runners.values():
            runner.step(i)
    times = {name: [] for name in runners}
    for i in range(warmup, warmup + steps):
        for name, runner in runners.items():
            times[name].append(runner.step(i))
    return times


def report(
    batch_size: int, times: dict, peak: float, train_flops: float, cpu: str, machine: Conditions
) -> None:
    """One line per runner (median s/step, examples/s, share of the matmul rate, x Magenta),
    then the fastest float32 backend against its target."""
    medians = {name: statistics.median(t) for name, t in times.items()}
    magenta = next(iter(medians.values()))
    steps = len(next(iter(times.values())))
    print(f"batch {batch_size} on {cpu}, median of {steps} alternating steps{machine.tag()}:")
    for name, seconds in medians.items():
        share = batch_size * train_flops / seconds / 1e9 / peak
        print(
            f"  {name:<36} {seconds:6.2f} s/step  {batch_size / seconds:6.1f} examples/s  "
            f"{share:5.1%} of matmul  {magenta / seconds:.2f}x Magenta"
        )
    ours = {
        name: s
        for name, s in medians.items()
        if name.startswith("ours") and name.endswith("float32")
    }
    if ours and batch_size in TARGETS:
        fastest = min(ours, key=ours.get)
        speedup = magenta / ours[fastest]
        met = "met" if speedup >= TARGETS[batch_size] else "NOT met"
        print(
            f"  fastest float32: {fastest}, {speedup:.2f}x Magenta "
            f"(target {TARGETS[batch_size]:.2f}x: {met}){machine.tag()}"
        )


if __name__ == "__main__":
    main()
