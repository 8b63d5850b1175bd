"""Several processes training one run: their layout (coordinator, count, this one's id) from flags
or a cluster's TF_CONFIG, joining the backend's own distributed runtime, the rows of each global
batch a process reads, and process 0 alone writing.

On JAX the processes meet through `jax.distributed.initialize` (CPU collectives: gloo), then
Keras's DataParallel spans the devices of every process. On TensorFlow they meet through
`tf.distribute.MultiWorkerMirroredStrategy` (its gRPC server and coordination service; CPU
collectives: ring all-reduce), whose scope the model is built and trained in. Every process draws
the same permutation of the windows and takes its own rows of each global batch, so a run sees the
batches a one-process run sees, and a run resumed on another process count (or one process on
another backend) continues the same stream.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import inspect
import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

# A process waits this long for the coordinator and for the others to join; GROOVAE_JOIN_TIMEOUT
# (seconds) sets another, e.g. while the other machines still start.
JOIN_TIMEOUT_S = int(os.environ.get("GROOVAE_JOIN_TIMEOUT", 60))
# A process that stops (killed, out of memory) is noticed by JAX's (or TensorFlow's) coordination
# service within this, and every other process ends with a line naming the stopped one.
# A process starved of CPU for as long is taken for stopped too: 10 s was, on two cores with a load
# of 30. GROOVAE_HEARTBEAT_TIMEOUT (seconds) sets another.
HEARTBEAT_TIMEOUT_S = int(os.environ.get("GROOVAE_HEARTBEAT_TIMEOUT", 30))
# At exit each process waits this long for the others to finish too (the shutdown barrier).
SHUTDOWN_TIMEOUT_S = 30
# A TensorFlow collective (one step's all-reduce, a barrier) that waits longer than this for the
# other processes fails: the last resort should a stopped process go unnoticed otherwise. It bounds
# every collective, so it must exceed the slowest step, the first one's tracing included;
# GROOVAE_COLLECTIVE_TIMEOUT (seconds) sets another.
COLLECTIVE_TIMEOUT_S = int(os.environ.get("GROOVAE_COLLECTIVE_TIMEOUT", 120))
AUTO = "auto"  # --coordinator auto: JAX finds the layout itself (a Cloud TPU pod slice, SLURM)
TF_CONFIG = "TF_CONFIG"


class ProcessError(Exception):
    """A process layout that does not fit together, or a process that could not join the others."""


@dataclass(frozen=True)
class ProcessLayout:
    """Which processes train one run together, and which one this is.

    Attributes:
      num_processes: processes sharing every global batch (1: this process alone).
      process_id: this process, 0 to num_processes - 1; process 0 writes the run folder.
      coordinator: HOST:PORT of process 0's coordination service, reachable by every process;
        'auto' lets JAX read it from a Cloud TPU pod slice (count and id come from there too).
      workers: every process's HOST:PORT as $TF_CONFIG lists them (TensorFlow listens on each);
        empty: all on the coordinator's machine, process i at the coordinator's port + i.
    """

    num_processes: int = 1
    process_id: int = 0
    coordinator: str | None = None
    workers: tuple[str, ...] = field(default=(), compare=False)

    @property
    def several(self) -> bool:
        return self.num_processes > 1 or self.coordinator == AUTO

    @property
    def writes(self) -> bool:
        """Whether this process writes config.json, history.csv and the checkpoints."""
        return self.process_id == 0

    def rows(self, batch_size: int) -> slice:
        """The rows of each global batch this process reads: the i-th of num_processes equal parts.

        Raises:
          ProcessError: the batch does not split evenly.
        """
        if batch_size % self.num_processes:
            raise ProcessError(
                f"a global batch of {batch_size} does not split over {self.num_processes} "
                "processes; pick a batch size that is a multiple of the process count"
            )
        local = batch_size // self.num_processes
        return slice(self.process_id * local, (self.process_id + 1) * local)

    def describe(self) -> str:
        """'process 1 of 2 (coordinator 10.0.0.2:8476)' or 'one process'."""
        if not self.several:
            return "one process"
        return f"process {self.process_id} of {self.num_processes} (coordinator {self.coordinator})"


def _tf_config_layout(text: str) -> ProcessLayout:
    try:
        config = json.loads(text)
        workers = list(config["cluster"]["worker"])
        index = int(config["task"]["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise ProcessError(
            f"${TF_CONFIG} is not TensorFlow's cluster JSON ({type(error).__name__}: {error}); "
            'want {"cluster": {"worker": ["HOST:PORT", ...]}, "task": {"type": "worker", '
            '"index": I}}, or unset it and pass --coordinator, --num-processes, --process-id'
        ) from error
    return ProcessLayout(len(workers), index, workers[0] if workers else None, tuple(workers))


def free_ports(count: int = 1) -> int:
    """The first of `count` consecutive free ports on 127.0.0.1, for a --coordinator of processes
    on this machine (on TensorFlow, process i listens at the coordinator's port + i)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            first = sock.getsockname()[1]
        try:
            for port in range(first + 1, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue


def layout_from(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    environ: dict | None = None,
) -> ProcessLayout:
    """The process layout from flags, else from $TF_CONFIG (TensorFlow's cluster JSON), else one
    process.

    Args:
      coordinator: HOST:PORT of process 0, or 'auto' (JAX on a Cloud TPU pod slice).
      num_processes, process_id: this run's process count and this process's place in it.
      environ: default os.environ.

    Raises:
      ProcessError: flags that do not make a layout, or that disagree with $TF_CONFIG.
    """
    environ = os.environ if environ is None else environ
    flags = (coordinator, num_processes, process_id)
    from_environment = environ.get(TF_CONFIG)
    if coordinator == AUTO:
        if num_processes is not None or process_id is not None:
            raise ProcessError(
                "--coordinator auto takes the process count and id from the TPU pod slice; "
                "drop --num-processes and --process-id"
            )
        return ProcessLayout(1, 0, AUTO)
    if all(flag is None for flag in flags):
        return _tf_config_layout(from_environment) if from_environment else ProcessLayout()
    layout = ProcessLayout(
        1 if num_processes is None else num_processes, process_id or 0, coordinator
    )
    if layout.num_processes < 1 or not 0 <= layout.process_id < layout.num_processes:
        raise ProcessError(
            f"--process-id {layout.process_id} is not one of 0 to {layout.num_processes - 1} "
            f"(--num-processes {layout.num_processes}); number the processes from 0"
        )
    if layout.num_processes > 1 and not coordinator:
        raise ProcessError(
            "--num-processes above 1 needs --coordinator HOST:PORT: process 0's address, which "
            "every process can reach"
        )
    if coordinator is not None:
        _host_port(coordinator)
    if from_environment:
        cluster = _tf_config_layout(from_environment)
        if cluster != layout:
            raise ProcessError(
                f"${TF_CONFIG} describes {cluster.describe()}, the flags {layout.describe()}; "
                f"unset {TF_CONFIG} or make them agree"
            )
        return cluster
    return layout


def joined_layout(args: argparse.Namespace) -> ProcessLayout:
    """The layout helpers.cli.add_process_flags' flags give, this process joined to the others already (as
    it must be before anything asks JAX for its devices).

    Raises:
      ProcessError: a layout that does not fit, or a process that could not join.
    """
    import keras

    layout = layout_from(args.coordinator, args.num_processes, args.process_id)
    return join(layout, keras.backend.backend())


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ProcessError(f"--coordinator {address!r} is not HOST:PORT, e.g. 10.0.0.2:8476")
    return host.strip("[]"), int(port)


def wait_for_coordinator(address: str, timeout_s: float = JOIN_TIMEOUT_S) -> None:
    """Returns once something listens on `address`; process 0 may start a little later.

    Raises:
      ProcessError: nobody listened there within `timeout_s`.
    """
    host, port = _host_port(address)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise ProcessError(
                    f"nobody listens on the coordinator {address} (waited {timeout_s:g} s: "
                    f"{error.strerror or error}); start process 0 with the same --coordinator, "
                    "or give its reachable address"
                ) from error
            time.sleep(0.5)


_joined: dict[str, ProcessLayout] = {}  # this process's layout, once joined


def join(layout: ProcessLayout, backend: str, timeout_s: float = JOIN_TIMEOUT_S) -> ProcessLayout:
    """Joins this process to the others through `backend`'s runtime, before Keras builds anything.

    Joining again with the same layout does nothing. 'auto' comes back with the count and id JAX
    found.

    Raises:
      ProcessError: PyTorch, a coordinator nobody listens on, a layout unlike the one joined, or a
        JAX that computed something already (restart the kernel and join first).
    """
    if "layout" in _joined:
        if layout.coordinator == AUTO or _joined["layout"] == layout:
            return _joined["layout"]
        raise ProcessError(f"this process joined as {_joined['layout'].describe()} already")
    if not layout.several:
        return layout
    if backend == "jax":
        layout = _join_jax(layout, timeout_s)
    elif backend == "tensorflow" and layout.coordinator != AUTO:
        _joined["strategy"] = _join_tensorflow(layout, timeout_s)
    elif backend == "tensorflow":
        raise ProcessError(
            "--coordinator auto reads a Cloud TPU pod slice through JAX; on tensorflow give "
            f"--coordinator HOST:PORT or ${TF_CONFIG}"
        )
    else:
        raise ProcessError(
            f"several processes train on the jax and tensorflow backends, not {backend}; set "
            "KERAS_BACKEND=jax (or tensorflow)"
        )
    _joined["layout"] = layout
    return layout


def tensorflow_strategy():
    """The MultiWorkerMirroredStrategy this process joined the others through (join), else None."""
    return _joined.get("strategy")


def tf_config(layout: ProcessLayout) -> dict:
    """TensorFlow's cluster JSON for `layout`: its workers, else the coordinator's machine with
    process i at the coordinator's port + i.

    Raises:
      ProcessError: processes given by flags whose coordinator is on another machine (TensorFlow
        must know every process's address: give them in $TF_CONFIG).
    """
    workers = list(layout.workers)
    if not workers:
        host, port = _host_port(layout.coordinator)
        if not _is_this_machine(host):
            raise ProcessError(
                f"--coordinator {layout.coordinator} is on another machine: on TensorFlow every "
                f"process's address is needed; unset the flags and give them in ${TF_CONFIG} "
                "(docs/several_machines.md)"
            )
        workers = [f"{host}:{port + i}" for i in range(layout.num_processes)]
    return {
        "cluster": {"worker": workers},
        "task": {"type": "worker", "index": layout.process_id},
    }


def _is_this_machine(host: str) -> bool:
    """Whether this machine can listen on `host`'s address (one of its own)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, 0))
        return True
    except OSError:
        return False


def _configure_tensorflow_coordination(num_processes: int) -> None:
    """Sets up TensorFlow's coordination service as MultiWorkerMirroredStrategy would (which then
    keeps it), with our limits: how soon a stopped process is noticed and how long each waits for
    the others at exit."""
    import tensorflow as tf
    from tensorflow.python.eager import context  # the strategy's own set-up, no public one

    # A CoordinatedJob message made through the public ConfigProto, whose module moved over
    # TensorFlow's versions.
    jobs = tf.compat.v1.ConfigProto().experimental.coordination_config.coordinated_job_list
    jobs.add(name="worker", num_tasks=num_processes)
    configure = context.context().configure_coordination_service
    limits = {  # an older TensorFlow may lack some, and keeps its defaults for those
        "heartbeat_timeout_in_ms": HEARTBEAT_TIMEOUT_S * 1000,
        "shutdown_barrier_timeout_in_ms": SHUTDOWN_TIMEOUT_S * 1000,
    }
    accepted = inspect.signature(configure).parameters
    configure(
        service_type="standalone",
        service_leader="/job:worker/replica:0/task:0",
        coordinated_jobs=list(jobs),
        **{name: value for name, value in limits.items() if name in accepted},
    )


# Sleeps TIMEOUT seconds, then prints MESSAGE and kills process PID (killed first if joined).
_WATCHDOG = """
import os, signal, sys, time
pid, timeout, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
time.sleep(timeout)
print(message, file=sys.stderr, flush=True)
os.kill(pid, signal.SIGKILL)
"""


def _join_tensorflow(layout: ProcessLayout, timeout_s: float):
    import tensorflow as tf

    cluster = tf_config(layout)
    workers = cluster["cluster"]["worker"]
    if not layout.writes:
        wait_for_coordinator(workers[0], timeout_s)
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster["cluster"]),
        task_type="worker",
        task_id=layout.process_id,
        rpc_layer="grpc",
    )
    _configure_tensorflow_coordination(layout.num_processes)
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_S)
    # The strategy waits for every process without end, holding Python's lock (no thread of ours
    # runs) and deaf to SIGTERM (TensorFlow's preemption notifier takes it): a watching process
    # ends this one if it still waits after timeout_s.
    message = (
        f"error: the {layout.num_processes} processes at {', '.join(workers)} did not all join "
        f"within {timeout_s:g} s ({layout.describe()}); start every process with the same "
        "layout, or set GROOVAE_JOIN_TIMEOUT=SECONDS for machines that start slowly"
    )
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(timeout_s), message]
    )
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(resolver, options)
    except (RuntimeError, ValueError, tf.errors.OpError) as error:
        raise ProcessError(
            f"TensorFlow could not join the others as {workers[layout.process_id]} ({error}); "
            "that port must be free on this machine, and nothing computed before the join "
            "(e.g. a fresh kernel)"
        ) from error
    finally:
        watchdog.kill()
        watchdog.wait()
    return strategy


def _jax_initialize_parameters() -> set[str]:
    """What this JAX's jax.distributed.initialize takes: an older one (Colab's may be) may lack
    some of our limits, and keeps its defaults for those."""
    import jax

    return set(inspect.signature(jax.distributed.initialize).parameters)


def heartbeat_limit_s() -> int:
    """How long a stopped process goes unnoticed: HEARTBEAT_TIMEOUT_S where this JAX takes the
    limit, else JAX's own default, 10 missed heartbeats 10 s apart."""
    return (
        HEARTBEAT_TIMEOUT_S if "heartbeat_timeout_seconds" in _jax_initialize_parameters() else 100
    )


def _join_jax(layout: ProcessLayout, timeout_s: float) -> ProcessLayout:
    import jax

    if layout.coordinator != AUTO and not layout.writes:
        wait_for_coordinator(layout.coordinator, timeout_s)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    arguments = {}
    if layout.coordinator != AUTO:
        arguments = {
            "coordinator_address": layout.coordinator,
            "num_processes": layout.num_processes,
            "process_id": layout.process_id,
        }
    limits = {
        "initialization_timeout": int(timeout_s),
        "heartbeat_timeout_seconds": HEARTBEAT_TIMEOUT_S,
        "shutdown_timeout_seconds": SHUTDOWN_TIMEOUT_S,
    }
    accepted = _jax_initialize_parameters()
    arguments.update({k: v for k, v in limits.items() if k in accepted})
    try:
        jax.distributed.initialize(**arguments)
    except RuntimeError as error:
        raise ProcessError(
            f"JAX could not join the others ({error}); join before anything computes, e.g. in "
            "a fresh kernel"
        ) from error
    return ProcessLayout(jax.process_count(), jax.process_index(), layout.coordinator)


@contextlib.contextmanager
def stopped_processes_named(layout: ProcessLayout):
    """Turns the error a TensorFlow collective ends with when another process stopped into a
    ProcessError naming that process (JAX's runtime ends the process itself, naming it).

    A killed process's closed connections end the others' collectives at once (3 to 5 s
    measured on one machine); a lost or frozen one's missed heartbeats within HEARTBEAT_TIMEOUT_S
    (TensorFlow's coordination service; 23 s measured for a process frozen with SIGSTOP); a
    collective that waits longer than COLLECTIVE_TIMEOUT_S fails anyway.
    """
    if tensorflow_strategy() is None:
        yield
        return
    import tensorflow as tf

    try:
        yield
    except (
        tf.errors.UnavailableError,
        tf.errors.AbortedError,
        tf.errors.DeadlineExceededError,
    ) as error:
        tasks = set(re.findall(r"/task:(\d+)", error.message)) - {str(layout.process_id)}
        named = f"process {', '.join(sorted(tasks))}" if tasks else "another process"
        why = (
            "TensorFlow's coordination service missed its heartbeats"
            if "heartbeat" in error.message
            else re.sub(r"\{\{.*?\}\}\s*", "", error.message.strip().splitlines()[0])
        )
        raise ProcessError(
            f"{named} stopped, which ends {layout.describe()} ({why}); start the same commands "
            "again: the run resumes from its newest checkpoint"
        ) from error


def _gathered(value: int) -> np.ndarray:
    """`value` of every process, in process order (a collective: every process must call it)."""
    strategy = tensorflow_strategy()
    if strategy is None:
        from jax.experimental import multihost_utils

        mine = np.array([value], np.int32)
        return np.asarray(multihost_utils.process_allgather(mine)).ravel()
    import tensorflow as tf

    @tf.function  # an eager collective draws TensorFlow's warning of its overhead
    def gather():
        return strategy.gather(strategy.run(lambda: tf.constant([value], tf.int32)), axis=0)

    # One value per replica, a process's replicas in a row: keep each process's first.
    values = gather().numpy()
    return values[:: len(strategy.extended.worker_devices)]


def wait_for_all(layout: ProcessLayout, name: str) -> None:
    """Returns once every process has reached the point `name` (process 0 has written what the
    others read next)."""
    if not layout.several:
        return
    if tensorflow_strategy() is not None:
        _gathered(0)  # no process gets past a collective before all have reached it
        return
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def check_same(layout: ProcessLayout, what: str, fingerprint: str) -> None:
    """Refuses a run whose processes were started with different settings.

    Raises:
      ProcessError: naming the processes whose `fingerprint` differs from process 0's.
    """
    if not layout.several:
        return
    values = _gathered(int(hashlib.sha256(fingerprint.encode()).hexdigest()[:7], 16))
    differ = [i for i, v in enumerate(values) if v != values[0]]
    if differ:
        raise ProcessError(
            f"process {', '.join(map(str, differ))} started with another {what} than process 0; "
            "start every process with the same command but --process-id"
        )
