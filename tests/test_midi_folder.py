"""Tests for helpers/midi_folder.py: a folder of the user's MIDI files, good and bad, as windows."""

import io
import json
import shutil

import numpy as np
import pandas as pd
import pretty_midi
import pytest
from conftest import beat_notes, drum_sequence, write_groove_files, write_midi

from helpers import data, midi_folder
from helpers.constants import HITS, ROLAND_DRUM_PITCH_CLASSES

QPM = 100.0


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The kinds of write_groove_files, some in a subfolder, a .midi file and a stray text file."""
    root = tmp_path_factory.mktemp("my_drums")
    write_groove_files(root / "takes", QPM)
    write_midi(root / "more" / "eight.MIDI", drum_sequence(beat_notes(8, QPM), qpm=QPM))
    (root / "notes.txt").write_text("not MIDI")
    return root


@pytest.fixture(scope="module")
def splits(folder, tmp_path_factory):
    return midi_folder.load_midi_folder(
        folder, cache_dir=tmp_path_factory.mktemp("cache"), workers=2, progress=False
    )


def test_finds_mid_and_midi_files_recursively(folder):
    files = midi_folder.find_midi_files(folder)
    assert "more/eight.MIDI" in files and "takes/16_bars.mid" in files and len(files) == 10
    assert all("\\" not in f and not f.startswith("/") for f in files)


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_missing_or_empty_folder_is_one_clear_error(tmp_path, make):
    (tmp_path / "readme.txt").write_text("no MIDI here")
    with pytest.raises(midi_folder.MidiFolderError, match=f"{tmp_path}"):
        midi_folder.load_midi_folder(make(tmp_path), cache_dir=tmp_path / "cache")


def test_every_skipped_file_is_named_with_its_reason(splits):
    summary, skipped = midi_folder.folder_summary(splits)
    reasons = dict(zip(skipped.file, skipped.reason))
    assert set(reasons) == {
        "takes/corrupt.mid",
        "takes/empty.mid",
        "takes/waltz.mid",
        "takes/tempo_change.mid",
        "takes/1_bars.mid",
        "takes/2_bars.mid",
        "takes/melody.mid",
    }
    assert reasons["takes/corrupt.mid"].startswith("corrupt file (")
    assert reasons["takes/empty.mid"].startswith("corrupt file (")
    assert reasons["takes/waltz.mid"] == "not 4/4"
    assert reasons["takes/tempo_change.mid"] == "multiple tempos"
    assert reasons["takes/1_bars.mid"] == reasons["takes/2_bars.mid"] == midi_folder.TOO_SHORT
    assert reasons["takes/melody.mid"].startswith("no drum notes")
    assert summary["files"].sum() == 10 and summary["skipped files"].sum() == 7


def test_summary_text_names_every_skipped_file_in_full(splits):
    text = midi_folder.summary_text(splits)
    _, skipped = midi_folder.folder_summary(splits)
    for row in skipped.itertuples():
        assert any(row.file in line and row.reason in line for line in text.splitlines())
    assert text.splitlines()[0].split()[:4] == ["files", "skipped", "files", "clips"]


def test_windows_are_cut_with_a_one_bar_hop(splits):
    summary, _ = midi_folder.folder_summary(splits)
    # 16, 17 and 8 bars give 13, 14 and 5 clips of 4 bars, each a window.
    assert summary["clips"].sum() == summary["windows"].sum() == 13 + 14 + 5
    meta = pd.concat([s.meta for s in splits.values()])
    assert sorted(meta.groupby("midi_filename").clip.max()) == [4, 12, 13]
    assert set(meta.bpm) == {100}


def test_splits_follow_the_path_hash_until_a_split_is_empty(splits):
    # The hash puts all three files with windows in train; validation and test take one each.
    usable = ("takes/16_bars.mid", "takes/17_bars.mid", "more/eight.MIDI")
    assert {midi_folder.hash_split(f) for f in usable} == {"train"}
    moved = {split: grooves.summary["moved in"] for split, grooves in splits.items()}
    assert moved == {"train": [], "validation": ["more/eight.MIDI"], "test": ["takes/16_bars.mid"]}
    for split, grooves in splits.items():
        hashed = {f for f in usable if midi_folder.hash_split(f) == split}
        assert set(grooves.meta.midi_filename) == hashed - {
            *moved["validation"],
            *moved["test"],
        } | {*moved[split]}
        assert grooves.outputs.shape == (len(grooves.meta), 64, 27)
    line = midi_folder.split_line(splits)
    assert line == (
        "split chosen (files with windows): 1 train, 1 validation, 1 test; moved so that no "
        "split is without windows: more/eight.MIDI to validation, takes/16_bars.mid to test; "
        "lopsided: 14 training windows against 5 validation and 13 test; add grooves (4 bars or "
        "longer) so that training holds most windows, or name the long files 'train' in split.csv"
    )
    assert line in midi_folder.summary_text(splits).splitlines()


def test_hash_split_is_fixed_and_near_90_5_5():
    names = [f"drummer{i}/take{j}.mid" for i in range(20) for j in range(100)]
    counts = {s: 0 for s in ("train", "validation", "test")}
    for name in names:
        counts[midi_folder.hash_split(name)] += 1
    assert midi_folder.hash_split("a/b.mid") == midi_folder.hash_split("a/b.mid")
    assert 0.87 < counts["train"] / 2000 < 0.93 and 0.03 < counts["validation"] / 2000 < 0.07


def test_windows_match_the_gmd_route_clip_for_clip(folder, splits):
    """The same file through helpers.data's TFDS cut, its own tempo standing in for info.csv's."""
    name = "takes/16_bars.mid"
    (split,) = [k for k, s in splits.items() if name in set(s.meta.midi_filename)]
    mine = splits[split].outputs[np.asarray(splits[split].meta.midi_filename == name)]
    midi = (folder / name).read_bytes()
    qpm = pretty_midi.PrettyMIDI(io.BytesIO(midi)).get_tempo_changes()[1][0]  # 99.99999...
    outputs, _, _, _ = data.tfds_clip_windows(midi, qpm, 4)
    np.testing.assert_array_equal(mine, outputs)


def test_split_csv_overrides_the_hash(folder, tmp_path):
    copy = tmp_path / "drums"
    shutil.copytree(folder, copy)
    (copy / "split.csv").write_text(
        "midi_filename,split\ntakes/17_bars.mid,validation\n"
        "more/eight.MIDI,test\ntakes/16_bars.mid,train\n"
    )
    splits = midi_folder.load_midi_folder(copy, cache_dir=tmp_path / "cache", progress=False)
    assert set(splits["validation"].meta.midi_filename) == {"takes/17_bars.mid"}
    assert set(splits["test"].meta.midi_filename) == {"more/eight.MIDI"}
    assert len(splits["train"].outputs) == 13


@pytest.mark.parametrize(
    "csv, message",
    [
        ("file,split\na.mid,train\n", "needs the columns midi_filename"),
        ("midi_filename,split\ntakes/16_bars.mid,holdout\n", "split 'holdout'"),
        ("midi_filename,split\nnope.mid,train\n", "nope.mid, which is not in the folder"),
    ],
)
def test_bad_split_csv_is_named(folder, tmp_path, csv, message):
    copy = tmp_path / "drums"
    shutil.copytree(folder / "more", copy)
    (copy / "split.csv").write_text(csv.replace("takes/16_bars.mid", "eight.MIDI"))
    with pytest.raises(midi_folder.MidiFolderError, match=message.replace("takes/16_bars.mid", "")):
        midi_folder.load_midi_folder(copy, cache_dir=tmp_path / "cache", progress=False)


def test_gm_pitches_take_the_roland_classes_and_others_are_counted(tmp_path):
    gm = [36, 38, 37, 40, 42, 44, 46, 43, 45, 47, 48, 50, 49, 57, 51, 53]
    step = 60 / QPM / 4
    notes = [(p, 100, 4 * i * step, 4 * i * step + 0.1) for i, p in enumerate(gm)]  # a beat each
    # Off-map GM pitches on the 'e' of the first beats: in the first clip only.
    notes += [
        (p, 100, (4 * i + 1) * step, (4 * i + 1) * step + 0.1)
        for i, p in enumerate([35, 39, 39, 81])
    ]
    write_midi(tmp_path / "kit" / "kit.mid", drum_sequence(notes, qpm=QPM))
    (tmp_path / "kit" / "split.csv").write_text("midi_filename,split\nkit.mid,train\n")
    splits = midi_folder.load_midi_folder(
        tmp_path / "kit", cache_dir=tmp_path / "c", progress=False
    )
    (window,) = splits["train"].outputs
    roland = {p: c for c, pitches in enumerate(ROLAND_DRUM_PITCH_CLASSES) for p in pitches}
    expected = np.zeros((64, 9))
    for i, pitch in enumerate(gm):
        expected[4 * i, roland[pitch]] = 1
    np.testing.assert_array_equal(window[:, HITS], expected)
    assert json.loads(splits["train"].summary["skipped pitches"]) == {"35": 1, "39": 2, "81": 1}


def test_cache_is_used_until_a_file_changes(folder, tmp_path):
    copy = tmp_path / "drums"
    shutil.copytree(folder / "more", copy)
    cache = tmp_path / "cache"
    first = midi_folder.load_midi_folder(copy, cache_dir=cache, progress=False)
    cached = sorted(cache.iterdir())
    again = midi_folder.load_midi_folder(copy, cache_dir=cache, progress=False)
    assert sorted(cache.iterdir()) == cached
    np.testing.assert_array_equal(first["train"].outputs, again["train"].outputs)
    write_midi(copy / "eight.MIDI", drum_sequence(beat_notes(9, QPM), qpm=QPM))
    midi_folder.load_midi_folder(copy, cache_dir=cache, progress=False)
    assert len(list(cache.iterdir())) == 2 * len(cached)


def test_training_windows_lowers_a_batch_larger_than_the_train_split(splits, capsys):
    (train, validation), batch_size = midi_folder.training_windows(splits, batch_size=10_000)
    assert batch_size == len(train) == 14  # 17 bars: 14 clips
    assert len(validation) == 5
    said = capsys.readouterr().out
    assert said == "batch size lowered from 10000 to 14: the train split has no more windows\n"
    _, batch_size = midi_folder.training_windows(splits, batch_size=8)
    assert batch_size == 8


def test_training_windows_without_train_windows_is_one_clear_error(folder, tmp_path):
    copy = tmp_path / "drums"
    shutil.copytree(folder / "takes", copy)
    (copy / "split.csv").write_text(
        "midi_filename,split\n16_bars.mid,validation\n17_bars.mid,test\n"
    )
    splits = midi_folder.load_midi_folder(copy, cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(midi_folder.MidiFolderError, match="the train split has no windows"):
        midi_folder.training_windows(splits, batch_size=16)


def _usable(n):
    return [f"take{i:02d}.mid" for i in range(n)]


def test_balance_splits_gives_validation_and_test_a_file_each_from_3_files():
    files = _usable(14)
    hashed = {f: "train" for f in files}
    splits, moved = midi_folder.balance_splits(hashed, files, named=set())
    assert moved == {"train": [], "validation": ["take00.mid"], "test": ["take01.mid"]}
    assert [splits[f] for f in files].count("train") == 12
    # A split the hash filled keeps its files; one file never leaves its split empty.
    hashed = {"a.mid": "test", "b.mid": "train", "c.mid": "train"}
    splits, moved = midi_folder.balance_splits(hashed, ["a.mid", "b.mid", "c.mid"], set())
    assert splits == {"a.mid": "test", "b.mid": "validation", "c.mid": "train"}


def test_balance_splits_under_3_files_all_train_and_split_csv_wins():
    hashed = {"a.mid": "test", "b.mid": "validation", "broken.mid": "validation"}
    splits, moved = midi_folder.balance_splits(hashed, ["a.mid", "b.mid"], named=set())
    assert splits == {"a.mid": "train", "b.mid": "train", "broken.mid": "validation"}
    assert moved["train"] == ["a.mid", "b.mid"]
    named = {"a.mid", "b.mid", "c.mid"}
    hashed = {"a.mid": "train", "b.mid": "train", "c.mid": "train", "d.mid": "train"}
    splits, moved = midi_folder.balance_splits(hashed, sorted(hashed), named)
    assert moved == {"train": [], "validation": ["d.mid"], "test": []}  # d was the only movable


def test_a_folder_of_two_grooves_trains_without_validation_and_says_so(folder, tmp_path):
    copy = tmp_path / "drums"
    shutil.copytree(folder / "takes", copy)
    splits = midi_folder.load_midi_folder(copy, cache_dir=tmp_path / "cache", progress=False)
    assert len(splits["validation"].outputs) == len(splits["test"].outputs) == 0
    assert len(splits["train"].outputs) == 13 + 14
    assert midi_folder.split_line(splits) == (
        "split chosen (files with windows): 2 train, 0 validation, 0 test; with under 3 such "
        "files, all train, without validation"
    )


def test_cache_knows_its_folder(folder, tmp_path):
    """Two folders with the same file names are two cache entries, never mistaken for each other
    (the key holds the folder's resolved path and its files' names, sizes and times)."""
    cache = tmp_path / "cache"
    for name, bars in (("a", 8), ("b", 9)):
        write_midi(tmp_path / name / "take.mid", drum_sequence(beat_notes(bars, QPM), qpm=QPM))
    a = midi_folder.load_midi_folder(tmp_path / "a", cache_dir=cache, progress=False)
    b = midi_folder.load_midi_folder(tmp_path / "b", cache_dir=cache, progress=False)
    assert (len(a["train"].outputs), len(b["train"].outputs)) == (5, 6)
    assert len(list(cache.iterdir())) == 6
