"""Tests for helpers/data.py: GMD location, TFDS-identical clips, the cached split arrays,
bad input."""

import json
import shutil
import sys

import mido
import note_seq
import numpy as np
import pandas as pd
import pytest

from helpers import constants, converter, data, gmd
from helpers.config import ConverterConfig
from helpers.converter import GrooveConverter, encoder_inputs

QUARTER = 480  # GMD's ticks per quarter


def _write_midi(path, notes, tempos=((0, 120),), numerator=4):
    """A drum MIDI from (tick, pitch, velocity) notes, 60 ticks long, and (tick, qpm) tempos."""
    track = mido.MidiTrack()
    events = [
        (tick, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(qpm))) for tick, qpm in tempos
    ]
    events.append((0, mido.MetaMessage("time_signature", numerator=numerator, denominator=4)))
    for tick, pitch, velocity in notes:
        events.append((tick, mido.Message("note_on", channel=9, note=pitch, velocity=velocity)))
        events.append((tick + 60, mido.Message("note_off", channel=9, note=pitch)))
    now = 0
    for tick, event in sorted(events, key=lambda e: e[0]):
        track.append(event.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=QUARTER)
    midi.tracks.append(track)
    midi.save(path)


def _groove_notes(bars, pitches=(36, 38, 42)):
    """Eighth notes cycling through `pitches`, slightly off the grid, over `bars` 4/4 bars."""
    notes = range(8 * bars)
    return [(i * 240 + (i % 5) * 7, pitches[i % len(pitches)], 40 + i % 80) for i in notes]


@pytest.fixture
def tiny_gmd(tmp_path):
    """A GMD-shaped folder: good, corrupt, empty, 3/4, tempo change and unknown-pitch files."""
    rows = []

    def add(name, split="train", time_signature="4-4", bpm=120):
        rows.append(
            dict(
                drummer="drummer1",
                session="drummer1/session1",
                id=f"drummer1/session1/{name}",
                style="rock",
                bpm=bpm,
                beat_type="beat",
                time_signature=time_signature,
                midi_filename=f"{name}.mid",
                audio_filename="",
                duration=0.0,
                split=split,
            )
        )
        return tmp_path / f"{name}.mid"

    _write_midi(add("a_good"), _groove_notes(6))
    _write_midi(add("b_good", split="test"), _groove_notes(5))
    add("c_corrupt").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    add("d_empty").write_bytes(b"")
    _write_midi(add("e_waltz", time_signature="3-4"), _groove_notes(6), numerator=3)
    _write_midi(add("f_tempo"), _groove_notes(8), tempos=((0, 120), (4 * 4 * QUARTER, 100)))
    _write_midi(add("g_unknown"), _groove_notes(5, pitches=(36, 35, 42)))
    pd.DataFrame(rows).to_csv(tmp_path / "info.csv", index=False)
    return tmp_path


def _reference_clips(midi, bpm, numerator):
    return [
        gmd.Clip.from_note_sequence(note_seq.midi_to_note_sequence(clip))
        for clip in gmd.tfds_clip_midis(midi, bpm, numerator)
    ]


def _assert_same_clips(fast, reference):
    assert len(fast) == len(reference)
    for mine, ref in zip(fast, reference):
        for field in ("start_times", "end_times", "pitches", "velocities"):
            np.testing.assert_array_equal(getattr(mine, field), getattr(ref, field))
        assert mine.tempos == ref.tempos
        assert mine.time_signatures == ref.time_signatures


@pytest.mark.parity
def test_tfds_clip_windows_parity_tfds4bar(parity_dir, gmd_dir):
    info = data.read_info(gmd_dir).set_index("midi_filename")
    files = sorted((parity_dir / "tfds4bar").glob("*.npz"))
    assert files
    for path in files:
        ref = np.load(path)
        name = path.stem.replace("__", "/") + ".mid"
        row = info.loc[name]
        numerator = int(row.time_signature.split("-")[0])
        midi = (gmd_dir / name).read_bytes()
        outputs, clips, _, _ = data.tfds_clip_windows(midi, row.bpm, numerator)
        np.testing.assert_array_equal(outputs, ref["outputs"], err_msg=path.name)
        np.testing.assert_array_equal(encoder_inputs(outputs, ConverterConfig()), ref["inputs"])
        np.testing.assert_array_equal(np.full(len(outputs), 64), ref["lengths"])
        np.testing.assert_array_equal(clips, ref["window_start_bar"])


@pytest.mark.parity
def test_performance_clips_equal_the_reference_route(gmd_dir):
    info = data.read_info(gmd_dir)
    # GMD's only two-tempo performance with a time signature repeat, and an ordinary one.
    names = ["drummer10/session1/9_jazz-swing_110_beat_4-4.mid", info.midi_filename.iloc[500]]
    for name in names:
        row = info.set_index("midi_filename").loc[name]
        midi = (gmd_dir / name).read_bytes()
        numerator = int(row.time_signature.split("-")[0])
        fast = list(gmd.Performance(midi).clips(row.bpm, numerator))
        _assert_same_clips(fast, _reference_clips(midi, row.bpm, numerator))


def test_performance_clips_equal_the_reference_route_on_a_tempo_change(tiny_gmd):
    midi = (tiny_gmd / "f_tempo.mid").read_bytes()
    fast = list(gmd.Performance(midi).clips(120, 4))
    _assert_same_clips(fast, _reference_clips(midi, 120, 4))
    assert len({len(c.tempos) for c in fast}) == 2  # some clips span the change


@pytest.mark.parity
def test_load_groove_4bar_split_counts(gmd_dir):
    """Uses <repo>/outputs/cache: one cold build (< 2 min) per fresh checkout."""
    expected = {"train": (17261, 15591), "validation": (2121, 1929), "test": (2033, 1901)}
    summary = data.groove_4bar_summary(gmd_dir, progress=False)
    for split, (n_clips, windows) in expected.items():
        assert (summary.loc[split, "clips"], summary.loc[split, "windows"]) == (n_clips, windows)
        outputs = data.load_groove_4bar(split, gmd_dir)
        assert outputs.shape == (windows, 64, 27) and outputs.dtype == np.float32
    dropped = summary[[converter.NO_NOTES, converter.SHORTER_THAN_WINDOW, converter.NOT_4_4]]
    assert dropped.sum().tolist() == [1182, 85, 727]  # spec §7


@pytest.mark.parity
def test_load_groove_4bar_split_2bar_counts(gmd_dir):
    """TFDS's groove/2bar-midionly cut from GMD; one cold cache build (< 2 min) per checkout."""
    # Clips: TFDS's catalog. Windows: what this route first kept (a change means the cut or the
    # converter changed).
    expected = {"train": (18163, 16389), "validation": (2252, 2039), "test": (2204, 2064)}
    two_bars = GrooveConverter(split_bars=2)
    summary = data.groove_4bar_summary(gmd_dir, two_bars, progress=False)
    for split, (n_clips, windows) in expected.items():
        assert (summary.loc[split, "clips"], summary.loc[split, "windows"]) == (n_clips, windows)
    outputs = data.load_groove_4bar("test", gmd_dir, two_bars)
    assert outputs.shape == (2064, 32, 27) and outputs.dtype == np.float32


@pytest.mark.parity
@pytest.mark.parametrize("bars", [4, 2])
def test_load_groove_4bar_split_tfds_route_matches(gmd_dir, bars):
    tfds_dir = gmd_dir.parent / "tfds"
    if not (tfds_dir / "groove" / f"{bars}bar-midionly").exists():
        pytest.skip(f"no TFDS build of groove/{bars}bar-midionly at {tfds_dir}")
    if data.tfds_unavailable():
        pytest.skip(data.tfds_unavailable())
    cut = GrooveConverter(split_bars=bars)
    gmd = data.load_groove_4bar_split("test", gmd_dir, cut, progress=False)
    via_tfds = data.load_groove_4bar_split("test", tfds_dir, cut, source="tfds", progress=False)
    np.testing.assert_array_equal(via_tfds.outputs, gmd.outputs)
    np.testing.assert_array_equal(via_tfds.meta["clip"], gmd.meta["clip"])
    np.testing.assert_array_equal(via_tfds.meta["bpm"], gmd.meta["bpm"])


def test_tfds_route_where_tfds_does_not_import(tiny_gmd, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import raises ImportError
    assert "tensorflow_datasets does not import" in data.tfds_unavailable()
    with pytest.raises(ImportError, match="source='gmd'") as error:
        data.load_groove_4bar_split("test", tmp_path, cache_dir=tmp_path, source="tfds")
    assert "tensorflow_datasets does not import" in str(error.value)


def test_load_groove_4bar_split_counts_bad_input(tiny_gmd, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    train = data.load_groove_4bar_split(
        "train", tiny_gmd, cache_dir=cache, workers=1, progress=False
    )
    summary = train.summary
    assert summary["performances"] == 6 and summary[data.CORRUPT_FILE] == 2
    assert summary[converter.NOT_4_4] == 5  # every 3/4 clip: 12 s / 1.5 s bars = 8 bars
    assert summary[converter.MULTIPLE_TEMPOS] >= 1
    assert summary["skipped notes"] > 0 and "35" in summary["skipped pitches"]
    assert len(train.outputs) == summary["windows"] == len(train.meta)
    assert set(train.meta.midi_filename) == {"a_good.mid", "f_tempo.mid", "g_unknown.mid"}
    # The unknown pitch is skipped, the rest of its clips kept.
    snare = train.outputs[train.meta.midi_filename == "g_unknown.mid"][..., 1]
    assert not snare.any()


def test_load_groove_4bar_reloads_from_cache(tiny_gmd, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    first = data.load_groove_4bar("test", tiny_gmd, cache_dir=cache, workers=1, progress=False)
    assert first.shape == (2, 64, 27)  # 5 bars: clips 0 and 1
    midi = tiny_gmd / "b_good.mid"
    midi.write_bytes(bytes(midi.stat().st_size))  # a warm load reads no MIDI, only their sizes
    again = data.load_groove_4bar("test", tiny_gmd, cache_dir=cache)
    np.testing.assert_array_equal(again, first)
    # Another drum map is another cache entry.
    infer = GrooveConverter()
    infer.set_mode("infer")
    rebuilt = data.load_groove_4bar_split(
        "test", tiny_gmd, converter=infer, cache_dir=cache, workers=1, progress=False
    )
    assert rebuilt.summary[data.CORRUPT_FILE] == 1 and len(rebuilt.outputs) == 0


def test_load_groove_4bar_cache_knows_which_gmd_it_holds(tiny_gmd, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    first = data.load_groove_4bar("test", tiny_gmd, cache_dir=cache, workers=1, progress=False)
    # The same dataset elsewhere (a new machine's own copy) finds the cache.
    copy = tmp_path_factory.mktemp("copy") / "groove"
    shutil.copytree(tiny_gmd, copy)
    np.testing.assert_array_equal(data.load_groove_4bar("test", copy, cache_dir=cache), first)
    assert len(list(cache.glob("*_*"))) == 3
    # A file rewritten to another length is built again, as is an edited info.csv.
    _write_midi(copy / "b_good.mid", _groove_notes(6))
    longer = data.load_groove_4bar("test", copy, cache_dir=cache, workers=1, progress=False)
    assert longer.shape == (3, 64, 27)
    info = pd.read_csv(copy / "info.csv")
    info[info.midi_filename != "b_good.mid"].to_csv(copy / "info.csv", index=False)
    assert len(data.load_groove_4bar("test", copy, cache_dir=cache, progress=False)) == 0
    assert len(list(cache.glob("*_*"))) == 9
    np.testing.assert_array_equal(data.load_groove_4bar("test", tiny_gmd, cache_dir=cache), first)


def test_load_groove_4bar_rebuilds_an_unreadable_cache(tiny_gmd, tmp_path_factory, capsys):
    cache = tmp_path_factory.mktemp("cache")
    # A copy: the file is damaged in place below, under the map (the project never writes so).
    first = np.array(
        data.load_groove_4bar("test", tiny_gmd, cache_dir=cache, workers=1, progress=False)
    )
    (folder,) = cache.glob("*_test")
    outputs = folder / data.OUTPUTS_FILE
    whole = outputs.read_bytes()
    for damaged, said in [
        (whole[:1000], "has 1,000 bytes"),  # a copy cut short
        (whole[:-1] + bytes([whole[-1] ^ 1]), "does not match its checksum"),  # a bit flipped
    ]:
        outputs.write_bytes(damaged)
        again = data.load_groove_4bar("test", tiny_gmd, cache_dir=cache, workers=1, progress=False)
        np.testing.assert_array_equal(again, first)
        line = capsys.readouterr().out
        assert "unreadable" in line and said in line, line
        np.testing.assert_array_equal(
            data.load_groove_4bar("test", tiny_gmd, cache_dir=cache), first
        )
        whole = outputs.read_bytes()
    # A folder that a build did not finish (no manifest) does not load either.
    (folder / data.MANIFEST_FILE).unlink()
    again = data.load_groove_4bar("test", tiny_gmd, cache_dir=cache, workers=1, progress=False)
    np.testing.assert_array_equal(again, first)
    assert f"no readable {data.MANIFEST_FILE}" in capsys.readouterr().out


def test_load_groove_4bar_split_reads_its_cache_memory_mapped(tiny_gmd, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    built = data.load_groove_4bar_split(
        "train", tiny_gmd, cache_dir=cache, workers=2, progress=False
    )
    again = data.load_groove_4bar_split("train", tiny_gmd, cache_dir=cache)
    assert isinstance(again.outputs, np.memmap) and not again.outputs.flags.writeable
    np.testing.assert_array_equal(again.outputs, built.outputs)
    pd.testing.assert_frame_equal(again.meta, built.meta)
    assert again.summary == built.summary
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no spool or partial left


def test_load_groove_4bar_converts_an_npz_cache_of_an_earlier_version(tiny_gmd, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    first = data.load_groove_4bar_split(
        "test", tiny_gmd, cache_dir=cache, workers=1, progress=False
    )
    (folder,) = cache.glob("*_test")
    columns = {f"meta/{c}": np.asarray(first.meta[c].tolist()) for c in data.META_COLUMNS}
    outputs = np.array(first.outputs) + 1  # the npz's windows, told apart from a rebuild's
    summary = json.dumps(first.summary)
    np.savez(folder.with_name(f"{folder.name}.npz"), outputs=outputs, summary=summary, **columns)
    shutil.rmtree(folder)
    converted = data.load_groove_4bar_split("test", tiny_gmd, cache_dir=cache)
    np.testing.assert_array_equal(converted.outputs, outputs)
    assert list(converted.meta.midi_filename) == list(first.meta.midi_filename)
    assert converted.summary == first.summary and folder.is_dir()


def test_load_groove_4bar_split_rejects_unknown_split(tiny_gmd):
    with pytest.raises(ValueError):
        data.load_groove_4bar("dev", tiny_gmd)


def test_find_gmd_folder_and_missing(tiny_gmd, tmp_path, monkeypatch):
    assert gmd.find_gmd(tiny_gmd) == tiny_gmd
    monkeypatch.setattr(gmd, "USER_CACHE_DIR", tmp_path / "user-cache")
    monkeypatch.delenv("GROOVE_DATA_DIR", raising=False)
    with pytest.raises(gmd.DatasetNotFoundError):
        gmd.find_gmd(download=False)
    # Not given a folder, the library reads GROOVE_DATA_DIR as the command lines do.
    monkeypatch.setenv("GROOVE_DATA_DIR", str(tiny_gmd))
    assert gmd.find_gmd(download=False) == tiny_gmd
    windows = data.load_groove_4bar("test", cache_dir=tmp_path / "cache", progress=False)
    assert len(windows) > 0
    with pytest.raises(gmd.DatasetNotFoundError) as error:
        gmd.find_gmd(tmp_path / "nowhere")  # no fallback from an explicit path
    assert "nowhere" in str(error.value) and constants.GMD_ZIP_NAME in str(error.value)


def test_find_gmd_extracts_the_zip_once(tiny_gmd, tmp_path, monkeypatch):
    import zipfile

    monkeypatch.setattr(gmd, "USER_CACHE_DIR", tmp_path / "user-cache")
    zip_dir = tmp_path / "zips"
    zip_dir.mkdir()
    with zipfile.ZipFile(zip_dir / constants.GMD_ZIP_NAME, "w") as archive:
        for path in tiny_gmd.iterdir():
            archive.write(path, f"groove/{path.name}")
    found = gmd.find_gmd(zip_dir)
    assert (found / "info.csv").is_file() and str(found).startswith(str(tmp_path / "user-cache"))
    assert gmd.find_gmd(zip_dir / constants.GMD_ZIP_NAME) == found


def test_performance_windows_whole_file(tiny_gmd):
    outputs, start_bars = data.performance_windows(tiny_gmd / "a_good.mid")
    assert outputs.shape == (1, 64, 27)  # 6 bars: one window, the remainder dropped
    np.testing.assert_array_equal(start_bars, [0])


def test_a_cache_larger_than_a_whole_hash_is_checked_by_sample(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "WHOLE_CHECKSUM_BYTES", 100_000)  # as if gigabytes: 442 kB here
    windows = np.random.default_rng(0).random((64, 64, 27), dtype=np.float32)
    data.save_split(tmp_path / "split", [windows[:10], windows[10:]], [], {}, (64, 27))
    np.testing.assert_array_equal(np.array(data.load_split(tmp_path / "split").outputs), windows)
    outputs = tmp_path / "split" / data.OUTPUTS_FILE
    changed = bytearray(outputs.read_bytes())
    changed[-1] ^= 1
    outputs.write_bytes(changed)
    assert (
        data.cache_damage(tmp_path / "split") == f"{data.OUTPUTS_FILE} does not match its checksum"
    )


def test_read_rows_of_a_cache_map_are_its_rows(tmp_path):
    windows = np.random.default_rng(0).random((50, 64, 27), dtype=np.float32)
    data.save_split(tmp_path / "split", [windows], [], {}, (64, 27))
    mapped = data.load_split(tmp_path / "split").outputs
    rows = np.array([49, 0, 7, 7, 23])
    np.testing.assert_array_equal(data.read_rows(mapped, rows), windows[rows])
    np.testing.assert_array_equal(data.read_rows(mapped[10:], rows[2:]), windows[10:][rows[2:]])
    np.testing.assert_array_equal(data.read_rows(windows, rows), windows[rows])
    assert data.read_rows(mapped, np.array([], int)).shape == (0, 64, 27)
