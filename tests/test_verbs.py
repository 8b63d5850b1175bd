"""Tests for helpers/verbs.py: the four verbs on tiny runs, any length in, bad files named."""

import os
import subprocess
import sys
from pathlib import Path

import note_seq
import numpy as np
import pytest
from conftest import drum_sequence, random_grooves, write_groove_files
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from helpers import audio, notebook, sample, tools, train, verbs, windowing
from helpers.config import VERB_CONFIGS, get_config
from helpers.constants import MAX_QPM, MIDI_SLOWEST_QPM
from helpers.converter import GrooveConverter

REPO = Path(__file__).resolve().parents[1]
QPM = 100.0  # the tempo write_groove_files uses
BAR = 4 * 60 / QPM


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_groove_files(tmp_path_factory.mktemp("mine"), QPM)


@pytest.fixture(scope="module")
def variant_runs(tmp_path_factory) -> dict:
    """Tiny runs of each tool's config (hits control, tap, add closed hi-hat), trained 2 steps
    on random grooves, under outputs/runs/<config>, where pick_model finds them."""
    outputs = tmp_path_factory.mktemp("outputs")
    grooves = random_grooves(32)
    runs = {}
    options = {
        "humanize": {"hits_as_controls": True},
        "drumify": {"tapify": True, "fixed_velocities": True},
        "infill": {"add_instruments": (2,)},
    }
    for verb, variant in options.items():
        name = VERB_CONFIGS[verb]
        config = get_config("tiny", name=name, **variant)
        runs[verb] = outputs / "runs" / name
        train.train(
            config,
            runs[verb],
            steps=2,
            windows=(grooves, grooves[:16]),
            options=train.TrainOptions(progress=False),
        )
    runs["transfer"] = runs["humanize"]  # one hits-conditioned model plays both
    return runs


def _read(path):
    return note_seq.midi_file_to_note_sequence(str(path))


def _assert_length_and_tempo(ns, bars, qpm=QPM):
    np.testing.assert_allclose([t.qpm for t in ns.tempos], [qpm], rtol=1e-4)
    assert [(t.numerator, t.denominator) for t in ns.time_signatures] == [(4, 4)]
    assert ns.notes and max(n.start_time for n in ns.notes) < bars * 4 * 60 / qpm


@pytest.mark.parametrize("verb", ["humanize", "drumify", "infill"])
@pytest.mark.parametrize("kind, bars", [("1_bar", 1), ("2_bars", 2), ("16_bars", 16)])
def test_transform_keeps_length_and_tempo(variant_runs, files, verb, kind, bars):
    model = sample.TrainedModel(variant_runs[verb])
    (take,) = tools.versions(verb, model, windowing.load_midi(files[kind]), 1, seed=0)
    _assert_length_and_tempo(take, bars)
    np.testing.assert_allclose(take.total_time, bars * BAR)


@pytest.mark.parametrize("kind, bars", [("2_bars", 2), ("16_bars", 16)])
def test_interpolate_with_a_sample_keeps_length_and_tempo(tiny_run, files, kind, bars):
    model = sample.TrainedModel(tiny_run)
    new = model.sample(1, seed=0)[0]
    steps = model.interpolate(windowing.load_midi(files[kind]), new, num_steps=3, seed=0)
    assert len(steps) == 3
    for step in steps:
        np.testing.assert_allclose(step.total_time, bars * BAR)
        assert step.tempos[0].qpm == pytest.approx(QPM)


def test_cli_without_a_verb_samples(tiny_run, tmp_path, capsys):
    paths = verbs.main(
        [
            "--checkpoint",
            str(tiny_run),
            "--num",
            "3",
            "--seed",
            "4",
            "--qpm",
            "90",
            "--out",
            str(tmp_path),
        ]
    )
    assert [p.name for p in paths] == ["groove_01.mid", "groove_02.mid", "groove_03.mid"]
    assert all(p.with_suffix(".png").exists() and p.with_suffix(".wav").exists() for p in paths)
    np.testing.assert_allclose(_read(paths[0]).tempos[0].qpm, 90, rtol=1e-4)
    out = capsys.readouterr().out.splitlines()
    assert out == [f"model: your run {tiny_run} at step 2", *map(str, paths)]


def test_cli_takes_magentas_spellings(tiny_run, files, tmp_path):
    paths = verbs.main(
        [
            "interpolate",
            "--input_midi_1",
            str(files["2_bars"]),
            "--input_midi_2",
            str(files["17_bars"]),
            "--run_dir",
            str(tiny_run),
            "--num_outputs",
            "3",
            "--seed",
            "0",
            "--output_dir",
            str(tmp_path),
        ]
    )
    assert [p.name for p in paths] == [f"interpolation_0{i}.mid" for i in range(1, 4)]
    _assert_length_and_tempo(_read(paths[0]), 2)


def test_cli_never_overwrites(tiny_run, tmp_path):
    args = ["sample", "--run-dir", str(tiny_run), "--num", "2", "--out", str(tmp_path)]
    verbs.main(args)
    before = (tmp_path / "groove_01.mid").read_bytes()
    with pytest.raises(FileExistsError, match="groove_01.mid exists; give --overwrite"):
        verbs.main(args + ["--seed", "9"])
    assert (tmp_path / "groove_01.mid").read_bytes() == before


def test_cli_interpolate_two_inputs(tiny_run, files, tmp_path):
    paths = verbs.main(
        [
            "interpolate",
            "--input",
            str(files["2_bars"]),
            "--input",
            str(files["17_bars"]),
            "--run-dir",
            str(tiny_run),
            "--num",
            "4",
            "--seed",
            "0",
            "--out",
            str(tmp_path),
        ]
    )
    assert [p.stem for p in paths] == [f"interpolation_0{i}" for i in range(1, 5)]
    for path in paths:
        _assert_length_and_tempo(_read(path), 2)


@pytest.mark.parametrize("verb", ["humanize", "drumify", "infill"])
def test_cli_transform_finds_its_variant_run_and_names_refused_files(
    variant_runs, files, tmp_path, capsys, verb
):
    kinds = ["1_bar", "17_bars", "corrupt", "3_4", "tempo_change"]
    if verb != "drumify":  # drumify reads any instrument as taps, so a melody is fine there
        kinds.append("no_drums")
    argv = [
        verb,
        "--outputs-dir",
        str(variant_runs[verb].parents[1]),
        "--num",
        "1",
        "--seed",
        "0",
        "--out",
        str(tmp_path),
    ]
    for kind in kinds:
        argv += ["--input", str(files[kind])]
    with pytest.raises(
        verbs.RefusedInputsError, match=f"refused {len(kinds) - 2} of {len(kinds)}"
    ) as error:
        verbs.main(argv)
    refused = str(error.value)
    reasons = {
        "corrupt": "cannot read",
        "3_4": "not 4/4",
        "tempo_change": "multiple tempos",
        "no_drums": "no drum notes",
    }
    for number, kind in enumerate(kinds, 1):
        if kind in reasons:  # named by its flag, and its file once
            said = refused.split(f"--input {number}: ", 1)[1].split("; --input", 1)[0]
            assert said.count(str(files[kind])) == 1 and reasons[kind] in said, said
    written = sorted(p.name for p in tmp_path.glob("*.mid"))
    assert written == [f"17_bars_{verb}_01.mid", f"1_bars_{verb}_01.mid"]
    _assert_length_and_tempo(_read(tmp_path / f"1_bars_{verb}_01.mid"), 1)
    _assert_length_and_tempo(_read(tmp_path / f"17_bars_{verb}_01.mid"), 17)
    assert "17_bars" in capsys.readouterr().out


def test_cli_tool_without_a_run_or_bundle_says_how_to_train_one(tmp_path, files):
    """No run of yours and nothing bundled (the note-dropout tap config): one line, a hint."""
    with pytest.raises(
        sample.SampleError, match="python -m helpers.train --config groovae_2bar_tap_"
    ):
        verbs.main(
            [
                "drumify",
                "--model",
                "groovae_2bar_tap_fixed_velocity_note_dropout",
                "--input",
                str(files["2_bars"]),
                "--outputs-dir",
                str(tmp_path),
                "--out",
                str(tmp_path / "out"),
            ]
        )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["interpolate", "--input", "a.mid"], "exactly 2 --input"),
        (["sample", "--input", "a.mid"], "exactly 0 --input"),
        (["humanize"], "at least 1 --input"),
        (["--num", "0"], "--num must be at least 1"),
    ],
)
def test_cli_wrong_inputs_are_usage_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        verbs.main(argv + ["--out", str(tmp_path)])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


FRAMEWORKS = ("tensorflow", "jax", "torch", "keras")
# `python -m helpers.verbs ARGV`, then a last line naming the frameworks it loaded.
LOADED = f"""
import runpy, sys
try:
    runpy.run_module("helpers.verbs", run_name="__main__", alter_sys=True)
finally:
    print("loaded:", *sorted({{m.split(".")[0] for m in sys.modules}} & set({FRAMEWORKS})))
"""


@pytest.mark.parametrize(
    "argv, status, said",
    [
        (["--help"], 0, "usage: python -m helpers.verbs"),
        (["sample", "--seed", "-1", "--output-dir", "{tmp}/out"], 2, "--seed must be from 0"),
        (["humanize", "--input", "{tmp}/empty.mid", "--output-dir", "{tmp}/out"], 2,
         "--input 1 ({tmp}/empty.mid) is empty (0 bytes)"),
    ],
)  # fmt: skip
def test_cli_help_and_refusals_answer_without_loading_a_framework(argv, status, said, tmp_path):
    """About 0.3 s each: the frameworks load only once every flag and file is checked."""
    (tmp_path / "empty.mid").write_bytes(b"")
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *(a.format(tmp=tmp_path) for a in argv)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == status and said.format(tmp=tmp_path) in done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "loaded:", done.stdout[-500:]
    assert not (tmp_path / "out").exists()


def test_your_groove_goes_through_every_tool_into_a_new_folder(
    tiny_run, variant_runs, files, tmp_path
):
    models = {verb: sample.TrainedModel(run) for verb, run in variant_runs.items()}
    models["sample"] = sample.TrainedModel(tiny_run)
    yours = notebook.your_groove(files["2_bars"], models, tmp_path, num_steps=3, seed=0)
    assert list(yours) == ["yours", "humanized", "drumified", "hi-hats", "interpolation"]
    assert [len(seqs) for seqs, _ in yours.values()] == [1, 1, 1, 1, 3]
    for name, (seqs, paths) in yours.items():
        assert all(
            p.parent == tmp_path / "2_bars-001" and p.with_suffix(".wav").exists() for p in paths
        )
        if name != "yours":
            for ns in seqs:
                _assert_length_and_tempo(ns, 2)
                np.testing.assert_allclose(ns.total_time, 2 * BAR)
    again = notebook.your_groove(files["2_bars"], {"sample": models["sample"]}, tmp_path, 2, seed=0)
    assert list(again) == ["yours", "interpolation"]
    assert again["yours"][1][0].parent == tmp_path / "2_bars-002"


@pytest.mark.parametrize("kind, bars", [("1_bar", 1), ("2_bars", 2), ("16_bars", 16)])
def test_transfer_keeps_every_hit_of_the_hits_groove(variant_runs, files, kind, bars):
    """Groove transfer plays exactly the first groove's hits (none added, none lost), at its
    length and tempo, with the second's feel."""
    model = sample.TrainedModel(variant_runs["transfer"])
    hits, feel = windowing.load_midi(files[kind]), windowing.load_midi(files["17_bars"])
    out = tools.transfer(model, hits, feel, seed=0)
    _assert_length_and_tempo(out, bars)
    given = model.windows(hits).grooves
    played = model.windows(out).grooves
    np.testing.assert_array_equal(played[..., :9], given[..., :9])


def test_cli_transfer_and_infill(variant_runs, files, tmp_path):
    outputs = str(variant_runs["transfer"].parents[1])
    transferred = verbs.main(
        [
            "transfer",
            "--input",
            str(files["2_bars"]),
            "--input",
            str(files["16_bars"]),
            "--outputs-dir",
            outputs,
            "--num",
            "2",
            "--seed",
            "0",
            "--out",
            str(tmp_path / "t"),
        ]
    )
    assert [p.name for p in transferred] == ["transfer_01.mid", "transfer_02.mid"]
    _assert_length_and_tempo(_read(transferred[0]), 2)
    filled = verbs.main(
        [
            "infill",
            "--input",
            str(files["16_bars"]),
            "--outputs-dir",
            outputs,
            "--seed",
            "0",
            "--num",
            "1",
            "--out",
            str(tmp_path / "i"),
        ]
    )
    _assert_length_and_tempo(_read(filled[0]), 16)


# --- properties over generated grooves: what the tools promise, in the file written and read back

# The first pitch of each class in both drum maps' order: read back in either, the same class.
PITCHES = (36, 38, 42, 46, 43, 47, 50, 49, 51)
# A failing example is reported as generated: shrinking it through the model takes minutes.
PROPERTY_SETTINGS = settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
)


@st.composite
def played_grooves(draw) -> note_seq.NoteSequence:
    """A drum part of 1-16 bars at any tempo the tools take, velocities 1-127 (the extremes
    often), each hit off its 16th by up to 0.45 of one, and a hit in the last bar."""
    bars = draw(st.integers(1, 16))
    qpm = draw(st.sampled_from([MIDI_SLOWEST_QPM, MAX_QPM]) | st.floats(MIDI_SLOWEST_QPM, MAX_QPM))
    cells = st.tuples(st.integers(0, 16 * bars - 1), st.integers(0, 8))
    last = draw(st.tuples(st.integers(16 * (bars - 1), 16 * bars - 1), st.integers(0, 8)))
    hits = draw(st.lists(cells, max_size=48, unique=True).map(lambda c: sorted({last, *c})))
    step_seconds = 15.0 / qpm
    notes = []
    for step, drum in hits:
        velocity = draw(st.sampled_from([1, 127]) | st.integers(1, 127))
        early = draw(st.floats(-0.45, 0.0 if step == 0 else 0.45))  # nothing before 0 s
        start = (step - early) * step_seconds
        notes.append((PITCHES[drum], velocity, start, start + step_seconds / 2))
    return drum_sequence(notes, qpm=qpm)


def _through_a_file(sequence, folder: Path, name: str) -> note_seq.NoteSequence:
    """`sequence` written as a MIDI file and read back, as a user's tool would see it."""
    return windowing.load_midi(audio.write_midi(sequence, folder / name, overwrite=True))


def _hit_cells(sequence) -> set[tuple[int, int]]:
    """(step, drum class) of every hit on the 16th grid at the sequence's tempo."""
    converter = GrooveConverter(split_bars=None)
    converter.set_mode("infer")
    groove = converter.note_sequence_to_groove(sequence)
    return set(zip(*map(list, np.nonzero(groove[:, :9]))))


def _assert_same_length_and_tempo(played, given, tapped: bool = False) -> None:
    """The same bars, and the same tempo to the microsecond a quarter MIDI files hold (writing
    one truncates to a whole microsecond, so a file read and written again may lose one).
    `tapped`: `given` is taps, whose last bar of hits just before its bar line is the loop's next
    downbeat (windowing.fold_early_downbeat), so it counts a bar less than a file read plainly."""
    converter, taps = GrooveConverter(), GrooveConverter(tapify=tapped)
    converter.set_mode("infer")
    taps.set_mode("infer")
    played = windowing.sequence_windows(played, converter)
    given = windowing.sequence_windows(given, taps)
    assert played.bars == given.bars
    assert abs(60e6 / played.qpm - 60e6 / given.qpm) <= 1


@PROPERTY_SETTINGS
@given(groove=played_grooves())
def test_humanize_keeps_every_hit_in_the_file_written(variant_runs, tmp_path_factory, groove):
    model = sample.TrainedModel(variant_runs["humanize"])
    folder = tmp_path_factory.mktemp("humanize")
    score = _through_a_file(groove, folder, "score.mid")
    played = _through_a_file(tools.humanize(model, score, seed=0), folder, "played.mid")
    assert _hit_cells(played) == _hit_cells(score)
    _assert_same_length_and_tempo(played, score)


@PROPERTY_SETTINGS
@given(hits=played_grooves(), feel=played_grooves())
def test_transfer_keeps_every_hit_in_the_file_written(variant_runs, tmp_path_factory, hits, feel):
    model = sample.TrainedModel(variant_runs["transfer"])
    folder = tmp_path_factory.mktemp("transfer")
    hits = _through_a_file(hits, folder, "hits.mid")
    feel = _through_a_file(feel, folder, "feel.mid")
    played = _through_a_file(tools.transfer(model, hits, feel, seed=0), folder, "played.mid")
    assert _hit_cells(played) == _hit_cells(hits)
    _assert_same_length_and_tempo(played, hits)


@pytest.mark.parametrize("verb", ["drumify", "infill"])
@PROPERTY_SETTINGS
@given(groove=played_grooves())
def test_drumify_and_infill_keep_length_and_tempo(variant_runs, tmp_path_factory, verb, groove):
    model = sample.TrainedModel(variant_runs[verb])
    folder = tmp_path_factory.mktemp(verb)
    given = _through_a_file(groove, folder, "given.mid")
    (take,) = tools.versions(verb, model, given, 1, seed=0)
    played = _through_a_file(take, folder, "played.mid")
    _assert_same_length_and_tempo(played, given, tapped=verb == "drumify")
    if verb == "infill":  # every drum but the closed hi-hat stays as played
        kept = {cell for cell in _hit_cells(given) if cell[1] != tools.CLOSED_HI_HAT}
        assert {cell for cell in _hit_cells(played) if cell[1] != tools.CLOSED_HI_HAT} == kept


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    bars=st.integers(1, 16),
    qpm=st.sampled_from([MIDI_SLOWEST_QPM, MAX_QPM]) | st.floats(MIDI_SLOWEST_QPM, MAX_QPM),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_decoded_hit_reaches_the_file(tmp_path_factory, bars, qpm, seed):
    """Whatever a decoder writes (velocities and offsets past their ranges, hits in the first
    step played early), each hit is in the MIDI file read back, in its own step."""
    rng = np.random.default_rng(seed)
    groove = np.zeros((1, 16 * bars, 27), np.float32)
    hits = rng.random((16 * bars, 9)) < 0.3
    hits[0, 0] = True  # a kick on the first step, played as early as an offset can say
    groove[0, :, :9] = hits
    groove[0, :, 9:18] = hits * rng.choice([-0.5, 0.0, 0.002, 1 / 254, 0.5, 1.0, 1.5], hits.shape)
    groove[0, :, 18:] = hits * rng.choice([-2.0, -1.0, -0.3, 0.0, 0.3, 1.0, 2.0], hits.shape)
    groove[0, 0, 18] = 1.0
    converter = GrooveConverter()
    converter.set_mode("infer")
    (decoded,) = converter.from_tensors(groove)
    folder = tmp_path_factory.mktemp("decoded")
    played = _through_a_file(windowing.set_tempo(decoded, qpm, 16 * bars), folder, "played.mid")
    assert _hit_cells(played) == set(zip(*map(list, np.nonzero(hits))))
