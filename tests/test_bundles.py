"""Tests for helpers/bundles.py: float16 bundles and their errors, which model plays, and the
committed bundles in pretrained/ (complete, small, reproducing their recorded test loss)."""

import json
import shutil

import nbformat
import numpy as np
import pytest
from conftest import REPO

from helpers import bundles, data, export, runs, sample, train, verbs, windowing
from helpers.config import VERB_CONFIGS, get_config, with_overrides
from helpers.converter import GrooveConverter
from helpers.data import load_groove_4bar_split


@pytest.fixture(scope="module")
def tiny_bundle(tiny_run, tmp_path_factory):
    """A bundle of the tiny run's weights under a fresh pretrained root."""
    root = tmp_path_factory.mktemp("pretrained")
    folder = root / "tiny"
    folder.mkdir()
    shutil.copy(tiny_run / train.CONFIG_FILE, folder)
    model = runs.restore_model(tiny_run)
    bundles.save_weights(model, folder / bundles.WEIGHTS_FILE, step=2)
    return root


def test_round_trip_is_float32_and_decodes_as_the_run(tiny_run, tiny_bundle):
    # Magenta's decoding: per-hit decoding divides by p(hit), which magnifies float16's rounding
    # up to 20 times where the model hardly expects a hit.
    run = sample.TrainedModel(tiny_run, decoding="magenta")
    bundled = sample.TrainedModel.pretrained("tiny", root=tiny_bundle, decoding="magenta")
    assert type(bundled) is type(run) and bundled.step == run.step == 2
    for ours, theirs in zip(bundled.model.trainable_variables, run.model.trainable_variables):
        assert ours.dtype == "float32"
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-3, atol=1e-4)
        assert np.array_equal(ours.numpy(), theirs.numpy().astype(np.float16).astype(np.float32))
    z = np.random.default_rng(0).standard_normal((4, run.config.model.z_size)).astype(np.float32)
    ours, theirs = bundled.decode_grooves(z, 1e-6, seed=1), run.decode_grooves(z, 1e-6, seed=1)
    # greedy hits: float16 rounding may flip a rare logit near 0
    assert (ours[..., :9] == theirs[..., :9]).mean() > 0.99
    np.testing.assert_allclose(ours[..., 9:], theirs[..., 9:], atol=2e-2)
    mu_ours, _ = bundled.model.encode(ours)
    mu_theirs, _ = run.model.encode(ours)
    np.testing.assert_allclose(mu_ours, mu_theirs, atol=2e-2)


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_bundle_of_a_mixed_precision_run_loads_at_float32(tiny_run, tmp_path, precision):
    config = with_overrides(get_config("tiny"), precision=precision)
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / train.CONFIG_FILE).write_text(config.to_json())
    bundles.save_weights(runs.restore_model(tiny_run), tmp_path / "mixed" / "weights.npz", 7)
    model, step = bundles.load_bundle("mixed", tmp_path)
    assert step == 7 and model.dtype_policy.compute_dtype == "float32"


def test_run_models_carry_their_step_and_label(tiny_run):
    run = sample.TrainedModel(tiny_run)
    assert run.step == 2 and run.label == "tiny-ckpt-000000002"
    assert str(tiny_run) in run.source


def test_unknown_name_lists_what_is_bundled(tiny_bundle):
    with pytest.raises(bundles.BundleError, match=r"'nope'.*bundled: tiny"):
        sample.TrainedModel.pretrained("nope", root=tiny_bundle)


def test_missing_and_truncated_weights_name_the_file(tiny_bundle, tmp_path):
    shutil.copytree(tiny_bundle / "tiny", tmp_path / "tiny")
    weights = tmp_path / "tiny" / bundles.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(bundles.BundleError, match=f"{weights}.*truncated"):
        bundles.load_bundle("tiny", tmp_path)
    model, _ = bundles.load_bundle("tiny", tiny_bundle)
    weights.unlink()
    with pytest.raises(bundles.BundleError, match=f"{weights} is missing"):
        bundles.load_weights(model, weights)


def test_weights_of_another_config_are_refused(tiny_bundle):
    from helpers.model import GrooVAE

    other = GrooVAE(with_overrides(get_config("tiny"), z_size=7))
    with pytest.raises(bundles.BundleError, match="different models"):
        bundles.load_weights(other, tiny_bundle / "tiny" / bundles.WEIGHTS_FILE)


def test_without_a_run_the_bundled_model_plays(tiny_bundle, tmp_path):
    groovae = sample.pick_model("tiny", outputs_dir=tmp_path, root=tiny_bundle)
    assert groovae.run_dir is None and groovae.step == 2 and groovae.label == "tiny-pretrained"
    assert (
        groovae.source.startswith("the bundled tiny") and "no tiny run of yours" in groovae.source
    )
    assert groovae.sample_grooves(2, seed=0).shape == (2, 64, 27)


def test_a_run_of_your_own_comes_before_the_bundle(tiny_run, tiny_bundle):
    groovae = sample.pick_model("tiny", outputs_dir=tiny_run.parents[1], root=tiny_bundle)
    assert groovae.run_dir == tiny_run and groovae.source.startswith("your run")
    bundled = sample.pick_model("tiny", "bundled", tiny_run.parents[1], root=tiny_bundle)
    assert bundled.label == "tiny-pretrained" and bundled.step == 2


def test_pick_model_without_run_or_bundle_says_how_to_train(tmp_path, tiny_bundle):
    with pytest.raises(sample.SampleError, match="python -m helpers.train --config groovae_2bar"):
        sample.pick_model("drumify", outputs_dir=tmp_path, root=tiny_bundle)


# ------------------------------------------------------------------------------------------
# Tests of the committed bundles, pretrained/<name>/: groovae_4bar is there, each is small and
# reproduces its recorded test loss, and groovae_4bar is what the CLI and notebook 03 play when
# there is no run of your own.


NAME = "groovae_4bar"  # the one every clone must hold; 03 and the CLI play it
GROOVES = REPO / "outputs" / "samples" / f"{NAME}-pretrained-T0.5-seed0-120bpm"
# No skip: a clone without groovae_4bar's bundle must fail here, loudly.
NAMES = sorted({NAME, *bundles.bundled_names()})


@pytest.fixture(scope="module", params=NAMES)
def name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def metrics(name) -> dict:
    path = bundles.PRETRAINED_DIR / name / "metrics.json"
    assert path.exists(), f"{path.parent} is missing from the repository"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def bundled(name) -> sample.TrainedModel:
    return sample.TrainedModel.pretrained(name)


def test_bundle_is_complete_and_small(name, metrics):
    bundle = bundles.PRETRAINED_DIR / name
    for file in (
        "weights.npz",
        "config.json",
        "history.csv",
        "MODEL_CARD.md",
        "training_curves.png",
        "samples.png",
    ):
        assert (bundle / file).exists(), f"{bundle / file} is missing"
    assert (bundle / "weights.npz").stat().st_size <= bundles.MAX_BUNDLE_BYTES
    assert bundles.bundle_bytes(bundle) <= bundles.MAX_BUNDLE_BYTES
    assert metrics["bundle"]["name"] == name


def test_bundle_loads_at_float32_with_its_step(name, bundled, metrics):
    assert bundled.step == metrics["bundle"]["step"] and bundled.config.name == name
    assert {v.dtype for v in bundled.model.trainable_variables} == {"float32"}


def test_bundle_reproduces_its_recorded_test_loss(bundled, metrics, gmd_dir):
    recorded = metrics["bundle"]["check"]
    converter = GrooveConverter.from_config(bundled.config.converter)  # its 2- or 4-bar cut
    test = load_groove_4bar_split("test", gmd_dir, converter).outputs
    got = export.reference_losses(bundled.model, test, recorded["windows"], recorded["seed"])
    assert got["loss"] == pytest.approx(recorded["loss"], rel=1e-3)
    for key in ("hits_loss", "velocities_loss", "offsets_loss"):
        assert got[key] == pytest.approx(recorded[key], abs=1e-3), key


def test_committed_grooves_are_the_bundled_models():
    # Written when the bundle was exported, in the decoding its metrics.json names.
    decoding = json.loads((bundles.PRETRAINED_DIR / NAME / "metrics.json").read_text())["bundle"]
    bundled = sample.TrainedModel.pretrained(NAME, decoding=decoding.get("decoding", "magenta"))
    paths = sorted(GROOVES.glob("groove_*"))
    assert [p.name for p in paths] == sorted(
        f"groove_0{i}{s}" for i in range(1, 6) for s in (".mid", ".png")
    )

    def notes(sequence):  # by drum then time; MIDI starts an early first note at 0, on a tick
        return sorted((n.pitch, max(n.start_time, 0.0), n.velocity) for n in sequence.notes)

    again = bundled.sample(5, export.SAMPLES_TEMPERATURE, export.SAMPLES_SEED)
    for sequence, path in zip(again, sorted(GROOVES.glob("*.mid"))):
        written, expected = notes(windowing.load_midi(path)), notes(sequence)
        assert [n[::2] for n in written] == [n[::2] for n in expected], path.name
        np.testing.assert_allclose([n[1] for n in written], [n[1] for n in expected], atol=2e-3)


def test_cli_without_a_run_plays_the_bundle_and_says_so(tmp_path, capsys):
    written = verbs.main(
        [
            "--num",
            "2",
            "--seed",
            "0",
            "--out",
            str(tmp_path / "out"),
            "--outputs-dir",
            str(tmp_path),
        ]
    )
    assert len(written) == 2
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith(f"model: the bundled {NAME}") and "run of yours" in first_line


def test_cli_with_a_run_plays_the_run(tiny_run, tmp_path, capsys):
    verbs.main(["--num", "1", "--out", str(tmp_path), "--outputs-dir", str(tiny_run.parents[1])])
    assert capsys.readouterr().out.splitlines()[0] == f"model: your run {tiny_run} at step 2"


def test_notebook_03_without_a_run_plays_the_bundle(tmp_path, gmd_dir, monkeypatch):
    from nbclient import NotebookClient

    notebook = nbformat.read(REPO / "notebooks" / "03_sample.ipynb", as_version=4)
    (parameters,) = [c for c in notebook.cells if "OUTPUTS_DIR = None" in c.source]
    ours = f"OUTPUTS_DIR = {str(tmp_path)!r}"
    parameters.source = parameters.source.replace("OUTPUTS_DIR = None", ours)
    # The GMD window cache is the suite's shared one: a cold build of the train split costs ~40 s.
    data.DEFAULT_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cache").symlink_to(data.DEFAULT_CACHE_DIR, target_is_directory=True)
    monkeypatch.setenv("GROOVE_DATA_DIR", str(gmd_dir))
    NotebookClient(notebook, timeout=900, resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert f"model: the bundled {NAME}" in printed
    for tool in ("humanize", "drumify", "transfer", "infill"):  # every section says what plays
        assert f"model: the bundled {VERB_CONFIGS[tool]}" in printed
    assert len(list(tmp_path.rglob("groove_0*.wav"))) >= 5
