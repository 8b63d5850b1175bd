"""GrooVAE drum lab: Magenta's GrooVAE family rebuilt in Keras 3, with the data and tools around it."""

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import io
import os
import re
import sys
import threading
import types
import warnings
from collections.abc import Iterator

# The one place the Keras backend is chosen, before anything imports Keras: the user's
# KERAS_BACKEND wins; otherwise the backend measured fastest on this kind of machine
# (helpers.device.pick_backend, which reads no framework).
if "KERAS_BACKEND" not in os.environ:
    from helpers.device import pick_backend

    os.environ["KERAS_BACKEND"] = pick_backend()[0]

# TensorFlow's C++ info and warning lines (after start-up, see below) bury notebook output;
# errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# note-seq imports pydub, which warns about ffmpeg at import time; no code path here uses ffmpeg.
warnings.filterwarnings("ignore", message="Couldn't find ffmpeg or avconv")


# TensorFlow 2.20 and later log their start-up notices through Abseil before they read
# TF_CPP_MIN_LOG_LEVEL (no environment variable reaches that logger), so every import on a
# machine without a GPU printed oneDNN's round-off notice, "Could not find cuda drivers" and,
# at the first device lookup, "failed call to cuInit", in the command lines and the notebooks.
# C++ writes them straight to file descriptor 2, so that is where they are caught: while
# TensorFlow loads and first lists its devices, fd 2 goes through a pipe that drops these lines
# and passes everything else on as it comes (a crash still shows its message).
TF_STARTUP_NOTICES = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on"
    r"|Could not find cuda drivers|cuInit|Unable to register cu\w+ factory|TF-TRT Warning"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
)


def _pass_on(pipe: int, stderr: int) -> None:
    """Copies the pipe to `stderr` line by line, all but TF_STARTUP_NOTICES, until it closes."""
    pending = b""
    while chunk := os.read(pipe, 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        kept = [
            line + b"\n"
            for line in lines
            if not TF_STARTUP_NOTICES.search(line.decode(errors="replace"))
        ]
        if kept:
            os.write(stderr, b"".join(kept))
    if pending and not TF_STARTUP_NOTICES.search(pending.decode(errors="replace")):
        os.write(stderr, pending)
    os.close(pipe)


@contextlib.contextmanager
def quiet_startup() -> Iterator[None]:
    """Drops TF_STARTUP_NOTICES from what is written to stderr (fd 2) inside; the rest passes."""
    try:
        sys.stderr.flush()
        stderr = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no stderr to quiet (pythonw, a closed fd)
        yield
        return
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    passer = threading.Thread(target=_pass_on, args=(read, stderr), daemon=True)
    passer.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(stderr, 2)  # closes the pipe's last write end: _pass_on drains it and stops
        passer.join(timeout=10)
        os.close(stderr)


class _QuietImports(importlib.abc.MetaPathFinder):
    """Imports TensorFlow inside quiet_startup and, as the Keras backend, lists its devices
    there too: CUDA's probe (and its cuInit line) runs at the first device lookup, not at import.
    pyfluidsynth (imported by pretty_midi, so by note-seq) prints where it found libfluidsynth on
    stdout whenever CI is set, which put a line above every command line's own output; that
    print is dropped."""

    def find_spec(self, name, path=None, target=None):
        if name not in ("tensorflow", "fluidsynth"):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module) -> None:
            if name == "fluidsynth":
                with contextlib.redirect_stdout(io.StringIO()):
                    load(module)
                return
            with quiet_startup():
                load(module)
                if os.environ["KERAS_BACKEND"] == "tensorflow":
                    module.config.list_physical_devices()

        spec.loader.exec_module = exec_module
        return spec


if not any(isinstance(finder, _QuietImports) for finder in sys.meta_path):
    sys.meta_path.insert(0, _QuietImports())


class _MovedModule(types.ModuleType):
    """An old module path that still imports for one release, with a DeprecationWarning: its
    names are read from the module they moved to when first asked for."""

    def __init__(self, old: str, new: str):
        super().__init__(f"helpers.{old}")
        self._old, self._new = old, new

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        warnings.warn(
            f"helpers.{self._old} is now helpers.{self._new}; import from there "
            "(the old path goes in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(f"helpers.{self._new}"), name)


# Where the modules of the last release went when helpers/ was folded into fewer rooms.
MOVED_MODULES = {
    "magenta_weights": "magenta",
    "checkpoints": "runs",
    "pretrained": "bundles",
    "card": "bundles",
    "dataset": "train",
    "history": "runs",
    "paths": "constants",
    "cli": "config",
    "inputs": "converter",
    "clips": "gmd",
    "steps": "backends",
    "parallel": "backends",
    "groove_files": "render",
    "colab": "notebook",
}
for _old, _new in MOVED_MODULES.items():
    sys.modules.setdefault(f"helpers.{_old}", _MovedModule(_old, _new))
