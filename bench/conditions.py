"""What else the machine was doing while a bench measured: load average and CPU stolen.

A timing taken while other work loads a 2-core machine measures the queue, not our code (one
such table put the backends in the wrong order), and on a shared host the hypervisor can take
CPU time from this guest ("steal" in /proc/stat). Every bench watches both over its run:

    with Conditions() as machine:
        ...
        print(f"... figures ...{machine.tag()}")
    print(machine.verdict())

Figures are marked "noisy, not for the README" when the 1-minute load average rose above the
core count at any sample, or steal took more than 5 % of the CPU time over the run. The bench's
own work counts in the load average, so it runs one compute process at a time: on N cores a
quiet machine reads about N at most. Standard library only, so Magenta's side environment can
use it too.
"""

from __future__ import annotations

import os
import platform
import threading
from pathlib import Path

MAX_STEAL = 0.05  # share of all CPU time the hypervisor may take before figures are noise
SAMPLE_SECONDS = 2.0


def read_loadavg(path: str | Path = "/proc/loadavg") -> float | None:
    """The 1-minute load average, or None where the system has no /proc."""
    try:
        return float(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_cpu_times(path: str | Path = "/proc/stat") -> tuple[int, int] | None:
    """(steal, total) jiffies summed over all CPUs since boot, or None without /proc."""
    try:
        fields = Path(path).read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    # cpu user nice system idle iowait irq softirq steal guest guest_nice; guest time is
    # already inside user and nice, so it is not added again.
    ticks = [int(value) for value in fields[1:9]]
    return (ticks[7] if len(ticks) > 7 else 0), sum(ticks)


def cpu_model(path: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name, for benches that cannot import helpers.device."""
    try:
        for line in Path(path).read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


class Conditions:
    """Samples the load average in a background thread and the steal share over a run.

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
        self.loads: list[float] = []
        self._start_times = read_cpu_times(self.stat_path)
        self._end_times = None
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
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
        total = end[1] - self._start_times[1]
        return (end[0] - self._start_times[0]) / total if total > 0 else 0.0

    @property
    def max_load(self) -> float | None:
        return max(self.loads) if self.loads else read_loadavg(self.loadavg_path)

    @property
    def noisy(self) -> bool:
        load, steal = self.max_load, self.steal
        return (load is not None and load > self.cores) or (steal is not None and steal > MAX_STEAL)

    def tag(self) -> str:
        """'' while the run is clean so far, else a mark to append to a figure."""
        return "  [noisy, not for the README]" if self.noisy else ""

    def describe(self) -> str:
        """The load and steal over the run, in words."""
        load, steal = self.max_load, self.steal
        load_words = "load average unknown" if load is None else f"highest 1-min load {load:.2f}"
        steal_words = "steal unknown" if steal is None else f"steal {steal:.1%} of CPU time"
        return f"{load_words} on {self.cores} cores, {steal_words}"

    def verdict(self) -> str:
        """One closing line: clean (figures may go in the README) or noisy (they may not)."""
        self.stop()
        if self.noisy:
            return (
                f"conditions: {self.describe()}: NOISY, not for the README (load above the "
                f"cores or steal above {MAX_STEAL:.0%}); measure again on a quiet machine"
            )
        return f"conditions: {self.describe()}: clean"


def run_watched(main) -> None:
    """Runs a bench's main() under Conditions and closes its output with the verdict."""
    with Conditions() as machine:
        main()
    print(machine.verdict())
