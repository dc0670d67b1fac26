"""Takes to and from other lip-sync tools: NVIDIA Audio2Face's blendshape JSON and Rhubarb Lip
Sync's mouth cues (TSV and JSON). No bpy: the add-on's operators and plain scripts use it alike.

Audio2Face ("Export > Blendshapes > JSON"): {"exportFps", "trackPath", "numPoses", "numFrames",
"facsNames": [pose names], "weightMat": [[weight per pose] per frame]} (newer exports add
"joints"/"rotations"/"translations" for jaw and eye joints, which are ignored). Pose names are
matched to the 52 ARKit channels loosely (mapping.match_channel); unmatched poses are kept as
extra channels and listed in the take's meta.

Rhubarb Lip Sync: TSV lines "seconds<TAB>shape", the last one the end of the recording; JSON
{"metadata": {"soundFile", "duration"}, "mouthCues": [{"start", "end", "value"}]} (XML, the same
content as <rhubarbResult>, is read too). Shapes A-H and
X (docs/take-format.md, "Other formats"). Cues become ARKit mouth poses (RHUBARB_POSES, in
visemes' mouth features) joined by smooth S-curves; a take becomes cues by classifying every
frame's mouth to the nearest shape, then folding runs shorter than `min_cue` into a neighbour.

Public API
    read_audio2face(path) -> Take ; write_audio2face(take, path) ; audio2face_from_dict(d, where)
    Cue(start, end, shape) ; RHUBARB_SHAPES ; RHUBARB_POSES
    read_rhubarb(path) -> (cues, meta)            TSV, JSON or XML, told by the content
    write_rhubarb_tsv(cues, path, closed=None) ; write_rhubarb_json(cues, path, sound_file="")
    cues_to_take(cues, fps=25.0, blend=0.08, meta=None) -> Take
    take_to_cues(take, shapes="ABCDEFGHX", min_cue=0.06, normalize=None) -> [Cue]
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .channels import ALL_CHANNELS, ARKIT_NAMES
from .errors import UserInputError
from .files import atomic_write
from .mapping import match_channel
from .take import Take
from .visemes import FEATURE_WEIGHTS, mouth_features, pose_curves, pose_vector


def _read_json(path, what: str):
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{what} {path} does not exist; choose the file again")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserInputError(f"{path} is not valid JSON ({e}); is it a {what}?") from None


# ---------------------------------------------------------------- Audio2Face

def audio2face_from_dict(d, where: str = "Audio2Face export") -> Take:
    if not isinstance(d, dict) or "weightMat" not in d or "facsNames" not in d:
        raise UserInputError(f'{where} has no "facsNames"/"weightMat": export it from Audio2Face as '
                             "blendshape JSON (not USD), or pick the .json next to it")
    names = d["facsNames"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
        raise UserInputError(f'{where}: "facsNames" must be a non-empty list of pose names')
    try:
        mat = np.asarray(d["weightMat"], dtype=np.float64)
    except (TypeError, ValueError):
        raise UserInputError(f'{where}: "weightMat" must be a list of rows of numbers, one row per frame') from None
    if mat.ndim != 2 or mat.shape[0] == 0 or mat.shape[1] != len(names):
        raise UserInputError(f'{where}: "weightMat" is {mat.shape if mat.ndim == 2 else "ragged"}, expected '
                             f"(frames, {len(names)}) for its {len(names)} facsNames; re-export the file")
    for key, want in (("numPoses", len(names)), ("numFrames", mat.shape[0])):
        if key in d and d[key] != want:
            raise UserInputError(f"{where} says {key}={d[key]!r} but has {want}; the file is truncated or edited")
    if not np.all(np.isfinite(mat)):
        raise UserInputError(f'{where}: "weightMat" holds NaN or infinite values')
    fps = d.get("exportFps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise UserInputError(f'{where}: "exportFps" must be a positive number, got {fps!r}')
    chans = {n: np.zeros(mat.shape[0], np.float32) for n in ALL_CHANNELS}
    matched, unmatched = set(), []
    for j, name in enumerate(names):
        ch = match_channel(name)
        if ch is None or ch in matched:
            unmatched.append(name)
            if name not in chans:
                chans[name] = mat[:, j].astype(np.float32)
            continue
        matched.add(ch)
        chans[ch] = mat[:, j].astype(np.float32)
    if not matched:
        raise UserInputError(f"{where}: none of its {len(names)} poses ({', '.join(names[:3])} ...) is an ARKit "
                             "blendshape; solve to the ARKit blendshape set in Audio2Face and export again")
    meta = {"source": "audio2face", "audio": str(d.get("trackPath") or ""), "audio2face_unmatched": unmatched}
    return Take(float(fps), chans, meta)


def read_audio2face(path) -> Take:
    take = audio2face_from_dict(_read_json(path, "Audio2Face blendshape JSON"), where=str(path))
    take.meta["file"] = Path(path).name
    return take


def write_audio2face(take: Take, path) -> Path:
    """The take's 52 ARKit curves as an Audio2Face blendshape JSON (head motion has no place there)."""
    mat = take.array(ARKIT_NAMES).astype(np.float64)
    d = {
        "exportFps": take.fps, "trackPath": str(take.meta.get("audio", "")),
        "numPoses": len(ARKIT_NAMES), "numFrames": take.frames, "facsNames": list(ARKIT_NAMES),
        "weightMat": [[round(float(x), 6) for x in row] for row in mat],
    }
    return atomic_write(path, json.dumps(d, separators=(",", ":")))


# ---------------------------------------------------------------- Rhubarb Lip Sync

RHUBARB_SHAPES = "ABCDEFGHX"
# Each shape as a mouth pose (visemes.MOUTH_FEATURES), after Rhubarb's own descriptions: A lips
# pressed (p b m), B teeth nearly together (k s t, ee), C open (eh ae), D wide open (aa), E
# slightly rounded (ao er), F puckered (uw ow w), G lower lip under the teeth (f v), H open with
# the tongue up (long l), X at rest.
RHUBARB_POSES = {
    "A": {"mouthPress": 0.5, "mouthRollLower": 0.2, "mouthRollUpper": 0.15},
    "B": {"jawOpen": 0.1, "mouthStretch": 0.3, "mouthSmile": 0.15, "mouthLowerDown": 0.25, "mouthUpperUp": 0.2},
    "C": {"jawOpen": 0.35, "mouthLowerDown": 0.3, "mouthUpperUp": 0.15, "mouthStretch": 0.15},
    "D": {"jawOpen": 0.7, "mouthLowerDown": 0.35, "mouthUpperUp": 0.15},
    "E": {"jawOpen": 0.3, "mouthFunnel": 0.45, "mouthPucker": 0.15},
    "F": {"jawOpen": 0.1, "mouthPucker": 0.75, "mouthFunnel": 0.3},
    "G": {"jawOpen": 0.06, "mouthRollLower": 0.6, "mouthUpperUp": 0.25},
    "H": {"jawOpen": 0.5, "mouthLowerDown": 0.3, "mouthUpperUp": 0.15, "tongueOut": 0.4},
    "X": {},
}


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    shape: str


def _check_cues(cues, where: str) -> list:
    out = []
    for i, c in enumerate(cues):
        if c.shape not in RHUBARB_SHAPES:
            raise UserInputError(f"{where}: cue {i + 1} has mouth shape {c.shape!r}; Rhubarb shapes are A-H and X")
        if not (math.isfinite(c.start) and math.isfinite(c.end)) or c.end < c.start or c.start < 0:
            raise UserInputError(f"{where}: cue {i + 1} runs from {c.start} to {c.end} s; times must be >= 0 and increase")
        if out and c.start < out[-1].end - 1e-6:
            raise UserInputError(f"{where}: cue {i + 1} starts at {c.start} s, before the previous one ends "
                                 f"({out[-1].end} s); cues must be in time order")
        if c.end > c.start:
            out.append(c)
    if not out:
        raise UserInputError(f"{where} holds no mouth cues; run Rhubarb on a recording with speech")
    return out


def _parse_tsv(text: str, where: str) -> list:
    points = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise UserInputError(f'{where} line {n}: {line.strip()!r} is not "seconds<TAB>shape"; is it Rhubarb TSV output?')
        try:
            t = float(parts[0])
        except ValueError:
            raise UserInputError(f"{where} line {n}: time {parts[0]!r} is not a number of seconds") from None
        points.append((t, parts[1].upper(), n))
    if len(points) < 2:
        raise UserInputError(f"{where} needs at least two lines (a cue and the end time); is it Rhubarb TSV output?")
    for (t0, _, _), (t1, _, n) in zip(points, points[1:]):
        if t1 < t0:
            raise UserInputError(f"{where} line {n}: time {t1} is before the line above ({t0}); times must increase")
    # The last line only marks where the recording ends (its shape is the closed mouth).
    return [Cue(t0, t1, s) for (t0, s, _), (t1, _, _) in zip(points, points[1:])]


def _parse_xml(text: str, where: str):
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise UserInputError(f"{where} is not valid XML ({e}); is it Rhubarb XML output?") from None
    if root.tag != "rhubarbResult":
        raise UserInputError(f"{where} is XML but not Rhubarb's (<{root.tag}> instead of <rhubarbResult>)")
    try:
        cues = [Cue(float(c.get("start")), float(c.get("end")), (c.text or "").strip().upper())
                for c in root.iter("mouthCue")]
    except (TypeError, ValueError):
        raise UserInputError(f'{where}: every <mouthCue> needs start="seconds" end="seconds" and a shape') from None
    duration = root.findtext("metadata/duration")
    try:
        duration = float(duration) if duration else None
    except ValueError:
        duration = None
    return cues, {"sound_file": (root.findtext("metadata/soundFile") or "").strip(), "duration": duration}


def read_rhubarb(path):
    """Rhubarb's TSV, JSON or XML output -> ([Cue], {"sound_file", "duration"}); the format is
    told by the content, so any file name works."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"Rhubarb cue file {path} does not exist; choose the file again")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserInputError(f"{path} is not a text file; export the cues from Rhubarb as TSV or JSON") from None
    where = str(path)
    if text.lstrip().startswith("{"):
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserInputError(f"{path} is not valid JSON ({e}); is it Rhubarb JSON output?") from None
        raw = d.get("mouthCues") if isinstance(d, dict) else None
        if not isinstance(raw, list):
            raise UserInputError(f'{where} has no "mouthCues" list; run Rhubarb with --exportFormat json')
        try:
            cues = [Cue(float(c["start"]), float(c["end"]), str(c["value"]).upper()) for c in raw]
        except (KeyError, TypeError, ValueError):
            raise UserInputError(f'{where}: every mouth cue needs "start", "end" (seconds) and "value" (A-H, X)') from None
        md = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
        meta = {"sound_file": str(md.get("soundFile") or ""), "duration": md.get("duration")}
    elif text.lstrip().startswith("<"):
        cues, meta = _parse_xml(text, where)
    else:
        cues, meta = _parse_tsv(text, where), {"sound_file": "", "duration": None}
    cues = _check_cues(cues, where)
    if meta["duration"] is None:
        meta["duration"] = cues[-1].end
    return cues, meta


def _t(x: float) -> str:
    return f"{x:.2f}"


def write_rhubarb_tsv(cues, path, closed: str | None = None) -> Path:
    """Cues as Rhubarb TSV; the last line marks the end with the closed mouth (X, or A where the
    cues never use X, as Rhubarb does without the extended shapes)."""
    cues = _check_cues(cues, str(path))
    lines = [f"{_t(c.start)}\t{c.shape}" for c in cues]
    closed = closed or ("X" if any(c.shape == "X" for c in cues) else "A")
    lines.append(f"{_t(cues[-1].end)}\t{closed}")
    return atomic_write(path, "\n".join(lines) + "\n")


def write_rhubarb_json(cues, path, sound_file: str = "") -> Path:
    cues = _check_cues(cues, str(path))
    d = {"metadata": {"soundFile": sound_file, "duration": round(cues[-1].end, 2)},
         "mouthCues": [{"start": round(c.start, 2), "end": round(c.end, 2), "value": c.shape} for c in cues]}
    return atomic_write(path, json.dumps(d, indent=2))


def _poses(shapes) -> np.ndarray:
    return np.stack([pose_vector(RHUBARB_POSES[s]) for s in shapes])


def cues_to_take(cues, fps: float = 25.0, blend: float = 0.08, meta=None) -> Take:
    """Mouth cues -> a take at `fps`: each cue holds its shape's pose in its middle; between two
    cues the mouth moves along a smoothstep lasting up to `blend` seconds (shorter for short cues,
    so every cue still reaches its shape). Channels outside the mouth stay 0."""
    cues = _check_cues(list(cues), "mouth cues")
    if not (isinstance(fps, (int, float)) and fps > 0):
        raise UserInputError(f"fps must be a positive number, got {fps!r}")
    frames = max(1, int(round(cues[-1].end * fps)))
    t = np.arange(frames) / fps
    poses = _poses([c.shape for c in cues])
    # Hold [start + r, end - r] of each cue, r = min(blend / 2, duration / 3).
    r = np.array([min(blend / 2, (c.end - c.start) / 3) for c in cues])
    hold_a = np.array([c.start for c in cues]) + r
    hold_b = np.array([c.end for c in cues]) - r
    hold_a[0], hold_b[-1] = cues[0].start, cues[-1].end  # no ramp in from before / out after
    k = np.clip(np.searchsorted(hold_a, t, side="right") - 1, 0, len(cues) - 1)
    out = poses[k].copy()
    moving = (t > hold_b[k]) & (k + 1 < len(cues))
    if np.any(moving):
        i = k[moving]
        s = (t[moving] - hold_b[i]) / np.maximum(hold_a[i + 1] - hold_b[i], 1e-9)
        s = np.clip(s, 0.0, 1.0)
        s = s * s * (3.0 - 2.0 * s)
        out[moving] = (1 - s)[:, None] * poses[i] + s[:, None] * poses[i + 1]
    chans = {n: np.zeros(frames, np.float32) for n in ALL_CHANNELS}
    chans.update(pose_curves(out))
    return Take(float(fps), chans, {"source": "rhubarb", **(meta or {})})


def _normalized(x: np.ndarray, protos: np.ndarray) -> np.ndarray:
    """A tracked or generated face rarely reaches the textbook poses (MediaPipe's jawOpen peaks
    near 0.3 in speech, lips round far less than a drawn F) and often rests with a little smile.
    So each feature's resting level (5th percentile) is subtracted and its busy level (95th
    percentile) is stretched towards the largest value the shapes use, by at most 3x; features the
    take hardly moves (< 0.02) and takes that already reach the shapes are left as they are."""
    rest = np.percentile(x, 5, axis=0)
    x = np.maximum(x - rest, 0.0)
    busy = np.percentile(x, 95, axis=0)
    reach = protos.max(axis=0)
    gain = np.where(busy > 0.02, np.clip(0.8 * reach / np.maximum(busy, 1e-9), 1.0, 3.0), 1.0)
    return x * gain


def _holds_shape_poses(x: np.ndarray, protos: np.ndarray) -> bool:
    """True when most frames sit exactly on a shape's pose: a take made by cues_to_take (even after
    a trip through Blender's keys), never a tracked or generated face."""
    nearest = np.abs(x[:, None, :] - protos[None]).max(axis=2).min(axis=1)
    return bool(np.mean(nearest < 1e-3) > 0.2)


def take_to_cues(take: Take, shapes: str = RHUBARB_SHAPES, min_cue: float = 0.06, normalize: bool | None = None) -> list:
    """A take's mouth -> Rhubarb cues: each frame gets the nearest of `shapes` (weighted distance in
    mouth features), runs shorter than `min_cue` seconds join the neighbour nearer to them, and
    neighbouring frames of one shape become one cue. Times are in seconds from the take's start.
    `normalize` (see _normalized) defaults to on, except for takes that hold the shapes' own poses
    (made from Rhubarb cues), so cues -> take -> cues gives the cues back."""
    shapes = "".join(dict.fromkeys(shapes.upper()))
    bad = set(shapes) - set(RHUBARB_SHAPES)
    if bad or not shapes:
        raise UserInputError(f"mouth shapes {shapes!r} must be letters from {RHUBARB_SHAPES}, e.g. 'ABCDEFGHX'")
    if not set("ABCDEF") <= set(shapes):
        raise UserInputError(f"mouth shapes {shapes!r} lack some of A-F; Rhubarb always uses the six basic shapes")
    x = mouth_features(take)
    # Without X, a mouth at rest is Rhubarb's closed A: classify with X, then call it A.
    asked, shapes = shapes, shapes if "X" in shapes else shapes + "X"
    protos = _poses(shapes)
    if normalize is None:
        normalize = not _holds_shape_poses(x, protos)
    if normalize:
        x = _normalized(x, protos)
    dist = (((x[:, None, :] - protos[None]) ** 2) * FEATURE_WEIGHTS).sum(axis=2)  # (frames, shapes)
    label = np.argmin(dist, axis=1)
    min_frames = max(1, math.ceil(min_cue * take.fps - 1e-9))
    label = _fold_short_runs(label, dist, min_frames)
    cues, start = [], 0
    for i in range(1, len(label) + 1):
        if i == len(label) or label[i] != label[start]:
            shape = shapes[label[start]]
            cues.append(Cue(round(start / take.fps, 2), round(i / take.fps, 2), shape if shape in asked else "A"))
            start = i
    merged = []
    for c in cues:
        if c.end <= c.start:
            continue
        if merged and merged[-1].shape == c.shape:  # X and A next to each other, both now A
            c = Cue(merged.pop().start, c.end, c.shape)
        merged.append(c)
    return merged


def _fold_short_runs(label: np.ndarray, dist: np.ndarray, min_frames: int) -> np.ndarray:
    """Runs shorter than min_frames take the label of the neighbouring run that fits their frames
    better (lower summed distance); repeated until none is left (each pass removes at least one)."""
    label = label.copy()
    while True:
        edges = np.flatnonzero(np.diff(label)) + 1
        starts = np.concatenate([[0], edges])
        ends = np.concatenate([edges, [len(label)]])
        short = [(a, b) for a, b in zip(starts, ends) if b - a < min_frames]
        if not short or len(starts) == 1:
            return label
        a, b = min(short, key=lambda ab: ab[1] - ab[0])
        options = [label[a - 1]] if a > 0 else []
        options += [label[b]] if b < len(label) else []
        label[a:b] = min(options, key=lambda k: dist[a:b, k].sum())
