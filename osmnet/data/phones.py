"""English phone labels for training, from pocketsphinx's offline phone recognizer.

Computed once per recording at `osmnet prepare` time and cached (the recognizer costs seconds of
CPU per minute of audio, far too slow for generation): the labels train the auxiliary phone head
and the "log-mel + phones" ridge baseline of `osmnet evaluate`; generation never runs a recognizer.
`pocketsphinx` (5.x ships its US-English acoustic model in the wheel) is optional: without it
prepare skips the labels and says so.

Labels per video frame are the share of each phone among the frame's 10 ms recognizer frames,
(T, len(PHONES)) float32; noise and silence tokens count as "SIL".
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from blender_addon.core.errors import EnvironmentProblem
from blender_addon.core.files import atomic_path

PHONES = ("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW "
          "V W Y Z ZH SIL").split()
N_PHONES = len(PHONES)
_INDEX = {p: i for i, p in enumerate(PHONES)}
RECOGNIZER = "pocketsphinx-allphone-en-us-v1"  # part of the cache key: change it when settings change
_SETTINGS = {"lw": 2.0, "pip": 0.3, "beam": 1e-200, "pbeam": 1e-20}


class PhoneError(EnvironmentProblem):
    """The phone recognizer is not installed or failed."""


def available() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


def _decoder():
    try:
        from pocketsphinx import Decoder, get_model_path
    except ImportError:
        raise PhoneError("phone labels need pocketsphinx: pip install pocketsphinx "
                         "(or prepare with --phones off)") from None
    return Decoder(allphone=os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin"),
                   loglevel="FATAL", **_SETTINGS)


def recognize(wave16k: np.ndarray) -> list[tuple[str, int, int]]:
    """(phone, first, last) in 10 ms frames of a 16 kHz mono wave."""
    pcm = (np.clip(np.asarray(wave16k, np.float32), -1, 1) * 32767).astype("<i2").tobytes()
    d = _decoder()
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    return [(s.word, int(s.start_frame), int(s.end_frame)) for s in d.seg()]


def cached_segments(wave16k: np.ndarray, cache: Path) -> list:
    """`recognize`, cached under `cache` by the sha256 of the samples and the recognizer settings."""
    pcm = (np.clip(np.asarray(wave16k, np.float32), -1, 1) * 32767).astype("<i2").tobytes()
    key = hashlib.sha256(RECOGNIZER.encode() + pcm).hexdigest()[:32]
    path = Path(cache) / f"{key}.json"
    if path.is_file():
        try:
            return [tuple(s) for s in json.loads(path.read_text())["segments"]]
        except (ValueError, KeyError):
            pass  # a damaged cache entry is recomputed
    segs = recognize(wave16k)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"recognizer": RECOGNIZER, "segments": segs}))
    return segs


def frame_labels(segments, frames: int, fps: float = 25.0) -> np.ndarray:
    """Segments (10 ms frames) -> (frames, N_PHONES) share of each phone in each video frame."""
    per = 100.0 / fps
    n = int(np.ceil(frames * per))
    sub = np.full(n, _INDEX["SIL"], np.int64)
    for phone, a, b in segments:
        sub[max(0, a):min(n, b + 1)] = _INDEX.get(phone, _INDEX["SIL"])
    owner = np.minimum((np.arange(n) / per).astype(np.int64), frames - 1)
    out = np.zeros((frames, N_PHONES), np.float32)
    np.add.at(out, (owner, sub), 1.0)
    return out / np.maximum(out.sum(1, keepdims=True), 1.0)
