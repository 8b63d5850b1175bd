"""The Groove MIDI Dataset as groove tensors: TFDS-identical 4-bar clips, cached per split.

Finding GMD on disk or downloading it is helpers/gmd.py.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import shutil
import zipfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import note_seq
import numpy as np
import pandas as pd

from helpers import constants
from helpers import converter as converter_lib
from helpers.converter import EncoderInputs, GrooveConverter, Rejected
from helpers.gmd import Clip, Performance, find_gmd, gmd_identity

DEFAULT_CACHE_DIR = constants.cache_dir()
CACHE_VERSION = 1  # bump when the clip route or the converter changes what it produces
# The layout of a split's cache folder; format 1 was one .npz per split (read once, converted).
CACHE_FORMAT = 2
OUTPUTS_FILE, META_FILE, SUMMARY_FILE, MANIFEST_FILE = (
    "outputs.npy",
    "meta.csv",
    "summary.json",
    "manifest.json",
)
NPY_HEADER_BYTES = 128  # numpy pads a 3-axis float32 header to this, whatever the window count
WHOLE_CHECKSUM_BYTES = 1 << 28  # files up to this size are hashed whole; larger ones by sample
CHECKSUM_BLOCK_BYTES = 1 << 20  # read at a time when hashing a whole file
CHECKSUM_SAMPLES, CHECKSUM_SAMPLE_BYTES = 1024, 1 << 16  # 64 MiB read of a larger file
CORRUPT_FILE = "corrupt file"
META_COLUMNS = ["split", "drummer", "style", "bpm", "beat_type", "midi_filename", "clip"]


# --- GMD's index -----------------------------------------------------------------------------


def read_info(gmd_dir: Path) -> pd.DataFrame:
    """GMD's info.csv, one row per performance, in file order."""
    return pd.read_csv(Path(gmd_dir) / "info.csv", dtype={"bpm": int}, keep_default_na=False)


# --- whole performances ----------------------------------------------------------------------


def performance_windows(
    midi_path: str | os.PathLike, converter: GrooveConverter | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A whole GMD performance in non-overlapping 4-bar windows (the parity `full/` files).

    Returns:
      outputs float32 [n, 64, 27] and the start bar of each window, int32 [n].
    """
    converter = converter or GrooveConverter()
    tensors = converter.to_tensors(note_seq.midi_file_to_note_sequence(str(midi_path)))
    hop = converter.hop_size or converter.steps_per_bar * converter.split_bars
    outputs = np.zeros((0, constants.WINDOW_STEPS, constants.GROOVE_DEPTH), np.float32)
    outputs = np.stack(tensors.outputs) if tensors.outputs else outputs
    starts = np.arange(len(tensors.outputs), dtype=np.int32) * hop // converter.steps_per_bar
    return outputs, starts


def clip_to_groove(clip: Clip, converter: GrooveConverter) -> np.ndarray:
    """The converter's whole-clip groove float64 [steps, 27] (spec §2.2).

    Raises:
      Rejected: why the converter gives no window.
    """
    numerator, denominator = converter_lib.single_time_signature(clip.time_signatures)
    qpm = converter_lib.single_tempo(clip.tempos)
    return converter.notes_to_groove(
        clip.start_times,
        clip.end_times,
        clip.pitches,
        clip.velocities,
        qpm,
        numerator,
        denominator,
    )


# --- the cached split arrays -----------------------------------------------------------------


def cache_key(converter: GrooveConverter, source: str) -> str:
    """Everything that changes the outputs: version, source, grid, windows, active drum map."""
    settings = {
        "version": CACHE_VERSION,
        "source": source,
        "steps_per_quarter": converter.steps_per_quarter,
        "steps_per_bar": converter.steps_per_bar,
        "split_bars": converter.split_bars,
        "hop_size": converter.hop_size,
        "pitch_classes": converter.pitch_classes,
    }
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:12]


def convert_clips(clips, converter: GrooveConverter) -> tuple[list, list, list]:
    """Windows of each clip, the clip index of each window, and one drop reason per empty clip."""
    windows, clip_index, reasons = [], [], []
    for i, clip in enumerate(clips):
        try:
            groove = clip_to_groove(clip, converter)
        except Rejected as rejected:
            reasons.append(rejected.reason)
            continue
        length, starts = converter.windows(len(groove))
        if not starts:
            reasons.append(converter_lib.SHORTER_THAN_WINDOW)
        for start in starts:
            windows.append(groove[start : start + length].astype(np.float32))
            clip_index.append(i)
    return windows, clip_index, reasons


def tfds_clip_windows(
    midi: bytes, bpm: int, numerator: int, converter: GrooveConverter | None = None
) -> tuple[np.ndarray, np.ndarray, list, int]:
    """One GMD performance cut as TFDS cuts it, then converted (the parity `tfds4bar/` files).

    Args:
      midi: the performance's MIDI bytes; bpm, numerator: its info.csv tempo and meter.

    Returns:
      outputs float32 [n, 64, 27], the clip index of each window int32 [n], the drop reason of
      each clip without a window, and the number of clips.
    """
    converter = converter or GrooveConverter()
    clips = list(Performance(midi).clips(bpm, numerator, converter.split_bars))
    windows, clip_index, reasons = convert_clips(clips, converter)
    outputs = np.stack(windows) if windows else empty_windows(converter)
    return outputs, np.array(clip_index, np.int32), reasons, len(clips)


def _performance_windows(job: tuple) -> dict:
    """Worker: one GMD performance -> its kept windows and what it dropped."""
    midi_path, bpm, numerator, converter = job
    converter.skipped_pitches.clear()
    try:
        outputs, clip_index, reasons, clips = tfds_clip_windows(
            Path(midi_path).read_bytes(), bpm, numerator, converter
        )
    except Exception as error:  # pretty_midi/mido raise many types on a broken file
        return {"error": f"{type(error).__name__}: {error}"}
    return {
        "clips": clips,
        "outputs": outputs,
        "clip_index": clip_index,
        "reasons": reasons,
        "skipped_pitches": dict(converter.skipped_pitches),
    }


def empty_windows(converter: GrooveConverter) -> np.ndarray:
    """No windows, in the shape the converter's would have."""
    steps = converter.steps_per_bar * converter.split_bars
    return np.zeros((0, steps, constants.GROOVE_DEPTH), np.float32)


def run_jobs(work, jobs: list, workers: int, progress: bool, desc: str) -> Iterator:
    """`work` over `jobs`, its results in order as they come, over `workers` processes when
    there is more than one job, with a progress bar."""
    from tqdm.auto import tqdm

    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            results = pool.map(work, jobs, chunksize=8)
            yield from tqdm(results, total=len(jobs), desc=desc, disable=not progress)
        return
    yield from (work(job) for job in tqdm(jobs, desc=desc, disable=not progress))


def _build_from_gmd(
    gmd_dir: Path, converter: GrooveConverter, workers: int, progress: bool, spool: WindowSpool
):
    """All three splits from the MIDI files: {split: (windows, meta rows, summary row)}, the
    windows read from `spool` as they are written."""

    info = read_info(gmd_dir)
    jobs = [
        (gmd_dir / row.midi_filename, row.bpm, int(row.time_signature.split("-")[0]), converter)
        for row in info.itertuples()
    ]
    results = spool.take(run_jobs(_performance_windows, jobs, workers, progress, "GMD clips"))
    built = {}
    for split in constants.GMD_SPLITS:
        rows = [(row, res) for row, res in zip(info.itertuples(), results) if row.split == split]
        windows, meta, reasons, skipped = [], [], {}, {}
        corrupt, clips = 0, 0
        for row, result in rows:
            if "error" in result:
                corrupt += 1
                continue
            clips += result["clips"]
            windows.append(result["rows"])
            meta += [_meta_row(row, clip) for clip in result["clip_index"]]
            for reason in result["reasons"]:
                reasons[reason] = reasons.get(reason, 0) + 1
            for pitch, count in result["skipped_pitches"].items():
                skipped[pitch] = skipped.get(pitch, 0) + count
        summary = {
            "split": split,
            "performances": len(rows),
            CORRUPT_FILE: corrupt,
            "clips": clips,
            "windows": sum(stop - start for start, stop in windows),
            **reasons,
            "skipped notes": sum(skipped.values()),
            "skipped pitches": json.dumps(dict(sorted(skipped.items()))),
        }
        built[split] = (spool.windows(windows), meta, summary)
    return built


def _meta_row(row, clip: int) -> tuple:
    return (row.split, row.drummer, row.style, int(row.bpm), row.beat_type, row.midi_filename, clip)


def tfds_unavailable() -> str | None:
    """Why the TFDS route cannot run here, or None when it can.

    On Colab's image it cannot: tensorflow-metadata 1.21's protos were generated for a newer
    protobuf than the 5.29.6 Colab pins. TFDS then logs the error and imports without its API.
    """
    try:
        import tensorflow_datasets as tfds

        if hasattr(tfds, "load"):
            return None
        from tensorflow_metadata.proto.v0 import schema_pb2  # noqa: F401  raises the real cause

        cause = "it imports without tfds.load (its own import failed; see the log above)"
    except Exception as error:  # protobuf's VersionError, TypeError, ImportError, ...
        cause = f"{type(error).__name__}: {error}"
    return f"tensorflow_datasets does not import: {cause}"


def _build_from_tfds(split, data_dir, converter: GrooveConverter, download: bool, progress: bool):
    """One split through tfds.load + note-seq, as Magenta's get_dataset reads it."""
    reason = tfds_unavailable()
    if reason:
        raise ImportError(
            f"source='tfds' cannot run here ({reason}). Use the default source='gmd': it builds "
            "the same windows straight from GMD's MIDI files, without TFDS."
        )
    import tensorflow_datasets as tfds
    from tqdm.auto import tqdm

    dataset, ds_info = tfds.load(
        f"groove/{converter.split_bars}bar-midionly",
        split=split,
        data_dir=data_dir,
        download=download,
        with_info=True,
    )
    labels = ds_info.features
    examples = []
    for ex in tqdm(tfds.as_numpy(dataset), desc=f"TFDS {split}", disable=not progress):
        # TFDS ids pile up clip suffixes ("id:000:001"); the last one is the clip index.
        performance_id, *suffixes = ex["id"].decode().split(":")
        clip = int(suffixes[-1])
        style = labels["style"]["primary"].int2str(ex["style"]["primary"])
        if ex["style"]["secondary"]:
            style += "/" + ex["style"]["secondary"].decode()
        drummer = labels["drummer"].int2str(ex["drummer"])
        beat_type = labels["type"].int2str(ex["type"])
        meta = (split, drummer, style, int(ex["bpm"]), beat_type, "", clip)
        examples.append((performance_id, clip, ex["midi"], meta))
    examples.sort(key=lambda e: e[:2])  # GMD's info.csv order: by id, then clip
    clips = [Clip.from_note_sequence(note_seq.midi_to_note_sequence(e[2])) for e in examples]
    windows, clip_index, reasons = convert_clips(clips, converter)
    summary = {
        "split": split,
        "performances": len({e[0] for e in examples}),
        CORRUPT_FILE: 0,
        "clips": len(clips),
        "windows": len(windows),
    }
    for reason in reasons:
        summary[reason] = summary.get(reason, 0) + 1
    meta = [examples[i][3] for i in clip_index]
    return {split: ([np.stack(windows)] if windows else [], meta, summary)}


@dataclasses.dataclass
class GrooveSplit:
    """One split's converter outputs with a metadata row per window and the build summary."""

    outputs: np.ndarray  # float32 [n, 64, 27]; read-only and memory-mapped from the cache
    meta: pd.DataFrame  # one row per window: split, drummer, style, bpm, ..., clip
    summary: dict  # clips, windows and the count of every drop reason


def load_groove_4bar_split(
    split: str,
    data_dir: str | os.PathLike | None = None,
    converter: GrooveConverter | None = None,
    cache_dir: str | os.PathLike | None = None,
    source: str = "gmd",
    workers: int | None = None,
    progress: bool = True,
) -> GrooveSplit:
    """The converter outputs of every kept window of a TFDS `groove/4bar-midionly` split.

    The first call builds all three splits (GMD MIDI cut as TFDS cuts it, spec §2.5) and caches
    each in a folder under `cache_dir` (save_split); later calls only read the cache, its windows
    memory-mapped, until GMD's info.csv or the size of a file it lists changes
    (gmd.gmd_identity).

    Args:
      split: 'train', 'validation' or 'test'.
      data_dir: GMD location for source='gmd' (see find_gmd); the TFDS data_dir for 'tfds'.
      converter: its grid, windowing and active drum map shape the outputs; default
        GrooveConverter() in train mode.
      cache_dir: default <repo>/outputs/cache (constants.cache_dir).
      source: 'gmd' (fast, from the MIDI files) or 'tfds' (tfds.load, then note-seq).
      workers: processes for the cold build; default all cores.
      progress: show a progress bar on the cold build.

    Returns:
      GrooveSplit with outputs float32 [n, 64, 27] (read-only, memory-mapped) in (performance id,
      clip) order.
    """
    if split not in constants.GMD_SPLITS:
        raise ValueError(f"split must be one of {constants.GMD_SPLITS}, got {split!r}")
    if source not in ("gmd", "tfds"):
        raise ValueError(f"source must be 'gmd' or 'tfds', got {source!r}")
    converter = converter or GrooveConverter()
    cache_dir = Path(cache_dir or DEFAULT_CACHE_DIR)
    # The key holds GMD's identity: a subset or an edited copy is cached apart, not mistaken.
    gmd_dir = find_gmd(data_dir) if source == "gmd" else None
    key = cache_key(converter, f"gmd {gmd_identity(gmd_dir)}" if gmd_dir else source)
    stem = f"groove_{converter.split_bars}bar_{source}_{key}"
    path = cache_dir / f"{stem}_{split}"
    cached = load_split(path)
    if cached is None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        window_shape = empty_windows(converter).shape[1:]
        with WindowSpool(cache_dir / f".{stem}.{os.getpid()}.spool.npy", window_shape) as spool:
            if source == "gmd":
                workers = workers or os.cpu_count() or 1
                built = _build_from_gmd(gmd_dir, converter, workers, progress, spool)
            else:
                built = _build_from_tfds(split, data_dir, converter, data_dir is None, progress)
            for name, (windows, meta, summary) in built.items():
                save_split(cache_dir / f"{stem}_{name}", windows, meta, summary, window_shape)
        cached = load_split(path)
    return cached


# --- the cache on disk: one folder per split, its windows one memory-mappable .npy ------------


class WindowFile:
    """A float32 .npy of windows [n, steps, 27] written a few windows at a time, so that memory
    holds no more than one append: its header, which holds n, is written when it is closed.

    Use as a context manager; append() returns the rows an append took, (start, stop).
    """

    def __init__(self, path: Path, window_shape: tuple[int, ...]):
        self.path, self.window_shape, self.count = Path(path), tuple(window_shape), 0
        self.file = open(self.path, "wb")
        self.file.seek(NPY_HEADER_BYTES)

    def append(self, windows: np.ndarray) -> tuple[int, int]:
        windows = np.ascontiguousarray(windows, "<f4")
        if windows.shape[1:] != self.window_shape:
            raise ValueError(f"want windows (n, {self.window_shape}), got {windows.shape}")
        self.file.write(windows.tobytes())
        start, self.count = self.count, self.count + len(windows)
        return start, self.count

    def __enter__(self) -> WindowFile:
        return self

    def __exit__(self, *failed) -> None:
        if not failed[0]:
            self.file.seek(0)
            shape = (self.count, *self.window_shape)
            d = {"descr": "<f4", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(self.file, d)
            if self.file.tell() != NPY_HEADER_BYTES:  # numpy pads such headers to 128 bytes
                raise AssertionError(f"npy header of {self.file.tell()} bytes for {shape}")
        self.file.close()


class WindowSpool:
    """Every build job's windows, appended to one temporary .npy in job order as the results come
    in, so that a build holds one file's windows at a time; removed when the build ends."""

    def __init__(self, path: Path, window_shape: tuple[int, ...]):
        self.path, self.window_shape = Path(path), tuple(window_shape)

    def __enter__(self) -> WindowSpool:
        return self

    def __exit__(self, *failed) -> None:
        self.path.unlink(missing_ok=True)

    def take(self, results: Iterable[dict]) -> list[dict]:
        """The results, each one's "outputs" written here and replaced by its "rows" (start,
        stop)."""
        kept = []
        with WindowFile(self.path, self.window_shape) as spool:
            for result in results:
                if "outputs" in result:
                    result["rows"] = spool.append(result.pop("outputs"))
                kept.append(result)
        return kept

    def windows(self, ranges: list[tuple[int, int]]) -> Iterator[np.ndarray]:
        """The windows of these (start, stop) rows, a range at a time, once take() is done.

        Read, not memory-mapped: the pages of a map stay counted in the process's memory."""
        window = int(np.prod(self.window_shape))
        with open(self.path, "rb") as file:
            for start, stop in ranges:
                file.seek(NPY_HEADER_BYTES + 4 * window * start)
                values = np.fromfile(file, "<f4", (stop - start) * window)
                yield values.reshape(stop - start, *self.window_shape)


def read_windows(path: Path) -> np.ndarray:
    """A .npy of windows, memory-mapped (an empty one, which cannot be mapped, read)."""
    with open(path, "rb") as file:
        np.lib.format.read_magic(file)
        shape, _, _ = np.lib.format.read_array_header_1_0(file)
    if not shape[0]:
        return np.load(path)
    return np.load(path, mmap_mode="r")


def read_rows(windows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """windows[rows], a new array; from a cache's map, read from its file instead.

    Reading rows through the map would make them part of the process's resident memory, and far
    more than them: the kernel maps the whole large page-cache folio (up to 2 MB) a 6.9 kB
    window sits in, so a shuffled batch of 512 windows mapped about 700 MB and a pass the whole
    file (measured on Linux 6.18, docs/several_machines.md). Read with positional reads, a batch
    costs its own bytes. A slice or view of the map is indexed as any array.
    """
    rows = np.asarray(rows)
    if not _whole_file_map(windows):
        return np.asarray(windows[rows])
    picked = np.empty((len(rows), *windows.shape[1:]), windows.dtype)
    row_bytes = picked[0].nbytes if len(rows) else 0
    with open(windows.filename, "rb", buffering=0) as file:
        for i, row in enumerate(rows):
            file.seek(windows.offset + int(row) * row_bytes)
            if file.readinto(picked[i]) != row_bytes:
                raise OSError(f"{windows.filename} is shorter than its {len(windows):,} windows")
    return picked


def _whole_file_map(windows) -> bool:
    """An array mapping all of its file's data (np.load(mmap_mode=...)), not a slice of one."""
    if not isinstance(windows, np.memmap) or not windows.filename or not windows.flags.c_contiguous:
        return False
    return windows.ndim > 0 and windows.offset + windows.nbytes == os.path.getsize(windows.filename)


def training_rows(inputs, targets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inputs[rows], targets[rows]): the targets read once (read_rows), the inputs derived from
    them where they are EncoderInputs of the targets."""
    picked = read_rows(targets, rows)
    if isinstance(inputs, EncoderInputs) and inputs.windows is targets:
        return inputs.of_rows(rows, picked), picked
    return read_rows(inputs, rows), picked


def checksum(path: Path) -> str:
    """sha256 of a file: of all of it up to WHOLE_CHECKSUM_BYTES, else of its size and
    CHECKSUM_SAMPLES blocks spread over it (hashing gigabytes at every load would take longer than
    many training steps; the size, checked too, catches a copy cut short)."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        if size <= WHOLE_CHECKSUM_BYTES:
            while block := file.read(CHECKSUM_BLOCK_BYTES):
                digest.update(block)
        else:
            digest.update(str(size).encode())
            for offset in np.linspace(0, size - CHECKSUM_SAMPLE_BYTES, CHECKSUM_SAMPLES):
                file.seek(int(offset))
                digest.update(file.read(CHECKSUM_SAMPLE_BYTES))
    return digest.hexdigest()


def save_split(
    folder: Path,
    windows: Iterable[np.ndarray],
    meta: Iterable[tuple],
    summary: dict,
    window_shape: tuple[int, ...],
) -> None:
    """Caches one split as a folder: outputs.npy (float32 [n, steps, 27], memory-mappable),
    meta.csv (META_COLUMNS, a row per window), summary.json, and manifest.json (the format, the
    window count, each file's size and checksum) written last.

    The windows are written a chunk at a time; the folder is built under a name of its own
    (two notebooks or test workers building one cache never share a file) and renamed into place
    whole, so a build cut short leaves no folder that loads. Where another process put the folder
    there first, its copy stays.
    """
    partial = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with WindowFile(partial / OUTPUTS_FILE, window_shape) as outputs:
            for chunk in windows:
                outputs.append(chunk)
        with open(partial / META_FILE, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(META_COLUMNS)
            writer.writerows(meta)
        (partial / SUMMARY_FILE).write_text(json.dumps(summary))
        files = {
            name: {"bytes": (partial / name).stat().st_size, "sha256": checksum(partial / name)}
            for name in (OUTPUTS_FILE, META_FILE, SUMMARY_FILE)
        }
        manifest = {
            "format": CACHE_FORMAT,
            "windows": outputs.count,
            "window_shape": list(window_shape),
            "files": files,
        }
        (partial / MANIFEST_FILE).write_text(json.dumps(manifest))
        try:
            partial.replace(folder)
        except OSError:
            if not (folder / MANIFEST_FILE).exists():  # not a copy another process finished
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def cache_damage(folder: Path) -> str | None:
    """What is wrong with a split's cache folder (a copy cut short, a file changed, another
    format), or None when it is whole."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
    except (OSError, ValueError) as error:
        return f"no readable {MANIFEST_FILE}: {type(error).__name__}"
    if manifest.get("format") != CACHE_FORMAT:
        return f"cache format {manifest.get('format')}, this version reads {CACHE_FORMAT}"
    for name, expected in manifest["files"].items():
        path = folder / name
        if not path.exists():
            return f"{name} is missing"
        if path.stat().st_size != expected["bytes"]:
            return f"{name} has {path.stat().st_size:,} bytes, not {expected['bytes']:,}"
        if checksum(path) != expected["sha256"]:
            return f"{name} does not match its checksum"
    try:
        outputs = read_windows(folder / OUTPUTS_FILE)
    except (OSError, ValueError) as error:
        return f"{OUTPUTS_FILE}: {type(error).__name__}: {error}"
    if outputs.shape != (manifest["windows"], *manifest["window_shape"]):
        return f"{OUTPUTS_FILE} holds {outputs.shape}, the manifest says {manifest['windows']}"
    return None


def load_split(folder: Path) -> GrooveSplit | None:
    """The cached split, its windows memory-mapped, or None when there is none or it is damaged
    (a write cut short by a full disk or a Drive disconnect; said in one line and removed), so
    the caller builds it. A split cached as .npz by an earlier version is converted."""
    if not folder.exists():
        return _from_npz(folder)
    damage = cache_damage(folder)
    if damage:
        print(f"{folder} is unreadable ({damage}); rebuilding it")
        aside = folder.with_name(f".{folder.name}.{os.getpid()}.damaged")
        try:
            folder.replace(aside)
        except FileNotFoundError:  # another process found it first and moved it
            return None
        shutil.rmtree(aside)
        return None
    # Strings stay strings ("" included) and counts integers, as the build wrote them.
    types = {c: str for c in META_COLUMNS} | {"bpm": np.int64, "clip": np.int64}
    meta = pd.read_csv(folder / META_FILE, dtype=types, keep_default_na=False)
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    return GrooveSplit(read_windows(folder / OUTPUTS_FILE), meta, summary)


def _from_npz(folder: Path) -> GrooveSplit | None:
    """A split an earlier version cached as <folder>.npz, converted to a folder and loaded; None
    when there is none or it is unreadable (so it is built again)."""
    path = folder.with_name(f"{folder.name}.npz")
    if not path.exists():
        return None
    try:
        with np.load(path) as saved:
            meta = pd.DataFrame({c: saved[f"meta/{c}"] for c in META_COLUMNS})
            outputs, summary = saved["outputs"], json.loads(str(saved["summary"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        print(f"{path} is unreadable ({type(error).__name__}: {error}); rebuilding it")
        return None
    rows = meta.itertuples(index=False, name=None)
    save_split(folder, [outputs], rows, summary, outputs.shape[1:])
    return load_split(folder)


def load_groove_4bar(
    split: str,
    data_dir: str | os.PathLike | None = None,
    converter: GrooveConverter | None = None,
    cache_dir: str | os.PathLike | None = None,
    **kwargs,
) -> np.ndarray:
    """Converter outputs float32 [n, 64, 27] of one split; see load_groove_4bar_split."""
    return load_groove_4bar_split(split, data_dir, converter, cache_dir, **kwargs).outputs


def groove_4bar_summary(
    data_dir: str | os.PathLike | None = None,
    converter: GrooveConverter | None = None,
    cache_dir: str | os.PathLike | None = None,
    **kwargs,
) -> pd.DataFrame:
    """One row per split: performances, clips, windows kept and every reason for a drop."""
    rows = [
        load_groove_4bar_split(split, data_dir, converter, cache_dir, **kwargs).summary
        for split in constants.GMD_SPLITS
    ]
    summary = pd.DataFrame(rows).set_index("split")
    counts = [c for c in summary.columns if c != "skipped pitches"]
    summary[counts] = summary[counts].fillna(0).astype(int)
    return summary
