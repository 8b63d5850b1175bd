"""The Groove MIDI Dataset's files: found on disk or downloaded once (SHA-256 checked), and each
performance cut into TFDS's groove/Nbar-midionly clips without writing MIDI (spec §2.5)."""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import http.client
import io
import os
import shutil
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import note_seq
import numpy as np
import pretty_midi

from helpers import constants

USER_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "groovae"
COMPLETE = ".complete"  # written last into an extraction, so a partial one is never used


class DatasetNotFoundError(FileNotFoundError):
    """GMD is not where we looked; the message lists every place and what was expected."""


class DownloadError(OSError):
    """The download failed, was cut short or does not match its checksum; nothing was kept."""


def find_gmd(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    url: str = constants.GMD_ZIP_URL,
    sha256: str = constants.GMD_ZIP_SHA256,
) -> Path:
    """Returns a folder holding GMD's info.csv and MIDI files.

    Looks only at `data_dir` when given, or else at $GROOVE_DATA_DIR when set (a folder with
    info.csv, or a folder or path holding groove-v1.0.0-midionly.zip, extracted once into the
    user cache); otherwise at the user cache (~/.cache/groovae), and finally downloads the zip
    from `url` there, checking it against `sha256`. The command lines' --data-dir is `data_dir`.

    Raises:
      DatasetNotFoundError: nothing found, and no download allowed or the download failed (the
        message says why; a failed download leaves nothing behind).
    """
    looked = []
    if data_dir is None:
        data_dir = os.environ.get(constants.DATA_DIR_ENV) or None
    # An explicit place that is wrong is an error, not a fallback.
    candidates = [Path(data_dir).expanduser() if data_dir is not None else USER_CACHE_DIR]
    for candidate in candidates:
        found = _gmd_in(candidate)
        if found is not None:
            return found
        looked.append(f"{candidate} (no info.csv, no {constants.GMD_ZIP_NAME})")
    if data_dir is None and download:
        try:
            zip_path = USER_CACHE_DIR / constants.GMD_ZIP_NAME
            download_file(url, zip_path, sha256)
            return _extract(zip_path)
        except DownloadError as error:
            looked.append(f"{url} (download failed: {error})")
    raise DatasetNotFoundError(
        "Groove MIDI Dataset not found. Looked at:\n  "
        + "\n  ".join(looked)
        + "\nPass data_dir= a folder with info.csv and drummer*/ MIDI files, or the official "
        f"{constants.GMD_ZIP_NAME}, or set {constants.DATA_DIR_ENV}."
    )


def _gmd_in(path: Path) -> Path | None:
    if (path / "info.csv").is_file():
        return path
    if (path / "groove" / "info.csv").is_file():
        return path / "groove"
    zip_path = path / constants.GMD_ZIP_NAME if path.is_dir() else path
    if zip_path.is_file() and zip_path.suffix == ".zip":
        return _extract(zip_path)
    return None


def gmd_identity(gmd_dir: str | os.PathLike) -> str:
    """A digest of GMD's info.csv and the size of each MIDI file it lists.

    The same for the same dataset wherever it lies (so a new Colab machine's own copy finds the
    windows cached on Drive), another for a subset, an edited index, or a file added, removed or
    rewritten to another length, whose windows are then built and cached apart.
    """
    folder = Path(gmd_dir)
    index = (folder / "info.csv").read_bytes()
    digest = hashlib.sha256(index)
    for row in csv.DictReader(io.StringIO(index.decode("utf-8", errors="replace"))):
        path = folder / (row.get("midi_filename") or "")
        digest.update(f"{path.stat().st_size if path.is_file() else -1}\n".encode())
    return digest.hexdigest()[:16]


def _extract(zip_path: Path) -> Path:
    """Unzips once into the user cache (data folders may be read-only); redoes a partial one."""
    digest = hashlib.sha256(str(zip_path.resolve()).encode()).hexdigest()[:12]
    target = USER_CACHE_DIR / f"extracted-{digest}"
    if not (target / COMPLETE).is_file():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(partial)
        except (zipfile.BadZipFile, EOFError) as error:  # cut short, or not a zip at all
            shutil.rmtree(partial, ignore_errors=True)
            raise DatasetNotFoundError(
                f"{zip_path} cannot be unzipped ({error}); give GMD's {constants.GMD_ZIP_NAME} "
                "whole (download it again) or its unzipped folder"
            ) from None
        if not (partial / "groove" / "info.csv").is_file():
            shutil.rmtree(partial)
            raise DatasetNotFoundError(f"{zip_path} holds no groove/info.csv: not GMD's zip")
        (partial / COMPLETE).touch()
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target / "groove"


def download_file(url: str, path: Path, sha256: str | None = None) -> str:
    """Downloads `url` to `path` (whole, or not at all), checking its SHA-256 when given;
    returns the SHA-256 of what was kept.

    Raises:
      DownloadError: a network error, a download shorter than announced, or a checksum that
        differs; the partial file is removed, so nothing is left at or beside `path`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            announced = response.headers.get("Content-Length")
            size = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        if announced is not None and size != int(announced):
            raise DownloadError(f"truncated: got {size} of {announced} bytes")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DownloadError(f"sha256 is {digest.hexdigest()}, expected {sha256}")
    except (OSError, http.client.HTTPException) as error:  # IncompleteRead: cut short
        partial.unlink(missing_ok=True)
        if isinstance(error, DownloadError):
            raise
        raise DownloadError(f"{type(error).__name__}: {error}") from error
    except BaseException:  # an interrupt leaves no partial file either
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
    return digest.hexdigest()


CLIP_BARS = 4  # groove/4bar-midionly; groove/2bar-midionly cuts 2 bars at the same 1-bar hop


def clip_bounds(bpm: int, numerator: int, end_time: float, clip_bars: int = CLIP_BARS):
    """TFDS's clip times: [(t0, t1)] per clip and the new length, same float operations."""
    bar = 60 / bpm * numerator
    n_bars = int(round(end_time / bar))
    bounds = [(i * bar, (i + clip_bars) * bar) for i in range(n_bars - clip_bars + 1)]
    return bounds, clip_bars * bar


def tfds_clip_midis(midi: bytes, bpm: int, numerator: int) -> list[bytes]:
    """The reference route: TFDS's own cut, one pretty_midi round trip per clip (slow)."""
    pm = pretty_midi.PrettyMIDI(io.BytesIO(midi))
    bounds, length = clip_bounds(bpm, numerator, pm.get_end_time())
    clips = []
    for t0, t1 in bounds:
        clip = copy.deepcopy(pm)
        clip.adjust_times([t0, t1], [0, length])
        clip.time_signature_changes = pm.time_signature_changes
        buffer = io.BytesIO()
        clip.write(buffer)
        clips.append(buffer.getvalue())
    return clips


@dataclasses.dataclass
class Clip:
    """One clip as note-seq reads it back: notes in sequence order, tempos, time signatures."""

    start_times: np.ndarray  # float64 [n]
    end_times: np.ndarray  # float64 [n]
    pitches: np.ndarray  # int64 [n]
    velocities: np.ndarray  # int64 [n]
    tempos: list  # [(time, qpm)]
    time_signatures: list  # [(time, numerator, denominator)]

    @classmethod
    def from_note_sequence(cls, ns: note_seq.NoteSequence) -> Clip:
        return cls(
            np.array([n.start_time for n in ns.notes], np.float64),
            np.array([n.end_time for n in ns.notes], np.float64),
            np.array([n.pitch for n in ns.notes], np.int64),
            np.array([n.velocity for n in ns.notes], np.int64),
            [(t.time, t.qpm) for t in ns.tempos],
            [(ts.time, ts.numerator, ts.denominator) for ts in ns.time_signatures],
        )


def _tick_times(tick_scales: list, max_tick: int) -> np.ndarray:
    """pretty_midi's tick -> seconds table for (tick, seconds per tick) segments."""
    max_tick = max(max_tick, max(tick for tick, _ in tick_scales))
    times = np.zeros(max_tick + 1)
    last_end = 0
    for (start, scale), (end, _) in zip(tick_scales[:-1], tick_scales[1:]):
        times[start : end + 1] = last_end + scale * np.arange(end - start + 1)
        last_end = times[end]
    start, scale = tick_scales[-1]
    times[start:] = last_end + scale * np.arange(max_tick + 1 - start)
    return times


def _ticks(tick_times: np.ndarray, last_scale: float, seconds) -> np.ndarray:
    """pretty_midi's seconds -> tick: nearest table entry (ties up), extrapolated past the end."""
    seconds = np.asarray(seconds, np.float64)
    n = len(tick_times)
    tick = np.searchsorted(tick_times, seconds, side="left")
    inside = np.minimum(tick, n - 1)
    before = np.maximum(tick - 1, 0)
    closer_before = (tick > 0) & (
        np.abs(seconds - tick_times[before]) < np.abs(seconds - tick_times[inside])
    )
    nearest = np.where(closer_before, tick - 1, tick)
    beyond = np.rint((n - 1) + (seconds - tick_times[n - 1]) / last_scale).astype(np.int64)
    return np.where(tick == n, beyond, nearest)


class Performance:
    """One GMD MIDI file parsed once, cut into TFDS clips without re-writing MIDI.

    Each clip reproduces, with the same float operations, what TFDS's adjust_times + write and
    note-seq's re-read give: the tick grid of the rescaled tempo, the tick -> seconds table of
    the tempo as written (whole microseconds), and pretty_midi's note pairing and order.
    Clips where same-pitch notes overlap on the new tick grid take the reference route.
    `drums_only` keeps only drum-channel tracks (GMD has no others; other files may).
    """

    def __init__(self, midi: bytes, drums_only: bool = False):
        self.midi = midi
        self.pm = pretty_midi.PrettyMIDI(io.BytesIO(midi))
        if drums_only:
            self.pm.instruments = [inst for inst in self.pm.instruments if inst.is_drum]
        self.resolution = self.pm.resolution
        self.tick_scales = list(self.pm._tick_scales)
        self.tick_times = self.pm._PrettyMIDI__tick_to_time
        self.end_time = self.pm.get_end_time()
        notes = [(k, n) for k, inst in enumerate(self.pm.instruments) for n in inst.notes]
        self.instrument = np.array([k for k, _ in notes], np.int64)
        self.starts = np.array([n.start for _, n in notes], np.float64)
        self.ends = np.array([n.end for _, n in notes], np.float64)
        self.pitches = np.array([n.pitch for _, n in notes], np.int64)
        self.velocities = np.array([n.velocity for _, n in notes], np.int64)
        self.time_signatures = [
            (ts.time, ts.numerator, ts.denominator) for ts in self.pm.time_signature_changes
        ]

    def clips(self, bpm: int, numerator: int, clip_bars: int = CLIP_BARS) -> Iterator[Clip]:
        bounds, length = clip_bounds(bpm, numerator, self.end_time, clip_bars)
        for t0, t1 in bounds:
            yield self._clip(t0, t1, length)

    def _rescaled_tempo(self, t0: float, t1: float, length: float) -> list:
        """adjust_times' new tick scales for mapping [t0, t1] onto [0, length]."""
        res, scales = self.resolution, self.tick_scales
        times = _tick_times(scales, int(_ticks(self.tick_times, scales[-1][1], t1)))
        q0, q1 = (times[_ticks(times, scales[-1][1], t)] for t in (t0, t1))
        change_times = [times[tick] for tick, _ in scales]
        tempi = [60.0 / (scale * res) for _, scale in scales]
        speed = (q1 - q0) / length
        k = 0
        while k + 1 < len(tempi) and q0 >= change_times[k + 1]:
            k += 1
        new_times, new_tempi = [q0], [tempi[k] * speed]
        while k + 1 < len(tempi) and q0 <= change_times[k + 1] and q1 > change_times[k + 1]:
            k += 1
            new_times.append(change_times[k])
            new_tempi.append(tempi[k] * speed)
        new_times = list(np.interp(new_times, [q0, q1], [0, length]))
        if new_times[0] == 0:
            last_tick, last_scale = 0, 60.0 / (new_tempi[0] * res)
            new_times, new_tempi = new_times[1:], new_tempi[1:]
        else:
            last_tick, last_scale = 0, 60.0 / (120.0 * res)
        rescaled, previous = [(last_tick, last_scale)], 0.0
        for when, tempo in zip(new_times, new_tempi):
            tick = last_tick + (when - previous) / last_scale
            scale = 60.0 / (tempo * res)
            if scale != last_scale:
                rescaled.append((int(round(tick)), scale))
                previous, last_tick, last_scale = when, tick, scale
        return rescaled

    def _clip(self, t0: float, t1: float, length: float) -> Clip:
        res = self.resolution
        keep = (self.starts >= t0) & (self.ends <= t1)
        on = np.interp(self.starts[keep], [t0, t1], [0, length])
        off = np.interp(self.ends[keep], [t0, t1], [0, length])
        on, off = (on > 0) * on, (off > 0) * off
        valid = off > on  # pretty_midi drops notes that end at or before their start
        on, off = on[valid], off[valid]
        instrument = self.instrument[keep][valid]
        pitches, velocities = self.pitches[keep][valid], self.velocities[keep][valid]

        written = self._rescaled_tempo(t0, t1, length)
        write_times = _tick_times(written, written[-1][0] + 1)
        on_tick = _ticks(write_times, written[-1][1], on)
        off_tick = _ticks(write_times, written[-1][1], off)
        ts_ticks = [
            int(_ticks(write_times, written[-1][1], when)) for when, _, _ in self.time_signatures
        ]
        time_signatures = [(tick,) + ts[1:] for tick, ts in zip(ts_ticks, self.time_signatures)]
        if not self.time_signatures or min(when for when, _, _ in self.time_signatures) > 0:
            time_signatures.insert(0, (0, 4, 4))
        time_signatures.sort(key=lambda ts: ts[0])

        # The file stores whole microseconds per quarter; the reader rebuilds its scales.
        read = [(0, 60.0 / (120.0 * res))]
        for tick, scale in written:
            read_scale = 60.0 / ((6e7 / int(6e7 / (60.0 / (scale * res)))) * res)
            if tick == 0:
                read = [(0, read_scale)]
            elif read_scale != read[-1][1]:
                read.append((tick, read_scale))
        last_tick = max([0, *on_tick, *off_tick, *ts_ticks, written[-1][0]])
        read_times = _tick_times(read, last_tick + 1)

        # Notes come back per instrument track, closed in (note-off tick, pitch) order.
        order = np.lexsort((pitches, off_tick, instrument))
        if not self._plain_pairing(instrument, pitches, on_tick, off_tick):
            return self._reference_clip(t0, t1, length)
        return Clip(
            start_times=read_times[on_tick[order]],
            end_times=read_times[off_tick[order]],
            pitches=pitches[order],
            velocities=velocities[order],
            tempos=[(read_times[tick], 60.0 / (scale * res)) for tick, scale in read],
            time_signatures=[(read_times[tick], n, d) for tick, n, d in time_signatures],
        )

    @staticmethod
    def _plain_pairing(instrument, pitches, on_tick, off_tick) -> bool:
        """True when every note-off closes exactly its own note-on on the written grid."""
        if (on_tick >= off_tick).any():
            return False
        order = np.lexsort((off_tick, on_tick, pitches, instrument))
        same_key = (instrument[order][1:] == instrument[order][:-1]) & (
            pitches[order][1:] == pitches[order][:-1]
        )
        return not (same_key & (on_tick[order][1:] < off_tick[order][:-1])).any()

    def _reference_clip(self, t0: float, t1: float, length: float) -> Clip:
        clip = copy.deepcopy(self.pm)
        clip.adjust_times([t0, t1], [0, length])
        clip.time_signature_changes = self.pm.time_signature_changes
        buffer = io.BytesIO()
        clip.write(buffer)
        return Clip.from_note_sequence(note_seq.midi_to_note_sequence(buffer.getvalue()))
