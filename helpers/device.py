"""What hardware we run on, and the float precision it deserves.

bfloat16 pays only where the hardware computes it natively: CPUs with AVX512_BF16 or AMX,
NVIDIA GPUs of compute capability 8.0 or newer (A100, A10, L4, H100, ...) and TPUs. GPUs of
compute capability 7.x (T4, V100) have float16 tensor cores but no bf16: they take float16, whose
narrow range needs the loss scaled (helpers.backends). Elsewhere (AVX2-only CPUs, P100 and older)
both are emulated and slower than float32, so float32 is the default.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from helpers.config import PRECISIONS

# Names of NVIDIA parts whose tensor cores compute bf16 (compute capability >= 8.0), for when
# the backend reports a name but no capability. Older parts (T4, V100, P100, K80) are absent.
_BF16_GPU_NAME = re.compile(
    r"\b(A100|A10G?|A16|A30|A40|A800|L4|L40S?|H100|H200|H800|GH200|B100|B200|GB200|"
    r"RTX (A\d+|[3-9]0[5-9]0)|RTX \d+ Ada)\b",
    re.IGNORECASE,
)
# Names of parts of compute capability 7.x (Volta, Turing): float16 tensor cores, no bf16.
_FP16_GPU_NAME = re.compile(
    r"\b(T4|V100|GV100|TITAN V|TITAN RTX|RTX 20[6-8]0|RTX [4-8]000)\b", re.IGNORECASE
)
# How each precision computes, in words; the mixed ones keep float32 variables.
PRECISION_WORDS = {
    "float32": "float32",
    "bfloat16": "bfloat16 mixed precision",
    "float16": "float16 mixed precision with loss scaling",
}


@dataclass(frozen=True)
class CpuInfo:
    """A CPU's model name and the instruction-set flags the kernel reports for it."""

    model: str
    flags: frozenset[str]

    @property
    def avx2(self) -> bool:
        return "avx2" in self.flags

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.flags

    @property
    def avx512_bf16(self) -> bool:
        return "avx512_bf16" in self.flags

    @property
    def amx(self) -> bool:
        return "amx_bf16" in self.flags

    @property
    def bfloat16(self) -> bool:
        """Whether matmuls in bf16 run natively (faster than float32) on this CPU."""
        return self.avx512_bf16 or self.amx

    def describe(self) -> str:
        """The model and the flags that decide the precision, e.g. 'AMD EPYC (AVX2; no AMX)'."""
        found = [
            name
            for name, on in (
                ("AVX2", self.avx2),
                ("AVX-512", self.avx512),
                ("AVX512_BF16", self.avx512_bf16),
                ("AMX", self.amx),
            )
            if on
        ]
        missing = [name for name in ("AVX-512", "AVX512_BF16", "AMX") if name not in found]
        flags = ", ".join(found) or "no AVX2"
        if missing:
            flags += "; no " + ", ".join(missing)
        return f"{self.model} ({flags})"


@dataclass(frozen=True)
class Device:
    """The accelerator Keras computes on: 'cpu', 'gpu' or 'tpu', its names, its native bf16 and
    its float16 tensor cores (GPUs only)."""

    kind: str
    names: tuple[str, ...]
    bfloat16: bool
    float16: bool
    backend: str
    cpu: CpuInfo


def parse_cpuinfo(text: str) -> CpuInfo:
    """The first processor's model name and flags from /proc/cpuinfo text."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key not in fields:
            fields[key] = value.strip()
    # x86 says "model name" and "flags"; ARM says "Features" and may name no model at all.
    model = fields.get("model name") or fields.get("Hardware") or fields.get("CPU part", "")
    flags = fields.get("flags") or fields.get("Features", "")
    return CpuInfo(
        model=model or platform.processor() or "unknown CPU", flags=frozenset(flags.lower().split())
    )


def cpu_info(cpuinfo_path: str | Path = "/proc/cpuinfo") -> CpuInfo:
    """This machine's CPU; without /proc/cpuinfo the model comes from `platform`, no flags."""
    path = Path(cpuinfo_path)
    if path.exists():
        return parse_cpuinfo(path.read_text(errors="replace"))
    return CpuInfo(
        model=platform.processor() or platform.machine() or "unknown CPU", flags=frozenset()
    )


def gpu_has_bfloat16(name: str, capability: tuple[int, int] | None = None) -> bool:
    """Whether a GPU computes bf16 natively: compute capability >= 8.0, else judged by its name."""
    if capability is not None:
        return capability[0] >= 8
    return bool(_BF16_GPU_NAME.search(name))


def gpu_has_float16(name: str, capability: tuple[int, int] | None = None) -> bool:
    """Whether a GPU has float16 tensor cores: compute capability >= 7.0, else judged by its name."""
    if capability is not None:
        return capability[0] >= 7
    return gpu_has_bfloat16(name) or bool(_FP16_GPU_NAME.search(name))


def _accelerators(backend: str) -> tuple[str, list[tuple[str, tuple[int, int] | None]]]:
    """('gpu' | 'tpu' | 'cpu', [(name, compute capability or None)]) as `backend` sees them."""
    if backend == "tensorflow":
        import tensorflow as tf

        tpus = tf.config.list_physical_devices("TPU")
        if tpus:
            return "tpu", [(t.name, None) for t in tpus]
        gpus = []
        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            gpus.append((details.get("device_name", gpu.name), details.get("compute_capability")))
        return ("gpu" if gpus else "cpu"), gpus
    if backend == "torch":
        import torch

        gpus = [
            (torch.cuda.get_device_name(i), torch.cuda.get_device_capability(i))
            for i in range(torch.cuda.device_count())
        ]
        return ("gpu" if gpus else "cpu"), gpus
    import jax

    devices = jax.devices()
    if devices[0].platform == "tpu":
        return "tpu", [(d.device_kind, None) for d in devices]
    gpus = []
    for d in devices:
        if d.platform == "gpu":
            capability = getattr(d, "compute_capability", None)
            version = tuple(int(p) for p in capability.split(".")) if capability else None
            gpus.append((d.device_kind, version))
    return ("gpu" if gpus else "cpu"), gpus


def detect(backend: str | None = None, cpuinfo_path: str | Path = "/proc/cpuinfo") -> Device:
    """The device Keras computes on under `backend` (default: Keras's own), with its bf16."""
    if backend is None:
        import keras

        backend = keras.backend.backend()
    cpu = cpu_info(cpuinfo_path)
    kind, found = _accelerators(backend)
    bfloat16, float16 = kind == "tpu", False
    if kind == "gpu":
        bfloat16 = all(gpu_has_bfloat16(name, capability) for name, capability in found)
        float16 = all(gpu_has_float16(name, capability) for name, capability in found)
    elif kind == "cpu":
        bfloat16 = cpu.bfloat16
    names = tuple(name for name, _ in found) or (cpu.model,)
    return Device(kind, names, bfloat16=bfloat16, float16=float16, backend=backend, cpu=cpu)


# Backends whose CPU code runs bfloat16 slower than float32, measured side by side by
# bench/bench_train.py on an AMD EPYC with AVX512_BF16: JAX took 8.09 s a step in bfloat16 against
# 5.67 s in float32 at batch 512 (0.90 against 0.44 s at 64), where TensorFlow's oneDNN ran bfloat16
# 1.5x faster than its float32. PyTorch's bfloat16 on a CPU is not measured.
SLOW_CPU_BFLOAT16 = ("jax",)


def _bfloat16_pays(device: Device) -> bool:
    return device.bfloat16 and not (device.kind == "cpu" and device.backend in SLOW_CPU_BFLOAT16)


def default_precision(device: Device) -> str:
    """'bfloat16' where the device computes it natively (on a CPU, under a backend that turns
    that into speed), else 'float16' on GPUs with float16 tensor cores, else 'float32'."""
    if _bfloat16_pays(device):
        return "bfloat16"
    return "float16" if device.float16 else "float32"


def _precision_reason(device: Device) -> str:
    """Why default_precision suits `device`, e.g. 'this Tesla T4 has float16 tensor cores and no
    bfloat16'."""
    if device.kind == "cpu":
        if device.bfloat16 and not _bfloat16_pays(device):
            return (
                f"this CPU computes bfloat16 natively, but {device.backend} runs it slower than "
                "float32 on a CPU (measured)"
            )
        if device.bfloat16:
            return "this CPU's AVX512_BF16 or AMX computes bfloat16 natively"
        return "this CPU has no AVX512_BF16 or AMX to compute bfloat16 natively"
    this = f"this {', '.join(dict.fromkeys(device.names))}"
    if device.bfloat16:
        return f"{this} computes bfloat16 natively"
    if device.float16:
        return f"{this} has float16 tensor cores and no bfloat16"
    return f"{this} has neither bfloat16 nor float16 tensor cores"


def describe_precision(precision: str, device: Device) -> str:
    """A precision in words and why, e.g. 'float16 mixed precision with loss scaling (this Tesla
    T4 has float16 tensor cores and no bfloat16)'; one the device would not pick (asked for, or
    kept by a run started elsewhere) says what it would."""
    best = default_precision(device)
    if precision == best:
        return f"{PRECISION_WORDS[precision]} ({_precision_reason(device)})"
    return f"{PRECISION_WORDS[precision]} (the run's config; {best} would suit this hardware)"


def resolve_precision(choice: str, device: Device | None = None) -> str:
    """'float32', 'bfloat16' or 'float16': `choice` itself, or for 'auto' what `device` deserves.

    Raises:
      ValueError: `choice` is not one of PRECISIONS.
    """
    if choice not in PRECISIONS:
        raise ValueError(f"precision {choice!r}: choose one of {', '.join(PRECISIONS)}")
    if choice != "auto":
        return choice
    return default_precision(device if device is not None else detect())


def describe_device(device: Device | None = None) -> str:
    """Which accelerator Keras will train on and the precision it deserves, in words."""
    device = device if device is not None else detect()
    precision = (
        f"{PRECISION_WORDS[default_precision(device)]} suits it: {_precision_reason(device)}"
    )
    if device.kind == "cpu":
        return (
            f"No GPU found: training on {os.cpu_count()} CPU cores, {device.cpu.describe()} "
            f"(Keras backend: {backend_choice()}). {precision}. "
            "In Colab: Runtime > Change runtime type > GPU."
        )
    return (
        f"Training on {device.kind.upper()}: {', '.join(device.names)} "
        f"(Keras backend: {backend_choice()}). {precision}."
    )


# The backend that trained fastest in float32, side by side, on each kind of machine
# (bench/bench_train.py and bench/bench_backends.py; README, "Speed"). CPUs: TensorFlow at the
# training batch of 512, on the AVX-512 EPYC (1.09x Magenta's graph against JAX's 0.56x) and on
# an AVX2-only EPYC; JAX led at batch 64 on both (1.28x Magenta on the AVX-512 one), so a small-batch
# run on a CPU may take KERAS_BACKEND=jax. GPUs: TensorFlow, whose LSTM runs as cuDNN's fused
# kernel. TPUs: JAX, the only one of the three on Colab's TPU image.
FASTEST_BACKEND = {"tpu": "jax", "gpu": "tensorflow", "cpu": "tensorflow"}
BACKENDS = ("tensorflow", "jax", "torch")  # Keras's names, which are also their modules'


def accelerator_kind(environ: dict | None = None, root: str | Path = "/") -> str:
    """'tpu', 'gpu' or 'cpu', from facts read before any framework loads (the backend has to be
    chosen before Keras is imported): TPU runtime variables and device files, NVIDIA's driver."""
    environ = os.environ if environ is None else environ
    root = Path(root)
    tpu_variables = ("COLAB_TPU_ADDR", "TPU_NAME", "TPU_ACCELERATOR_TYPE")
    if any(environ.get(name) for name in tpu_variables) or any(root.glob("dev/accel[0-9]*")):
        return "tpu"
    if (root / "proc/driver/nvidia/gpus").is_dir() or (root / "dev/nvidia0").exists():
        return "gpu"
    return "cpu"


def pick_backend(
    kind: str | None = None, installed: tuple[str, ...] | None = None
) -> tuple[str, str]:
    """(backend, why in words) for a process whose user did not set KERAS_BACKEND: the one
    measured fastest on this kind of machine (FASTEST_BACKEND) where installed, else the first
    installed of BACKENDS."""
    kind = accelerator_kind() if kind is None else kind
    if installed is None:
        installed = tuple(name for name in BACKENDS if importlib.util.find_spec(name))
    best = FASTEST_BACKEND[kind]
    if best in installed or not installed:  # none installed: Keras's own import says so
        return best, f"measured fastest on a {kind.upper()}"
    return installed[0], f"{best}, measured fastest on a {kind.upper()}, is not installed"


def backend_choice() -> str:
    """The Keras backend this process uses and why, e.g. 'tensorflow (measured fastest on a
    CPU)' or 'jax (your KERAS_BACKEND; tensorflow was measured fastest on a CPU)'."""
    picked, why = pick_backend()
    backend = os.environ.get("KERAS_BACKEND", picked)
    if backend == picked:
        return f"{backend} ({why})"
    return f"{backend} (your KERAS_BACKEND; {picked}: {why})"
