"""Your own drum MIDI: each file under a folder cut into 4-bar windows as GMD is, split, cached.

Each file takes the GMD route (helpers.data): TFDS's cut into 4-bar clips at a hop of one bar, with
the file's own tempo and meter standing in for GMD's info.csv, then the converter's rules in
training mode (Magenta's Roland drum map; other pitches are skipped and counted per pitch). Only
notes on the MIDI drum channel count. Files go to train / validation / test whole, by a hash of
their path under the folder (90 / 5 / 5), unless the folder's split.csv names their split; in a
small folder, files are moved so that no split is left without windows (balance_splits).
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import constants, data
from helpers import converter as converter_lib
from helpers.config import GrooVAEConfig
from helpers.converter import GrooveConverter, Rejected
from helpers.gmd import Performance
from helpers.windowing import NO_DRUM_NOTES, with_ringing_notes_closed

MIDI_SUFFIXES = (".mid", ".midi")
SPLIT_FILE = "split.csv"  # columns midi_filename (path under the folder) and split
SPLIT_SHARES = (("train", 90), ("validation", 5), ("test", 5))  # percent of files by path hash
TOO_SHORT = "too short (under 4 bars)"
NO_WINDOW = "no window"  # every clip refused; the clips' reasons follow
MIN_FILES_TO_SPLIT = 3  # files with windows it takes to give validation and test one each


class MidiFolderError(Exception):
    """A MIDI folder that cannot give training windows; the message says what to change."""


def find_midi_files(midi_dir: str | os.PathLike) -> list[str]:
    """Paths of every .mid / .midi file under `midi_dir` (recursively), relative, '/'-separated.

    Raises:
      MidiFolderError: the folder is missing or holds no MIDI file.
    """
    folder = Path(midi_dir).expanduser()
    if not folder.is_dir():
        raise MidiFolderError(f"{folder} is not a folder; point it at a folder of drum MIDI files")
    files = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.suffix.lower() in MIDI_SUFFIXES and p.is_file()
    )
    if not files:
        raise MidiFolderError(
            f"no .mid or .midi file under {folder} (subfolders included); copy your drum MIDI "
            "files there"
        )
    return files


def hash_split(relative_path: str) -> str:
    """train, validation or test for a file, fixed by its path under the folder (90 / 5 / 5)."""
    bucket = int(hashlib.sha256(relative_path.encode()).hexdigest(), 16) % 100
    for split, share in SPLIT_SHARES:
        if bucket < share:
            return split
        bucket -= share
    raise AssertionError("SPLIT_SHARES must add up to 100")


def assign_splits(midi_dir: str | os.PathLike, files: list[str]) -> dict[str, str]:
    """{file: split}: the folder's split.csv where it names a file, the path hash elsewhere."""
    return {**{f: hash_split(f) for f in files}, **named_splits(midi_dir, files)}


def named_splits(midi_dir: str | os.PathLike, files: list[str]) -> dict[str, str]:
    """{file: split} of the files the folder's split.csv names (none without one).

    Raises:
      MidiFolderError: split.csv lacks its columns, or names an unknown split or a missing file.
    """
    splits = {}
    path = Path(midi_dir).expanduser() / SPLIT_FILE
    if not path.exists():
        return splits
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"midi_filename", "split"} <= set(table.columns):
        raise MidiFolderError(
            f"{path} needs the columns midi_filename (the path under the folder) and split; "
            f"it has {list(table.columns)}"
        )
    for row in table.itertuples():
        if row.split not in constants.GMD_SPLITS:
            raise MidiFolderError(
                f"{path}: {row.midi_filename} has split {row.split!r}; use one of "
                f"{', '.join(constants.GMD_SPLITS)}"
            )
        if row.midi_filename not in files:
            raise MidiFolderError(f"{path} names {row.midi_filename}, which is not in the folder")
        splits[row.midi_filename] = row.split
    return splits


def balance_splits(
    splits: dict[str, str], usable: list[str], named: set[str]
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The split of a small folder, where the path hash can leave a split without windows.

    With MIN_FILES_TO_SPLIT or more usable files, each split without one takes a file from the
    split that has the most (never its last); with fewer, every usable file trains, and there
    is no validation or test. Files split.csv names stay where it puts them.

    Args:
      splits: {file: split}, as assign_splits gives it.
      usable: the files that give windows, in order; the first of a split moves first.
      named: the files split.csv names.

    Returns:
      ({file: split}, {split: the files moved into it}).
    """
    splits, moved = dict(splits), {split: [] for split in constants.GMD_SPLITS}
    movable = [f for f in usable if f not in named]

    def held(split: str) -> int:
        return sum(splits[f] == split for f in usable)

    for split in constants.GMD_SPLITS if len(usable) >= MIN_FILES_TO_SPLIT else ():
        donors = [f for f in movable if held(splits[f]) > 1]
        if not held(split) and donors:
            name = max(donors, key=lambda f: held(splits[f]))
            splits[name] = split
            moved[split].append(name)
    if len(usable) < MIN_FILES_TO_SPLIT:
        for name in movable:
            if splits[name] != "train":
                splits[name] = "train"
                moved["train"].append(name)
    return splits, moved


def file_meter(performance: Performance) -> float:
    """The one tempo of a file whose drum part is in 4/4.

    Raises:
      Rejected: NO_DRUM_NOTES, over MAX_GROOVE_MINUTES long, faster than MAX_QPM, or the
        converter's tempo and meter reasons.
    """
    if not len(performance.pitches):
        raise Rejected(NO_DRUM_NOTES)
    if performance.end_time > 60 * constants.MAX_GROOVE_MINUTES:  # a clip per bar to the end
        raise Rejected(f"longer than {constants.MAX_GROOVE_MINUTES:g} minutes")
    times, tempi = performance.pm.get_tempo_changes()
    qpm = converter_lib.single_tempo(list(zip(times, tempi)))
    if qpm > constants.MAX_QPM:  # TFDS's cut divides by whole microseconds per quarter
        raise Rejected(f"a tempo of {qpm:,.6g} qpm (up to {constants.MAX_QPM:g})")
    numerator, denominator = converter_lib.single_time_signature(performance.time_signatures)
    if numerator * 4 != denominator * constants.QUARTERS_PER_BAR:
        raise Rejected(converter_lib.NOT_4_4)
    return qpm


def file_windows(job: tuple) -> dict:
    """Worker: one file -> its windows, or the reason it gives none."""
    folder, relative_path, converter = job
    converter.skipped_pitches.clear()
    path = Path(folder) / relative_path
    try:
        performance = Performance(
            with_ringing_notes_closed(path.read_bytes(), path), drums_only=True
        )
    except Exception as error:  # pretty_midi/mido raise many types on a broken file
        return {"reason": f"{data.CORRUPT_FILE} ({type(error).__name__}: {error})"}
    try:
        qpm = file_meter(performance)
    except Rejected as rejected:
        return {"reason": rejected.reason}
    clips = list(performance.clips(qpm, constants.QUARTERS_PER_BAR))
    windows, clip_index, reasons = data.convert_clips(clips, converter)
    result = {"qpm": qpm, "clips": len(clips), "reasons": reasons}
    result["skipped_pitches"] = dict(converter.skipped_pitches)
    if not clips:
        result["reason"] = TOO_SHORT
    elif not windows:
        counts = collections.Counter(reasons).most_common()
        result["reason"] = f"{NO_WINDOW}: " + ", ".join(f"{n} clips {r}" for r, n in counts)
    result["outputs"] = np.stack(windows) if windows else data.empty_windows(converter)
    result["clip_index"] = clip_index
    return result


def _split_contents(split: str, rows: list, moved_in: list[str]) -> tuple[list, list, dict]:
    """One split's window ranges in the build's spool, metadata rows and summary, from (file,
    result) rows in file order."""
    windows, meta, reasons, skipped_pitches, skipped_files = [], [], {}, {}, []
    for name, result in rows:
        if "reason" in result:
            skipped_files.append([name, result["reason"]])
        if "rows" in result:
            windows.append(result["rows"])
        bpm = round(result.get("qpm", 0))
        meta += [(split, "", "", bpm, "", name, clip) for clip in result.get("clip_index", [])]
        for reason in result.get("reasons", []):
            reasons[reason] = reasons.get(reason, 0) + 1
        for pitch, count in result.get("skipped_pitches", {}).items():
            skipped_pitches[pitch] = skipped_pitches.get(pitch, 0) + count
    summary = {
        "split": split,
        "files": len(rows),
        "skipped files": len(skipped_files),
        "clips": sum(result.get("clips", 0) for _, result in rows),
        "windows": sum(stop - start for start, stop in windows),
        **reasons,
        "skipped notes": sum(skipped_pitches.values()),
        "skipped pitches": json.dumps(dict(sorted(skipped_pitches.items()))),
        "skipped": skipped_files,
        "moved in": moved_in,
    }
    return windows, meta, summary


def _fingerprint(folder: Path, files: list[str]) -> str:
    """Names, sizes and times of the files and split.csv: a changed folder is read again."""
    seen = [(f, *_stamp(folder / f)) for f in [*files, SPLIT_FILE] if (folder / f).exists()]
    return hashlib.sha256(json.dumps([str(folder.resolve()), seen]).encode()).hexdigest()


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def load_midi_folder(
    midi_dir: str | os.PathLike,
    converter: GrooveConverter | None = None,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, data.GrooveSplit]:
    """The converter outputs of every window of every MIDI file under `midi_dir`, per split.

    The first call reads the files (on all cores) and caches each split in a folder under
    `cache_dir` (data.save_split): file by file, each file's windows appended to a spool on disk
    as it is read, so that a folder larger than memory builds in the memory of a few files. Later
    calls read the cache, its windows memory-mapped, until a file, or split.csv, changes.

    Args:
      midi_dir: a folder of .mid / .midi files, searched recursively.
      converter: default GrooveConverter() in train mode, as for GMD.
      cache_dir: default <repo>/outputs/cache.
      workers: processes for the cold build; default all cores.
      progress: show a progress bar on the cold build.

    Returns:
      {split: GrooveSplit} for train, validation and test; each summary lists its skipped files
      with their reasons under "skipped".

    Raises:
      MidiFolderError: a missing or empty folder, or a bad split.csv.
    """
    folder = Path(midi_dir).expanduser()
    files = find_midi_files(folder)
    named = named_splits(folder, files)
    converter = converter or GrooveConverter()
    cache_dir = Path(cache_dir or data.DEFAULT_CACHE_DIR)
    key = data.cache_key(converter, f"midi folder, balanced {_fingerprint(folder, files)}")
    paths = {split: cache_dir / f"midi_folder_{key}_{split}" for split in constants.GMD_SPLITS}
    cached = {split: data.load_split(path) for split, path in paths.items()}
    if any(split is None for split in cached.values()):  # not built yet, or a write cut short
        jobs = [(folder, name, converter) for name in files]
        workers = workers or os.cpu_count() or 1
        cache_dir.mkdir(parents=True, exist_ok=True)
        window_shape = data.empty_windows(converter).shape[1:]
        spool_path = cache_dir / f".midi_folder_{key}.{os.getpid()}.spool.npy"
        with data.WindowSpool(spool_path, window_shape) as spool:
            results = spool.take(data.run_jobs(file_windows, jobs, workers, progress, "MIDI files"))
            usable = [f for f, result in zip(files, results) if "reason" not in result]
            splits, moved = balance_splits(assign_splits(folder, files), usable, set(named))
            for split, path in paths.items():
                rows = [(f, r) for f, r in zip(files, results) if splits[f] == split]
                windows, meta, summary = _split_contents(split, rows, moved[split])
                data.save_split(path, spool.windows(windows), meta, summary, window_shape)
        cached = {split: data.load_split(path) for split, path in paths.items()}
    return cached


def folder_summary(splits: dict[str, data.GrooveSplit]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two tables: one row per split (files, clips, windows, why clips and notes were dropped),
    and one row per skipped file with its split and reason."""
    lists = ("skipped", "moved in")
    rows = [{k: v for k, v in s.summary.items() if k not in lists} for s in splits.values()]
    table = pd.DataFrame(rows).set_index("split")
    counts = [c for c in table.columns if c != "skipped pitches"]
    table[counts] = table[counts].fillna(0).astype(int)
    skipped = [
        (name, split, reason)
        for split, s in splits.items()
        for name, reason in s.summary["skipped"]
    ]
    return table, pd.DataFrame(skipped, columns=["file", "split", "reason"])


def summary_text(splits: dict[str, data.GrooveSplit]) -> str:
    """Both tables of folder_summary as text, no reason cut short, and the split chosen."""
    table, skipped = folder_summary(splits)
    listed = skipped.to_string(index=False) if len(skipped) else "none"
    return f"{table.to_string()}\n\n{split_line(splits)}\n\nskipped files:\n{listed}"


def split_line(splits: dict[str, data.GrooveSplit]) -> str:
    """'split chosen (files with windows): 12 train, 1 validation, 1 test; ...' with the files
    balance_splits moved, or why there is no validation, and the window counts when training
    would hold fewer windows than validation and test together."""
    usable = {k: s.summary["files"] - s.summary["skipped files"] for k, s in splits.items()}
    line = "split chosen (files with windows): " + ", ".join(f"{n} {k}" for k, n in usable.items())
    moves = [f"{f} to {k}" for k, s in splits.items() for f in s.summary.get("moved in", [])]
    if sum(usable.values()) < MIN_FILES_TO_SPLIT and not usable["validation"]:
        line += f"; with under {MIN_FILES_TO_SPLIT} such files, all train, without validation"
    elif moves:
        line += "; moved so that no split is without windows: " + ", ".join(moves)
    windows = {k: len(s.outputs) for k, s in splits.items()}
    if windows["train"] < windows["validation"] + windows["test"]:
        line += (
            f"; lopsided: {windows['train']} training windows against {windows['validation']} "
            f"validation and {windows['test']} test; add grooves (4 bars or longer) so that "
            f"training holds most windows, or name the long files 'train' in {SPLIT_FILE}"
        )
    return line


def training_windows(
    splits: dict[str, data.GrooveSplit], batch_size: int
) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """train()'s (train, validation) windows from a folder's splits, and the batch size: one
    larger than the training windows is lowered to their number, with a line saying so.

    Raises:
      MidiFolderError: the train split has no windows.
    """
    train = splits["train"].outputs
    if not len(train):
        raise MidiFolderError(
            "the train split has no windows: add drum grooves in 4/4 at one tempo, 4 bars or "
            f"longer (the skipped files are listed with why), or name files 'train' in {SPLIT_FILE}"
        )
    if batch_size > len(train):
        print(
            f"batch size lowered from {batch_size} to {len(train)}: the train split has no more "
            "windows"
        )
        batch_size = len(train)
    return (train, splits["validation"].outputs), batch_size


def folder_windows(
    midi_dir: str | os.PathLike,
    config: GrooVAEConfig,
    batch_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """Your MIDI folder cut in the config's windows, its summary printed: train()'s windows and
    the batch size to train them at (training_windows)."""
    converter = GrooveConverter.from_config(config.converter)
    splits = load_midi_folder(midi_dir, converter=converter, cache_dir=cache_dir)
    print(summary_text(splits))
    return training_windows(splits, batch_size or config.train.batch_size)
