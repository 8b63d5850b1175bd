"""Tests for helpers/export.py and helpers/card.py: a tiny run exported as a bundle, end to end."""

import json
import shutil

import pandas as pd
import pytest
from conftest import random_grooves

from helpers import card, export, runs, sample, windowing
from helpers.data import GrooveSplit

README = (
    f"# Lab\n\n## Results\n\n{export.RESULTS_BEGIN}\nold words\n{export.RESULTS_END}\n\n"
    "## Credits\n"
)


def _split(n, seed):
    return GrooveSplit(random_grooves(n, seed), pd.DataFrame({"bpm": [100.0] * n}), {})


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """The tiny run exported with a fake step-1 milestone, into a fresh repository-like tree."""
    tree = tmp_path_factory.mktemp("repo")
    (tree / "README.md").write_text(README)
    (tree / "milestones").mkdir()
    shutil.copy(
        tiny_run / "checkpoints" / "ckpt-000000002.npz", tree / "milestones" / "ckpt-000000001.npz"
    )
    folder = export.export(
        tiny_run,
        "tiny",
        root=tree / "pretrained",
        outputs_dir=tree / "outputs",
        readme=tree / "README.md",
        search_dirs=(tree / "milestones",),
        milestone_steps=(1, 3000),
        splits=(_split(24, 1), _split(40, 2)),
        trained_on="a test machine",
        num_samples=30,
    )
    return tree, folder


def test_bundle_holds_weights_config_history_metrics_card_and_figures(exported):
    tree, folder = exported
    names = {p.name for p in folder.iterdir()}
    assert names == {
        "weights.npz",
        "config.json",
        "history.csv",
        "metrics.json",
        "MODEL_CARD.md",
        "training_curves.png",
        "samples.png",
    }
    assert runs.bundle_bytes(folder) <= runs.MAX_BUNDLE_BYTES
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["bundle"]["step"] == 2 and metrics["bundle"]["trained_on"] == "a test machine"
    assert list(metrics["milestones"]) == ["1"]  # 3000 not reached: left out, not made up
    assert metrics["bundle"]["check"]["windows"] == 24
    assert pd.read_csv(folder / "history.csv")["step"].max() == 2


def test_card_and_readme_are_written_from_the_files(exported):
    tree, folder = exported
    metrics = json.loads((folder / "metrics.json").read_text())
    text = (folder / "MODEL_CARD.md").read_text()
    assert "Creative Commons Attribution 4.0" in text and "Gillick" in text
    assert "step 2**" in text and "a test machine" in text
    assert f"{metrics['reconstruction']['f1']:.3f}" in text
    assert "3,000 steps not yet reached: the bundled model is at step 2." in text
    readme = (tree / "README.md").read_text()
    assert "old words" not in readme and readme.endswith("## Credits\n")
    assert "(pretrained/tiny/training_curves.png)" in readme
    assert "step 1 | **step 2** (bundled) | untrained model" in readme


def test_committed_grooves_are_midi_and_pianorolls_named_as_the_main_job(exported):
    tree, folder = exported
    groovae = sample.TrainedModel.pretrained("tiny", root=tree / "pretrained")
    out_dir = tree / "outputs" / "samples" / "tiny-pretrained-T0.5-seed0-120bpm"
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        f"groove_0{i}{s}" for i in range(1, 6) for s in (".mid", ".png")
    )
    again = groovae.sample(5, export.SAMPLES_TEMPERATURE, export.SAMPLES_SEED)
    written = windowing.load_midi(out_dir / "groove_01.mid")
    assert len(written.notes) == len(again[0].notes)


def test_reexport_replaces_its_own_bundle_but_not_a_foreign_one(exported, tiny_run, tmp_path):
    tree, folder = exported
    common = dict(
        root=tree / "pretrained",
        outputs_dir=tree / "outputs",
        readme=tree / "README.md",
        splits=(_split(24, 1), _split(40, 2)),
        num_samples=30,
        milestone_steps=(1,),
        search_dirs=(tree / "milestones",),
    )
    export.export(tiny_run, "tiny", **common)  # its own: replaced, the milestone reused
    assert "1" in json.loads((folder / "metrics.json").read_text())["milestones"]
    (tree / "pretrained" / "other").mkdir()
    (tree / "pretrained" / "other" / "weights.npz").write_bytes(b"someone's")
    with pytest.raises(export.ExportError, match="did not write; pass --overwrite"):
        export.export(tiny_run, "other", **common)
    assert (tree / "pretrained" / "other" / "weights.npz").read_bytes() == b"someone's"


def test_missing_step_and_readme_without_markers_refuse_before_writing(tiny_run, tmp_path):
    with pytest.raises(export.ExportError, match="no checkpoint of step 7.*there are: 2"):
        export.export(tiny_run, "tiny", step=7, root=tmp_path)
    (tmp_path / "README.md").write_text("# no markers\n")
    with pytest.raises(export.ExportError, match="lacks the lines"):
        export.export(tiny_run, "tiny", root=tmp_path / "p", readme=tmp_path / "README.md")
    assert not (tmp_path / "p").exists()


def test_wall_time_adds_up_resumed_segments():
    history = pd.DataFrame({"seconds": [10.0, 20.0, 5.0, 15.0]})
    assert card.wall_seconds(history) == 35.0


def test_card_of_a_mixed_precision_run_says_bfloat16(tiny_run, tmp_path):
    run = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    config["train"]["mixed_precision"] = True
    (run / "config.json").write_text(json.dumps(config))
    folder = export.export(
        run,
        "tiny",
        root=tmp_path / "pretrained",
        outputs_dir=tmp_path / "outputs",
        readme=None,
        splits=(_split(24, 1), _split(40, 2)),
        trained_on="a test machine",
        num_samples=30,
    )
    text = (folder / "MODEL_CARD.md").read_text()
    assert "bfloat16 mixed precision, on all" in text and ", float32, on all" not in text
