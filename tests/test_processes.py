"""Tests for helpers/processes.py: one tiny run trained by real processes meeting on 127.0.0.1 (CPU,
one device each; JAX's gloo collectives, TensorFlow's ring all-reduce over gRPC), against one
process on one and on two devices; a resume on another process count; a killed worker; a
coordinator nobody listens on; a TensorFlow process 0 left alone; layouts refused.

Each process is tests/process_job.py. Cost: 200 s of CPU (user and system, its processes
included) measured for the four JAX tests that start processes, on 2 cores under a load of 20 to
40; the TensorFlow ones about 105 s more (load 1 to 9); the two-process refusal, about 25 s
more, is marked slow.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import require_backends

from helpers import processes, runs
from helpers.processes import ProcessError, ProcessLayout, free_ports, layout_from

JOB = Path(__file__).with_name("process_job.py")
# How long a test waits for its processes: they run side by side, and on two cores other jobs
# share, a JAX process took up to several minutes to import and compile (10 to 15 s alone).
RUN_TIMEOUT_S = 900
STARTED: list[subprocess.Popen] = []  # every process a test started, killed when it ends


@pytest.fixture(autouse=True, scope="module")
def _kill_leftovers():
    """A failed test leaves no process behind (they ignore SIGTERM while JAX waits on others)."""
    yield
    for process in STARTED:
        if process.poll() is None:
            process.kill()
            process.wait()


# The parity runs take no process starved of CPU on a busy machine for a stopped one, nor a
# TensorFlow collective waiting for another process's first tracing for a failed one.
PATIENT = {"GROOVAE_HEARTBEAT_TIMEOUT": "300", "GROOVAE_COLLECTIVE_TIMEOUT": "900"}


def start(backend: str, run_dir: Path, steps: int, *flags: str, env: dict | None = None):
    """One process of the tiny run, its stdout and stderr in files beside the run folder."""
    log = run_dir.parent / f"{run_dir.name}-{time.monotonic_ns()}"
    process = subprocess.Popen(
        [sys.executable, str(JOB), str(run_dir), str(steps), *flags],
        env={**os.environ, "KERAS_BACKEND": backend, **(env or {})},
        stdout=open(f"{log}.out", "w"),
        stderr=open(f"{log}.err", "w"),
        text=True,
    )
    STARTED.append(process)
    return process, log


def start_processes(backend: str, run_dir: Path, steps: int, count: int, env=None) -> list:
    """`count` processes of one run, their layout from the flags."""
    coordinator = f"127.0.0.1:{free_ports(count)}"
    return [
        start(
            backend,
            run_dir,
            steps,
            *("--coordinator", coordinator, "--num-processes", str(count)),
            *("--process-id", str(i)),
            env=env,
        )
        for i in range(count)
    ]


def start_cluster(backend: str, run_dir: Path, steps: int, count: int, env=None) -> list:
    """`count` processes of one run, their layout from $TF_CONFIG (ports not in a row)."""
    workers = [f"127.0.0.1:{free_ports()}" for _ in range(count)]
    return [
        start(
            backend,
            run_dir,
            steps,
            env={
                **(env or {}),
                "TF_CONFIG": json.dumps(
                    {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
                ),
            },
        )
        for i in range(count)
    ]


def finish(started, timeout: float = RUN_TIMEOUT_S) -> dict:
    """The JSON report of a process that must end well."""
    process, log = started
    process.wait(timeout)
    err = Path(f"{log}.err").read_text()
    assert process.returncode == 0, err[-3000:]
    return json.loads(Path(f"{log}.out").read_text().strip().splitlines()[-1])


def checkpoint_arrays(run_dir: Path) -> dict:
    path = runs.latest_checkpoint(run_dir)
    with np.load(path) as saved:
        return {"step": runs.checkpoint_step(path), **{k: saved[k] for k in saved.files}}


# One device per process: JAX's CPU is cut into two devices by XLA_FLAGS for the 1 x 2 run,
# TensorFlow's by tests/process_job.py.
TWO_DEVICES = {"jax": {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}, "tensorflow": {}}


@pytest.fixture(scope="module", params=["jax", "tensorflow"])
def parity_runs(request, tmp_path_factory):
    """Runs side by side on one backend: 2 processes x 1 device, 1 x 2, 1 x 1, all to step 4;
    then a 2-process run's step-2 checkpoint resumed to step 4 by one process.

    On JAX the 2-process run takes its layout from the flags, and a second one (from $TF_CONFIG)
    on other ports, to step 2, is the one resumed. On TensorFlow, whose processes cost more to
    start, the one 2-process run takes its layout from $TF_CONFIG (the killed-worker test starts
    one from the flags) and a copy of it without its step-4 checkpoint is resumed.
    """
    backend = request.param
    require_backends(backend)
    root = tmp_path_factory.mktemp(f"{backend}-processes")
    jax = backend == "jax"
    two = (start_processes if jax else start_cluster)(backend, root / "two", 4, 2, PATIENT)
    other = start_cluster(backend, root / "other", 2, 2, PATIENT) if jax else []
    two_devices = start(
        backend, root / "two_devices", 4, "--devices", "2", env=TWO_DEVICES[backend]
    )
    one = start(backend, root / "one", 4)
    reports = {
        "two": [finish(p) for p in two],
        "other": [finish(p) for p in other],
        "two_devices": finish(two_devices),
        "one": finish(one),
    }
    if not jax:
        shutil.copytree(root / "two", root / "other")
        for path in (root / "other" / "checkpoints").glob("ckpt-000000004.*"):
            path.unlink()
    reports["resumed"] = finish(start(backend, root / "other", 4))
    assert {r["backend"] for r in [*reports["two"], reports["one"]]} == {backend}
    return root, reports


def test_two_processes_train_as_one_process_on_one_or_two_devices(parity_runs):
    root, reports = parity_runs
    one = reports["one"]
    assert one["step"] == [1, 2, 3, 4]
    for name in ("two_devices", "two"):
        report = reports[name][0] if name == "two" else reports[name]
        np.testing.assert_allclose(report["loss"], one["loss"], rtol=1e-5)
        np.testing.assert_allclose(report["global_norm"], one["global_norm"], rtol=1e-4)
    # Process 1 returns the history process 0 wrote; both see the same run.
    assert reports["two"][1]["loss"] == reports["two"][0]["loss"]
    expected = checkpoint_arrays(root / "one")
    for name in ("two_devices", "two"):
        saved = checkpoint_arrays(root / name)
        assert saved["step"] == expected["step"] == 4
        for key, value in expected.items():
            np.testing.assert_allclose(saved[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_a_two_process_run_resumed_by_one_process_continues_exactly(parity_runs):
    root, reports = parity_runs
    if reports["other"]:  # JAX's second run, on other ports at once, met no one else
        assert reports["other"][0]["step"] == [1, 2]
    resumed, one = reports["resumed"], reports["one"]
    assert resumed["step"] == [1, 2, 3, 4]
    np.testing.assert_allclose(resumed["loss"], one["loss"], rtol=1e-5)
    saved, expected = checkpoint_arrays(root / "other"), checkpoint_arrays(root / "one")
    for key, value in expected.items():
        np.testing.assert_allclose(saved[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


# How the survivor names the killed process 1. JAX's coordination service: "tasks are unhealthy
# (stopped sending heartbeats):" then "1" (this JAX), or ".../task:1" (older ones), among its log
# lines. TensorFlow's error, as helpers.processes puts it, on the last line.
KILLED = {
    "jax": r"unhealthy \(stopped sending heartbeats\):\n1\n|task:1\b",
    "tensorflow": r"\nerror: process 1 stopped, which ends process 0 of 2 .*resumes from its newest "
    r"checkpoint\n$",
}


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_a_killed_worker_ends_the_others_and_the_run_resumes(backend, tmp_path):
    require_backends(backend)
    run_dir = tmp_path / "run"
    started = start_processes(backend, run_dir, 1000, 2)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not (run_dir / "checkpoints" / "ckpt-000000004.json").exists():
        assert time.monotonic() < deadline and all(p.poll() is None for p, _ in started)
        time.sleep(0.2)
    (survivor, log), (victim, _) = started
    victim.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    # The heartbeat (a closed connection ends TensorFlow's sooner), and a busy machine's delay.
    heartbeat = processes.heartbeat_limit_s() if backend == "jax" else processes.HEARTBEAT_TIMEOUT_S
    limit = heartbeat + 60
    survivor.wait(limit)
    ended = time.monotonic() - killed
    assert survivor.returncode != 0
    err = Path(f"{log}.err").read_text()
    assert re.search(KILLED[backend], err), err[-2000:]
    assert ended < limit
    for path in runs.checkpoint_paths(run_dir):
        assert runs.checkpoint_problem(path) is None, path
    newest = runs.checkpoint_step(runs.latest_checkpoint(run_dir))
    report = finish(start(backend, run_dir, newest + 2))
    assert report["step"] == list(range(1, newest + 3))


def test_a_coordinator_nobody_listens_on_fails_in_the_stated_time(tmp_path):
    require_backends("jax")
    flags = ("--coordinator", f"127.0.0.1:{free_ports()}", "--num-processes", "2")
    process, log = start(
        "jax", tmp_path / "run", 4, *flags, "--process-id", "1", env={"GROOVAE_JOIN_TIMEOUT": "3"}
    )
    process.wait(RUN_TIMEOUT_S)
    err = Path(f"{log}.err").read_text().strip().splitlines()
    assert process.returncode == 1
    assert err[-1].startswith("error: nobody listens on the coordinator 127.0.0.1:"), err
    assert "(waited 3 s" in err[-1]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "flags, environ, message",
    [
        ((None, 2, 0), {}, "needs --coordinator HOST:PORT"),
        (("h:1", 2, 2), {}, "--process-id 2 is not one of 0 to 1"),
        (("h", 2, 0), {}, "is not HOST:PORT"),
        (("auto", 2, None), {}, "drop --num-processes"),
        (("h:1", 2, 0), {"TF_CONFIG": "{"}, "is not TensorFlow's cluster JSON"),
        (
            ("h:1", 2, 1),
            {"TF_CONFIG": '{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"index": 0}}'},
            "describes process 0 of 2 (coordinator h:1), the flags process 1 of 2",
        ),
    ],
)
def test_layouts_that_do_not_fit_are_refused(flags, environ, message):
    with pytest.raises(ProcessError, match=re.escape(message)):
        layout_from(*flags, environ=environ)


def test_layout_from_tf_config_and_each_process_rows():
    cluster = '{"cluster": {"worker": ["a:1", "b:1", "c:1"]}, "task": {"index": 2}}'
    layout = layout_from(environ={"TF_CONFIG": cluster})
    assert layout == ProcessLayout(3, 2, "a:1")
    assert layout.rows(12) == slice(8, 12)
    assert layout_from(environ={}) == ProcessLayout()
    with pytest.raises(ProcessError, match="multiple of the process count"):
        layout.rows(10)


@pytest.mark.slow  # two more JAX processes, about 25 s of CPU
def test_processes_started_with_other_settings_are_refused(tmp_path):
    require_backends("jax")
    coordinator = f"127.0.0.1:{free_ports()}"
    started = [
        start(
            "jax",
            tmp_path / "run",
            steps,
            *("--coordinator", coordinator, "--num-processes", "2", "--process-id", str(i)),
            env=PATIENT,
        )
        for i, steps in enumerate((4, 6))
    ]
    for process, log in started:
        process.wait(RUN_TIMEOUT_S)
        last = Path(f"{log}.err").read_text().strip().splitlines()[-1]
        assert process.returncode == 1
        assert last == (
            "error: process 1 started with another config, --steps or newest checkpoint than "
            "process 0; start every process with the same command but --process-id"
        )


def test_a_tensorflow_process_0_left_alone_ends_in_the_stated_time(tmp_path):
    """TensorFlow's strategy would wait for the others without end (and ignores SIGTERM)."""
    require_backends("tensorflow")
    flags = ("--coordinator", f"127.0.0.1:{free_ports(2)}", "--num-processes", "2")
    process, log = start(
        "tensorflow",
        tmp_path / "run",
        4,
        *flags,
        "--process-id",
        "0",
        env={"GROOVAE_JOIN_TIMEOUT": "3"},
    )
    process.wait(RUN_TIMEOUT_S)
    err = Path(f"{log}.err").read_text().strip().splitlines()
    assert process.returncode != 0
    assert re.match(
        r"error: the 2 processes at 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+ did not all "
        r"join within 3 s \(process 0 of 2",
        err[-1],
    ), err[-3:]
    assert not (tmp_path / "run").exists()


def test_tensorflow_cluster_from_flags_or_tf_config():
    from_flags = ProcessLayout(3, 1, "127.0.0.1:9000")
    assert processes.tf_config(from_flags) == {
        "cluster": {"worker": ["127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9002"]},
        "task": {"type": "worker", "index": 1},
    }
    cluster = '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"index": 1}}'
    layout = layout_from("a:1", 2, 1, environ={"TF_CONFIG": cluster})
    assert processes.tf_config(layout)["cluster"]["worker"] == ["a:1", "b:2"]
    with pytest.raises(ProcessError, match=r"on another machine: .* give them in \$TF_CONFIG"):
        processes.tf_config(ProcessLayout(2, 1, "192.0.2.1:9000"))  # TEST-NET: nobody's


def test_several_processes_on_pytorch_are_refused():
    with pytest.raises(ProcessError, match="several processes train on the jax and tensorflow"):
        processes.join(ProcessLayout(2, 1, "127.0.0.1:1"), "torch")


def test_train_command_refuses_a_layout_before_any_write(tmp_path, capsys):
    from helpers import train

    args = ["--config", "tiny", "--steps", "2", "--run-dir", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as exit_info:
        train.main([*args, "--num-processes", "2", "--process-id", "1"])
    assert exit_info.value.code == 2 and "needs --coordinator" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
