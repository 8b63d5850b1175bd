"""Shared test builders: NoteSequences from note tuples, random grooves, the GMD location, the tiny
config, a tiny trained run, and jobs run on each Keras backend."""

import atexit
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import note_seq
import numpy as np
import pytest

from helpers.constants import (
    GROOVE_DEPTH,
    HITS,
    MIDI_DRUM_CHANNEL,
    NUM_DRUM_CLASSES,
    OFFSETS,
    VELOCITIES,
    WINDOW_STEPS,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PARITY_DIR = SHARED / "parity"
# CI sets this: there ../shared is always beside the checkout, so a missing dataset or parity folder
# is a broken set-up that must fail, not a reason to skip the tests that need it.
REQUIRE_SHARED = os.environ.get("GROOVAE_REQUIRE_SHARED") == "1"


def _missing_shared(message: str) -> None:
    if REQUIRE_SHARED:
        pytest.fail(f"{message} (GROOVAE_REQUIRE_SHARED=1)")
    pytest.skip(message)


BACKEND_JOB = Path(__file__).with_name("backend_job.py")
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def require_backends(*backends: str) -> None:
    """Skips the test without these Keras backends' packages; fails instead for one the runner
    names in GROOVAE_REQUIRE_BACKENDS (`make test`: all three)."""
    missing = [b for b in backends if importlib.util.find_spec(BACKEND_PACKAGES[b]) is None]
    required = os.environ.get("GROOVAE_REQUIRE_BACKENDS", "").split(",")
    if set(missing) & set(required):
        pytest.fail(
            f"this environment must have {missing} (GROOVAE_REQUIRE_BACKENDS): see its setup"
        )
    if missing:
        pytest.skip(f"{missing} not installed")


def run_backend_job(backend: str, *args, env: dict | None = None) -> dict:
    """The JSON report of `python tests/backend_job.py ARGS...` under KERAS_BACKEND=backend."""
    result = subprocess.run(
        [sys.executable, str(BACKEND_JOB), *map(str, args)],
        env={**os.environ, "KERAS_BACKEND": backend, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def drum_sequence(notes, qpm=120.0, time_signature=(4, 4)):
    """A NoteSequence from (pitch, velocity, start_s, end_s) tuples, all on the drum channel."""
    ns = note_seq.NoteSequence(ticks_per_quarter=220)
    ns.tempos.add(qpm=qpm, time=0.0)
    if time_signature is not None:
        ns.time_signatures.add(numerator=time_signature[0], denominator=time_signature[1], time=0.0)
    for pitch, velocity, start, end in notes:
        ns.notes.add(
            pitch=pitch,
            velocity=velocity,
            start_time=start,
            end_time=end,
            instrument=MIDI_DRUM_CHANNEL,
            is_drum=True,
        )
    ns.total_time = max((n.end_time for n in ns.notes), default=0.0)
    return ns


def beat_notes(bars: int, qpm: float = 120.0) -> list:
    """(pitch, velocity, start_s, end_s) of a rock beat: kick, snare on the beats, eighth hats."""
    beat = 60.0 / qpm
    notes = []
    for i in range(4 * bars):
        t = i * beat
        notes += [(36 if i % 2 == 0 else 38, 90 + i % 4, t, t + 0.1), (42, 70, t, t + 0.05)]
        notes.append((42, 50, t + beat / 2, t + beat / 2 + 0.05))
    return notes


def write_midi(path: Path, sequence) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    note_seq.sequence_proto_to_midi_file(sequence, str(path))
    return path


def write_groove_files(folder: Path, qpm: float = 100.0) -> dict:
    """The user's files of every kind: good grooves of 1, 2, 16 and 17 bars, and bad ones.

    Returns:
      {kind: path}; kinds 1_bar, 2_bars, 16_bars, 17_bars, corrupt, empty, 3_4, tempo_change,
      no_drums.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        f"{bars}_{'bar' if bars == 1 else 'bars'}": write_midi(
            folder / f"{bars}_bars.mid", drum_sequence(beat_notes(bars, qpm), qpm=qpm)
        )
        for bars in (1, 2, 16, 17)
    }
    paths["corrupt"] = folder / "corrupt.mid"
    paths["corrupt"].write_bytes(b"MThd\x00\x00\x00\x06 not really a MIDI file")
    paths["empty"] = folder / "empty.mid"
    paths["empty"].write_bytes(b"")
    waltz = drum_sequence(beat_notes(6, qpm), qpm=qpm, time_signature=(3, 4))
    paths["3_4"] = write_midi(folder / "waltz.mid", waltz)
    faster = drum_sequence(beat_notes(8, qpm), qpm=qpm)
    faster.tempos.add(qpm=qpm + 20, time=4 * 4 * 60.0 / qpm)
    paths["tempo_change"] = write_midi(folder / "tempo_change.mid", faster)
    melody = drum_sequence([(60 + i % 12, 80, i * 0.5, i * 0.5 + 0.4) for i in range(32)], qpm=qpm)
    for note in melody.notes:
        note.is_drum, note.instrument, note.program = False, 0, 0
    paths["no_drums"] = write_midi(folder / "melody.mid", melody)
    return paths


def random_grooves(n: int, seed: int = 0, density: float = 0.2) -> np.ndarray:
    """Synthetic (n, 64, 27) float32 windows: each cell a hit with probability `density`, hits
    with velocities in [0.1, 1) and offsets in [-0.9, 0.9), zeros elsewhere."""
    rng = np.random.default_rng(seed)
    hits = rng.random((n, WINDOW_STEPS, NUM_DRUM_CLASSES)) < density
    grooves = np.zeros((n, WINDOW_STEPS, GROOVE_DEPTH), np.float32)
    grooves[..., HITS] = hits
    grooves[..., VELOCITIES] = hits * rng.uniform(0.1, 1.0, hits.shape)
    grooves[..., OFFSETS] = hits * rng.uniform(-0.9, 0.9, hits.shape)
    return grooves


def pytest_configure(config):
    """Supplies notebook 03's upload under nbmake: a 2-bar groove at 100 bpm, named by
    GROOVAE_MY_MIDI, which 03 reads in place of an upload when GROOVAE_SMOKE=1. Gives each test
    worker (pytest -n) a numba cache of its own, for it and the kernels and commands it starts:
    librosa caches its compiled functions beside their source, and two workers compiling one at
    once left a cache that crashed every later process loading it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and "NUMBA_CACHE_DIR" not in os.environ:
        cache = Path(tempfile.mkdtemp(prefix=f"groovae-numba-{worker}-"))
        atexit.register(shutil.rmtree, cache, ignore_errors=True)
        os.environ["NUMBA_CACHE_DIR"] = str(cache)
    if os.environ.get("GROOVAE_SMOKE") == "1" and "GROOVAE_MY_MIDI" not in os.environ:
        folder = Path(tempfile.mkdtemp(prefix="groovae-upload-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = write_midi(folder / "my_2_bars.mid", drum_sequence(beat_notes(2, 100.0), qpm=100.0))
        os.environ["GROOVAE_MY_MIDI"] = str(path)


def pytest_collection_modifyitems(config, items):
    """Under `pytest -n 2 --dist loadgroup` (make test) a file's tests share one worker, so its
    module fixtures are built once, and so do a class's (a heavy part of a file, run beside the
    rest); the notebooks share one too, since 03 reads what 02 wrote."""
    for item in items:
        group = "notebooks" if item.path.suffix == ".ipynb" else item.path.name
        if getattr(item, "cls", None) is not None:
            group += "::" + item.cls.__name__
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def make_drums():
    return drum_sequence


@pytest.fixture(scope="session")
def gmd_dir() -> Path:
    """The GMD folder from GROOVE_DATA_DIR or ../shared; tests that need it skip without it."""
    path = Path(os.environ.get("GROOVE_DATA_DIR", SHARED / "data" / "groove"))
    if not (path / "info.csv").exists():
        _missing_shared(f"Groove MIDI Dataset not found at {path} (set GROOVE_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    if not PARITY_DIR.exists():
        _missing_shared(f"parity arrays not found at {PARITY_DIR}")
    return PARITY_DIR


@pytest.fixture(scope="session")
def oracle(parity_dir) -> dict:
    """Magenta's groovae_4bar weights (`w/<variable>`) and what its graph computed from them."""
    return dict(np.load(parity_dir / "model_oracle_groovae_4bar.npz"))


@pytest.fixture
def tiny_config():
    from helpers.config import get_config

    return get_config("tiny")


TRAIN_WINDOWS, VALIDATION_WINDOWS = random_grooves(48), random_grooves(16, seed=1)


def train_every_step(config, out_dir: Path, steps: int):
    """Trains config on TRAIN_WINDOWS (validated on VALIDATION_WINDOWS), a history row a step."""
    from helpers import training

    options = training.TrainOptions(log_every_steps=1, progress=False)
    windows = (TRAIN_WINDOWS, VALIDATION_WINDOWS)
    return training.train(config, out_dir, steps=steps, windows=windows, options=options)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny run trained 2 steps on random grooves, in <outputs>/runs/tiny (a few seconds).

    Shared by the whole session: tests read it; one that writes into a run copies it first.
    """
    from helpers import training
    from helpers.config import get_config

    grooves = random_grooves(32)
    run_dir = tmp_path_factory.mktemp("outputs") / "runs" / "tiny"
    training.train(
        get_config("tiny"),
        run_dir,
        steps=2,
        windows=(grooves, grooves[:16]),
        options=training.TrainOptions(progress=False),
    )
    return run_dir


@pytest.fixture(scope="session")
def gmd_subset(gmd_dir, tmp_path_factory) -> Path:
    """A GMD-shaped folder `groove/` holding the first 4/4 beats of each split (8 train, 3
    validation, 3 test) with their info.csv rows: real data whose cold build takes a second."""
    import csv
    import shutil

    with open(gmd_dir / "info.csv", newline="") as file:
        reader = csv.DictReader(file)
        fields, rows = reader.fieldnames, list(reader)
    wanted = {"train": 8, "validation": 3, "test": 3}
    picked = []
    for row in rows:
        if row["time_signature"] == "4-4" and row["beat_type"] == "beat" and wanted[row["split"]]:
            wanted[row["split"]] -= 1
            picked.append(row)
    subset = tmp_path_factory.mktemp("gmd-subset") / "groove"
    for row in picked:
        (subset / row["midi_filename"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(gmd_dir / row["midi_filename"], subset / row["midi_filename"])
    with open(subset / "info.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fields)
        writer.writeheader()
        writer.writerows(picked)
    return subset
