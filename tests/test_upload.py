"""Tests for helpers/upload.py: the chosen file read from Colab's and both ipywidgets' formats."""

import datetime

import ipywidgets

from helpers import upload

MIDI = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0"  # the bytes only need to come through


def test_colab_format():
    assert upload.uploaded_files({"groove.mid": MIDI}) == {"groove.mid": MIDI}


def test_ipywidgets_7_format():
    value = {"groove.mid": {"metadata": {"name": "groove.mid", "type": "audio/midi", "size": 14,
                                         "lastModified": 0}, "content": MIDI}}
    assert upload.uploaded_files(value) == {"groove.mid": MIDI}


def test_a_real_widget_of_the_installed_ipywidgets():
    """Colab has ipywidgets 7.7.1, newer Jupyter 8.x: each filled the way its browser side does."""
    widget = upload.choose()
    assert isinstance(widget, ipywidgets.FileUpload) and widget.accept == ".mid,.midi"
    assert upload.uploaded_files(widget) == {}
    if int(ipywidgets.__version__.split(".")[0]) < 8:
        widget.metadata = [{"name": "groove.mid", "type": "audio/midi", "size": len(MIDI)}]
        widget.data = [MIDI]
        widget._counter = 1  # the browser's signal that makes 7.x build .value
    else:
        when = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        widget.value = ({"name": "groove.mid", "type": "audio/midi", "size": len(MIDI),
                         "content": memoryview(MIDI), "last_modified": when},)
    assert upload.uploaded_files(widget) == {"groove.mid": MIDI}


def test_names_lose_their_folders():
    assert upload.uploaded_files({"../../etc/x.mid": MIDI}) == {"x.mid": MIDI}


def test_received_saves_without_overwriting(tmp_path, capsys):
    assert upload.received({}, tmp_path) is None
    assert "No file chosen yet" in capsys.readouterr().out
    first = upload.received({"groove.mid": MIDI}, tmp_path)
    again = upload.received({"groove.mid": MIDI}, tmp_path)
    other = upload.received({"groove.mid": MIDI + b"\x00"}, tmp_path)
    assert first == again == tmp_path / "groove.mid" and other == tmp_path / "groove-2.mid"
    assert first.read_bytes() == MIDI and other.read_bytes() == MIDI + b"\x00"
