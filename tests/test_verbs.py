"""Tests for helpers/verbs.py: the four verbs on tiny runs, any length in, bad files named."""

import note_seq
import numpy as np
import pytest
from conftest import random_grooves, write_groove_files

from helpers import sample, train, verbs
from helpers.config import get_config

QPM = 100.0  # the tempo write_groove_files uses
BAR = 4 * 60 / QPM


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_groove_files(tmp_path_factory.mktemp("mine"), QPM)


@pytest.fixture(scope="module")
def variant_runs(tmp_path_factory) -> dict:
    """Tiny humanize and tap runs, trained 2 steps on random grooves, under outputs/runs/."""
    outputs = tmp_path_factory.mktemp("outputs")
    grooves = random_grooves(32)
    runs = {}
    for verb, variant in (("humanize", "humanize"), ("drumify", "tapify")):
        name = verbs.VARIANT_CONFIGS[verb]
        config = get_config("tiny", name=name, **{variant: True})
        runs[verb] = outputs / "runs" / name
        train.train(
            config,
            runs[verb],
            steps=2,
            train_data=grooves,
            validation_data=grooves[:16],
            progress=False,
        )
    return runs


def _read(path):
    return note_seq.midi_file_to_note_sequence(str(path))


def _assert_length_and_tempo(ns, bars, qpm=QPM):
    np.testing.assert_allclose([t.qpm for t in ns.tempos], [qpm], rtol=1e-4)
    assert [(t.numerator, t.denominator) for t in ns.time_signatures] == [(4, 4)]
    assert ns.notes and max(n.start_time for n in ns.notes) < bars * 4 * 60 / qpm


@pytest.mark.parametrize("verb", ["humanize", "drumify"])
@pytest.mark.parametrize("kind, bars", [("2_bars", 2), ("16_bars", 16)])
def test_transform_keeps_length_and_tempo(variant_runs, files, verb, kind, bars):
    model = sample.TrainedModel(variant_runs[verb])
    (take,) = verbs.versions(verb, model, sample.load_midi(files[kind]), 1, seed=0)
    _assert_length_and_tempo(take, bars)
    np.testing.assert_allclose(take.total_time, bars * BAR)


@pytest.mark.parametrize("kind, bars", [("2_bars", 2), ("16_bars", 16)])
def test_interpolate_with_a_sample_keeps_length_and_tempo(tiny_run, files, kind, bars):
    model = sample.TrainedModel(tiny_run)
    new = model.sample(1, seed=0)[0]
    steps = model.interpolate(sample.load_midi(files[kind]), new, num_steps=3, seed=0)
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
    with pytest.raises(SystemExit, match="groove_01.mid exists"):
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


@pytest.mark.parametrize("verb", ["humanize", "drumify"])
def test_cli_transform_finds_its_variant_run_and_names_refused_files(
    variant_runs, files, tmp_path, capsys, verb
):
    kinds = ["1_bar", "17_bars", "corrupt", "empty", "3_4", "tempo_change"]
    if verb == "humanize":  # drumify reads any instrument as taps, so a melody is fine there
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
    with pytest.raises(SystemExit) as exit_info:
        verbs.main(argv)
    refused = str(exit_info.value)
    for kind, reason in [
        ("corrupt", "cannot read"),
        ("empty", "cannot read"),
        ("3_4", "not 4/4"),
        ("tempo_change", "multiple tempos"),
        ("no_drums", "no drum notes"),
    ][: len(kinds) - 2]:
        assert f"{files[kind]}: " in refused and reason in refused.split(str(files[kind]))[1]
    written = sorted(p.name for p in tmp_path.glob("*.mid"))
    assert written == [f"17_bars_{verb}_01.mid", f"1_bars_{verb}_01.mid"]
    _assert_length_and_tempo(_read(tmp_path / f"1_bars_{verb}_01.mid"), 1)
    _assert_length_and_tempo(_read(tmp_path / f"17_bars_{verb}_01.mid"), 17)
    assert "17_bars" in capsys.readouterr().out


def test_cli_transform_without_its_run_says_how_to_train_one(tmp_path, files):
    with pytest.raises(SystemExit, match="groovae_4bar_tap"):
        verbs.main(
            [
                "drumify",
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


def test_your_groove_goes_through_every_verb_into_a_new_folder(
    tiny_run, variant_runs, files, tmp_path
):
    model = sample.TrainedModel(tiny_run)
    humanizer, drumifier = (sample.TrainedModel(variant_runs[v]) for v in ("humanize", "drumify"))
    yours = verbs.your_groove(
        files["2_bars"], model, tmp_path, humanizer, drumifier, num_steps=3, seed=0
    )
    assert list(yours) == ["yours", "humanized", "drumified", "interpolation"]
    assert [len(seqs) for seqs, _ in yours.values()] == [1, 1, 1, 3]
    for name, (seqs, paths) in yours.items():
        assert all(
            p.parent == tmp_path / "2_bars-001" and p.with_suffix(".wav").exists() for p in paths
        )
        if name != "yours":
            for ns in seqs:
                _assert_length_and_tempo(ns, 2)
                np.testing.assert_allclose(ns.total_time, 2 * BAR)
    again = verbs.your_groove(files["2_bars"], model, tmp_path, num_steps=2, seed=0)
    assert list(again) == ["yours", "interpolation"]
    assert again["yours"][1][0].parent == tmp_path / "2_bars-002"
