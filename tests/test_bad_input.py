"""Across modules: odd MIDI files through every entry that takes one: the verbs, notebook
03's upload path and the MIDI-folder trainer. Each file is refused with its reason or handled;
nothing raises an error that is not the project's own, hangs, or leaves a partial file behind."""

import contextlib
import errno
import io
import os
import shutil
import signal
from pathlib import Path

import mido
import note_seq
import numpy as np
import pytest
from conftest import beat_notes, drum_sequence, random_grooves

from helpers import audio, midi_folder, notebook, render, sample, train, verbs
from helpers.cli import is_user_error
from helpers.config import VERB_CONFIGS, get_config

CANNOT_READ = "cannot read"
NO_DRUM_NOTES = "no drum notes"
# Why the tools refuse each odd file (None: they take it). The MIDI folder says the same in its
# own words where FOLDER differs.
TOOLS = {
    "good": None,
    "truncated": CANNOT_READ,
    "zero_bytes": CANNOT_READ,
    "text": CANNOT_READ,
    "wav_named_mid": CANNOT_READ,
    "header_only": CANNOT_READ,
    "track_length_too_long": CANNOT_READ,
    **{f"bit_flips_{seed}": CANNOT_READ for seed in range(4)},
    "3_4": "not 4/4",
    "meter_change": "multiple time signatures",
    "tempo_change": "multiple tempos",
    "no_drum_channel": NO_DRUM_NOTES,
    "no_notes": NO_DRUM_NOTES,
    "meta_only": NO_DRUM_NOTES,
    "velocity_0_only": NO_DRUM_NOTES,
    "no_note_offs": None,  # each note-on played a 16th long, with a warning
    "pitches_off_the_map": "cannot be encoded: no notes",
    "one_note": None,
    "1000_notes_at_once": None,
    "500_bars": None,
    "a_note_2_hours_in": "longer than 30 minutes",
    "20_qpm": None,
    "400_qpm": None,
    "slowest_tempo": None,
    "fastest_tempo": "a tempo of 6e+07 qpm",
    "1_tick_per_quarter": None,
    "32767_ticks_per_quarter": None,
    "two_drum_tracks": None,
}
# The files the command line refuses from their first bytes, before any work (the tools and the
# notebook, reading them whole, say CANNOT_READ).
FIRST_BYTES = {
    "zero_bytes": "is empty (0 bytes)",
    "text": "is not a MIDI file: it starts b'drum', where a Standard MIDI File starts b'MThd'",
    "wav_named_mid": "is not a MIDI file: it starts b'RIFF', where a Standard MIDI File starts "
    "b'MThd'",
}
# Drumify hears every note as a tap, on any channel and pitch.
DRUMIFY = {**TOOLS, "no_drum_channel": None, "pitches_off_the_map": None}
FOLDER = {
    **{kind: "corrupt file" for kind, why in TOOLS.items() if why == CANNOT_READ},
    **{kind: why for kind, why in TOOLS.items() if why not in (CANNOT_READ, None)},
    "pitches_off_the_map": "no window: 5 clips no notes",
    "one_note": midi_folder.TOO_SHORT,
    "1000_notes_at_once": midi_folder.TOO_SHORT,
    "no_note_offs": midi_folder.TOO_SHORT,  # its note-ons all at 0 s: their times were offs'
}
# The 500-bar groove takes about ten seconds of drawing and audio per tool; it goes through
# humanize, the upload and the MIDI folder. your_groove takes the handled files below (every
# other handled file reaches the tools by the path these take, and the verbs take them all).
LONG = "500_bars"
YOUR_GROOVE_HANDLED = ("one_note", "400_qpm", "two_drum_tracks")
ONE_GROOVE = ("humanize", "drumify", "infill")  # the tools that take any number of grooves
SECONDS = 240  # a generous limit per call on a busy 2-core machine; a hang fails, not blocks


@contextlib.contextmanager
def within(seconds: float):
    """Raises TimeoutError in the block once `seconds` have passed."""

    def hang(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _sequence_bytes(sequence) -> bytes:
    buffer = io.BytesIO()
    note_seq.sequence_proto_to_pretty_midi(sequence).write(buffer)
    return buffer.getvalue()


def _mido_bytes(*tracks, ticks_per_beat=480) -> bytes:
    """A MIDI file of tracks of messages (type 1 when there are several)."""
    midi = mido.MidiFile(type=1 if len(tracks) > 1 else 0, ticks_per_beat=ticks_per_beat)
    midi.tracks.extend(mido.MidiTrack(messages) for messages in tracks)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def _beat(bars, ticks_per_beat=480, tempo=500_000, velocity=100):
    """Messages of eighth notes on the drum channel, kick / hat / snare / hat, at `tempo`
    microseconds a quarter."""
    eighth = max(ticks_per_beat // 2, 1)
    messages = [mido.MetaMessage("set_tempo", tempo=tempo)]
    for i in range(8 * bars):
        pitch = (36, 42, 38, 42)[i % 4]
        messages.append(mido.Message("note_on", channel=9, note=pitch, velocity=velocity))
        messages.append(mido.Message("note_off", channel=9, note=pitch, time=eighth))
    return messages


def odd_midi_files() -> dict[str, bytes]:
    """{kind: the bytes of a .mid file}, one of each kind in TOOLS."""
    good = _sequence_bytes(drum_sequence(beat_notes(8)))
    flipped = {}
    for seed in range(4):
        rng, data = np.random.default_rng(seed), bytearray(good)
        for i in rng.integers(14, len(data), 8):  # past the header, which stays right
            data[i] ^= int(rng.integers(1, 256))
        flipped[f"bit_flips_{seed}"] = bytes(data)
    melody = drum_sequence([(60 + i % 12, 80, i * 0.5, i * 0.5 + 0.4) for i in range(32)])
    for note in melody.notes:
        note.is_drum, note.instrument = False, 0
    tempo_change = drum_sequence(beat_notes(8))
    tempo_change.tempos.add(qpm=140.0, time=8.0)
    meter_change = drum_sequence(beat_notes(8))
    meter_change.time_signatures.add(numerator=7, denominator=8, time=8.0)
    off_map = [(p, 90, i * 0.25, i * 0.25 + 0.1) for i, p in enumerate([20, 90, 127, 0] * 16)]
    far = drum_sequence([*beat_notes(4), (36, 100, 7200.0, 7200.1)])
    at_once = drum_sequence([(36 + i % 12, 1 + i % 127, 0.0, 0.1) for i in range(1000)])
    header = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0"
    text = mido.MetaMessage("text", text="no notes")
    return {
        "good": good,
        "truncated": good[: len(good) // 2],
        "zero_bytes": b"",
        "text": b"drums: kick snare hat\n",
        "wav_named_mid": b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28),
        "header_only": header,
        "track_length_too_long": header + b"MTrk\x7f\xff\xff\xff\x00\x90\x24\x64",
        **flipped,
        "3_4": _sequence_bytes(drum_sequence(beat_notes(6), time_signature=(3, 4))),
        "meter_change": _sequence_bytes(meter_change),
        "tempo_change": _sequence_bytes(tempo_change),
        "no_drum_channel": _sequence_bytes(melody),
        "no_notes": _sequence_bytes(drum_sequence([])),
        "meta_only": _mido_bytes([text, mido.MetaMessage("set_tempo", tempo=400_000)]),
        "velocity_0_only": _mido_bytes(_beat(4, velocity=0)),
        "no_note_offs": _mido_bytes([m for m in _beat(4) if m.type != "note_off"]),
        "pitches_off_the_map": _sequence_bytes(drum_sequence(off_map)),
        "one_note": _sequence_bytes(drum_sequence([(36, 100, 0.0, 0.1)])),
        "1000_notes_at_once": _sequence_bytes(at_once),
        "500_bars": _sequence_bytes(drum_sequence(beat_notes(500))),
        "a_note_2_hours_in": _sequence_bytes(far),
        "20_qpm": _sequence_bytes(drum_sequence(beat_notes(4, 20.0), qpm=20.0)),
        "400_qpm": _sequence_bytes(drum_sequence(beat_notes(4, 400.0), qpm=400.0)),
        "slowest_tempo": _mido_bytes(_beat(4, tempo=0xFFFFFF)),  # MIDI's slowest: 3.6 qpm
        "fastest_tempo": _mido_bytes(_beat(4, tempo=1)),  # MIDI's fastest: 60,000,000 qpm
        "1_tick_per_quarter": _mido_bytes(_beat(8, 1), ticks_per_beat=1),
        "32767_ticks_per_quarter": _mido_bytes(_beat(8, 32767), ticks_per_beat=32767),
        "two_drum_tracks": _mido_bytes(_beat(8), _beat(8)[1:]),  # the tempo in the first
    }


@pytest.fixture(scope="module")
def odd(tmp_path_factory) -> dict:
    """{kind: path} of every odd file, in a folder of their own."""
    folder = tmp_path_factory.mktemp("odd")
    files = odd_midi_files()
    assert set(files) == set(TOOLS)
    for kind, content in files.items():
        (folder / f"{kind}.mid").write_bytes(content)
    return {kind: folder / f"{kind}.mid" for kind in files}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Tiny runs, 2 steps on random grooves, of every tool's config under outputs/runs/."""
    outputs = tmp_path_factory.mktemp("outputs")
    grooves = random_grooves(32)
    variants = {
        "sample": {},
        "humanize": {"hits_as_controls": True},
        "drumify": {"tapify": True, "fixed_velocities": True},
        "infill": {"add_instruments": (2,)},
    }
    for verb, variant in variants.items():
        name = VERB_CONFIGS[verb]
        train.train(
            get_config("tiny", name=name, **variant),
            outputs / "runs" / name,
            steps=2,
            windows=(grooves, grooves[:16]),
            options=train.TrainOptions(progress=False),
        )
    return outputs


def _refused_or_handled(call, *args, **kwargs):
    """call(*args, **kwargs)'s result, or the project's error it raised (any other error, or
    a call that runs past SECONDS, fails the test)."""
    try:
        with within(SECONDS):
            return call(*args, **kwargs)
    except Exception as error:
        assert is_user_error(error), f"{type(error).__name__}: {error}"
        return error


def _files(folder) -> set[str]:
    return {p.name for p in folder.rglob("*")} if folder.exists() else set()


def _assert_whole_grooves(folder, stems):
    """Exactly a .mid (that reads back), .png and .wav per stem: nothing partial, nothing else."""
    assert _files(folder) == {f"{stem}{s}" for stem in stems for s in (".mid", ".png", ".wav")}
    for stem in stems:
        assert note_seq.midi_file_to_note_sequence(str(folder / f"{stem}.mid")).notes
        assert (folder / f"{stem}.png").stat().st_size and (folder / f"{stem}.wav").stat().st_size


@pytest.mark.parametrize("verb", ONE_GROOVE)
def test_each_odd_file_through_a_tool_is_refused_with_its_reason_or_handled(
    verb, odd, outputs, tmp_path, caplog
):
    expected = DRUMIFY if verb == "drumify" else TOOLS
    kinds = [k for k in expected if (verb == "humanize" or k != LONG) and k not in FIRST_BYTES]
    out = tmp_path / "out"
    argv = [verb, "--outputs-dir", str(outputs), "--out", str(out), "--num", "1", "--seed", "0"]
    for kind in kinds:
        argv += ["--input", str(odd[kind])]
    error = _refused_or_handled(verbs.main, argv)
    refused = [kind for kind in kinds if expected[kind]]
    assert isinstance(error, verbs.RefusedInputsError)
    assert str(error).startswith(f"refused {len(refused)} of {len(kinds)} inputs: ")
    for number, kind in enumerate(kinds, 1):  # "...: --input N: <why, naming the file>; ..."
        if kind in refused:
            said = str(error).split(f"--input {number}: ", 1)[1].split("; --input ", 1)[0]
            assert expected[kind] in said and said.count(str(odd[kind])) == 1, (kind, said)
    _assert_whole_grooves(out, [f"{kind}_{verb}_01" for kind in kinds if not expected[kind]])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"warning: {odd['no_note_offs']}: 32 note-ons without a note-off" in "\n".join(warnings)


@pytest.mark.parametrize("verb", ["interpolate", "transfer"])
def test_each_odd_file_through_a_two_groove_tool_is_refused_or_handled(
    verb, odd, outputs, tmp_path
):
    for i, (kind, why) in enumerate(TOOLS.items()):
        if kind == LONG or kind in FIRST_BYTES:
            continue
        out, number = tmp_path / kind, 1 + i % 2  # the odd file first or second, in turn
        inputs = [odd[kind], odd["good"]][:: 1 if number == 1 else -1]
        argv = [verb, "--input", str(inputs[0]), "--input", str(inputs[1])]
        argv += ["--outputs-dir", str(outputs), "--out", str(out), "--num", "1", "--seed", "0"]
        result = _refused_or_handled(verbs.main, argv)
        if why is None:
            assert not isinstance(result, Exception), (kind, result)
            _assert_whole_grooves(out, [f"{'interpolation' if verb == 'interpolate' else verb}_01"])
        else:
            assert why in str(result) and not out.exists(), (kind, result)
            assert str(result).startswith(f"refused 1 of 2 inputs: --input {number}: "), result
            assert str(result).count(str(odd[kind])) == 1, result


def test_each_odd_upload_is_saved_whole_then_refused_or_played(odd, outputs, tmp_path):
    """Notebook 03's path: the upload box's bytes saved, then your groove through every tool."""
    uploads, played = tmp_path / "uploads", tmp_path / "yours"
    models = {verb: sample.pick_model(verb, None, outputs) for verb in ("sample", *ONE_GROOVE)}
    for kind, why in TOOLS.items():
        content = odd[kind].read_bytes()
        path = notebook.received({f"{kind}.mid": content}, uploads)
        assert path == uploads / f"{kind}.mid" and path.read_bytes() == content
        if kind == LONG or (why is None and kind not in YOUR_GROOVE_HANDLED):
            continue
        before = _files(played)
        result = _refused_or_handled(
            notebook.your_groove, path, models, played, num_steps=2, seed=0
        )
        if why is None:
            assert set(result) == {"yours", "humanized", "drumified", "hi-hats", "interpolation"}
            assert all(p.exists() for _, paths in result.values() for p in paths)
        else:
            assert why in str(result) and _files(played) == before, (kind, result)
    assert not [p for p in uploads.iterdir() if p.name.startswith(".")]  # no partial upload


@pytest.mark.parametrize(
    "name, saved",
    [
        ("../../escape.mid", "escape.mid"),
        ("/etc/groove.mid", "groove.mid"),
        ("", "upload.mid"),
        ("..", "upload.mid"),
        ("tab\tand\x00nul.mid", "tabandnul.mid"),
        ("x" * 300 + ".mid", "x" * 100 + ".mid"),
        ("taken.mid", "taken-2.mid"),  # a folder of that name is there
    ],
)
def test_an_upload_of_any_name_lands_whole_in_its_folder(name, saved, tmp_path):
    uploads = tmp_path / "uploads"
    (uploads / "taken.mid").mkdir(parents=True)
    path = notebook.save_upload(name, b"MThd", uploads)
    assert path == uploads / saved and path.read_bytes() == b"MThd"
    assert notebook.save_upload(name, b"MThd", uploads) == path  # the same upload, found again
    assert notebook.save_upload(name, b"other", uploads) != path and path.read_bytes() == b"MThd"


def test_a_midi_folder_of_odd_files_names_each_with_its_reason(odd, tmp_path):
    with within(SECONDS):
        splits = midi_folder.load_midi_folder(
            next(iter(odd.values())).parent, cache_dir=tmp_path, workers=1, progress=False
        )
    _, skipped = midi_folder.folder_summary(splits)
    reasons = dict(zip(skipped.file, skipped.reason))
    assert set(reasons) == {f"{kind}.mid" for kind in FOLDER}
    for kind, why in FOLDER.items():
        assert reasons[f"{kind}.mid"].startswith(why), (kind, reasons[f"{kind}.mid"])
    (train_windows, _), batch_size = midi_folder.training_windows(splits, batch_size=16)
    assert len(train_windows) and batch_size == 16


# --- flags: each checked before any work, refused with one line naming it and its range ---------


def _refusal(argv, capsys) -> str:
    """The last line `python -m helpers.verbs ARGV` writes as it refuses its flags (status 2)."""
    with pytest.raises(SystemExit) as exited:
        verbs.main(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("verb", ["humanize", "drumify", "interpolate"])
def test_an_input_that_is_no_midi_file_is_refused_by_its_flag_before_any_work(
    verb, odd, tmp_path, capsys
):
    refusals = {
        **{odd[kind]: said for kind, said in FIRST_BYTES.items()},
        tmp_path / "missing.mid": "does not exist",
        tmp_path: "is a folder",
    }
    out = tmp_path / "out"
    for path, said in refusals.items():
        argv = [verb, "--input", str(odd["good"]), "--input", str(path), "--output-dir", str(out)]
        line = _refusal(argv, capsys)
        assert f"error: --input 2 ({path}) {said}" in line, line
        assert line.endswith("; give a MIDI file (.mid) or a recording (.wav, .mp3, ...)"), line
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, said",
    [
        (["--seed", "-1"], "--seed must be from 0 to 4294967291, got -1"),
        (["--seed", str(2**32)], "--seed must be from 0 to 4294967291"),
        (["--qpm", "3"], "--qpm must be from 3.57628 to 1000, got 3.0"),
        (["--qpm", "nan"], "--qpm must be from 3.57628 to 1000, got nan"),
        (["--qpm", "1001"], "--qpm must be from 3.57628 to 1000"),
        (["--temperature", "nan"], "--temperature must be a finite number above 0, got nan"),
        (["--temperature", "0"], "--temperature must be a finite number above 0, got 0.0"),
        (["--temperature", "inf"], "--temperature must be a finite number above 0, got inf"),
        (["--num", "0"], "--num must be at least 1, got 0"),
    ],
)
def test_a_flag_out_of_range_is_refused_naming_it_before_any_work(flags, said, tmp_path, capsys):
    out = tmp_path / "out"
    line = _refusal(["sample", "--output-dir", str(out), "--num", "5", *flags], capsys)
    assert line.startswith("python -m helpers.verbs: error: ") and said in line, line
    assert not out.exists()


def test_an_output_folder_that_cannot_be_written_is_refused_naming_it(
    tmp_path, capsys, monkeypatch
):
    a_file = tmp_path / "groove.mid"
    a_file.write_bytes(b"MThd")
    refusals = {
        str(a_file): "is a file; give a folder",
        str(a_file / "out"): f"cannot be made: {a_file} is a file",
        "/proc/groovae/out": "cannot be written",
    }
    for folder, said in refusals.items():
        line = _refusal(["sample", "--output-dir", folder], capsys)
        assert f"error: --output-dir {folder} {said}" in line, line
    monkeypatch.setattr(
        "shutil.disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096)
    )
    line = _refusal(["sample", "--output-dir", str(tmp_path / "out")], capsys)
    assert "--output-dir" in line and "on a full disk (4,096 bytes free)" in line
    assert a_file.read_bytes() == b"MThd" and not (tmp_path / "out").exists()


def test_a_disk_filling_mid_write_leaves_no_partial_file(tmp_path, monkeypatch):
    """The disk fills while the second groove's MIDI is written (a stand-in for the writer that
    writes half a file, then raises ENOSPC): the first groove is whole, nothing else is there."""
    real = note_seq.sequence_proto_to_midi_file
    written = []

    def fills_up(sequence, path):
        if written:
            Path(path).write_bytes(b"MThd\x00\x00")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(path)
        real(sequence, path)

    monkeypatch.setattr(note_seq, "sequence_proto_to_midi_file", fills_up)
    grooves = [drum_sequence(beat_notes(1)) for _ in range(2)]
    with pytest.raises(audio.WriteError, match="No space left on device") as refused:
        render.save_grooves(grooves, tmp_path / "out", suffixes=(".mid",))
    assert is_user_error(refused.value) and "groove_02.mid" in str(refused.value)
    assert _files(tmp_path / "out") == {"groove_01.mid"}
    assert note_seq.midi_file_to_note_sequence(str(tmp_path / "out" / "groove_01.mid")).notes


@pytest.mark.parametrize(
    "flags, said",
    [
        (["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
        (["--steps", "-5"], "argument --steps/--num_steps: must be at least 1, got -5"),
        (["--steps", "ten"], "argument --steps/--num_steps: must be a whole number, got 'ten'"),
    ],
)
def test_a_training_count_out_of_range_is_refused_naming_it(flags, said, tmp_path, capsys):
    argv = ["--config", "tiny", "--steps", "2", "--run-dir", str(tmp_path / "run"), *flags]
    with pytest.raises(SystemExit) as exited:
        train.main(argv)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert exited.value.code == 2 and line == f"python -m helpers.train: error: {said}", line
    assert not (tmp_path / "run").exists()
