"""Checkpoint + speech -> N seeded takes, streamed in chunks: the orchestration around the sampler.

`osmnet.model.sampler.Sampler` is the one-to-many step; this module checks the request, reads the
speech, streams the sampler's blocks as chunks at the asked frame rate (takes interleaved, the
first after one block), polls `should_stop` for cancel, and blends re-rolled ranges into a base.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blender_addon.core.errors import UserInputError
from blender_addon.core.take import FPS_RANGE, Take
from osmnet.audio import SAMPLE_RATE, n_frames, read_speech
from osmnet.model import checkpoint as ckpt_mod
from osmnet.model.sampler import BLOCK_CLIPS, N_CH, N_HEAD, DeviceError, FeatureArray, Sampler, smoothstep  # noqa: F401

SR = SAMPLE_RATE
# What a re-roll regenerates: the head pose, the face (variety, blinks, gaze; the lips follow the
# same audio, so they come out the same), or both.
REROLL_WHAT = {"head": slice(0, N_HEAD), "face": slice(N_HEAD, N_CH), "both": slice(0, N_CH)}


class GenerateError(UserInputError):
    """Bad input to generation (audio, seed, re-roll range); the message says what to fix."""


@dataclass
class TakeChunk:
    take: int
    start: int  # first frame of `values` in the take, at `fps`
    values: np.ndarray  # (n, 58) float32, ALL_CHANNELS order
    fps: float
    done: bool  # last chunk of this take


class Generator:
    def __init__(self, ckpt: ckpt_mod.Checkpoint, device: str = "cpu", name: str = "osmnet"):
        try:
            self.sampler = Sampler(ckpt, device)
        except DeviceError as e:
            raise GenerateError(str(e)) from None
        self.ckpt, self.cfg, self.device, self.name = ckpt, ckpt.config, device, name
        self.fps_model = self.sampler.fps_model

    # The sampler's knobs, reachable through the generator (calibration and tests set them).
    model = property(lambda self: self.sampler.model)
    range_scale = property(lambda self: self.sampler.range_scale,
                           lambda self, v: setattr(self.sampler, "range_scale", float(v)))
    head_speed = property(lambda self: self.sampler.head_speed,
                          lambda self, v: setattr(self.sampler, "head_speed", float(v)))

    @classmethod
    def load(cls, checkpoint=None, device: str = "cpu") -> Generator:
        ck = ckpt_mod.load(checkpoint)
        name = "osmnet-default" if checkpoint is None else Path(checkpoint).stem
        return cls(ck, device, name)

    # ---- public API -----------------------------------------------------------------------
    def stream(self, audio, *, takes: int = 1, seed: int = 0, diversity: float = 1.0, intensity: float = 1.0,
               fps: float = 25.0, base: Take | None = None, reroll: tuple[int, int] | None = None,
               what: str = "both", should_stop: Callable[[], bool] | None = None) -> Iterator[TakeChunk]:
        """Yield TakeChunks as soon as each block exists, takes interleaved. `should_stop` (no
        arguments) is polled before every block and clip; when it returns True the stream just
        ends, so a cancelled job frees the CPU within about one clip's compute."""
        if not isinstance(takes, int) or takes < 1:
            raise GenerateError(f"takes must be a positive integer, got {takes!r}")
        if not (isinstance(seed, int) and seed >= 0):
            raise GenerateError(f"seed must be a non-negative integer, got {seed!r}")
        for name, v in (("diversity", diversity), ("intensity", intensity)):
            if not (np.isfinite(v) and v >= 0):
                raise GenerateError(f"{name} must be a finite number >= 0, got {v!r}")
        if not (np.isfinite(fps) and FPS_RANGE[0] <= fps <= FPS_RANGE[1]):
            raise GenerateError(f"fps must be between {FPS_RANGE[0]:g} and {FPS_RANGE[1]:g}, got {fps!r}")
        if (base is None) != (reroll is None):
            raise GenerateError("re-roll needs both a base take and a START:END range")
        if what not in REROLL_WHAT:
            raise GenerateError(f"re-roll 'what' must be one of {', '.join(REROLL_WHAT)}, got {what!r}")
        wave = audio if isinstance(audio, FeatureArray) else read_speech(audio)
        if base is not None:
            yield from self._reroll(wave, base, reroll, takes, seed, diversity, intensity, fps, should_stop, what)
            return
        if isinstance(wave, FeatureArray):
            t_model = wave.frames
            t_out = n_frames(wave.frames, int(self.fps_model), fps)
        else:
            t_model = n_frames(len(wave), SR, self.fps_model)
            t_out = n_frames(len(wave), SR, fps)
        res = [Resampler(self.fps_model, fps, t_model, t_out) for _ in range(takes)]
        for f0, vals in self.sampler.blocks(wave, 0, t_model, takes, seed, diversity, intensity, should_stop=should_stop):
            last = f0 + vals.shape[1] >= t_model
            for k in range(takes):
                start, out = res[k].push(vals[k], last)
                if len(out) or last:
                    yield TakeChunk(k, start, out, float(fps), last)

    def generate(self, audio, **kw) -> list[Take]:
        """The concatenated stream, one Take per take (takes the same keywords as `stream`,
        `should_stop` included: a stopped run returns the frames made so far)."""
        parts: dict[int, list[np.ndarray]] = {}
        fps = float(kw.get("fps", 25.0))
        for ch in self.stream(audio, **kw):
            parts.setdefault(ch.take, []).append(ch.values)
        meta = {"generator": self.name, "curves": "rig", "seed": kw.get("seed", 0), "diversity": kw.get("diversity", 1.0),
                "intensity": kw.get("intensity", 1.0)}
        if kw.get("reroll") is not None:
            meta["reroll"] = list(kw["reroll"])
            meta["reroll_what"] = kw.get("what", "both")
        return [Take.from_array(np.concatenate(parts[k]), fps, meta={**meta, "take": k}) for k in sorted(parts)]

    def _reroll(self, wave, base: Take, reroll, takes, seed, diversity, intensity, fps, should_stop=None,
                what: str = "both"):
        s, e = (int(x) for x in reroll)
        base = base.resample(fps) if base.fps != fps else base
        if not (0 <= s < e <= base.frames):
            raise GenerateError(f"re-roll range {s}:{e} must satisfy 0 <= START < END <= {base.frames} (base frames)")
        speech = n_frames(wave.frames, int(self.fps_model), fps) if isinstance(wave, FeatureArray) \
            else n_frames(len(wave), SAMPLE_RATE, fps)
        if abs(base.frames - speech) > max(1, round(0.1 * fps)):  # a take of other speech cannot be re-rolled
            raise GenerateError(f"the base take lasts {base.duration:.2f} s ({base.frames} frames) but the speech "
                                f"{speech / fps:.2f} s ({speech} frames at {fps:g} fps); re-roll a take made "
                                "from this speech")
        b_model = base.resample(self.fps_model).array() if fps != self.fps_model else base.array()
        P = self.cfg.motion.prev_frames
        s_m = int(np.floor(s / fps * self.fps_model))
        e_m = min(len(b_model), int(np.ceil(e / fps * self.fps_model)) + 1)
        prev = b_model[s_m - P:s_m, :N_HEAD] if s_m >= P else None
        blocks = [v for _, v in self.sampler.blocks(wave, s_m, e_m, takes, seed, diversity, intensity, prev, should_stop)]
        if should_stop is not None and should_stop():
            return
        new = np.concatenate(blocks, 1)
        t_m = (np.arange(s, e) / fps) * self.fps_model - s_m
        ramp = max(1, min(int(round(0.4 * fps)), (e - s) // 2))
        x = np.arange(s, e)
        w = smoothstep((x - s) / ramp) * smoothstep((e - x) / ramp)
        base_arr = base.array()
        sel = REROLL_WHAT[what]
        for k in range(takes):
            region = np.stack([np.interp(t_m, np.arange(new.shape[1]), new[k, :, c]) for c in range(N_CH)], 1)
            out = base_arr.copy()
            out[s:e, sel] = base_arr[s:e, sel] + w[:, None] * (region[:, sel] - base_arr[s:e, sel])
            step = BLOCK_CLIPS * self.cfg.motion.clip_frames
            for a in range(0, len(out), step):
                yield TakeChunk(k, a, out[a:a + step].astype(np.float32), float(fps), a + step >= len(out))


class Resampler:
    """Streams frames at `fin` into frames at `fout` (linear interpolation), keeping `t_out` total."""

    def __init__(self, fin: float, fout: float, t_in: int, t_out: int):
        self.fin, self.fout, self.t_in, self.t_out = fin, fout, t_in, t_out
        self.buf = np.zeros((0, N_CH), np.float32)
        self.buf0 = 0  # model frame index of buf[0]
        self.next = 0  # next output frame

    def push(self, vals: np.ndarray, last: bool):
        start = self.next
        if self.fin == self.fout:
            self.next += len(vals)
            return start, vals
        self.buf = np.concatenate([self.buf, vals])
        have = self.buf0 + len(self.buf)
        j = np.arange(self.next, self.t_out)
        pos = j / self.fout * self.fin
        ok = j[(np.floor(pos) + 1 < have) | last]
        pos = np.minimum(ok / self.fout * self.fin - self.buf0, len(self.buf) - 1)
        i0 = np.floor(pos).astype(int)
        i1 = np.minimum(i0 + 1, len(self.buf) - 1)
        a = (pos - i0)[:, None].astype(np.float32)
        out = self.buf[i0] * (1 - a) + self.buf[i1] * a
        self.next += len(ok)
        keep = max(0, int(np.floor(self.next / self.fout * self.fin)) - self.buf0)
        self.buf, self.buf0 = self.buf[keep:], self.buf0 + keep
        return start, out.astype(np.float32)
