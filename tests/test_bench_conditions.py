"""The benches' watch on the machine: figures from a loaded or robbed machine are marked noisy."""

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from conditions import Conditions, read_cpu_times, tree_cpu_seconds  # noqa: E402


def write_proc(proc: Path, load: float, steal: int, total: int) -> None:
    """/proc/loadavg and /proc/stat's first line with `steal` of `total` jiffies stolen."""
    (proc / "loadavg").write_text(f"{load:.2f} 0.50 0.40 1/90 1234\n")
    user = total - steal  # user nice system idle iowait irq softirq steal guest guest_nice
    (proc / "stat").write_text(f"cpu  {user} 0 0 0 0 0 0 {steal} 0 0\ncpu0 1 0 0 0 0 0 0 0 0 0\n")


@pytest.mark.parametrize(
    "load, steal_share, noisy",
    [
        (0.3, 0.01, False),  # a quiet machine
        (3.2, 0.0, True),  # other jobs running beside the bench
        (0.2, 0.20, True),  # the hypervisor took a fifth of the CPU time
    ],
)
def test_figures_are_marked_noisy_when_the_machine_is_loaded_or_robbed(
    tmp_path, load, steal_share, noisy
):
    write_proc(tmp_path, 0.1, steal=0, total=10_000)
    machine = Conditions(cores=2, interval=0.01, proc=tmp_path).__enter__()
    write_proc(tmp_path, load, steal=int(steal_share * 100_000), total=110_000)
    for _ in range(500):  # until the sampler has read the new load (5 s at most)
        if machine.loads and machine.loads[-1] == load:
            break
        time.sleep(0.01)
    verdict = machine.verdict()
    assert machine.noisy is noisy
    assert ("NOISY, not for the README" in verdict) is noisy, verdict
    assert (machine.tag() != "") is noisy
    assert (
        f"steal {steal_share:.1%}" in verdict
        and f"load {load:.2f} ({load:.2f} of it from outside" in verdict
    )


def test_steal_is_read_from_the_cpu_line(tmp_path):
    write_proc(tmp_path, 0.5, steal=7, total=100)
    assert read_cpu_times(tmp_path / "stat") == (7, 100)
    assert read_cpu_times(tmp_path / "missing") is None


def test_the_benchs_own_cpu_is_its_process_tree(tmp_path):
    """Its own processes' load is not other work: the root, its children and theirs count, with
    the children the root has reaped; an unrelated process does not."""

    def process(pid: int, parent: int, busy: int, reaped: int = 0) -> None:
        (tmp_path / str(pid)).mkdir()
        # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        # utime stime cutime cstime ...
        fields = f"S {parent} 1 1 0 -1 0 0 0 0 0 {busy} {busy} {reaped} 0 20 0"
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (python (worker)) {fields}\n")

    ticks = os.sysconf("SC_CLK_TCK")
    process(100, 1, busy=ticks, reaped=ticks)  # the bench: 2 s, and 1 s of a reaped child
    process(105, 100, busy=ticks)  # a worker: 2 s
    process(107, 105, busy=ticks // 2)  # the worker's helper: 1 s
    process(103, 1, busy=50 * ticks)  # someone else's job
    assert tree_cpu_seconds(100, tmp_path) == pytest.approx(6.0, abs=0.02)
