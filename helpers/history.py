"""A run's history.csv, its rows under Magenta's summary names (spec §4), and atomic file writes.

A train row is the mean of each measured value over the steps since the previous train row (its
logging interval), so it speaks for the whole interval rather than its last step (Magenta's own
summaries are single steps); schedule values (the KL weight, the learning rate) are the row's
own step's. A validation row is one evaluation. Every file of a run (config, checkpoints,
history) is written whole or not at all.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

HISTORY_FILE = "history.csv"
# Its columns, under Magenta's summary names (spec §4); a row leaves blank what it lacks.
LOGGED = {
    "loss": "loss",
    "r_loss": "losses/r_loss",
    "kl_loss": "losses/kl_loss",
    "kl_bits": "losses/kl_bits",
    "kl_beta": "losses/kl_beta",
    "global_norm": "global_norm",
    "hits_loss": "metrics/hits_loss",
    "velocities_loss": "metrics/velocities_loss",
    "offsets_loss": "metrics/offsets_loss",
    "hit_accuracy": "metrics/hit_accuracy",
    "hit_f1": "metrics/hit_f1",
}
HISTORY_COLUMNS = ["step", "split", "learning_rate", *LOGGED.values(), "seconds"]
SCHEDULED = {"kl_beta"}  # set by the step number, not measured: a row keeps its last step's


def write_atomic(path: Path, write) -> None:
    """Writes through `write(temp_path)` then renames, so a killed run never leaves half a file."""
    temp = path.with_name(f".{path.name}.partial{path.suffix}")
    write(temp)
    os.replace(temp, path)


class History:
    """history.csv: training rows and validation rows; a resumed run drops rows past its step."""

    def __init__(self, path: Path, start_step: int):
        self.path = path
        kept = []
        if path.exists():
            with path.open(newline="") as f:
                kept = [row for row in csv.DictReader(f) if int(row["step"]) <= start_step]

        def rewrite(temp: Path) -> None:
            with temp.open("w", newline="") as f:
                writer = csv.DictWriter(f, HISTORY_COLUMNS, restval="")
                writer.writeheader()
                writer.writerows(kept)

        write_atomic(path, rewrite)
        self.file = path.open("a", newline="")
        self.writer = csv.DictWriter(self.file, HISTORY_COLUMNS, restval="")
        self.started = time.monotonic()
        self._sums: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._steps = 0

    def add_step(self, logs: dict) -> None:
        """Counts one training step's logs (single-step values) into the current interval."""
        for key, value in logs.items():
            if key in LOGGED:
                self._sums[key] = self._sums.get(key, 0.0) + float(value)
                self._last[key] = float(value)
        self._steps += 1

    def interval_means(self) -> dict[str, float]:
        """Means over the steps added since the last train row (schedule values: the last)."""
        means = {k: total / self._steps for k, total in self._sums.items()}
        return {**means, **{k: self._last[k] for k in SCHEDULED if k in self._last}}

    def write_train(self, step: int, learning_rate: float) -> None:
        """The train row of the interval ending at `step`; the next interval starts empty."""
        self.write(step, "train", self.interval_means(), learning_rate)
        self._sums, self._last, self._steps = {}, {}, 0

    def write(self, step: int, split: str, logs: dict, learning_rate: float | None = None) -> None:
        """One row as it is: `logs` under their summary names (unknown keys left out)."""
        row = {LOGGED[k]: float(v) for k, v in logs.items() if k in LOGGED}
        row.update(step=step, split=split, seconds=round(time.monotonic() - self.started, 3))
        if learning_rate is not None:
            row["learning_rate"] = learning_rate
        self.writer.writerow(row)
        self.file.flush()

    def close(self) -> None:
        self.file.close()
