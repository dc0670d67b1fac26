"""Reading and writing video and audio files (PyAV, which bundles ffmpeg).

Reading side: probe a video, iterate its frames as RGB arrays, load any audio as 16 kHz mono.
Every failure becomes a MediaError that names the file and the problem.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class MediaError(ValueError):
    """A media file is missing, unreadable, or lacks the stream that was asked for."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    frames: int
    width: int
    height: int
    duration: float  # seconds
    has_audio: bool


def _open(path):
    import av

    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path} does not exist")
    if not path.is_file():
        raise MediaError(f"{path} is not a file")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise MediaError(f"{path} is not a readable media file ({e})") from None


def _video_stream(container, path):
    if not container.streams.video:
        container.close()
        raise MediaError(f"{path} has no video stream (is it an audio file or an image?)")
    return container.streams.video[0]


def probe_video(path) -> VideoInfo:
    """Frame rate, frame count, size, duration and whether an audio stream exists."""
    with _open(path) as c:
        s = _video_stream(c, path)
        fps = float(s.average_rate or s.guessed_rate or 0)
        if fps <= 0:
            raise MediaError(f"{path}: cannot tell the video frame rate")
        if s.duration is not None and s.time_base is not None:
            duration = float(s.duration * s.time_base)
        elif c.duration is not None:
            duration = c.duration / 1_000_000
        else:
            duration = 0.0
        frames = int(s.frames) or int(round(duration * fps))
        if duration <= 0:
            duration = frames / fps
        return VideoInfo(fps=fps, frames=frames, width=s.codec_context.width,
                         height=s.codec_context.height, duration=duration, has_audio=bool(c.streams.audio))


def iter_video_frames(path, threads: bool = True):
    """Yield (time_s, rgb uint8 (H, W, 3)) for each decoded frame, in presentation order."""
    import av

    c = _open(path)
    try:
        s = _video_stream(c, path)
        if threads:
            s.thread_type = "AUTO"
        start = s.start_time or 0
        tb = float(s.time_base) if s.time_base else 0.0
        fps = float(s.average_rate or 25)
        try:
            for i, frame in enumerate(c.decode(s)):
                t = (frame.pts - start) * tb if frame.pts is not None and tb else i / fps
                yield float(t), frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            raise MediaError(f"{path}: video decoding failed ({e})") from None
    finally:
        c.close()


def load_audio(path, sr: int = 16000) -> np.ndarray:
    """The first audio stream of any audio or video file as float32 mono at `sr` Hz."""
    import av

    c = _open(path)
    try:
        if not c.streams.audio:
            raise MediaError(f"{path} has no audio stream; pass the speech as a separate file "
                             "(e.g. --audio speech.wav)")
        s = c.streams.audio[0]
        # keep the channels through resampling and average them here: ffmpeg's own downmix
        # adds channels at -3 dB each, which can clip when both carry the same speech
        resampler = None
        parts = []
        try:
            for frame in c.decode(s):
                if resampler is None:
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=sr)
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().mean(axis=0))
            for out in resampler.resample(None) if resampler is not None else ():
                parts.append(out.to_ndarray().mean(axis=0))
        except av.error.FFmpegError as e:
            raise MediaError(f"{path}: audio decoding failed ({e})") from None
    finally:
        c.close()
    if not parts:
        raise MediaError(f"{path}: the audio stream holds no samples")
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
