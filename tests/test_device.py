"""Tests for helpers/device.py: CPU flags from /proc/cpuinfo text, bf16 by GPU, the
precision chosen."""

import pytest

from helpers import device

EPYC = """processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC 7B12
flags		: fpu vme sse sse2 avx avx2 fma bmi2
processor	: 1
model name	: AMD EPYC 7B12
flags		: fpu vme sse sse2 avx avx2 fma bmi2
"""
SAPPHIRE_RAPIDS = """processor	: 0
model name	: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags		: avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8
"""
SKYLAKE = """model name	: Intel(R) Xeon(R) CPU @ 2.00GHz
flags		: avx2 avx512f avx512bw avx512vl
"""
GRAVITON = """processor	: 0
BogoMIPS	: 243.75
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 bf16
CPU part	: 0xd40
"""


def _cpu(tmp_path, text):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return device.cpu_info(path)


def test_parse_cpuinfo_reads_model_and_flags_of_the_first_processor(tmp_path):
    cpu = _cpu(tmp_path, EPYC)
    assert cpu.model == "AMD EPYC 7B12"
    assert cpu.avx2 and not (cpu.avx512 or cpu.avx512_bf16 or cpu.amx or cpu.bfloat16)
    assert cpu.describe() == "AMD EPYC 7B12 (AVX2; no AVX-512, AVX512_BF16, AMX)"


def test_bf16_only_on_cpus_with_avx512_bf16_or_amx(tmp_path):
    assert not _cpu(tmp_path, SKYLAKE).bfloat16  # AVX-512 alone emulates bf16
    sapphire = _cpu(tmp_path, SAPPHIRE_RAPIDS)
    assert sapphire.avx512 and sapphire.avx512_bf16 and sapphire.amx and sapphire.bfloat16
    assert sapphire.describe().endswith("(AVX2, AVX-512, AVX512_BF16, AMX)")
    assert device.parse_cpuinfo("flags : avx2 amx_bf16 amx_tile\n").bfloat16


def test_arm_cpuinfo_without_model_name_still_parses():
    cpu = device.parse_cpuinfo(GRAVITON)
    assert cpu.model == "0xd40" and "asimd" in cpu.flags and not cpu.bfloat16


def test_missing_cpuinfo_falls_back_to_platform(tmp_path):
    cpu = device.cpu_info(tmp_path / "absent")
    assert cpu.model and cpu.flags == frozenset()


@pytest.mark.parametrize(
    "name, capability, expected",
    [
        ("NVIDIA A100-SXM4-40GB", None, True),
        ("NVIDIA L4", None, True),
        ("NVIDIA H100 80GB HBM3", None, True),
        ("NVIDIA A10G", None, True),
        ("Tesla T4", None, False),
        ("Tesla V100-SXM2-16GB", None, False),
        ("Tesla P100-PCIE-16GB", None, False),
        ("Some Future GPU", (9, 0), True),
        ("Tesla T4", (7, 5), False),
        ("NVIDIA GeForce RTX 2080 Ti", None, False),  # Turing: float16 tensor cores only
        ("NVIDIA GeForce RTX 3090", None, True),
    ],
)
def test_gpu_bf16_units_by_capability_else_name(name, capability, expected):
    assert device.gpu_has_bfloat16(name, capability) is expected


@pytest.mark.parametrize(
    "name, capability, expected",
    [
        ("Tesla T4", None, True),
        ("Tesla V100-SXM2-16GB", None, True),
        ("NVIDIA GeForce RTX 2080 Ti", None, True),
        ("NVIDIA A100-SXM4-40GB", None, True),  # bf16 parts have float16 tensor cores too
        ("Tesla P100-PCIE-16GB", None, False),
        ("Tesla K80", None, False),
        ("Some GPU", (7, 5), True),
        ("Some GPU", (7, 0), True),
        ("Some GPU", (6, 1), False),
    ],
)
def test_gpu_float16_tensor_cores_by_capability_else_name(name, capability, expected):
    assert device.gpu_has_float16(name, capability) is expected


def _fake(monkeypatch, tmp_path, cpuinfo, kind, found, backend="tensorflow"):
    monkeypatch.setattr(device, "_accelerators", lambda backend: (kind, found))
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    return device.detect(backend, path)


@pytest.mark.parametrize(
    "cpuinfo, kind, found, expected",
    [
        (EPYC, "cpu", [], "float32"),
        (SKYLAKE, "cpu", [], "float32"),
        (SAPPHIRE_RAPIDS, "cpu", [], "bfloat16"),
        (EPYC, "gpu", [("Tesla T4", (7, 5))], "float16"),
        (EPYC, "gpu", [("Tesla T4", None)], "float16"),
        (EPYC, "gpu", [("Tesla V100-SXM2-16GB", None)], "float16"),
        (EPYC, "gpu", [("Some GPU", (7, 5))], "float16"),
        (EPYC, "gpu", [("Tesla P100-PCIE-16GB", (6, 0))], "float32"),
        (EPYC, "gpu", [("Tesla P100-PCIE-16GB", None)], "float32"),
        (EPYC, "gpu", [("Tesla T4", None), ("Tesla P100-PCIE-16GB", None)], "float32"),
        (EPYC, "gpu", [("NVIDIA L4", None)], "bfloat16"),
        (EPYC, "gpu", [("NVIDIA A100-SXM4-40GB", (8, 0))], "bfloat16"),
        (EPYC, "tpu", [("TPU v2", None)], "bfloat16"),
    ],
)
def test_default_precision_follows_the_hardware(
    monkeypatch, tmp_path, cpuinfo, kind, found, expected
):
    hardware = _fake(monkeypatch, tmp_path, cpuinfo, kind, found)
    assert device.default_precision(hardware) == expected
    assert device.resolve_precision("auto", hardware) == expected


@pytest.mark.parametrize(
    "backend, expected", [("tensorflow", "bfloat16"), ("jax", "float32"), ("torch", "bfloat16")]
)
def test_auto_on_a_bf16_cpu_takes_bfloat16_only_where_the_backend_runs_it_faster(
    monkeypatch, tmp_path, backend, expected
):
    hardware = _fake(monkeypatch, tmp_path, SAPPHIRE_RAPIDS, "cpu", [], backend)
    assert hardware.bfloat16 and device.resolve_precision("auto", hardware) == expected
    words = device.describe_precision(expected, hardware)
    assert ("runs it slower than float32" in words) == (backend == "jax"), words


def test_explicit_precision_wins_and_unknown_is_refused(monkeypatch, tmp_path):
    hardware = _fake(monkeypatch, tmp_path, EPYC, "cpu", [])
    assert device.resolve_precision("bfloat16", hardware) == "bfloat16"
    assert device.resolve_precision("float32", hardware) == "float32"
    assert device.resolve_precision("float16", hardware) == "float16"
    with pytest.raises(ValueError, match="auto, float32, bfloat16, float16"):
        device.resolve_precision("float64", hardware)


def test_describe_device_names_cpu_flags_or_accelerator(monkeypatch, tmp_path):
    text = device.describe_device(_fake(monkeypatch, tmp_path, EPYC, "cpu", []))
    assert "No GPU" in text and "AMD EPYC 7B12 (AVX2" in text and "float32" in text
    text = device.describe_device(_fake(monkeypatch, tmp_path, EPYC, "gpu", [("NVIDIA L4", None)]))
    assert text.startswith("Training on GPU: NVIDIA L4") and "bfloat16" in text


@pytest.mark.parametrize(
    "found, words",
    [
        (
            [("Tesla T4", (7, 5))],
            "float16 mixed precision with loss scaling suits it: this Tesla T4 has float16 tensor "
            "cores and no bfloat16",
        ),
        (
            [("NVIDIA A100-SXM4-40GB", (8, 0))],
            "bfloat16 mixed precision suits it: this NVIDIA A100-SXM4-40GB computes bfloat16 "
            "natively",
        ),
        (
            [("Tesla P100-PCIE-16GB", (6, 0))],
            "float32 suits it: this Tesla P100-PCIE-16GB has neither bfloat16 nor float16 tensor "
            "cores",
        ),
    ],
)
def test_describe_device_says_the_precision_and_why(monkeypatch, tmp_path, found, words):
    text = device.describe_device(_fake(monkeypatch, tmp_path, EPYC, "gpu", found))
    assert words in text


def test_describe_precision_says_why_or_what_the_hardware_would_take(monkeypatch, tmp_path):
    t4 = _fake(monkeypatch, tmp_path, EPYC, "gpu", [("Tesla T4", (7, 5))] * 2)
    assert device.describe_precision("float16", t4) == (
        "float16 mixed precision with loss scaling (this Tesla T4 has float16 tensor cores and "
        "no bfloat16)"
    )
    assert device.describe_precision("float32", t4) == (
        "float32 (the run's config; float16 would suit this hardware)"
    )
    cpu = _fake(monkeypatch, tmp_path, EPYC, "cpu", [])
    assert device.describe_precision("float32", cpu) == (
        "float32 (this CPU has no AVX512_BF16 or AMX to compute bfloat16 natively)"
    )


def test_detect_on_this_machine_agrees_with_tensorflow():
    import tensorflow as tf

    hardware = device.detect("tensorflow")
    assert hardware.kind == ("gpu" if tf.config.list_physical_devices("GPU") else "cpu")
    assert hardware.cpu.model


# --- the backend, picked before Keras loads ------------------------------------------------


@pytest.mark.parametrize(
    "environ, files, kind",
    [
        ({}, [], "cpu"),
        ({"COLAB_TPU_ADDR": "10.0.0.2:8470"}, [], "tpu"),  # Colab's older TPU runtime
        ({}, ["dev/accel0"], "tpu"),  # a TPU VM
        ({}, ["proc/driver/nvidia/gpus/0000:00:04.0/information"], "gpu"),
        ({}, ["dev/nvidia0"], "gpu"),
    ],
)
def test_the_accelerator_is_told_from_files_and_variables(tmp_path, environ, files, kind):
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert device.accelerator_kind(environ, root=tmp_path) == kind


@pytest.mark.parametrize(
    "kind, installed, backend",
    [
        ("cpu", ("tensorflow", "jax", "torch"), "tensorflow"),
        ("gpu", ("tensorflow", "jax", "torch"), "tensorflow"),
        ("tpu", ("tensorflow", "jax"), "jax"),
        ("tpu", ("jax",), "jax"),  # Colab's TPU image
        ("cpu", ("jax", "torch"), "jax"),  # the fastest is not installed: the first that is
        ("cpu", ("torch",), "torch"),
    ],
)
def test_pick_backend_takes_the_measured_fastest_that_is_installed(kind, installed, backend):
    picked, why = device.pick_backend(kind, installed)
    assert picked == backend
    fastest = device.FASTEST_BACKEND[kind]
    assert why == (
        f"measured fastest on a {kind.upper()}"
        if picked == fastest
        else f"{fastest}, measured fastest on a {kind.upper()}, is not installed"
    )


def test_backend_choice_says_when_the_user_chose(monkeypatch):
    picked, why = device.pick_backend()
    monkeypatch.setenv("KERAS_BACKEND", picked)
    assert device.backend_choice() == f"{picked} ({why})"
    other = next(name for name in device.BACKENDS if name != picked)
    monkeypatch.setenv("KERAS_BACKEND", other)
    assert device.backend_choice() == f"{other} (your KERAS_BACKEND; {picked}: {why})"


@pytest.mark.parametrize(
    "environ, backend", [({"COLAB_TPU_ADDR": "10.0.0.2:8470"}, "jax"), ({}, "tensorflow")]
)
def test_importing_the_package_sets_the_picked_backend(environ, backend):
    """helpers/__init__ is the one place the backend is set: on a TPU runtime it takes JAX even
    where TensorFlow is installed; the user's KERAS_BACKEND is never replaced."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"} | environ
    code = "import os, helpers; print(os.environ['KERAS_BACKEND'])"
    repo = Path(__file__).resolve().parents[1]
    said = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=repo, capture_output=True, text=True
    )
    assert said.stdout.strip() == backend, said.stderr
    env["KERAS_BACKEND"] = "torch"
    said = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=repo, capture_output=True, text=True
    )
    assert said.stdout.strip() == "torch", said.stderr
