"""What else the machine was doing while a bench measured: load average and CPU stolen.

A timing taken while other work loads a 2-core machine measures the queue, not our code (one
such table put the backends in the wrong order), and on a shared host the hypervisor can take
CPU time from this guest ("steal" in /proc/stat). Every bench watches both over its run:

    with Conditions() as machine:
        ...
        print(f"... figures ...{machine.tag()}")
    print(machine.verdict())

Figures are marked "noisy, not for the README" when other work took the CPU: when processes
outside this bench kept more than OTHERS_MAX cores busy over any OTHERS_WINDOW seconds of the run
(the machine's busy time in /proc/stat less the bench's own process tree), or when steal took more
than 5 % of the CPU time over the run. The 1-minute load average is printed too, but it does not
decide: it counts the bench's own runnable threads (a worker waiting its turn spins a while), so a
bench alone on 2 cores reads above 2.
Standard library only, so Magenta's side environment can use it too.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

MAX_STEAL = 0.05  # share of all CPU time the hypervisor may take before figures are noise
OTHERS_MAX = 0.5  # cores kept busy by other processes before the bench's figures are noise
OTHERS_WINDOW = 30.0  # seconds over which that is averaged
SAMPLE_SECONDS = 2.0


def read_loadavg(path: str | Path = "/proc/loadavg") -> float | None:
    """The 1-minute load average, or None where the system has no /proc."""
    try:
        return float(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_cpu_times(path: str | Path = "/proc/stat") -> tuple[int, int, int] | None:
    """(steal, busy, total) jiffies summed over all CPUs since boot, or None without /proc."""
    try:
        fields = Path(path).read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    # cpu user nice system idle iowait irq softirq steal guest guest_nice; guest time is
    # already inside user and nice, so it is not added again.
    ticks = [int(value) for value in fields[1:9]]
    ticks += [0] * (8 - len(ticks))  # older kernels list fewer columns
    user, nice, system, _, _, irq, softirq, steal = ticks
    return steal, user + nice + system + irq + softirq, sum(ticks)


def tree_cpu_seconds(root_pid: int | None = None, proc: str | Path = "/proc") -> float:
    """CPU seconds used by a process and all its descendants still running, plus the children it
    has already reaped (the kernel adds those to its cutime and cstime)."""
    root_pid = os.getpid() if root_pid is None else root_pid
    ticks = os.sysconf("SC_CLK_TCK")
    parents, used = {}, {}
    for stat in Path(proc).glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process ended while we read
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        # utime stime (+ cutime cstime for the root) counted from the field after the name.
        used[pid] = int(fields[11]) + int(fields[12])
        if pid == root_pid:
            used[pid] += int(fields[13]) + int(fields[14])
    children = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    total, pending = 0, [root_pid]
    while pending:  # the root, its children, theirs, ...
        pid = pending.pop()
        total += used.get(pid, 0)
        pending += children.get(pid, [])
    return total / ticks


def others_cores(usage: list[tuple[float, float, float]], now: float) -> float:
    """The cores processes outside the bench kept busy over the last OTHERS_WINDOW seconds, from
    (wall time, the bench's CPU seconds, the machine's busy CPU seconds) samples."""
    since = [sample for sample in usage if sample[0] >= now - OTHERS_WINDOW]
    (first, own_first, busy_first), (last, own_last, busy_last) = since[0], since[-1]
    if last <= first:
        return 0.0
    return max(0.0, (busy_last - busy_first) - (own_last - own_first)) / (last - first)


class Conditions:
    """Samples, in a background thread, the load average and the cores other processes kept busy;
    takes the steal share over the whole run.

    Args:
      cores: the cores the figures are judged against (default: all of this machine's).
      interval: seconds between load samples.
      proc: where the kernel's /proc files are read (a test gives its own).
    """

    def __init__(
        self, cores: int | None = None, interval: float = SAMPLE_SECONDS, proc: str | Path = "/proc"
    ):
        self.cores = cores or os.cpu_count() or 1
        self.interval = interval
        self.loadavg_path, self.stat_path = Path(proc) / "loadavg", Path(proc) / "stat"
        self.proc = Path(proc)
        self.loads: list[float] = []  # the 1-minute load average at each sample
        self.others: list[float] = []  # cores other processes kept busy, per OTHERS_WINDOW
        self._usage: list[tuple[float, float, float]] = []  # (wall, the bench's, all busy) seconds
        self._start_times = read_cpu_times(self.stat_path)
        self._end_times = None
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        ticks = os.sysconf("SC_CLK_TCK")
        while True:
            now, times = time.monotonic(), read_cpu_times(self.stat_path)
            if times is not None:
                self._usage.append((now, tree_cpu_seconds(proc=self.proc), times[1] / ticks))
                self.others.append(others_cores(self._usage, now))
            load = read_loadavg(self.loadavg_path)
            if load is not None:
                self.loads.append(load)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Conditions:
        self._sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Ends the watch: the verdict covers the run up to here."""
        if not self._stop.is_set():
            self._stop.set()
            self._sampler.join(timeout=self.interval + 1)
            self._end_times = read_cpu_times(self.stat_path)

    @property
    def steal(self) -> float | None:
        """The share of CPU time stolen since the start (to the stop, or to now)."""
        end = self._end_times or read_cpu_times(self.stat_path)
        if self._start_times is None or end is None:
            return None
        total = end[2] - self._start_times[2]
        return (end[0] - self._start_times[0]) / total if total > 0 else 0.0

    @property
    def max_load(self) -> float | None:
        return max(self.loads) if self.loads else read_loadavg(self.loadavg_path)

    @property
    def max_others(self) -> float | None:
        return max(self.others) if self.others else None

    @property
    def noisy(self) -> bool:
        others, steal = self.max_others, self.steal
        return (others is not None and others > OTHERS_MAX) or (
            steal is not None and steal > MAX_STEAL
        )

    def tag(self) -> str:
        """'' while the run is clean so far, else a mark to append to a figure."""
        return "  [noisy, not for the README]" if self.noisy else ""

    def describe(self) -> str:
        """The load and steal over the run, in words."""
        load, others, steal = self.max_load, self.max_others, self.steal
        load_words = "load average unknown" if load is None else f"highest 1-min load {load:.2f}"
        if others is not None:
            load_words += f"; other processes kept at most {others:.2f} cores busy"
        steal_words = "steal unknown" if steal is None else f"steal {steal:.1%} of CPU time"
        return f"{load_words} on {self.cores} cores, {steal_words}"

    def verdict(self) -> str:
        """One closing line: clean (figures may go in the README) or noisy (they may not)."""
        self.stop()
        if self.noisy:
            return (
                f"conditions: {self.describe()}: NOISY, not for the README (other "
                f"processes above {OTHERS_MAX} cores or steal above {MAX_STEAL:.0%}); measure again on a quiet machine"
            )
        return f"conditions: {self.describe()}: clean"


def run_watched(main) -> None:
    """Runs a bench's main() under Conditions and closes its output with the verdict."""
    with Conditions() as machine:
        main()
    print(machine.verdict())
