"""Tests for helpers/notebook.py: the Generate panel, the novelty table, and the uploaded file
read from Colab's and both ipywidgets' formats."""

import datetime

import ipywidgets
import numpy as np
import pandas as pd
import pytest
from conftest import random_grooves

from helpers import data, notebook, sample
from helpers.constants import HITS

MIDI = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0"  # the bytes only need to come through


def test_colab_format():
    assert notebook.uploaded_files({"groove.mid": MIDI}) == {"groove.mid": MIDI}


def test_ipywidgets_7_format():
    value = {
        "groove.mid": {
            "metadata": {"name": "groove.mid", "type": "audio/midi", "size": 14, "lastModified": 0},
            "content": MIDI,
        }
    }
    assert notebook.uploaded_files(value) == {"groove.mid": MIDI}


def test_a_real_widget_of_the_installed_ipywidgets():
    """Colab has ipywidgets 7.7.1, newer Jupyter 8.x: each filled the way its browser side does."""
    widget = notebook.choose()
    assert isinstance(widget, ipywidgets.FileUpload) and widget.accept == ".mid,.midi"
    assert notebook.uploaded_files(widget) == {}
    if int(ipywidgets.__version__.split(".")[0]) < 8:
        widget.metadata = [{"name": "groove.mid", "type": "audio/midi", "size": len(MIDI)}]
        widget.data = [MIDI]
        widget._counter = 1  # the browser's signal that makes 7.x build .value
    else:
        when = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        widget.value = (
            {
                "name": "groove.mid",
                "type": "audio/midi",
                "size": len(MIDI),
                "content": memoryview(MIDI),
                "last_modified": when,
            },
        )
    assert notebook.uploaded_files(widget) == {"groove.mid": MIDI}


def test_names_lose_their_folders():
    assert notebook.uploaded_files({"../../etc/x.mid": MIDI}) == {"x.mid": MIDI}


def test_received_saves_without_overwriting(tmp_path, capsys):
    assert notebook.received({}, tmp_path) is None
    assert "No file chosen yet" in capsys.readouterr().out
    first = notebook.received({"groove.mid": MIDI}, tmp_path)
    again = notebook.received({"groove.mid": MIDI}, tmp_path)
    other = notebook.received({"groove.mid": MIDI + b"\x00"}, tmp_path)
    assert first == again == tmp_path / "groove.mid" and other == tmp_path / "groove-2.mid"
    assert first.read_bytes() == MIDI and other.read_bytes() == MIDI + b"\x00"


@pytest.fixture(scope="module")
def groovae(tiny_run):
    return sample.TrainedModel(tiny_run)


def test_novelty_table_finds_an_exact_copy():
    outputs = random_grooves(30, seed=4)
    meta = pd.DataFrame(
        {
            "midi_filename": [f"perf_{i // 3}.mid" for i in range(30)],
            "clip": [i % 3 for i in range(30)],
        }
    )
    split = data.GrooveSplit(outputs=outputs, meta=meta, summary={})
    fresh = random_grooves(1, seed=99)
    queries = np.concatenate([outputs[[4, 17]], fresh])
    table, indices = notebook.novelty_table(queries, split, k=5)
    assert indices.shape == (3, 5) and list(indices[:2, 0]) == [4, 17]
    assert list(table["groove"]) == ["groove_01", "groove_02", "groove_03"]
    assert list(table["nearest window"][:2]) == ["perf_1.mid clip 1", "perf_5.mid clip 2"]
    brute = ((fresh[:, None, :, HITS] > 0.5) != (outputs[None, :, :, HITS] > 0.5)).sum(axis=(2, 3))
    assert list(table["nearest distance"]) == [0, 0, brute.min()] and brute.min() > 0
    np.testing.assert_array_equal(table["hits"], (queries[..., HITS] > 0.5).sum(axis=(1, 2)))


def test_generate_panel_each_click_writes_a_new_folder(groovae, tmp_path):
    panel = notebook.generate_panel(groovae, tmp_path, num=2, seed=4)
    assert list(tmp_path.iterdir()) == []  # nothing before the first click
    button = panel.children[1]
    button.click()
    button.click()
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders == ["T0.50-seed4-120bpm-001", "T0.50-seed4-120bpm-002"]
    for folder in folders:
        names = sorted(p.name for p in (tmp_path / folder).iterdir())
        assert names == [f"groove_0{i}{ext}" for i in (1, 2) for ext in (".mid", ".png", ".wav")]
