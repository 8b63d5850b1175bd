"""Your own drum MIDI: each file under a folder cut into 4-bar windows as GMD is, split, cached.

Each file takes the GMD route (helpers.data): TFDS's cut into 4-bar clips at a hop of one bar, with
the file's own tempo and meter standing in for GMD's info.csv, then the converter's rules in
training mode (Magenta's Roland drum map; other pitches are skipped and counted per pitch). Only
notes on the MIDI drum channel count. Files go to train / validation / test whole, by a hash of
their path under the folder (90 / 5 / 5), unless the folder's split.csv names their split.
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
from helpers.converter import GrooveConverter, Rejected
from helpers.gmd import Performance
from helpers.windowing import NO_DRUM_NOTES

MIDI_SUFFIXES = (".mid", ".midi")
SPLIT_FILE = "split.csv"  # columns midi_filename (path under the folder) and split
SPLIT_SHARES = (("train", 90), ("validation", 5), ("test", 5))  # percent of files by path hash
TOO_SHORT = "too short (under 4 bars)"
NO_WINDOW = "no window"  # every clip refused; the clips' reasons follow


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
    """{file: split}: the folder's split.csv where it names a file, the path hash elsewhere.

    Raises:
      MidiFolderError: split.csv lacks its columns, or names an unknown split or a missing file.
    """
    splits = {f: hash_split(f) for f in files}
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
        if row.midi_filename not in splits:
            raise MidiFolderError(f"{path} names {row.midi_filename}, which is not in the folder")
        splits[row.midi_filename] = row.split
    return splits


def file_meter(performance: Performance) -> float:
    """The one tempo of a file whose drum part is in 4/4.

    Raises:
      Rejected: NO_DRUM_NOTES, or the converter's tempo and meter reasons.
    """
    if not len(performance.pitches):
        raise Rejected(NO_DRUM_NOTES)
    times, tempi = performance.pm.get_tempo_changes()
    qpm = converter_lib.single_tempo(list(zip(times, tempi)))
    numerator, denominator = converter_lib.single_time_signature(performance.time_signatures)
    if numerator * 4 != denominator * constants.QUARTERS_PER_BAR:
        raise Rejected(converter_lib.NOT_4_4)
    return qpm


def file_windows(job: tuple) -> dict:
    """Worker: one file -> its windows, or the reason it gives none."""
    folder, relative_path, converter = job
    converter.skipped_pitches.clear()
    try:
        performance = Performance((Path(folder) / relative_path).read_bytes(), drums_only=True)
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


def _split_arrays(
    split: str, rows: list, converter: GrooveConverter
) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """One split's windows, metadata and summary from (file, result) rows in file order."""
    windows, meta, reasons, skipped_pitches, skipped_files = [], [], {}, {}, []
    for name, result in rows:
        if "reason" in result:
            skipped_files.append([name, result["reason"]])
        windows.append(result.get("outputs", data.empty_windows(converter)))
        bpm = round(result.get("qpm", 0))
        meta += [(split, "", "", bpm, "", name, clip) for clip in result.get("clip_index", [])]
        for reason in result.get("reasons", []):
            reasons[reason] = reasons.get(reason, 0) + 1
        for pitch, count in result.get("skipped_pitches", {}).items():
            skipped_pitches[pitch] = skipped_pitches.get(pitch, 0) + count
    outputs = np.concatenate([data.empty_windows(converter), *windows])
    summary = {
        "split": split,
        "files": len(rows),
        "skipped files": len(skipped_files),
        "clips": sum(result.get("clips", 0) for _, result in rows),
        "windows": len(outputs),
        **reasons,
        "skipped notes": sum(skipped_pitches.values()),
        "skipped pitches": json.dumps(dict(sorted(skipped_pitches.items()))),
        "skipped": skipped_files,
    }
    return outputs, pd.DataFrame(meta, columns=data.META_COLUMNS), summary


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

    The first call reads the files (on all cores) and caches each split as .npz under
    `cache_dir`; later calls read the cache until a file, or split.csv, changes.

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
    splits = assign_splits(folder, files)
    converter = converter or GrooveConverter()
    cache_dir = Path(cache_dir or data.DEFAULT_CACHE_DIR)
    key = data.cache_key(converter, f"midi folder {_fingerprint(folder, files)}")
    paths = {split: cache_dir / f"midi_folder_{key}_{split}.npz" for split in constants.GMD_SPLITS}
    cached = {split: data.load_split(path) for split, path in paths.items()}
    if any(split is None for split in cached.values()):  # not built yet, or a write cut short
        jobs = [(folder, name, converter) for name in files]
        workers = workers or os.cpu_count() or 1
        results = data.run_jobs(file_windows, jobs, workers, progress, "MIDI files")
        cache_dir.mkdir(parents=True, exist_ok=True)
        for split, path in paths.items():
            rows = [(f, r) for f, r in zip(files, results) if splits[f] == split]
            data.save_split(path, *_split_arrays(split, rows, converter))
        cached = {split: data.load_split(path) for split, path in paths.items()}
    return cached


def folder_summary(splits: dict[str, data.GrooveSplit]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two tables: one row per split (files, clips, windows, why clips and notes were dropped),
    and one row per skipped file with its split and reason."""
    rows = [{k: v for k, v in s.summary.items() if k != "skipped"} for s in splits.values()]
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
    """Both tables of folder_summary as text, no reason cut short."""
    table, skipped = folder_summary(splits)
    listed = skipped.to_string(index=False) if len(skipped) else "none"
    return f"{table.to_string()}\n\nskipped files:\n{listed}"


def training_windows(splits: dict[str, data.GrooveSplit], batch_size: int) -> dict[str, np.ndarray]:
    """train's train_data and validation_data from a folder's splits.

    Raises:
      MidiFolderError: train or validation cannot fill one batch of windows.
    """
    for split, advice in (
        ("train", "add files or lower the batch size"),
        ("validation", f"name more files 'validation' in {SPLIT_FILE} or lower the batch size"),
    ):
        have = len(splits[split].outputs)
        if have < batch_size:
            raise MidiFolderError(
                f"the {split} split has {have} windows and one batch needs {batch_size}: {advice}"
                f" ({SPLIT_FILE}: columns midi_filename, split)"
            )
    return {"train_data": splits["train"].outputs, "validation_data": splits["validation"].outputs}
