"""Tests for helpers/py: one spelling per flag, the old and Magenta's spellings as aliases."""

import pytest

from helpers.config import (
    DATA_DIR_ENV,
    add_data_dir,
    add_outputs_dir,
    add_run_dir,
    add_soundfont,
    add_training,
    command_parser,
)


def _parsed(add, argv, *aliases):
    parser = command_parser("test", "A test command line.\n\nMore.")
    add(parser, *aliases)
    return vars(parser.parse_args(argv))


@pytest.mark.parametrize("flag", ["--run-dir", "--run_dir", "--checkpoint"])
def test_run_dir_spellings_mean_the_same(flag):
    assert _parsed(add_run_dir, [flag, "r"], "--checkpoint") == {"run_dir": "r"}


@pytest.mark.parametrize("flag", ["--outputs-dir", "--outputs_dir", "--outputs"])
def test_outputs_dir_spellings_mean_the_same(flag):
    assert _parsed(add_outputs_dir, [flag, "o"], "--outputs") == {"outputs_dir": "o"}


def test_an_alias_not_given_is_refused(capsys):
    with pytest.raises(SystemExit):
        _parsed(add_run_dir, ["--checkpoint", "r"])
    assert "--checkpoint" in capsys.readouterr().err


def test_data_dir_defaults_to_the_environment(monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, "/gmd")
    assert _parsed(add_data_dir, []) == {"data_dir": "/gmd"}
    assert _parsed(add_data_dir, ["--data_dir", "/mine"]) == {"data_dir": "/mine"}
    monkeypatch.delenv(DATA_DIR_ENV)
    assert _parsed(add_data_dir, []) == {"data_dir": None}


def test_training_flags_take_magentas_num_steps():
    parsed = _parsed(add_training, ["--config", "tiny", "--num_steps", "3"], True)
    assert parsed == {"config": "tiny", "steps": 3, "batch_size": None, "precision": "auto"}


def test_parser_names_the_module_and_its_one_idea():
    parser = command_parser("train", "Training: one idea.\n\nDetails.")
    assert parser.prog == "python -m helpers.train" and parser.description == "Training: one idea."


def test_soundfont_defaults_to_the_environment(monkeypatch):
    monkeypatch.setenv("GROOVAE_SOUNDFONT", "/kit.sf2")
    assert _parsed(add_soundfont, []) == {"soundfont": "/kit.sf2"}
    assert _parsed(add_soundfont, ["--soundfont", "/mine.sf2"]) == {"soundfont": "/mine.sf2"}
    monkeypatch.delenv("GROOVAE_SOUNDFONT")
    assert _parsed(add_soundfont, []) == {"soundfont": None}


@pytest.mark.parametrize("module", ["sample", "verbs"])
def test_the_verbs_command_line_answers_under_both_names(module):
    """`python -m helpers.sample` hands over to helpers.verbs before defining anything (so the
    library module is not run a second time), and --help names the command that was typed."""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run(
        [sys.executable, "-m", f"helpers.{module}", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0 and done.stdout.startswith(f"usage: python -m helpers.{module}")
    assert "transfer" in done.stdout and "infill" in done.stdout
