"""Several processes training one run: their layout (coordinator, count, this one's id) from flags
or a cluster's TF_CONFIG, joining JAX's own distributed runtime, the rows of each global batch a
process reads, and process 0 alone writing.

The processes meet through `jax.distributed.initialize` (CPU collectives: gloo), then Keras's
DataParallel spans the devices of every process. Every process draws the same permutation of the
windows and takes its own rows of each global batch, so a run sees the batches a one-process run
sees, and a run resumed on another process count (or one process on another backend) continues
the same stream.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import socket
import time
from dataclasses import dataclass

import numpy as np

# A process waits this long for the coordinator and for the others to join; GROOVAE_JOIN_TIMEOUT
# (seconds) sets another, e.g. while the other machines still start.
JOIN_TIMEOUT_S = int(os.environ.get("GROOVAE_JOIN_TIMEOUT", 60))
# A process that stops (killed, out of memory) is noticed by JAX's coordination service within
# this, and every other process ends with a line naming the stopped one ("tasks are unhealthy").
# A process starved of CPU for as long is taken for stopped too: 10 s was, on two cores with a load
# of 30. GROOVAE_HEARTBEAT_TIMEOUT (seconds) sets another.
HEARTBEAT_TIMEOUT_S = int(os.environ.get("GROOVAE_HEARTBEAT_TIMEOUT", 30))
# At exit each process waits this long for the others to finish too (JAX's shutdown barrier).
SHUTDOWN_TIMEOUT_S = 30
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
    """

    num_processes: int = 1
    process_id: int = 0
    coordinator: str | None = None

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
    return ProcessLayout(len(workers), index, workers[0] if workers else None)


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
    if from_environment and _tf_config_layout(from_environment) != layout:
        raise ProcessError(
            f"${TF_CONFIG} describes {_tf_config_layout(from_environment).describe()}, the flags "
            f"{layout.describe()}; unset {TF_CONFIG} or make them agree"
        )
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
    if backend != "jax":
        # TensorFlow's MultiWorkerMirroredStrategy reduces Keras's logs along a batch axis that
        # our scalar logs lack, and shards evaluation data itself: not wired up yet.
        raise ProcessError(
            f"several processes train on the jax backend, not {backend}; set KERAS_BACKEND=jax"
        )
    layout = _join_jax(layout, timeout_s)
    _joined["layout"] = layout
    return layout


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


def wait_for_all(layout: ProcessLayout, name: str) -> None:
    """Returns once every process has reached the point `name` (process 0 has written what the
    others read next)."""
    if not layout.several:
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
    from jax.experimental import multihost_utils

    value = np.array([int(hashlib.sha256(fingerprint.encode()).hexdigest()[:7], 16)], np.int32)
    values = np.asarray(multihost_utils.process_allgather(value)).ravel()
    differ = [i for i, v in enumerate(values) if v != values[0]]
    if differ:
        raise ProcessError(
            f"process {', '.join(map(str, differ))} started with another {what} than process 0; "
            "start every process with the same command but --process-id"
        )
