"""Argument types and output checks shared by the commands: every bound is checked while parsing,
before any file is read or any memory is allocated, and every output before the work starts.

The ranges match what the backend accepts for the same request fields (backend/handlers.py), so a
command line and a Blender request are held to the same limits (tests/cli/test_bounds.py checks it).
"""
from __future__ import annotations

import argparse
import math
import re
from blender_addon.core.take import FPS_RANGE

MAX_TAKES = 64  # the protocol's cap (backend Limits.max_takes)
DIVERSITY = (0.0, 10.0)
INTENSITY = (0.0, 10.0)
FPS = FPS_RANGE
SEED_MAX = 2**63 - 1
MAX_WORKERS = 64
MAX_TIMES = 64  # rows of a contact sheet


def int_in(lo: int, hi: int | None = None, what: str = "a whole number"):
    """argparse type: an integer in [lo, hi]."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"{v} is out of range; use {lo}..{hi}" if hi is not None
                                             else f"{v} is out of range; use {lo} or more")
        return v
    parse.__name__ = "int"
    return parse


def float_in(lo: float, hi: float):
    """argparse type: a finite number in [lo, hi] (nan, inf and 1e30 are refused while parsing)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number; use a number from {lo:g} to {hi:g}")
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{text} is out of range; use a number from {lo:g} to {hi:g}")
        return v
    parse.__name__ = "float"
    return parse


def time_s(text: str) -> float:
    """argparse type: a finite, non-negative time in seconds."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time in seconds") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"time {text} must be a finite number of seconds >= 0")
    return v


RANGE = re.compile(r"^\s*(-?\d+)\s*:\s*(-?\d+)\s*$")


def frame_range(text: str) -> tuple[int, int]:
    """argparse type: START:END frames, 0 <= START < END."""
    m = RANGE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"re-roll range {text!r} must look like START:END (frames, e.g. 50:120)")
    a, b = int(m.group(1)), int(m.group(2))
    if a < 0 or b <= a:
        raise argparse.ArgumentTypeError(f"re-roll range {text} must satisfy 0 <= START < END (frames)")
    return a, b


def glue_negative_ranges(argv: list[str], flags=("--reroll",)) -> list[str]:
    """`--reroll -5:10` would read as an unknown option; join it to `--reroll=-5:10` so the range
    itself is checked and the message names what is wrong."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in flags and i + 1 < len(argv) and RANGE.match(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def add_force(p) -> None:
    p.add_argument("--force", action="store_true",
                   help="replace an existing output (the whole set at once; never a mix of old and new)")


def output(a, path, **kw):
    """`blender_addon.core.files.check_output` with this command's --force; None passes through."""
    if path is None:
        return None
    from blender_addon.core.files import check_output

    return check_output(path, force=a.force, **kw)
