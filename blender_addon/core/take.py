"""The take: per-frame head pose and ARKit blendshape curves at a fixed frame rate.

Tracked truth, generated takes, the backend's chunks and the Blender add-on all use this one
implementation of the format (docs/take-format.md), plus Live Link Face CSV import/export.
It is part of the add-on's no-bpy core, so it imports only the standard library and numpy.

Public API
    Take(fps, channels, meta)          .frames .duration .array(names) .from_array() .resample(fps)
                                       .slice(a, b) .sample_times(t) .to_dict() .from_dict() .save() .load()
    zero_take(frames, fps)             no motion, neutral face
    read_livelink_csv(path, fps=60.0) / write_livelink_csv(take, path, fps=None)
    TakeError                          every bad take or file; the message says what to fix
"""
from __future__ import annotations

import csv
import io
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .channels import ALL_CHANNELS, ARKIT_NAMES, HEAD_CHANNELS  # noqa: F401  (re-exported)
from .errors import UserInputError
from .files import atomic_write

FORMAT = "osmnet-take"
VERSION = 1

# What a take may hold. Wider than any real performance, narrow enough that a hostile file cannot
# make a renderer or a keyframer allocate without bound or turn 1e30 into infinity downstream.
FPS_RANGE = (1.0, 240.0)  # the frame rates generate, track and the backend accept
MAX_ABS_VALUE = 1e3  # radians, metres and 0..1 weights all live far inside this
MAX_FILE_BYTES = 256 * 2**20  # about 8 h of 58 channels at 60 fps

# Live Link Face: Timecode, BlendShapeCount, 52 ARKit names in PascalCase, head, then eyes.
LIVELINK_HEAD = {"HeadYaw": "headYaw", "HeadPitch": "headPitch", "HeadRoll": "headRoll"}
LIVELINK_EYES = tuple(f"{side}Eye{axis}" for side in ("Left", "Right") for axis in ("Yaw", "Pitch", "Roll"))


class TakeError(UserInputError):
    """A take file or take object that breaks the format; the message says what to fix."""


@dataclass
class Take:
    """Curves of one performance. `channels` maps a channel name to a float32 array (frames,)."""

    fps: float
    channels: dict
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        lo, hi = FPS_RANGE
        if isinstance(self.fps, bool) or not isinstance(self.fps, numbers.Real) \
                or not math.isfinite(self.fps) or not lo <= self.fps <= hi:
            raise TakeError(f"fps must be a number from {lo:g} to {hi:g}, got {self.fps!r}")
        if not isinstance(self.meta, dict):
            raise TakeError(f'"meta" must be an object (a dict), got {type(self.meta).__name__}')
        self.fps = float(self.fps)
        missing = [n for n in ALL_CHANNELS if n not in self.channels]
        if missing:
            raise TakeError(f"take is missing channels {missing[:5]}{'...' if len(missing) > 5 else ''}; "
                            "every take needs the 6 head channels and the 52 ARKit names")
        chans, lengths = {}, set()
        for name, values in self.channels.items():
            arr = np.asarray(values, dtype=np.float32)
            if arr.ndim != 1:
                raise TakeError(f"channel {name!r} must be a 1-D list of numbers, got shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise TakeError(f"channel {name!r} has NaN or infinite values")
            if arr.size and float(np.abs(arr).max()) > MAX_ABS_VALUE:
                raise TakeError(f"channel {name!r} has a value of {float(np.abs(arr).max()):g}; take values "
                                f"(radians, metres, 0..1 weights) must stay within +-{MAX_ABS_VALUE:g}")
            chans[name] = arr
            lengths.add(arr.shape[0])
        if len(lengths) != 1 or 0 in lengths:
            raise TakeError(f"channels must all have the same, non-zero length; got {sorted(lengths)}")
        self.channels = chans

    @property
    def frames(self) -> int:
        return next(iter(self.channels.values())).shape[0]

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    def array(self, names=ALL_CHANNELS) -> np.ndarray:
        """Channels stacked as (frames, len(names)) float32."""
        return np.stack([self.channels[n] for n in names], axis=1)

    @classmethod
    def from_array(cls, values: np.ndarray, fps: float, names=ALL_CHANNELS, meta=None) -> "Take":
        values = np.asarray(values, dtype=np.float32)
        if values.ndim != 2 or values.shape[1] != len(names):
            raise TakeError(f"expected an array of shape (frames, {len(names)}), got {values.shape}")
        return cls(fps, {n: values[:, i] for i, n in enumerate(names)}, dict(meta or {}))

    def resample(self, fps: float) -> "Take":
        """Linear resampling in time; the duration is kept (frames = round(duration * fps))."""
        if fps == self.fps:
            return Take(self.fps, dict(self.channels), dict(self.meta))
        n_out = max(1, int(round(self.duration * fps)))
        t_out = np.arange(n_out) / fps
        vals = self.sample_times(t_out, tuple(self.channels))
        return Take(fps, {k: vals[:, i].astype(np.float32) for i, k in enumerate(self.channels)},
                    dict(self.meta))

    def slice(self, start: int, end: int) -> "Take":
        return Take(self.fps, {k: v[start:end] for k, v in self.channels.items()}, dict(self.meta))

    def sample_times(self, times, names=ALL_CHANNELS) -> np.ndarray:
        """Linear interpolation at `times` (seconds), held at the ends: (len(times), len(names))."""
        t_in = np.arange(self.frames) / self.fps
        return np.stack([np.interp(times, t_in, self.channels[n]) for n in names], axis=1)

    def to_dict(self) -> dict:
        # Values rounded to 6 decimals in one numpy call per channel (no per-value Python work).
        return {
            "format": FORMAT,
            "version": VERSION,
            "fps": self.fps,
            "frames": self.frames,
            "meta": self.meta,
            "channels": {k: np.round(v.astype(np.float64), 6).tolist() for k, v in self.channels.items()},
        }

    @classmethod
    def from_dict(cls, d: dict, where: str = "take") -> "Take":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise TakeError(f'{where} is not an osmnet take (expected "format": "{FORMAT}")')
        if d.get("version") != VERSION:
            raise TakeError(f"{where} has take format version {d.get('version')!r}; this version reads "
                            f"version {VERSION}: upgrade osmnet / the add-on or re-export the take")
        chans = d.get("channels")
        if not isinstance(chans, dict):
            raise TakeError(f'{where} has no "channels" object')
        meta = d.get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise TakeError(f'{where}: "meta" must be an object, got {type(meta).__name__}')
        frames = d.get("frames")
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
            raise TakeError(f'{where}: "frames" must be a whole number >= 1, got {frames!r}; '
                            "a take needs at least one frame")
        arrays = {}
        for k, v in chans.items():
            try:  # no dtype here: strings, booleans or nested lists must be refused, not converted
                arr = np.asarray(v) if isinstance(v, list) else None
            except (TypeError, ValueError):
                arr = None
            if arr is None or arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iuf"):
                raise TakeError(f"{where}: channel {k!r} must be a flat list of numbers")
            arrays[k] = arr.astype(np.float32)
        try:
            take = cls(d.get("fps"), arrays, dict(meta or {}))
        except TakeError as e:
            raise TakeError(f"{where}: {e}") from None
        if frames != take.frames:
            raise TakeError(f"{where} says frames={frames} but its channels have {take.frames}")
        return take

    def save(self, path) -> Path:
        """Write atomically: a reader never sees a half-written take."""
        return atomic_write(path, json.dumps(self.to_dict(), separators=(",", ":")))

    @classmethod
    def load(cls, path) -> "Take":
        path = Path(path)
        if not path.is_file():
            raise TakeError(f"take file {path} does not exist" if not path.exists()
                            else f"take file {path} is not a file")
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise TakeError(f"take file {path} is {size / 2**20:.0f} MB; take files are at most "
                                f"{MAX_FILE_BYTES // 2**20} MB (split the performance)")
            d = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TakeError(f"{path} is not valid JSON ({e}); is it a take file?") from None
        except RecursionError:
            raise TakeError(f"{path} nests lists or objects too deeply to be a take file") from None
        except OSError as e:
            raise TakeError(f"cannot read take file {path} ({e.strerror})") from None
        return cls.from_dict(d, where=str(path))


def zero_take(frames: int, fps: float = 25.0, meta=None) -> Take:
    """A take with no motion and a neutral face (useful as a baseline and for tests)."""
    return Take.from_array(np.zeros((frames, len(ALL_CHANNELS)), np.float32), fps, meta=meta)


# ---------------------------------------------------------------- Live Link Face CSV

def livelink_name(channel: str) -> str:
    """ARKit camelCase -> Live Link Face PascalCase (eyeBlinkLeft -> EyeBlinkLeft)."""
    return channel[0].upper() + channel[1:]


def format_timecode(seconds: float, fps: float) -> str:
    """HH:MM:SS:FF.mmm: FF is the frame within the second, .mmm the sub-frame in thousandths."""
    sec = int(math.floor(seconds + 1e-9))
    in_frames = max(0.0, (seconds - sec) * fps)
    ff = int(math.floor(in_frames + 1e-6))
    sub = int(round((in_frames - ff) * 1000.0))
    if sub >= 1000:
        ff, sub = ff + 1, 0
    if ff >= math.ceil(fps):
        sec, ff = sec + 1, 0
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{ff:02d}.{sub:03d}"


def parse_timecode(text: str, fps: float) -> float:
    """Inverse of format_timecode -> seconds. A frame field >= fps means the fps is wrong."""
    try:
        h, m, s, f = text.strip().split(":")
        frame = float(f)
        secs = int(h) * 3600 + int(m) * 60 + int(s)
    except ValueError:
        raise TakeError(f"timecode {text!r} is not HH:MM:SS:FF.mmm") from None
    if frame >= math.ceil(fps) or frame < 0:
        raise TakeError(f"timecode {text!r} has frame {frame:g}, impossible at {fps:g} fps: "
                            "pass the fps the CSV was recorded at")
    return secs + frame / fps


def read_livelink_csv(path, fps: float = 60.0) -> Take:
    """Rows -> a uniform take at `fps`, placed by their timecodes (dropped rows are interpolated).

    Columns are matched by name (any order, any case); missing ARKit columns become 0, head
    translation is 0 (Live Link Face has none), eye rotations are ignored. Head angles are read as
    radians.
    """
    path = Path(path)
    if not path.is_file():
        raise TakeError(f"Live Link Face CSV {path} does not exist")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        raise TakeError(f"{path} has no data rows; is it a Live Link Face CSV?")
    header = [h.strip().lower() for h in rows[0]]
    col = {h: i for i, h in enumerate(header)}
    if "timecode" not in col:
        raise TakeError(f"{path} has no Timecode column; is it a Live Link Face CSV?")
    wanted = {livelink_name(n).lower(): n for n in ARKIT_NAMES}
    wanted.update({k.lower(): v for k, v in LIVELINK_HEAD.items()})
    found = {chan: col[key] for key, chan in wanted.items() if key in col}
    if not any(n in found for n in ARKIT_NAMES):
        raise TakeError(f"{path} has none of the 52 ARKit columns (EyeBlinkLeft ... TongueOut)")
    times, values = [], []
    for line, r in enumerate(rows[1:], start=2):
        if len(r) < len(header):
            raise TakeError(f"{path} line {line} has {len(r)} fields, the header has {len(header)}")
        times.append(parse_timecode(r[col["timecode"]], fps))
        try:
            values.append([float(r[i]) for i in found.values()])
        except ValueError as e:
            raise TakeError(f"{path} line {line}: {e}") from None
    t = np.asarray(times)
    if np.any(np.diff(t) <= 0):
        raise TakeError(f"{path} has timecodes that do not increase (line "
                            f"{int(np.argmax(np.diff(t) <= 0)) + 3}); is it two recordings in one file?")
    t -= t[0]
    pos = t * fps  # rows on the frame grid (up to the timecode's 1/1000 frame) are taken exactly
    on_grid = np.abs(pos - np.round(pos)) < 1.5e-3
    t[on_grid] = np.round(pos[on_grid]) / fps
    n = int(round(t[-1] * fps)) + 1
    grid = np.arange(n) / fps
    v = np.asarray(values, dtype=np.float64)
    chans = {name: np.zeros(n, np.float32) for name in ALL_CHANNELS}
    for j, name in enumerate(found):
        chans[name] = np.interp(grid, t, v[:, j]).astype(np.float32)
    return Take(fps, chans, {"source": "livelink_csv", "file": path.name})


def write_livelink_csv(take: Take, path, fps: float | None = None, start: float = 0.0) -> Path:
    """Take -> Live Link Face CSV (atomic). fps other than the take's resamples linearly."""
    fps = float(fps or take.fps)
    n = int(round(take.duration * fps)) if fps != take.fps else take.frames
    n = max(1, n)
    times = np.arange(n) / fps
    heads = list(LIVELINK_HEAD.values())
    vals = take.sample_times(times, ARKIT_NAMES + tuple(heads))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["Timecode", "BlendShapeCount", *map(livelink_name, ARKIT_NAMES), *LIVELINK_HEAD, *LIVELINK_EYES])
    count = len(ARKIT_NAMES) + len(LIVELINK_HEAD) + len(LIVELINK_EYES)
    for k in range(n):
        w.writerow([format_timecode(start + times[k], fps), count,
                    *(f"{x:.6g}" for x in vals[k]), *("0" for _ in LIVELINK_EYES)])
    return atomic_write(path, buf.getvalue())
