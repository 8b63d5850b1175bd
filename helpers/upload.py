"""Your MIDI file into a notebook: Colab's upload box, or an ipywidgets FileUpload (7.x or 8.x).

In Colab, `choose()` opens Colab's own upload box and waits; elsewhere it returns a FileUpload
widget to show, whose files `received()` saves once chosen. The two ipywidgets lines store the
files differently: 7.x as {name: {"metadata": ..., "content": bytes}}, 8.x as a tuple of
{"name": ..., "content": memoryview, ...}; Colab's files.upload() gives {name: bytes}.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

MIDI_ACCEPT = ".mid,.midi"


def in_colab() -> bool:
    return "google.colab" in sys.modules


def choose() -> Any:
    """Colab: the files chosen in its upload box ({name: bytes}). Elsewhere: a FileUpload widget
    for MIDI files, to display and pick from before calling `received`."""
    if in_colab():
        from google.colab import files

        return files.upload()
    import ipywidgets as widgets

    return widgets.FileUpload(accept=MIDI_ACCEPT, multiple=False, description="MIDI file")


def uploaded_files(chosen: Any) -> dict[str, bytes]:
    """{file name: bytes} from Colab's upload result, a FileUpload widget or its value.

    Names lose any folder part, so a file is never written outside the folder it is saved to.
    """
    value = getattr(chosen, "value", chosen)
    if isinstance(value, dict):  # Colab, or ipywidgets 7
        items = [(name, item["content"] if isinstance(item, dict) else item)
                 for name, item in value.items()]
    else:  # ipywidgets 8
        items = [(item["name"], item["content"]) for item in value or ()]
    return {Path(name).name: bytes(content) for name, content in items}


def save_upload(name: str, content: bytes, folder: str | Path) -> Path:
    """Writes an uploaded file into `folder`, never over another: the same bytes under the same
    name are found again, different ones get the first free name-2.mid, name-3.mid, ..."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path, n = folder / name, 1
    while path.exists() and path.read_bytes() != content:
        n += 1
        path = folder / f"{Path(name).stem}-{n}{Path(name).suffix}"
    if not path.exists():
        path.write_bytes(content)
    return path


def received(chosen: Any, folder: str | Path) -> Path | None:
    """The chosen MIDI file, saved into `folder`; None (with a hint) before anything is chosen."""
    files = uploaded_files(chosen)
    if not files:
        print("No file chosen yet: pick a .mid file above, then run this cell again.")
        return None
    name, content = next(iter(files.items()))
    return save_upload(name, content, folder)
