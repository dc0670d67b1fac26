"""Resolving face_landmarker.task: explicit path, env var, user cache, verified download, clear errors."""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import zipfile

import pytest

from osmnet.data import assets
from osmnet.data.assets import AssetError, face_landmarker_path


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No env var, and a user cache inside tmp_path."""
    monkeypatch.delenv(assets.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "osmnet"


@pytest.fixture
def http_folder(tmp_path):
    """A real HTTP server on loopback serving tmp_path/www: (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(5)


def test_explicit_path_wins_over_env(clean_env, face_model, monkeypatch, tmp_path):
    monkeypatch.setenv(assets.ENV_VAR, str(tmp_path / "missing.task"))
    assert face_landmarker_path(face_model) == face_model


def test_env_var_is_used_and_checked(clean_env, face_model, monkeypatch, tmp_path):
    monkeypatch.setenv(assets.ENV_VAR, str(face_model))
    assert face_landmarker_path() == face_model
    monkeypatch.setenv(assets.ENV_VAR, str(tmp_path / "missing.task"))
    with pytest.raises(AssetError, match=r"missing.task.*\$OSMNET_FACE_LANDMARKER.*does not exist"):
        face_landmarker_path()


def test_user_cache_is_used_before_any_download(clean_env, face_model):
    clean_env.mkdir(parents=True)
    shutil.copy(face_model, clean_env / "face_landmarker.task")
    got = face_landmarker_path(url="http://127.0.0.1:9/never-fetched")
    assert got == clean_env / "face_landmarker.task"


def test_offline_download_fails_with_where_to_put_the_file(clean_env):
    with pytest.raises(AssetError) as e:
        face_landmarker_path(url="http://127.0.0.1:9/face_landmarker.task")
    msg = str(e.value)
    assert str(clean_env / "face_landmarker.task") in msg and assets.ENV_VAR in msg and "--model" in msg
    assert not clean_env.exists() or not any(clean_env.iterdir())  # nothing half-downloaded is left


def test_download_is_verified_by_sha256_and_kept_in_the_cache(clean_env, face_model, http_folder):
    www, base = http_folder
    shutil.copy(face_model, www / "face_landmarker.task")
    got = face_landmarker_path(url=f"{base}/face_landmarker.task")
    assert got == clean_env / "face_landmarker.task"
    assert assets.sha256_of(got) == assets.SHA256
    assert sorted(p.name for p in clean_env.iterdir()) == ["face_landmarker.task"]


def test_download_with_a_wrong_sha256_is_discarded(clean_env, http_folder):
    www, base = http_folder
    (www / "other.task").write_bytes(b"not the model" * 100)
    with pytest.raises(AssetError, match="sha256"):
        face_landmarker_path(url=f"{base}/other.task")
    assert not clean_env.exists() or not any(clean_env.iterdir())


def test_unreadable_task_file_is_a_clear_error(clean_env, tmp_path):
    bad = tmp_path / "face_landmarker.task"
    bad.write_text("this is not a zip")
    with pytest.raises(AssetError, match="not a readable .task bundle"):
        face_landmarker_path(bad)


def test_a_zip_without_the_landmarker_models_is_refused(clean_env, tmp_path):
    bad = tmp_path / "other.task"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("something.tflite", b"x")
    with pytest.raises(AssetError, match="lacks"):
        face_landmarker_path(bad)


def test_a_download_killed_midway_leaves_nothing_in_the_cache(clean_env, tmp_path):
    """Killed processes run no cleanup, so the bytes in flight must not be in the cache folder at all."""
    half_sent, release = threading.Event(), threading.Event()

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "200000")
            self.end_headers()
            self.wfile.write(b"x" * 100_000)
            self.wfile.flush()
            half_sent.set()
            release.wait(30)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/face_landmarker.task"
    code = ("import sys; from pathlib import Path; from osmnet.data import assets; "
            "assets.download(sys.argv[1], Path(sys.argv[2]))")
    proc = subprocess.Popen([sys.executable, "-c", code, url, str(clean_env / assets.FILENAME)],
                            env={**os.environ, "XDG_CACHE_HOME": str(clean_env.parent)})
    try:
        assert half_sent.wait(60), "the download never started"
        proc.kill()
        proc.wait(10)
    finally:
        release.set()
        server.shutdown()
    assert not clean_env.exists() or sorted(p.name for p in clean_env.iterdir()) == []
