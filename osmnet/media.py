"""Reading and writing video and audio files (PyAV, which bundles ffmpeg).

Reading side: probe a video, iterate its frames as RGB arrays, load any audio as 16 kHz mono.
Every failure becomes a MediaError that names the file and the problem.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blender_addon.core.files import atomic_path
from blender_addon.core.errors import UserInputError


class MediaError(UserInputError):
    """A media file is missing, unreadable, or lacks the stream that was asked for."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    frames: int
    width: int
    height: int
    duration: float  # seconds
    has_audio: bool


def open_container(path):
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
    fmt = container.format.name or ""
    if fmt == "image2" or fmt.endswith("_pipe"):
        container.close()
        raise MediaError(f"{path} is a still image, not a video")
    return container.streams.video[0]


def probe_video(path) -> VideoInfo:
    """Frame rate, frame count, size, duration and whether an audio stream exists."""
    with open_container(path) as c:
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

    c = open_container(path)
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


def decode_audio(path, sr: int) -> np.ndarray:
    """The first audio stream of any audio or video file as float32 mono at `sr` Hz (osmnet.audio.load_audio
    is the speech reader built on it)."""
    import av

    c = open_container(path)
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


# ==== Writing (owned by the renderer): frames -> mp4, speech muxed in ===========================
# Kept apart from the reading side above; used by osmnet.render.portrait and the backend's render jobs.

AUDIO_RATE = 48000


def _video_rate(fps: float):
    from fractions import Fraction

    if not (fps > 0 and np.isfinite(fps)):
        raise MediaError(f"fps must be a positive number, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


def _audio_wave(audio) -> tuple[np.ndarray, int]:
    """A path or a (samples, rate) pair -> (float32 mono, rate)."""
    if isinstance(audio, (str, Path)):
        wave = decode_audio(audio, sr=AUDIO_RATE)
        if not np.all(np.isfinite(wave)):  # checked before any frame is rendered or encoded
            raise MediaError(f"audio {audio} has NaN or infinite samples; export it again as ordinary PCM")
        return wave, AUDIO_RATE
    if not (isinstance(audio, tuple) and len(audio) == 2):
        raise MediaError("audio to mux must be a file path or a (samples, sample_rate) pair")
    wave, sr = np.asarray(audio[0], np.float32), audio[1]
    if wave.ndim != 1 or not np.all(np.isfinite(wave)):
        raise MediaError("audio must be a mono sample array (or a file path) with finite values")
    return wave, int(sr)


def _write_audio(container, stream, wave: np.ndarray, sr: int, seconds: float):
    """Fill the AAC stream with exactly `seconds` of the speech (trimmed or padded with silence)."""
    import av

    n = int(round(seconds * sr))
    wave = np.pad(wave[:n], (0, max(0, n - len(wave)))).astype(np.float32)
    step = stream.codec_context.frame_size or 1024
    for i in range(0, n, step):
        chunk = np.ascontiguousarray(wave[i:i + step].reshape(1, -1))
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = sr, i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def _even(frame, index: int) -> np.ndarray:
    """Check one frame and pad it to even width/height (yuv420p needs them)."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise MediaError(f"frame {index}: frames must be RGB uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    if frame.shape[0] % 2 or frame.shape[1] % 2:
        frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
    return frame


def write_video(frames, fps: float, path, audio=None, crf: int = 18) -> Path:
    """RGB uint8 frames -> h264 yuv420p mp4 at `fps`, with `audio` (path, (samples, sr) or a
    16 kHz array) as AAC trimmed/padded to the video's length. Written to a temporary file
    beside `path` and renamed into place, so a failure never leaves a half-written video."""
    import itertools

    import av

    rate = _video_rate(fps)
    wave = _audio_wave(audio) if audio is not None else None  # fail on bad audio before encoding
    path = Path(path)
    frames = iter(frames)
    count = 0
    with atomic_path(path, suffix=".mp4") as tmp:
        first = next(frames, None)
        if first is None:
            raise MediaError(f"no frames to write to {path}")
        size = _even(first, 0).shape
        with av.open(tmp, "w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height = size[1], size[0]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": "veryfast"}
            astream = None
            if wave is not None:  # every stream must exist before the first packet is muxed
                astream = container.add_stream("aac", rate=wave[1])
                astream.layout = "mono"
            for frame in itertools.chain([first], frames):
                frame = _even(frame, count)
                if frame.shape != size:
                    raise MediaError(f"frame {count} is {frame.shape[1]}x{frame.shape[0]} but the video is "
                                     f"{size[1]}x{size[0]}; all frames must have the same size")
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                vf.pts = count
                for packet in stream.encode(vf):
                    container.mux(packet)
                count += 1
            for packet in stream.encode(None):
                container.mux(packet)
            if astream is not None:
                _write_audio(container, astream, wave[0], wave[1], count / float(rate))
    return path
