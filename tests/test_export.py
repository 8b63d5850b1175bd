"""Tests for helpers/export.py and the exporting it runs (helpers/exporting.py): a tiny run
exported as a bundle, end to end."""

import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, random_grooves

from helpers import bundles, export, exporting, magenta, magenta_js, sample, windowing
from helpers.config import get_config, with_overrides
from helpers.data import GrooveSplit
from helpers.magenta_js import MANIFEST
from helpers.model import GrooVAE, HitResiduals

RESULTS_PAGE = (
    f"# How good?\n\n## Results\n\n{exporting.RESULTS_BEGIN}\nold words\n{exporting.RESULTS_END}\n\n"
    "## Later\n"
)


def _split(n, seed):
    return GrooveSplit(random_grooves(n, seed), pd.DataFrame({"bpm": [100.0] * n}), {})


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """The tiny run exported with a fake step-1 milestone, into a fresh repository-like tree."""
    tree = tmp_path_factory.mktemp("repo")
    (tree / "docs").mkdir()
    (tree / "docs" / "results.md").write_text(RESULTS_PAGE)
    (tree / "milestones").mkdir()
    shutil.copy(
        tiny_run / "checkpoints" / "ckpt-000000002.npz", tree / "milestones" / "ckpt-000000001.npz"
    )
    options = exporting.BundleOptions(
        root=tree / "pretrained",
        outputs_dir=tree / "outputs",
        search_dirs=(tree / "milestones",),
        milestone_steps=(1, 3000),
        splits=(_split(24, 1), _split(40, 2)),
        trained_on="a test machine",
        num_samples=30,
    )
    folder = exporting.export(tiny_run, "tiny", options)
    exporting.write_results(folder, tree / "docs" / "results.md")
    return tree, folder


def test_bundle_holds_weights_config_history_metrics_card_and_figures(exported):
    tree, folder = exported
    names = {p.name for p in folder.iterdir()}
    assert names == {
        "weights.npz",
        "config.json",
        "history.csv",
        "metrics.json",
        "hit_residuals.json",
        "MODEL_CARD.md",
        "training_curves.png",
        "samples.png",
    }
    assert bundles.bundle_bytes(folder) <= bundles.MAX_BUNDLE_BYTES
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["bundle"]["step"] == 2 and metrics["bundle"]["trained_on"] == "a test machine"
    assert list(metrics["milestones"]) == ["1"]  # 3000 not reached: left out, not made up
    assert metrics["bundle"]["check"]["windows"] == 24
    assert pd.read_csv(folder / "history.csv")["step"].max() == 2


def test_card_and_results_page_are_written_from_the_files(exported):
    tree, folder = exported
    metrics = json.loads((folder / "metrics.json").read_text())
    text = (folder / "MODEL_CARD.md").read_text()
    assert "Creative Commons Attribution 4.0" in text and "Gillick" in text
    assert "step 2**" in text and "a test machine" in text
    assert f"{metrics['reconstruction']['f1']:.3f}" in text
    assert "3,000 steps not yet reached: the bundled model is at step 2." in text
    page = (tree / "docs" / "results.md").read_text()
    assert "old words" not in page and page.endswith("## Later\n")
    assert "(../pretrained/tiny/training_curves.png)" in page
    assert "step 1 | **step 2** (bundled) | untrained model" in page


def test_committed_grooves_are_midi_and_pianorolls_named_as_the_main_job(exported):
    tree, folder = exported
    groovae = sample.TrainedModel.pretrained("tiny", root=tree / "pretrained")
    out_dir = tree / "outputs" / "samples" / "tiny-pretrained-T0.5-seed0-120bpm"
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        f"groove_0{i}{s}" for i in range(1, 6) for s in (".mid", ".png")
    )
    again = groovae.sample(5, exporting.SAMPLES_TEMPERATURE, exporting.SAMPLES_SEED)
    written = windowing.load_midi(out_dir / "groove_01.mid")
    assert len(written.notes) == len(again[0].notes)


def test_reexport_replaces_its_own_bundle_but_not_a_foreign_one(exported, tiny_run, tmp_path):
    tree, folder = exported
    options = exporting.BundleOptions(
        root=tree / "pretrained",
        outputs_dir=tree / "outputs",
        splits=(_split(24, 1), _split(40, 2)),
        num_samples=30,
        milestone_steps=(1,),
        search_dirs=(tree / "milestones",),
    )
    exporting.export(tiny_run, "tiny", options)  # its own: replaced, the milestone reused
    assert "1" in json.loads((folder / "metrics.json").read_text())["milestones"]
    (tree / "pretrained" / "other").mkdir()
    (tree / "pretrained" / "other" / "weights.npz").write_bytes(b"someone's")
    with pytest.raises(exporting.ExportError, match="did not write; pass --overwrite"):
        exporting.export(tiny_run, "other", options)
    assert (tree / "pretrained" / "other" / "weights.npz").read_bytes() == b"someone's"


def test_missing_step_and_a_page_without_markers_refuse_before_writing(
    tiny_run, tmp_path, monkeypatch
):
    with pytest.raises(exporting.ExportError, match="no checkpoint of step 7.*there are: 2"):
        exporting.export(tiny_run, "tiny", exporting.BundleOptions(step=7, root=tmp_path))
    (tmp_path / "results.md").write_text("# no markers\n")
    monkeypatch.setattr(exporting, "RESULTS_PAGE", tmp_path / "results.md")
    monkeypatch.setattr(exporting, "export", lambda *args: pytest.fail("exported before the check"))
    with pytest.raises(exporting.ExportError, match="lacks the lines"):
        export.main(["--run-dir", str(tiny_run), "--name", "tiny"])


def test_wall_time_adds_up_resumed_segments():
    history = pd.DataFrame({"seconds": [10.0, 20.0, 5.0, 15.0]})
    assert bundles.wall_seconds(history) == 35.0


def test_card_of_a_mixed_precision_run_says_bfloat16(tiny_run, tmp_path):
    run = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    config["train"]["precision"] = "bfloat16"
    (run / "config.json").write_text(json.dumps(config))
    options = exporting.BundleOptions(
        root=tmp_path / "pretrained",
        outputs_dir=tmp_path / "outputs",
        splits=(_split(24, 1), _split(40, 2)),
        trained_on="a test machine",
        num_samples=30,
    )
    folder = exporting.export(run, "tiny", options)
    text = (folder / "MODEL_CARD.md").read_text()
    assert "bfloat16 mixed precision, on all" in text and ", float32, on all" not in text


# --- Magenta's formats ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", exporting.MAGENTA_FORMATS)
def test_export_magenta_round_trips_through_magenta_load(tiny_run, tmp_path, fmt):
    trained = sample.TrainedModel(tiny_run)
    folder = exporting.export_magenta(trained, fmt, tmp_path / "tiny")
    source = folder / "tiny.tar" if fmt == "magenta-tf1" else folder
    back, _ = magenta.load(source, trained.config if fmt == "magenta-tf1" else None)
    exported = magenta.magenta_weights(trained.model)
    for name, array in magenta.magenta_weights(back).items():
        np.testing.assert_array_equal(array, exported[name])
    for ours, theirs in zip(trained.model.trainable_variables, back.trainable_variables):
        np.testing.assert_array_equal(np.asarray(theirs), np.asarray(ours))
    if fmt == "magenta-tf1":
        assert magenta.read_tf1(source)["global_step"] == trained.step


def test_export_magenta_refuses_what_a_format_cannot_hold(tiny_run, tmp_path):
    hits = with_overrides(get_config("groovae_2bar_hits_control_tfds"), z_size=8)
    hits = with_overrides(hits, enc_rnn_size=(16,), dec_rnn_size=(16, 16))
    conditioned = sample.TrainedModel(model=GrooVAE(hits))
    with pytest.raises(magenta_js.MagentaJsError, match="hits_as_controls"):
        exporting.export_magenta(conditioned, "magenta-js", tmp_path / "js")
    trained = sample.TrainedModel(tiny_run)
    with pytest.raises(exporting.ExportError, match="float32"):
        exporting.export_magenta(trained, "magenta-tf1", tmp_path / "tf1", quantization="uint8")
    with pytest.raises(exporting.ExportError, match="format must be one of"):
        exporting.export_magenta(trained, "onnx", tmp_path / "onnx")
    assert not any(tmp_path.iterdir())


def test_magenta_zip_holds_the_folder_and_replaces_only_its_own(tiny_run, tmp_path):
    trained = sample.TrainedModel(tiny_run)
    archive = exporting.magenta_zip(trained, "magenta-js", tmp_path / "tiny", "float16")
    assert archive == tmp_path / "tiny.zip"
    exporting.magenta_zip(trained, "magenta-js", tmp_path / "tiny")  # its own: replaced
    with zipfile.ZipFile(archive) as zipped:
        names = sorted(zipped.namelist())
    files = ("config.json", "group1-shard1of1", HitResiduals.FILE, MANIFEST)
    assert names == [f"tiny/{p}" for p in files]
    (tmp_path / "other.zip").write_bytes(b"not ours")
    with pytest.raises(exporting.ExportError, match="not written by this exporter"):
        exporting.magenta_zip(trained, "magenta-tf1", tmp_path / "other")
    assert (tmp_path / "other.zip").read_bytes() == b"not ours"


def test_main_writes_magenta_formats_of_a_run_and_of_a_bundled_model(tiny_run, tmp_path, capsys):
    out = tmp_path / "js"
    args = ["--format", "magenta-js", "--run-dir", str(tiny_run), "--out", str(out)]
    assert export.main([*args, "--quantize", "uint8"]) == out
    shown = capsys.readouterr().out
    assert "uint8 weights: largest change" in shown
    assert "quieter and nearer the grid than this project's per-hit decoding" in shown
    assert HitResiduals.read(out) == sample.TrainedModel(tiny_run).residuals
    folder = export.main(
        ["--format", "magenta-tf1", "--bundled", "groovae_4bar", "--out", str(tmp_path / "tf1")]
    )
    assert (folder / "tf1.tar").exists() and (folder / "model.ckpt-3000.index").exists()
    for wrong in (args[:-2], [*args, "--bundled", "groovae_4bar"]):
        with pytest.raises(SystemExit):
            export.main(wrong)


@pytest.mark.slow
def test_export_magenta_tf1_loads_in_magentas_trained_model(tmp_path):
    """bench/bench_magenta_export.py on tiny models and the bundled groovae_4bar: Magenta
    2.1.4's TrainedModel and Saver load the exports and compute what we compute (1e-4)."""
    if not (Path.home() / ".cache" / "groovae-bench" / "magenta-venv" / ".installed").exists():
        pytest.skip("Magenta's side environment is not built: python bench/magenta_family.py")
    sys.path.insert(0, str(REPO / "bench"))
    import bench_magenta_export

    results = bench_magenta_export.run(["tiny", "hits_2bar_tiny", "groovae_4bar"], tmp_path)
    assert bench_magenta_export.failures(results) == []
    assert results["groovae_4bar"]["global_step"] == 3000
