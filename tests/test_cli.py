"""Across modules: every command line, one spelling per flag, the old and Magenta's spellings as
aliases."""

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.cli import (
    add_data_dir,
    add_outputs_dir,
    add_run_dir,
    add_soundfont,
    add_training,
    command_parser,
    is_user_error,
    run_command,
    run_folder,
)
from helpers.constants import DATA_DIR_ENV
from helpers.gmd import DatasetNotFoundError
from helpers.training import TrainError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
# bench_refusals times the same fresh processes; its probe names the frameworks they loaded
from bench_refusals import LOADED  # noqa: E402  (bench/ is no package)

COMMAND_LINES = ("train", "verbs", "evaluate", "export", "pipeline")  # and sample, via verbs
# CI services set CI, which makes pyfluidsynth print where it found libfluidsynth at import.
CI_ENV = {**os.environ, "CI": "1"}


def _parsed(add, argv, *aliases, **kwargs):
    parser = command_parser("test", "A test command line.\n\nMore.")
    add(parser, *aliases, **kwargs)
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


def test_data_dir_not_given_leaves_the_environment_to_the_library(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, "/gmd")  # helpers.gmd.find_gmd reads it (tests/test_data.py)
    assert _parsed(add_data_dir, []) == {"data_dir": None}
    assert _parsed(add_data_dir, ["--data_dir", str(tmp_path)]) == {"data_dir": str(tmp_path)}


def test_a_data_dir_that_cannot_hold_gmd_is_refused_by_the_parser(tmp_path, capsys):
    (tmp_path / "empty.zip").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a zip")
    (tmp_path / "gmd.zip").write_bytes(b"PK\x03\x04")  # a zip's first bytes: unzipping tells
    refusals = {
        "nowhere": "does not exist",
        "empty.zip": "is empty (0 bytes)",
        "notes.txt": "is not a zip file",
    }
    for name, said in refusals.items():
        with pytest.raises(SystemExit):
            _parsed(add_data_dir, ["--data-dir", str(tmp_path / name)])
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"argument --data-dir/--data_dir: {tmp_path / name} {said}; give GMD's" in line
    assert _parsed(add_data_dir, ["--data-dir", str(tmp_path / "gmd.zip")])


def test_a_run_to_read_without_config_json_is_refused_by_the_parser(tmp_path, capsys):
    (tmp_path / "empty.mid").write_bytes(b"")
    (tmp_path / "run").mkdir()
    refusals = {"nowhere": "does not exist", "empty.mid": "is a file", "run": "has no config.json"}
    for name, said in refusals.items():
        with pytest.raises(SystemExit):
            _parsed(add_run_dir, ["--run-dir", str(tmp_path / name)], type=run_folder)
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"{tmp_path / name} {said}; give a run folder python -m helpers.train wrote" in line
    (tmp_path / "run" / "config.json").write_text("{}")
    assert _parsed(add_run_dir, ["--run-dir", str(tmp_path / "run")], type=run_folder)


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


def test_the_verbs_command_line_lists_its_tools():
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run(
        [sys.executable, "-m", "helpers.verbs", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
        env=CI_ENV,
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m helpers.verbs")
    assert "transfer" in done.stdout and "infill" in done.stdout


# --- no traceback for a user error; a quiet start ----------------------------------------------


def test_is_user_error_knows_the_projects_errors_and_not_bugs():
    assert is_user_error(TrainError("x")) and is_user_error(DatasetNotFoundError("x"))
    assert is_user_error(FileExistsError("x")) and is_user_error(PermissionError("x"))
    assert not is_user_error(KeyError("x")) and not is_user_error(ValueError("x"))


def test_run_command_makes_a_user_error_one_line_and_keeps_a_bugs_traceback(capsys):
    def refuse():
        raise TrainError("the folder is\nnot a run")

    with pytest.raises(SystemExit) as exit_info:
        run_command(refuse)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "error: the folder is not a run\n"
    with pytest.raises(ZeroDivisionError):
        run_command(lambda: 1 / 0)

    def interrupt():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_info:
        run_command(interrupt)
    assert exit_info.value.code == 130 and capsys.readouterr().err == "interrupted\n"


@pytest.mark.parametrize("module", COMMAND_LINES)
def test_every_command_line_runs_its_main_through_run_command(module):
    tree = ast.parse((REPO / "helpers" / f"{module}.py").read_text())
    (guard,) = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n)]
    assert "run_command(main)" in ast.unparse(guard)


@pytest.mark.parametrize(
    "module, argv, message",
    [
        ("train", "--config tiny --steps 1 --run-dir {tmp}/notes",
         "notes has files but no config.json"),
        ("verbs", "infill --input {tmp}/a.mid --models {tmp}/nowhere --output-dir {tmp}/out",
         "nowhere is neither one of Magenta's released models"),
        ("verbs", "interpolate --input {tmp}/a.mid --input {tmp}/b.mid --models bundled --out {tmp}",
         "cannot read"),
        ("evaluate", "--run-dir {tmp}/untrained", "has no checkpoint yet"),
        ("export", "--run-dir {tmp}/untrained --no-results-page", "holds no checkpoint to export"),
        ("pipeline", "--config tiny --data-dir {tmp}/gmd --outputs-dir {tmp}",
         "Groove MIDI Dataset not found"),
    ],
)  # fmt: skip
def test_a_user_error_is_one_error_line_and_status_1(module, argv, message, tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("not a run")
    for name in ("a.mid", "b.mid"):  # a MIDI file's first bytes, and nothing after them
        (tmp_path / name).write_bytes(b"MThd")
    (tmp_path / "gmd").mkdir()  # a folder without GMD in it
    (tmp_path / "untrained").mkdir()
    (tmp_path / "untrained" / "config.json").write_text("{}")
    main = importlib.import_module(f"helpers.{module}").main
    with pytest.raises(SystemExit) as exit_info:
        run_command(lambda: main(argv.format(tmp=tmp_path).split()))
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err


TRAIN = ["--config", "tiny", "--steps", "1", "--run-dir", "{tmp}/out"]


@pytest.mark.parametrize(
    "module, argv, status, said",
    [
        ("verbs", ["--help"], 0, "usage: python -m helpers.verbs"),
        ("verbs", ["sample", "--seed", "-1", "--output-dir", "{tmp}/out"], 2,
         "--seed must be from 0"),
        ("verbs", ["humanize", "--input", "{tmp}/empty.mid", "--output-dir", "{tmp}/out"], 2,
         "--input 1 ({tmp}/empty.mid) is empty (0 bytes)"),
        ("train", ["--help"], 0, "usage: python -m helpers.train"),
        ("train", [*TRAIN, "--batch-size", "0"], 2, "--batch-size: must be at least 1, got 0"),
        ("train", [*TRAIN, "--midi-dir", "{tmp}/nowhere"], 2,
         "--midi-dir: {tmp}/nowhere is not a folder"),
        ("train", [*TRAIN, "--init-from", "{tmp}/empty.mid"], 2, "{tmp}/empty.mid is a file"),
        ("train", [*TRAIN, "--continue-step"], 2, "--continue-step takes --init-from"),
        ("train", [*TRAIN, "--num-processes", "2", "--process-id", "1"], 2, "needs --coordinator"),
        ("train", ["--config", "tiny", "--steps", "1", "--run-dir", "{tmp}/empty.mid"], 2,
         "--run-dir {tmp}/empty.mid is a file"),
        ("pipeline", ["--config", "tiny", "--temperature", "nan"], 2,
         "--temperature must be a finite number above 0, got nan"),
        ("export", ["--help"], 0, "usage: python -m helpers.export"),
        ("export", ["--format", "magenta-js", "--bundled", "groovae_4bar"], 2, "takes --out"),
        ("export", ["--format", "magenta-tf1", "--bundled", "groovae_4bar", "--out", "{tmp}/out",
                    "--quantize", "uint8"], 2, "--quantize is for --format magenta-js and web"),
        ("export", ["--run-dir", "{tmp}/run", "--serve"], 2, "--serve is for --format web"),
        ("export", ["--run-dir", "{tmp}/nowhere", "--no-results-page"], 2,
         "{tmp}/nowhere does not exist; give a run folder"),
        ("export", ["--format", "web", "--out", "{tmp}/empty.mid/out"], 2,
         "--out {tmp}/empty.mid/out cannot be made: {tmp}/empty.mid is a file"),
    ],
)  # fmt: skip
def test_help_and_refusals_answer_without_loading_a_framework(module, argv, status, said, tmp_path):
    """About 0.3 s each: a command line loads the frameworks only once every flag and file is
    checked."""
    (tmp_path / "empty.mid").write_bytes(b"")
    (tmp_path / "run").mkdir()  # a run folder, as far as the flags can tell
    (tmp_path / "run" / "config.json").write_text("{}")
    done = subprocess.run(
        [sys.executable, "-c", LOADED, module, *(a.format(tmp=tmp_path) for a in argv)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == status and said.format(tmp=tmp_path) in done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "loaded:", done.stdout[-500:]
    assert not (tmp_path / "out").exists()


# What TensorFlow 2.20+ prints at start-up on a machine without a GPU, whatever the log level.
TF_STARTUP = ("cuda drivers", "cuInit", "absl::InitializeLog", "oneDNN", "cudart_stub")


def test_a_command_line_starts_without_tensorflows_startup_lines():
    done = subprocess.run(
        [sys.executable, "-m", "helpers.train", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=CI_ENV,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0 and said.startswith("usage: python -m helpers.train"), said
    assert not [line for line in said.splitlines() if any(s in line for s in TF_STARTUP)], said


@pytest.mark.parametrize(
    "module, argv, message",
    [
        # RunError, raised for train's run folder by helpers/runs.py.
        ("train", ["--config", "tiny", "--steps", "1", "--run-dir", "."], "has files but no"),
        # ExportError, raised by helpers/exporting.py under helpers.export's command line.
        ("export", ["--format", "magenta-js", "--run-dir", "run", "--out", "js"], "no checkpoint"),
        # SampleError, raised by helpers/sample.py under helpers.verbs' command line.
        ("verbs", ["infill", "--input", "a.mid", "--models", "nowhere", "--out", "."], "nowhere"),
    ],
)
def test_a_command_line_user_error_is_one_line_without_a_traceback(module, argv, message, tmp_path):
    (tmp_path / "mine.txt").write_text("not a run")
    (tmp_path / "a.mid").write_bytes(b"MThd")
    (tmp_path / "run").mkdir()  # a run folder with its config and no checkpoint yet
    (tmp_path / "run" / "config.json").write_text("{}")
    done = subprocess.run(
        [sys.executable, "-m", f"helpers.{module}", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ") and message in line
