"""Keeps what we did not write out of the output of the command lines and notebooks:
TensorFlow's start-up notices, its C++ info lines (XLA's first compile among them), pydub's ffmpeg
warning and pyfluidsynth's library line. Real warnings and errors still show.
helpers/__init__.py calls install() once."""

import contextlib
import ctypes
import importlib.abc
import importlib.machinery
import io
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

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


def _abseil_follows_tf_cpp_min_log_level(tensorflow: ModuleType) -> None:
    """Gives the Abseil logger inside TensorFlow's C++ the minimum level TF_CPP_MIN_LOG_LEVEL asks.

    TensorFlow 2.20 (Colab's) logs part of its C++ through Abseil, which it never tells that
    level: after start-up, the first compiled call printed "All log messages before
    absl::InitializeLog() ..." and XLA's "Compiled cluster using XLA!" on stderr whatever the
    environment said (TF_CPP_MIN_LOG_LEVEL, GLOG_minloglevel and ABSL_MIN_LOG_LEVEL tried).
    libtensorflow_framework exports absl::SetMinLogLevel, under the inline namespace of the Abseil
    release TensorFlow was built with, which the headers TensorFlow ships name
    (include/absl/base/options.h); it is called with the same number (both count 0 info,
    1 warning, 2 error, 3 fatal). TensorFlow 2.21 follows the variable itself, so there this
    changes nothing. Where the library, the header or the symbol is missing (another platform,
    another build) nothing is done.

    Args:
        tensorflow: the tensorflow package, just imported.
    """
    try:
        level = min(max(int(os.environ["TF_CPP_MIN_LOG_LEVEL"]), 0), 3)
    except (KeyError, ValueError):
        return
    root = Path(tensorflow.__file__).parent
    libraries = sorted(root.glob("libtensorflow_framework.*"))
    options = root / "include" / "absl" / "base" / "options.h"
    if not libraries or not options.is_file():
        return
    found = re.search(r"#define ABSL_OPTION_INLINE_NAMESPACE_NAME (\w+)", options.read_text())
    if found is None:
        return
    release = found[1]
    # absl::<release>::SetMinLogLevel(absl::<release>::LogSeverityAtLeast), Itanium-mangled.
    symbol = f"_ZN4absl{len(release)}{release}14SetMinLogLevelENS0_18LogSeverityAtLeastE"
    try:
        set_min_log_level = getattr(ctypes.CDLL(str(libraries[0])), symbol)
    except (OSError, AttributeError):
        return
    set_min_log_level.argtypes = [ctypes.c_int]
    set_min_log_level.restype = None
    set_min_log_level(level)


class _QuietImports(importlib.abc.MetaPathFinder):
    """Imports TensorFlow inside quiet_startup and, as the Keras backend, lists its devices
    there too: CUDA's probe (and its cuInit line) runs at the first device lookup, not at import.
    Then its Abseil logger follows TF_CPP_MIN_LOG_LEVEL, for the lines that come later.
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
                _abseil_follows_tf_cpp_min_log_level(module)
                if os.environ["KERAS_BACKEND"] == "tensorflow":
                    module.config.list_physical_devices()

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Quiets TensorFlow's C++ info and warning lines (TF_CPP_MIN_LOG_LEVEL; errors still show),
    its start-up notices and the imports _QuietImports names, and pydub's ffmpeg warning at
    note-seq's import (no code path here uses ffmpeg). Calling it again changes nothing."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg or avconv")
    if not any(isinstance(finder, _QuietImports) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietImports())
