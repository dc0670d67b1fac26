"""The CLI run in-process (osmnet.cli.main) with its output captured, and what a clean failure looks like."""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        """The `osmnet: ...` lines of stderr (a progress bar redraws with \\r, so only its last part counts)."""
        return [ln.split("\r")[-1] for ln in self.err.splitlines() if ln.split("\r")[-1].startswith("osmnet: ")]


def cli(*argv) -> Result:
    """`osmnet ARGV` in this process: the exit code and what it printed."""
    from osmnet.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return Result(rc, out.getvalue(), err.getvalue())


def assert_one_line_error(r: Result, *words: str, rc: int = 2) -> str:
    """The command failed with exit `rc`, printed exactly one `osmnet: error:` line naming `words`, no traceback."""
    assert r.rc == rc, (r.rc, r.err[-2000:])
    assert "Traceback" not in r.err
    assert len(r.error_lines) == 1, r.err[-2000:]
    line = r.error_lines[0]
    assert line.startswith("osmnet: error: " if rc == 2 else "osmnet: internal error: "), line
    for w in words:
        assert w.lower() in line.lower(), (w, line)
    return line
