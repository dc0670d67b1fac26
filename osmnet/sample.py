"""Checkpoint + speech -> N seeded takes, streamed in chunks; diversity, intensity, re-roll.

Audio is walked in blocks of a few motion clips: each block's features are computed from the
wave around it (bounded memory for long audio), the expression branch runs once per block and
is shared by all takes, and every take samples its own point inside the audio-mapped range of
each clip (seeded per take), decodes it conditioned on its previous clip's end, and is joined
with a value-and-velocity (Hermite) correction. Blinks and gaze drift are sampled per take.
Chunks are yielded per block, takes interleaved, so the first arrives after one block.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from osmnet import checkpoint as ckpt_mod
from osmnet import eyes
from osmnet.take import ALL_CHANNELS, HEAD_CHANNELS, Take

SR = 16000
N_CH = len(ALL_CHANNELS)
N_HEAD = len(HEAD_CHANNELS)
BLOCK_CLIPS = 4
MARGIN = 2  # feature frames of extra wave on each side (features see +-40 ms)
SEGMENTS, SEG_FRAMES = 24, 10  # pieces of the file that estimate its mean feature


class GenerateError(ValueError):
    """Bad input to generation (audio, seed, re-roll range); the message says what to fix."""


@dataclass
class TakeChunk:
    take: int
    start: int  # first frame of `values` in the take, at `fps`
    values: np.ndarray  # (n, 58) float32, ALL_CHANNELS order
    fps: float
    done: bool  # last chunk of this take


def smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def read_audio(audio) -> np.ndarray:
    """A path or (samples, sr) -> float32 mono wave at 16 kHz, checked."""
    if isinstance(audio, (str, Path)):
        from osmnet.media import load_audio

        if not Path(audio).is_file():
            raise GenerateError(f"audio file {audio} does not exist")
        wave = load_audio(audio, sr=SR)
    elif isinstance(audio, tuple) and len(audio) == 2:
        wave, sr = np.asarray(audio[0], np.float32), int(audio[1])
        if wave.ndim == 2:
            wave = wave.mean(axis=1 if wave.shape[1] <= 8 else 0)
        if sr <= 0:
            raise GenerateError(f"sample rate must be positive, got {sr}")
        if sr != SR:
            from math import gcd

            from scipy.signal import resample_poly

            g = gcd(sr, SR)
            wave = resample_poly(wave, SR // g, sr // g).astype(np.float32)
    else:
        raise GenerateError("audio must be a file path or a (samples, sample_rate) tuple")
    if wave.ndim != 1 or len(wave) == 0:
        raise GenerateError(f"audio has no samples (shape {wave.shape}); give a file with speech in it")
    if not np.all(np.isfinite(wave)):
        raise GenerateError("audio contains NaN or infinite samples")
    return wave


@dataclass
class FeatureArray:
    """Precomputed (T, FEATURE_DIM) features standing in for a wave (dataset clips in evaluation)."""

    feats: np.ndarray

    @property
    def frames(self) -> int:
        return len(self.feats)

    def window(self, f0: int, f1: int, silence: np.ndarray) -> np.ndarray:
        out = np.repeat(silence[None].astype(np.float32), f1 - f0, 0)
        lo, hi = max(f0, 0), min(f1, len(self.feats))
        if hi > lo:
            out[lo - f0:hi - f0] = self.feats[lo:hi]
        return out


class Generator:
    def __init__(self, ckpt: ckpt_mod.Checkpoint, device: str = "cpu", name: str = "osmnet"):
        self.ckpt, self.cfg, self.device, self.name = ckpt, ckpt.config, device, name
        try:
            self.model = ckpt.build_model().to(device)
        except (RuntimeError, AssertionError, ValueError) as e:
            raise GenerateError(f"cannot use device {device!r} ({e}); use 'cpu' or an available 'cuda:N'") from None
        n = ckpt.norms
        self.feat_mean, self.feat_std = n["feat_mean"], n["feat_std"]
        self.pose_std = n["pose_std"].astype(np.float32)
        self.fps_model = float(self.cfg.fps)
        self.hop = int(round(SR / self.fps_model))
        self.range_scale = float(ckpt.sampling.get("range_scale", 1.0))

    @classmethod
    def load(cls, checkpoint=None, device: str = "cpu") -> Generator:
        ck = ckpt_mod.load(checkpoint)
        name = "osmnet-default" if checkpoint is None else Path(checkpoint).stem
        return cls(ck, device, name)

    # ---- pieces ---------------------------------------------------------------------------
    def _features(self, wave, f0: int, f1: int, offset: np.ndarray) -> torch.Tensor:
        """Normalized features of model frames [f0, f1) (may reach outside the audio: silence).
        `wave` is a 16 kHz wave, or a FeatureArray of precomputed features (evaluation)."""
        if isinstance(wave, FeatureArray):
            f = wave.window(f0, f1, self.ckpt.norms["silence"])
        else:
            from osmnet.audio import audio_features

            a, b = (f0 - MARGIN) * self.hop, (f1 + MARGIN) * self.hop
            seg = np.zeros(b - a, np.float32)
            lo, hi = max(a, 0), min(b, len(wave))
            if hi > lo:
                seg[lo - a:hi - a] = wave[lo:hi]
            f = audio_features(seg, SR, self.fps_model)[MARGIN:MARGIN + f1 - f0]
        f = (f - offset - self.feat_mean) / self.feat_std
        return torch.as_tensor(f[None], dtype=torch.float32, device=self.device)

    def _utterance_offset(self, wave) -> np.ndarray:
        """The recording's mean feature (see trainset.utterance_offset). For a wave it is estimated
        from SEGMENTS short pieces spread evenly over the file, so long audio costs one small extra
        pass instead of two full ones; dataset features use their exact mean."""
        from osmnet.trainset import utterance_offset

        default = self.ckpt.norms["offset_default"]
        if not self.cfg.audio.utterance_norm or isinstance(wave, FeatureArray):
            return utterance_offset(wave.feats if isinstance(wave, FeatureArray) else np.zeros((1, len(default))),
                                    self.cfg, default)
        from osmnet.audio import audio_features, n_frames

        T = n_frames(len(wave), SR, self.fps_model)
        n_seg = max(1, min(SEGMENTS, T // SEG_FRAMES))
        starts = np.linspace(0, max(0, T - SEG_FRAMES), n_seg).astype(int)
        pieces = []
        for s0 in starts:  # each piece carries MARGIN frames of wave on both sides, dropped after
            a, b = (s0 - MARGIN) * self.hop, (s0 + SEG_FRAMES + MARGIN) * self.hop
            seg = np.zeros(b - a, np.float32)
            lo, hi = max(a, 0), min(b, len(wave))
            seg[lo - a:hi - a] = wave[lo:hi]
            pieces.append(seg)
        f = audio_features(np.concatenate(pieces), SR, self.fps_model)
        per = SEG_FRAMES + 2 * MARGIN
        keep = np.concatenate([np.arange(i * per + MARGIN, i * per + MARGIN + min(SEG_FRAMES, T)) for i in range(n_seg)])
        return utterance_offset(f[keep], self.cfg, default)

    def _blocks(self, wave, f_start, f_end, takes, seed, diversity, intensity, prev=None, should_stop=None):
        """Yield (f0, values (takes, n, 58)) for model frames [f_start, f_end) block by block.
        Ends early (no partial block) once `should_stop()` is true; it is asked before each block
        and before each clip, so a cancel costs at most one clip's compute, not a whole block."""
        stop = should_stop or (lambda: False)
        m, ctx = self.cfg.motion, self.cfg.audio.context
        L, P = m.clip_frames, m.prev_frames
        scale = self.pose_std / max(intensity, 1e-6)  # conditioning lives in the unscaled space
        offset = self._utterance_offset(wave)
        rngs = [np.random.default_rng([seed, k, 0]) for k in range(takes)]
        eye_s = [eyes.EyeSampler(self.ckpt.eyes, np.random.default_rng([seed, k, 1])) for k in range(takes)]
        if prev is None:
            prev_t = torch.zeros(takes, P, N_HEAD)
            has_prev = torch.zeros(takes)
        else:
            prev_t = torch.as_tensor(np.broadcast_to(prev / scale, (takes, P, N_HEAD)).copy(), dtype=torch.float32)
            has_prev = torch.ones(takes)
        state = [prev_t, has_prev]  # the end of each take's last clip, carried from block to block
        step = BLOCK_CLIPS * L
        starts = list(range(f_start, f_end, step))
        spans = [-(-min(step, f_end - f0) // L) * L for f0 in starts]

        def features(b):  # +1 frame each side: the expression head's kernel-3 conv needs it
            return self._features(wave, starts[b] - ctx - 1, starts[b] + spans[b] + ctx + 1, offset)

        # The next block's features (numpy FFTs, GIL released) are computed on a second thread
        # while this block runs through the networks: on 2 cores the two halves overlap.
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            pending = pool.submit(features, 0) if starts else None
            for b, f0 in enumerate(starts):
                feats = pending.result()
                if stop():
                    return
                pending = pool.submit(features, b + 1) if b + 1 < len(starts) else None
                out = self._block(feats, f0, spans[b], f_end, takes, rngs, eye_s, diversity, intensity, state, stop)
                if out is None:
                    return
                yield out
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _block(self, feats, f0, span, f_end, takes, rngs, eye_s, diversity, intensity, state, stop):
        """One block: expression once, then each clip of every take sampled, decoded and joined.
        Returns None when `stop()` turns true between clips (the caller ends the stream)."""
        m = self.cfg.motion
        L, P = m.clip_frames, m.prev_frames
        prev_t, has_prev = state
        with torch.inference_mode():
            hidden = self.model.audio(feats)
            expr = self.model.expression(hidden)[0, 1:-1].cpu().numpy()
            hidden = hidden[:, :, 1:-1]
            clips_h = hidden[0].unfold(1, L, L).permute(1, 0, 2)  # (n_clips, H, L)
            mu, std = self.model.mapper(clips_h)
            heads = []
            for j in range(span // L):
                if stop():
                    return None
                eps = torch.as_tensor(np.stack([r.standard_normal(m.bases) for r in rngs]), dtype=torch.float32,
                                      device=self.device)
                coeffs = mu[j] + (diversity * self.range_scale) * std[j] * eps
                h = clips_h[j:j + 1].expand(takes, -1, -1)
                out = self.model.motion.decode(coeffs, prev_t.to(self.device), has_prev.to(self.device), h).cpu()
                out = join(out, prev_t, has_prev, m.join_frames)
                heads.append(out)
                prev_t, has_prev = out[:, -P:], torch.ones(takes)
        n = min(span, f_end - f0)
        vals = np.empty((takes, n, N_CH), np.float32)
        vals[:, :, N_HEAD:] = expr[None, :n]
        vals[:, :, :N_HEAD] = torch.cat(heads, 1)[:, :n].numpy() * (self.pose_std * intensity)
        for k in range(takes):
            vals[k][:, eyes.EYE_INDEX] = eye_s[k].next(n)
        state[0], state[1] = prev_t, has_prev
        return f0, vals

    # ---- public API -----------------------------------------------------------------------
    def stream(self, audio, *, takes: int = 1, seed: int = 0, diversity: float = 1.0, intensity: float = 1.0,
               fps: float = 25.0, base: Take | None = None, reroll: tuple[int, int] | None = None,
               should_stop: Callable[[], bool] | None = None) -> Iterator[TakeChunk]:
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
        if not (np.isfinite(fps) and 1 <= fps <= 240):
            raise GenerateError(f"fps must be between 1 and 240, got {fps!r}")
        if (base is None) != (reroll is None):
            raise GenerateError("re-roll needs both a base take and a START:END range")
        wave = audio if isinstance(audio, FeatureArray) else read_audio(audio)
        if base is not None:
            yield from self._reroll(wave, base, reroll, takes, seed, diversity, intensity, fps, should_stop)
            return
        from osmnet.audio import n_frames

        if isinstance(wave, FeatureArray):
            t_model = wave.frames
            t_out = n_frames(wave.frames, int(self.fps_model), fps)
        else:
            t_model = n_frames(len(wave), SR, self.fps_model)
            t_out = n_frames(len(wave), SR, fps)
        res = [Resampler(self.fps_model, fps, t_model, t_out) for _ in range(takes)]
        for f0, vals in self._blocks(wave, 0, t_model, takes, seed, diversity, intensity, should_stop=should_stop):
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
        meta = {"generator": self.name, "seed": kw.get("seed", 0), "diversity": kw.get("diversity", 1.0),
                "intensity": kw.get("intensity", 1.0)}
        if kw.get("reroll") is not None:
            meta["reroll"] = list(kw["reroll"])
        return [Take.from_array(np.concatenate(parts[k]), fps, meta={**meta, "take": k}) for k in sorted(parts)]

    def _reroll(self, wave, base: Take, reroll, takes, seed, diversity, intensity, fps, should_stop=None):
        s, e = (int(x) for x in reroll)
        base = base.resample(fps) if base.fps != fps else base
        if not (0 <= s < e <= base.frames):
            raise GenerateError(f"re-roll range {s}:{e} must satisfy 0 <= START < END <= {base.frames} (base frames)")
        b_model = base.resample(self.fps_model).array() if fps != self.fps_model else base.array()
        P = self.cfg.motion.prev_frames
        s_m = int(np.floor(s / fps * self.fps_model))
        e_m = min(len(b_model), int(np.ceil(e / fps * self.fps_model)) + 1)
        prev = b_model[s_m - P:s_m, :N_HEAD] if s_m >= P else None
        blocks = [v for _, v in self._blocks(wave, s_m, e_m, takes, seed, diversity, intensity, prev, should_stop)]
        if should_stop is not None and should_stop():
            return
        new = np.concatenate(blocks, 1)
        t_m = (np.arange(s, e) / fps) * self.fps_model - s_m
        ramp = max(1, min(int(round(0.4 * fps)), (e - s) // 2))
        x = np.arange(s, e)
        w = smoothstep((x - s) / ramp) * smoothstep((e - x) / ramp)
        base_arr = base.array()
        for k in range(takes):
            region = np.stack([np.interp(t_m, np.arange(new.shape[1]), new[k, :, c]) for c in range(N_CH)], 1)
            out = base_arr.copy()
            out[s:e] = base_arr[s:e] + w[:, None] * (region - base_arr[s:e])
            step = BLOCK_CLIPS * self.cfg.motion.clip_frames
            for a in range(0, len(out), step):
                yield TakeChunk(k, a, out[a:a + step].astype(np.float32), float(fps), a + step >= len(out))


def join(out: torch.Tensor, prev: torch.Tensor, has_prev: torch.Tensor, frames: int) -> torch.Tensor:
    """Hermite join: bend the clip's first `frames` so it continues the previous end in value and
    velocity; the correction and its slope fade to zero by `frames`."""
    if frames < 1 or not bool(has_prev.any()):
        return out
    v_prev = prev[:, -1] - prev[:, -2] if prev.shape[1] > 1 else torch.zeros_like(prev[:, -1])
    d0 = prev[:, -1] + v_prev - out[:, 0]
    d1 = v_prev - (out[:, 1] - out[:, 0])
    t = torch.arange(out.shape[1], dtype=out.dtype)
    fade = torch.as_tensor(1 - smoothstep(t.numpy() / frames), dtype=out.dtype)
    corr = (d0[:, None] + d1[:, None] * t[None, :, None]) * fade[None, :, None]
    return out + corr * has_prev[:, None, None]


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
