"""Reading and writing video and audio files (PyAV, which bundles ffmpeg).

Reading side: probe a video, iterate its frames as RGB arrays, load any audio as 16 kHz mono;
uploaded bytes are read as data only (load_untrusted_audio: allow-listed containers, bounded).
Every failure becomes a MediaError that names the file and the problem.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blender_addon.core.files import atomic_path
from blender_addon.core.errors import UserInputError
from blender_addon.core.protocol import SAMPLE_RATE_RANGE


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
    is the speech reader built on it). For the user's own files: ffmpeg picks the demuxer; bytes
    from elsewhere (a client's upload) go through load_untrusted_audio, which reads them as data."""
    c = open_container(path)
    try:
        if not c.streams.audio:
            raise MediaError(f"{path} has no audio stream; pass the speech as a separate file "
                             "(e.g. --audio speech.wav)")
        return _decode_audio(c, c.streams.audio[0], sr, str(path))
    finally:
        c.close()


# ==== Untrusted audio (the backend's uploads): decoded as data only ==============================
# ffmpeg's probing would pick any demuxer, including ones that open other files or URLs
# (hls playlists, concat lists): a 95-byte playlist can make a server read its own files or wait
# on a live stream for ever. Here the container is recognised from its first bytes against a
# short allow-list, that demuxer is forced, nested opens are refused, and the decode is bounded in
# length (header first, then while decoding) and in time.

UNTRUSTED_AUDIO_FORMATS = ("wav", "flac", "ogg", "mp3", "aac", "mp4", "matroska", "aiff", "caf")
UNTRUSTED_TIME_LIMIT = 60.0  # seconds of decoding before an upload is given up


class AudioTooLongError(MediaError):
    """The audio lasts longer than the caller accepts (found before or while decoding)."""

    code = "audio_too_long"


def _id3_size(head: bytes) -> int:
    """Bytes an ID3v2 tag at the start takes (0 if there is none)."""
    if len(head) < 10 or head[:3] != b"ID3" or any(b & 0x80 for b in head[6:10]):
        return 0
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    return 10 + size + (10 if head[5] & 0x10 else 0)


def sniff_audio_format(head: bytes) -> str | None:
    """The allow-listed container these first bytes start, or None (playlists, text, images...)."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[4:8] == b"ftyp":
        return "mp4"  # the mov demuxer (mp4, m4a, mov, 3gp); external data references stay off
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"  # also webm / mka
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"caff":
        return "caf"
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:
            return "aac"  # ADTS
        if head[1] & 0xE0 == 0xE0 and (head[1] >> 1) & 3:
            return "mp3"  # MPEG audio frame sync, layer I-III
    return None


def load_untrusted_audio(source, sr: int, *, max_seconds: float, time_limit: float = UNTRUSTED_TIME_LIMIT,
                         name: str = "the audio", tick=None) -> np.ndarray:
    """File bytes (or a path, read the same way) -> float32 mono at `sr`, reading them as data only.

    Raises MediaError for anything outside UNTRUSTED_AUDIO_FORMATS, undecodable or slower than
    `time_limit` seconds, and AudioTooLongError as soon as the container's header or the decoded
    samples pass `max_seconds`: a tiny file that claims hours is refused without decoding it.
    `tick()` (optional) is called between packets, e.g. to tell a client the job is alive.
    """
    import io
    import time

    import av

    deadline = time.monotonic() + time_limit
    try:
        f = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else open(source, "rb")
    except OSError as e:
        raise MediaError(f"{name} cannot be read ({e.strerror or e})") from None
    try:
        try:
            head = f.read(64)
            tagged = _id3_size(head)
            if tagged:  # an ID3 tag may precede MP3, AAC or FLAC: look behind it
                f.seek(tagged)
                head = f.read(64)
            f.seek(0)
        except OSError as e:
            raise MediaError(f"{name} cannot be read ({e.strerror or e})") from None
        fmt = sniff_audio_format(head) or ("mp3" if tagged else None)
        if fmt is None:
            raise MediaError(f"{name} is not a WAV, FLAC, OGG/Opus, MP3, AAC, M4A/MP4, WebM/MKV, AIFF or CAF file "
                             "(playlists, lists of files and other formats are refused); export it as WAV and try again")
        try:
            container = av.open(f, format=fmt, timeout=(time_limit, time_limit),
                                options={"protocol_whitelist": "none", "enable_drefs": "0"})
        except (av.error.FFmpegError, UnicodeDecodeError, OSError) as e:
            raise MediaError(f"{name} starts like {fmt} but cannot be read ({e}); export it as WAV and try again") \
                from None
        try:
            if not container.streams.audio:
                raise MediaError(f"{name} has no audio stream")
            stream = container.streams.audio[0]
            seconds = None
            if stream.duration is not None and stream.time_base:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / 1_000_000
            if seconds is not None and seconds > max_seconds:
                raise AudioTooLongError(f"{name} lasts {seconds:.1f} s; at most {max_seconds:g} s are accepted: "
                                        "split it or raise --max-audio-seconds")
            return _decode_audio(container, stream, sr, name, max_seconds=max_seconds, deadline=deadline, tick=tick)
        finally:
            container.close()
    finally:
        f.close()


def check_sample_rate(rate, what: str, error: type[UserInputError] = MediaError):
    """Refuse rates no speech recording has (files and arrays alike): a 1 Hz header would
    stretch 100 samples into 100 s of "speech", a 10 MHz one squeeze it to nothing."""
    lo, hi = SAMPLE_RATE_RANGE
    if not lo <= rate <= hi:
        raise error(f"{what} is sampled at {rate} Hz; speech must be {lo}-{hi} Hz: export it again at 16 or 48 kHz")


def _decode_audio(container, stream, sr, name, max_seconds=None, deadline=None, tick=None) -> np.ndarray:
    """Decode one audio stream to float32 mono at `sr` packet by packet, within the given bounds."""
    import time

    import av

    check_sample_rate(stream.rate or 0, name)
    # keep the channels through resampling and average them here: ffmpeg's own downmix
    # adds channels at -3 dB each, which can clip when both carry the same speech
    resampler = None
    parts, total = [], 0
    max_samples = None if max_seconds is None else int(max_seconds * sr)
    try:
        for packet in container.demux(stream):
            if deadline is not None and time.monotonic() > deadline:
                raise MediaError(f"{name} took too long to decode; export it as WAV and try again")
            if tick is not None:
                tick()
            for frame in packet.decode():
                if resampler is None:
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=sr)
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().mean(axis=0))
                    total += parts[-1].shape[0]
            if max_samples is not None and total > max_samples:
                raise AudioTooLongError(f"{name} lasts more than {max_seconds:g} s, the most accepted; split it "
                                        "or raise --max-audio-seconds")
        for out in resampler.resample(None) if resampler is not None else ():
            parts.append(out.to_ndarray().mean(axis=0))
    except (av.error.FFmpegError, ValueError) as e:
        if isinstance(e, MediaError):
            raise
        raise MediaError(f"{name}: audio decoding failed ({e})") from None
    if not parts:
        raise MediaError(f"{name}: the audio stream holds no samples")
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
