"""The one-to-many step: audio features -> expression once, and per take a point sampled in the
audio-mapped range of each motion clip, decoded and joined to that take's previous clip.

`Sampler` knows the networks and the checkpoint's norms and nothing about files, frame rates of
the output, progress or re-roll; `osmnet.generate.Generator` orchestrates those around it.
Audio is walked in blocks of a few motion clips: each block's features are computed from the
wave around it (bounded memory for long audio), the expression branch runs once per block and
is shared by all takes, and every take samples its own point (seeded per take), decoded
conditioned on its previous clip's end and joined with a value-and-velocity (Hermite)
correction. Blinks, gaze drift and face variety are sampled per take.

Around the networks, driven by the recording's own loudness (computed once for the whole file,
cheap): the *speech activity* (osmnet.audio.voice_activity) takes mouth, cheeks and squint to rest
in pauses -- also in the noisy pauses of a real room -- and the *speech energy* sets the head's
speed (`follow_energy`: nods on stressed syllables, settling in pauses) and the emphasis link of
the brows.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from blender_addon.core.channels import ALL_CHANNELS, HEAD_CHANNELS
from blender_addon.core.errors import UserInputError
from osmnet.audio import (ENERGY, SAMPLE_RATE, audio_features, gaussian_smooth, loudness, n_frames, speech_energy,
                          speech_levels, utterance_offset, voice_activity)
from osmnet.model import checkpoint as ckpt_mod
from osmnet.model import eyes

N_CH = len(ALL_CHANNELS)
N_HEAD = len(HEAD_CHANNELS)
BLOCK_CLIPS = 4  # clips in the first block: the first chunk arrives after ~5 s of audio
LATER_BLOCK_CLIPS = 16  # clips in every later block: fewer, larger chunks once streaming has begun
MARGIN = 2  # feature frames of extra wave on each side (features see +-40 ms)
SEGMENTS, SEG_FRAMES = 24, 10  # pieces of the file that estimate its mean feature
# Channels that rest (0 in rig space) where nobody speaks; brows, blinks and gaze stay alive.
GATED = [i for i, n in enumerate(ALL_CHANNELS) if n.startswith(("jaw", "mouth", "cheek", "nose", "tongue", "eyeSquint"))]
DB_PER_LOG_ENERGY = 10.0 / np.log(10.0)  # features' natural-log energy -> dB


class DeviceError(UserInputError):
    """The asked-for torch device cannot hold the model; the message names the ones that can."""


def block_plan(f_start: int, f_end: int, clip_frames: int) -> tuple[list[int], list[int]]:
    """Block starts and spans (whole clips) covering model frames [f_start, f_end).

    The first block is short so the first chunk comes early; later blocks are longer, which
    halves the per-block work (network calls, thread hand-offs, messages through the backend)
    without changing a single value: features, expression context and the clip-by-clip motion do
    not depend on where blocks end (tested against a single pass)."""
    starts, spans, f0, clips = [], [], f_start, BLOCK_CLIPS
    while f0 < f_end:
        step = clips * clip_frames
        starts.append(f0)
        spans.append(-(-min(step, f_end - f0) // clip_frames) * clip_frames)
        f0 += step
        clips = LATER_BLOCK_CLIPS
    return starts, spans


def smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@dataclass
class FeatureArray:
    """Precomputed (T, FEATURE_DIM) features standing in for a wave (dataset clips in evaluation)."""

    feats: np.ndarray
    loudness: np.ndarray | None = None  # (T,) dB; None: derived from the features' log energy

    @property
    def frames(self) -> int:
        return len(self.feats)

    def window(self, f0: int, f1: int, silence: np.ndarray) -> np.ndarray:
        out = np.repeat(silence[None].astype(np.float32), f1 - f0, 0)
        lo, hi = max(f0, 0), min(f1, len(self.feats))
        if hi > lo:
            out[lo - f0:hi - f0] = self.feats[lo:hi]
        return out


class Sampler:
    """The networks of one checkpoint on one device, sampling takes block by block."""

    def __init__(self, ckpt: ckpt_mod.Checkpoint, device: str = "cpu"):
        self.ckpt, self.cfg, self.device = ckpt, ckpt.config, device
        try:
            self.model = ckpt.build_model().to(device)
        except (RuntimeError, AssertionError, ValueError) as e:
            raise DeviceError(f"cannot use device {device!r} ({e}); use 'cpu' or an available 'cuda:N'") from None
        n = ckpt.norms
        self.feat_mean, self.feat_std = n["feat_mean"], n["feat_std"]
        self.pose_std = n["pose_std"].astype(np.float32)
        self.fps_model = float(self.cfg.fps)
        self.hop = int(round(SAMPLE_RATE / self.fps_model))
        self.range_scale = float(ckpt.sampling.get("range_scale", 1.0))
        self.head_speed = float(ckpt.sampling.get("head_speed", 1.0))  # calibrated; 1 = the decoder's speed
        # Per-channel level of the expression output (calibrated; identity for older checkpoints).
        self.expression_gain = np.asarray(ckpt.sampling.get("expression_gain", np.ones(N_CH - N_HEAD)), np.float32)
        self.expression_offset = np.asarray(ckpt.sampling.get("expression_offset", np.zeros(N_CH - N_HEAD)),
                                            np.float32)

    def raw_expression(self, feats: "FeatureArray") -> np.ndarray:
        """(T, 52) the expression network's own output for precomputed features, before the level
        calibration, the rest gate and face variety (what the calibration measures)."""
        ctx = self.cfg.audio.context
        x = self.features(feats, -ctx - 1, feats.frames + ctx + 1, self.utterance_offset(feats))
        with torch.inference_mode():
            return self.model.expression(self.model.audio(x))[0, 1:-1].cpu().numpy()

    def features(self, wave, f0: int, f1: int, offset: np.ndarray) -> torch.Tensor:
        """Normalized features of model frames [f0, f1) (may reach outside the audio: silence).
        `wave` is a 16 kHz wave, or a FeatureArray of precomputed features (evaluation)."""
        if isinstance(wave, FeatureArray):
            f = wave.window(f0, f1, self.ckpt.norms["silence"])
        else:
            a, b = (f0 - MARGIN) * self.hop, (f1 + MARGIN) * self.hop
            seg = np.zeros(b - a, np.float32)
            lo, hi = max(a, 0), min(b, len(wave))
            if hi > lo:
                seg[lo - a:hi - a] = wave[lo:hi]
            f = audio_features(seg, SAMPLE_RATE, self.fps_model)[MARGIN:MARGIN + f1 - f0]
        f = (f - offset - self.feat_mean) / self.feat_std
        return torch.as_tensor(f[None], dtype=torch.float32, device=self.device)

    def utterance_offset(self, wave) -> np.ndarray:
        """The recording's mean feature (see osmnet.audio.utterance_offset). For a wave it is estimated
        from SEGMENTS short pieces spread evenly over the file, so long audio costs one small extra
        pass instead of two full ones; dataset features use their exact mean."""
        default = self.ckpt.norms["offset_default"]
        if not self.cfg.audio.utterance_norm or isinstance(wave, FeatureArray):
            return utterance_offset(wave.feats if isinstance(wave, FeatureArray) else np.zeros((1, len(default))),
                                    self.cfg.audio.utterance_norm, default)
        T = n_frames(len(wave), SAMPLE_RATE, self.fps_model)
        n_seg = max(1, min(SEGMENTS, T // SEG_FRAMES))
        starts = np.linspace(0, max(0, T - SEG_FRAMES), n_seg).astype(int)
        pieces = []
        for s0 in starts:  # each piece carries MARGIN frames of wave on both sides, dropped after
            a, b = (s0 - MARGIN) * self.hop, (s0 + SEG_FRAMES + MARGIN) * self.hop
            seg = np.zeros(b - a, np.float32)
            lo, hi = max(a, 0), min(b, len(wave))
            seg[lo - a:hi - a] = wave[lo:hi]
            pieces.append(seg)
        f = audio_features(np.concatenate(pieces), SAMPLE_RATE, self.fps_model)
        per = SEG_FRAMES + 2 * MARGIN
        keep = np.concatenate([np.arange(i * per + MARGIN, i * per + MARGIN + min(SEG_FRAMES, T)) for i in range(n_seg)])
        return utterance_offset(f[keep], self.cfg.audio.utterance_norm, default)

    def speech_curves(self, wave) -> tuple[np.ndarray, np.ndarray]:
        """(activity, energy), each (T,) in [0, 1] at the model's rate, for the whole recording."""
        if isinstance(wave, FeatureArray):
            loud = wave.loudness if wave.loudness is not None else wave.feats[:, ENERGY] * DB_PER_LOG_ENERGY
        else:
            loud = loudness(wave, SAMPLE_RATE, self.fps_model)
        levels = speech_levels(loud)
        return voice_activity(loud, self.fps_model, levels), gaussian_smooth(speech_energy(loud, levels), 1.0)

    def blocks(self, wave, f_start, f_end, takes, seed, diversity, intensity, prev=None, should_stop=None):
        """Yield (f0, values (takes, n, 58)) for model frames [f_start, f_end) block by block.
        Ends early (no partial block) once `should_stop()` is true; it is asked before each block
        and before each clip, so a cancel costs at most one clip's compute, not a whole block."""
        stop = should_stop or (lambda: False)
        m, ctx = self.cfg.motion, self.cfg.audio.context
        L, P = m.clip_frames, m.prev_frames
        scale = self.pose_std / max(intensity, 1e-6)  # conditioning lives in the unscaled space
        offset = self.utterance_offset(wave)
        rngs = [np.random.default_rng([seed, k, 0]) for k in range(takes)]
        eye_s = [eyes.EyeSampler(self.ckpt.eyes, np.random.default_rng([seed, k, 1])) for k in range(takes)]
        face_s = [eyes.FaceSampler(self.ckpt.eyes, np.random.default_rng([seed, k, 2]), self.cfg.expression.variety)
                  for k in range(takes)]
        activity, energy = self.speech_curves(wave)
        g = m.energy_base + m.energy_gain * energy
        # RMS gain = head_speed: the decoder's RMS velocity times the calibrated speed (see follow_energy)
        gain = self.head_speed * g / max(1e-6, float(np.sqrt(np.mean(g ** 2)))) if len(g) else g
        curves = {"activity": activity, "energy": energy, "gain": gain, "follow": None}
        if prev is None:
            prev_t = torch.zeros(takes, P, N_HEAD)
            has_prev = torch.zeros(takes)
        else:
            prev_t = torch.as_tensor(np.broadcast_to(prev / scale, (takes, P, N_HEAD)).copy(), dtype=torch.float32)
            has_prev = torch.ones(takes)
        state = [prev_t, has_prev]  # the end of each take's last clip, carried from block to block
        starts, spans = block_plan(f_start, f_end, L)

        def features(b):  # +1 frame each side: the expression head's kernel-3 conv needs it
            return self.features(wave, starts[b] - ctx - 1, starts[b] + spans[b] + ctx + 1, offset)

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
                out = self.block(feats, f0, spans[b], f_end, takes, rngs, (eye_s, face_s), diversity, intensity, state,
                                 stop, curves)
                if out is None:
                    return
                yield out
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def block(self, feats, f0, span, f_end, takes, rngs, samplers, diversity, intensity, state, stop, curves):
        """One block: expression once, then each clip of every take sampled, decoded and joined.
        Returns None when `stop()` turns true between clips (the caller ends the stream)."""
        eye_s, face_s = samplers
        m = self.cfg.motion
        L, P = m.clip_frames, m.prev_frames
        prev_t, has_prev = state
        with torch.inference_mode():
            hidden = self.model.audio(feats)
            expr = self.model.expression(hidden)[0, 1:-1].cpu().numpy() * self.expression_gain + self.expression_offset
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
        head = torch.cat(heads, 1)[:, :n].numpy().astype(np.float64)
        vals[:, :, :N_HEAD] = follow_energy(head, curves, f0, m.energy_leak) * (self.pose_std * intensity)
        energy = _frames(curves["energy"], f0, n)
        for k in range(takes):
            vals[k][:, eyes.EYE_INDEX] = eye_s[k].next(n)
            face = face_s[k].next(energy)
            if face is not None:
                vals[k][:, eyes.FACE_INDEX] += face
                vals[k][:, eyes.CHEEK_INDEX] = np.maximum(vals[k][:, eyes.CHEEK_INDEX],
                                                          eyes.CHEEK_FROM_SMILE * vals[k][:, eyes.SMILE_INDEX])
        if self.cfg.expression.rest_gate:
            vals[:, :, GATED] *= _frames(curves["activity"], f0, n)[None, :, None]
        np.clip(vals[:, :, N_HEAD:], 0.0, 1.0, out=vals[:, :, N_HEAD:])
        state[0], state[1] = prev_t, has_prev
        return f0, vals


def _frames(curve: np.ndarray, f0: int, n: int) -> np.ndarray:
    """curve[f0:f0 + n] with the edge value beyond the ends (blocks may reach past the audio)."""
    if len(curve) == 0:
        return np.zeros(n, np.float32)
    return curve[np.clip(np.arange(f0, f0 + n), 0, len(curve) - 1)].astype(np.float32)


def follow_energy(head: np.ndarray, curves: dict, f0: int, leak: float) -> np.ndarray:
    """(takes, n, 6) decoded head poses -> the same path with its speed scaled by the speech
    energy's gain: y[t] = y[t-1] + gain[t] (x[t] - x[t-1]) - leak (y[t-1] - x[t-1]). The pull
    back to the decoded pose keeps the path from drifting; the state carries across blocks.
    For a constant gain k this is a shelf filter: motion faster than the pull's time constant
    (1 / leak frames) is scaled by k, slower motion follows x unchanged, so a calibrated RMS gain
    above 1 (the checkpoint's head_speed) restores the velocity the decoder smooths away while the
    range calibration keeps the size."""
    gain = _frames(curves["gain"], f0, head.shape[1]).astype(np.float64)
    prev = curves["follow"]  # (last decoded x, last output y) of the previous block, or None
    x_prev, y_prev = (head[:, 0], head[:, 0]) if prev is None else prev
    x_full = np.concatenate([x_prev[:, None], head], 1)
    u = gain[None, :, None] * np.diff(x_full, axis=1) + leak * x_full[:, :-1]  # y[t] = (1 - leak) y[t-1] + u[t]
    y = eyes.ar1(u.transpose(1, 0, 2), np.full(head.shape[2], 1.0 - leak), y_prev).transpose(1, 0, 2)
    curves["follow"] = (head[:, -1].copy(), y[:, -1].copy())
    return y


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
