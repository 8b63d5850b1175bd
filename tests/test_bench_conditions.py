"""Tests for bench/conditions.py: figures taken while other work ran are marked noisy."""

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from conditions import (  # noqa: E402
    Conditions,
    others_cores,
    read_cpu_times,
    tree_cpu_seconds,
)


def write_proc(proc: Path, load: float, busy: int, steal: int, idle: int = 10_000) -> None:
    """/proc/loadavg and /proc/stat's first line: `busy` user jiffies, `steal` stolen."""
    (proc / "loadavg").write_text(f"{load:.2f} 0.50 0.40 1/90 1234\n")
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    (proc / "stat").write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 {steal} 0 0\ncpu0 1 0 0 0\n")


def watch_until_sampled(proc: Path, load: float, busy: int, steal: int) -> Conditions:
    """A watch over a fake /proc that changes once, stopped after it has sampled the change."""
    write_proc(proc, 0.1, busy=0, steal=0)
    machine = Conditions(cores=2, interval=0.01, proc=proc).__enter__()
    time.sleep(0.05)
    write_proc(proc, load, busy=busy, steal=steal, idle=100_000)
    for _ in range(500):  # until the sampler has read the new files (5 s at most)
        if machine.loads and machine.loads[-1] == load:
            break
        time.sleep(0.01)
    time.sleep(0.05)
    machine.stop()
    return machine


@pytest.mark.parametrize(
    "load, busy_seconds, steal_share, noisy",
    [
        (0.3, 0, 0.01, False),  # a quiet machine
        (3.2, 0, 0.0, False),  # a high load from the bench's own threads alone does not count
        (3.2, 100, 0.0, True),  # another process kept the CPU busy beside the bench
        (0.2, 0, 0.20, True),  # the hypervisor took a fifth of the CPU time
    ],
)
def test_figures_are_marked_noisy_when_other_work_took_the_cpu(
    tmp_path, load, busy_seconds, steal_share, noisy
):
    ticks = os.sysconf("SC_CLK_TCK")
    steal = round(steal_share * (busy_seconds * ticks + 90_000) / (1 - steal_share))
    machine = watch_until_sampled(tmp_path, load, busy_seconds * ticks, steal)
    verdict = machine.verdict()
    assert machine.noisy is noisy, verdict
    assert ("NOISY, not for the README" in verdict) is noisy, verdict
    assert (machine.tag() != "") is noisy
    assert f"highest 1-min load {load:.2f}" in verdict and f"steal {steal_share:.1%}" in verdict


def test_other_processes_cores_are_the_machines_busy_time_less_the_benchs():
    # (wall, bench CPU, machine busy) seconds: over 10 s the bench used 15, the machine 20.
    assert others_cores([(0.0, 0.0, 0.0), (10.0, 15.0, 20.0)], now=10.0) == 0.5
    # Only the last 30 s count: an old burst of other work is forgotten.
    usage = [(0.0, 0.0, 0.0), (5.0, 0.0, 50.0), (40.0, 30.0, 80.0)]
    assert others_cores(usage, now=40.0) == 0.0
    assert others_cores(usage[:1], now=0.0) == 0.0


def test_steal_and_busy_are_read_from_the_cpu_line(tmp_path):
    write_proc(tmp_path, 0.5, busy=30, steal=7, idle=63)
    assert read_cpu_times(tmp_path / "stat") == (7, 30, 100)
    assert read_cpu_times(tmp_path / "missing") is None


def test_the_benchs_own_cpu_is_its_process_tree(tmp_path):
    """Its own processes' CPU is not other work: the root, its children and theirs count, with
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
