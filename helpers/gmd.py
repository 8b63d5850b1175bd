"""Finding the Groove MIDI Dataset on disk, or downloading the official zip once (SHA-256 checked).

Every cache write here goes to a temporary name first and is renamed into place only when
complete, so an interrupted download or extraction is never mistaken for a finished one.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.request
import zipfile
from pathlib import Path

from helpers import constants

USER_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "groovae"
COMPLETE = ".complete"  # written last into an extraction, so a partial one is never used


class DatasetNotFoundError(FileNotFoundError):
    """GMD is not where we looked; the message lists every place and what was expected."""


class DownloadError(OSError):
    """The download failed, was cut short or does not match its checksum; nothing was kept."""


def find_gmd(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    url: str = constants.GMD_ZIP_URL,
    sha256: str = constants.GMD_ZIP_SHA256,
) -> Path:
    """Returns a folder holding GMD's info.csv and MIDI files.

    Looks only at `data_dir` when given (a folder with info.csv, or a folder or path holding
    groove-v1.0.0-midionly.zip, extracted once into the user cache); otherwise at the user
    cache (~/.cache/groovae), and finally downloads the zip from `url` there, checking it
    against `sha256`. The command lines and notebooks pass $GROOVE_DATA_DIR as `data_dir`.

    Raises:
      DatasetNotFoundError: nothing found, and no download allowed or the download failed (the
        message says why; a failed download leaves nothing behind).
    """
    looked = []
    # An explicit place that is wrong is an error, not a fallback.
    candidates = [Path(data_dir).expanduser() if data_dir is not None else USER_CACHE_DIR]
    for candidate in candidates:
        found = _gmd_in(candidate)
        if found is not None:
            return found
        looked.append(f"{candidate} (no info.csv, no {constants.GMD_ZIP_NAME})")
    if data_dir is None and download:
        try:
            return _extract(download_zip(url, sha256, USER_CACHE_DIR / constants.GMD_ZIP_NAME))
        except DownloadError as error:
            looked.append(f"{url} (download failed: {error})")
    raise DatasetNotFoundError(
        "Groove MIDI Dataset not found. Looked at:\n  "
        + "\n  ".join(looked)
        + "\nPass data_dir= a folder with info.csv and drummer*/ MIDI files, or the official "
        f"{constants.GMD_ZIP_NAME}, or set GROOVE_DATA_DIR."
    )


def _gmd_in(path: Path) -> Path | None:
    if (path / "info.csv").is_file():
        return path
    if (path / "groove" / "info.csv").is_file():
        return path / "groove"
    zip_path = path / constants.GMD_ZIP_NAME if path.is_dir() else path
    if zip_path.is_file() and zip_path.suffix == ".zip":
        return _extract(zip_path)
    return None


def _extract(zip_path: Path) -> Path:
    """Unzips once into the user cache (data folders may be read-only); redoes a partial one."""
    digest = hashlib.sha256(str(zip_path.resolve()).encode()).hexdigest()[:12]
    target = USER_CACHE_DIR / f"extracted-{digest}"
    if not (target / COMPLETE).is_file():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(partial)
        if not (partial / "groove" / "info.csv").is_file():
            shutil.rmtree(partial)
            raise DatasetNotFoundError(f"{zip_path} holds no groove/info.csv: not GMD's zip")
        (partial / COMPLETE).touch()
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target / "groove"


def download_zip(url: str, sha256: str, path: Path) -> Path:
    """Downloads `url` to `path` if its SHA-256 is `sha256`.

    Raises:
      DownloadError: a network error, a download shorter than announced, or a checksum that
        differs; the partial file is removed, so nothing is left at or beside `path`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            announced = response.headers.get("Content-Length")
            size = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        if announced is not None and size != int(announced):
            raise DownloadError(f"truncated: got {size} of {announced} bytes")
        if digest.hexdigest() != sha256:
            raise DownloadError(f"sha256 is {digest.hexdigest()}, expected {sha256}")
    except (OSError, http.client.HTTPException) as error:  # IncompleteRead: cut short
        partial.unlink(missing_ok=True)
        if isinstance(error, DownloadError):
            raise
        raise DownloadError(f"{type(error).__name__}: {error}") from error
    except BaseException:  # an interrupt leaves no partial file either
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
    return path
