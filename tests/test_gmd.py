"""Tests for helpers/gmd.py: downloading GMD end to end against a loopback HTTP server:
checksum, cache, and failures that leave nothing behind."""

import hashlib
import http.server
import threading
import zipfile

import pytest

from helpers import constants, data, gmd


@pytest.fixture
def gmd_zip(gmd_subset, tmp_path) -> bytes:
    """A zip laid out like the official one (groove/info.csv, groove/drummer*/...), from a subset."""
    path = tmp_path / constants.GMD_ZIP_NAME
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(gmd_subset.rglob("*")):
            archive.write(file, f"groove/{file.relative_to(gmd_subset)}")
    return path.read_bytes()


@pytest.fixture
def server(gmd_zip):
    """127.0.0.1: /gmd.zip serves the zip; /cut.zip announces all of it but sends half."""
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(gmd_zip)))
            self.end_headers()
            self.wfile.write(gmd_zip if self.path == "/gmd.zip" else gmd_zip[: len(gmd_zip) // 2])

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    """No GMD anywhere: no GROOVE_DATA_DIR, an empty user cache, no proxy for loopback."""
    monkeypatch.delenv("GROOVE_DATA_DIR", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr(gmd, "USER_CACHE_DIR", tmp_path / "user-cache")
    return tmp_path / "user-cache"


def test_download_checks_extracts_and_caches(server, gmd_zip, gmd_subset, user_cache, tmp_path):
    url, requests = server
    sha256 = hashlib.sha256(gmd_zip).hexdigest()
    found = gmd.find_gmd(url=f"{url}/gmd.zip", sha256=sha256)
    assert found.is_relative_to(user_cache) and (found / "info.csv").is_file()
    assert (user_cache / constants.GMD_ZIP_NAME).read_bytes() == gmd_zip
    assert gmd.find_gmd(url=f"{url}/gmd.zip", sha256=sha256) == found
    assert requests == ["/gmd.zip"]  # the second call used the cache
    downloaded = data.load_groove_4bar(
        "train", found, cache_dir=tmp_path / "c", workers=1, progress=False
    )
    local = data.load_groove_4bar(
        "train", gmd_subset, cache_dir=tmp_path / "d", workers=1, progress=False
    )
    assert len(downloaded) > 0
    assert downloaded.tobytes() == local.tobytes()


@pytest.mark.parametrize(
    "path, sha256, reason",
    [
        ("/cut.zip", None, "truncated: got"),
        ("/gmd.zip", "0" * 64, "sha256 is"),
    ],
)
def test_failed_download_is_one_clear_error_and_leaves_nothing(
    server, gmd_zip, user_cache, path, sha256, reason
):
    url, _ = server
    sha256 = sha256 or hashlib.sha256(gmd_zip).hexdigest()
    with pytest.raises(gmd.DatasetNotFoundError) as error:
        gmd.find_gmd(url=url + path, sha256=sha256)
    assert "download failed" in str(error.value) and reason in str(error.value)
    assert url + path in str(error.value)
    assert list(user_cache.iterdir()) == []


def test_a_damaged_zip_is_refused_and_nothing_is_extracted(gmd_zip, user_cache, tmp_path):
    cut = tmp_path / constants.GMD_ZIP_NAME
    cut.write_bytes(gmd_zip[: len(gmd_zip) // 2])
    with pytest.raises(gmd.DatasetNotFoundError, match="cannot be unzipped .*download it again"):
        gmd.find_gmd(cut)
    assert not user_cache.exists() or not list(user_cache.iterdir())


def test_interrupted_extraction_is_redone(server, gmd_zip, user_cache, monkeypatch):
    url, requests = server
    sha256 = hashlib.sha256(gmd_zip).hexdigest()

    def cut_short(archive, folder):
        archive.extract(archive.namelist()[0], folder)
        raise KeyboardInterrupt

    monkeypatch.setattr(zipfile.ZipFile, "extractall", cut_short)
    with pytest.raises(KeyboardInterrupt):
        gmd.find_gmd(url=f"{url}/gmd.zip", sha256=sha256)
    monkeypatch.undo()
    monkeypatch.delenv("GROOVE_DATA_DIR", raising=False)
    monkeypatch.setattr(gmd, "USER_CACHE_DIR", user_cache)
    found = gmd.find_gmd(url=f"{url}/gmd.zip", sha256=sha256)
    assert (found / "info.csv").is_file() and (found.parent / gmd.COMPLETE).is_file()
    assert len(list(found.rglob("*.mid"))) == 14
    assert requests == ["/gmd.zip"]  # the zip was whole and kept; only extraction was redone
    assert [p.name for p in user_cache.iterdir() if p.name.endswith(".partial")] == []
