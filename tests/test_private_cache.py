"""The suite never writes into the user's ~/.cache/osmnet: it and the processes it starts use a temporary cache."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from osmnet.data.assets import cache_dir

ROOT = Path(__file__).resolve().parents[1]


def test_the_cache_of_the_suite_is_a_temporary_folder():
    assert Path(tempfile.gettempdir()) in cache_dir().parents
    assert Path.home() not in cache_dir().parents


def test_a_worker_token_written_by_a_process_the_suite_starts_lands_in_the_temporary_cache():
    code = ("from backend.security import default_token_file, server_token, token_path; "
            "p = token_path(default_token_file(), 'tcp://127.0.0.1:1'); server_token(p); print(p)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), capture_output=True,
                         text=True, check=True).stdout.strip()
    token = Path(out)
    assert token.is_file() and token.parent == cache_dir()
    assert not (Path.home() / ".cache" / "osmnet" / token.name).exists()
