"""The OSM-Net networks: a windowed audio encoder, the expression branch and the motion space.

Head motion lives in a *motion space*: a point is a set of K coefficients over K learned basis
vectors (clip-level head-motion features). The motion encoder places a real pose clip in the
space (a Gaussian posterior), the decoder turns a point plus the end of the previous clip back
into a pose clip, and the audio mapper turns the audio of a clip into a point and a per-dimension
range around it. Training pulls the mapped range over the posteriors of real clips with similar
audio (a KL term), so the range is how far real motion spreads for such audio; sampling inside
it gives one take, the mapped point alone gives the one-to-one ablation.

Poses here are normalized (per-video mean removed, divided by the training std per channel).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from osmnet.model.config import Config

from blender_addon.core.take import ARKIT_NAMES
from blender_addon.core.errors import InternalError

N_POSE = 6
N_ARKIT = len(ARKIT_NAMES)
LIP = [ARKIT_NAMES.index(n) for n in ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker")]
MOUTH8 = ("jawOpen", "mouthFunnel", "mouthPucker", "mouthClose", "mouthLowerDownLeft", "mouthLowerDownRight",
          "mouthStretchLeft", "mouthStretchRight")  # the mouth shapes the lip metrics average over
LIP_CHANNELS = {"lip4": LIP, "mouth8": [ARKIT_NAMES.index(n) for n in MOUTH8]}
TRAINING_ONLY = ("phone_head.", "gap_head.")  # parameters that exist only while training (never saved)


def _window_r(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Pearson r over time (dim 1) per window and channel: (B, T, C) x2 -> (B, C)."""
    p, t = p - p.mean(1, keepdim=True), t - t.mean(1, keepdim=True)
    return (p * t).sum(1) / ((p * p).sum(1) * (t * t).sum(1) + 1e-8).sqrt()


class AudioEncoder(nn.Module):
    """(B, T + 2*context, D) features -> (B, H, T); every output frame sees +-context frames."""

    def __init__(self, cfg: Config):
        super().__init__()
        a = cfg.audio
        self.dilations = tuple(int(d) for d in a.dilations)
        self.proj = nn.Conv1d(a.feature_dim, a.hidden, 1)
        self.convs = nn.ModuleList(nn.Conv1d(a.hidden, a.hidden, 3, dilation=d) for d in self.dilations)
        self.drop = nn.Dropout(a.dropout)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.proj(self.drop(feats.transpose(1, 2)))
        for d, conv in zip(self.dilations, self.convs):
            x = x[:, :, d:-d] + F.gelu(conv(self.drop(x)))
        return x


class MotionSpace(nn.Module):
    """Encoder (pose clip -> coefficients), K bases, decoder (point + previous end -> pose clip)."""

    def __init__(self, cfg: Config):
        super().__init__()
        m, h = cfg.motion, cfg.motion.hidden
        self.clip, self.prev = m.clip_frames, m.prev_frames
        self.coarse = max(2, m.clip_frames // 4)
        self.bases = nn.Parameter(torch.randn(m.bases, m.feature) / m.feature ** 0.5)
        self.enc = nn.Sequential(
            nn.Conv1d(N_POSE, h, 5, padding=2), nn.GELU(),
            nn.Conv1d(h, h, 5, stride=2, padding=2), nn.GELU(),
            nn.Conv1d(h, h, 5, stride=2, padding=2), nn.GELU(),
        )
        self.enc_out = nn.Linear(2 * h, 2 * m.bases)
        cond = m.prev_frames * N_POSE + 1
        self.dec_in = nn.Linear(m.feature + cond, h * self.coarse)
        self.dec_audio = nn.Conv1d(cfg.audio.hidden, h, 1)
        self.dec = nn.ModuleList(nn.Conv1d(h, h, 5, padding=2) for _ in range(2))
        self.dec_out = nn.Conv1d(h, N_POSE, 1)

    def encode(self, clip: torch.Tensor):
        """(B, L, 6) pose clip -> posterior mean and log-variance of its coefficients (B, K)."""
        x = self.enc(clip.transpose(1, 2))
        x = torch.cat([x.mean(2), x.amax(2)], 1)
        mu, logvar = self.enc_out(x).chunk(2, dim=1)
        return mu, logvar.clamp(-8.0, 4.0)

    def point(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Coefficients (B, K) -> a point of the motion space (B, feature): sum of weighted bases."""
        return coeffs @ self.bases

    def decode(self, coeffs, prev, has_prev, audio_hidden) -> torch.Tensor:
        """Coefficients, previous end (B, P, 6), flag (B,), audio (B, H, L) or None -> (B, L, 6)."""
        b = coeffs.shape[0]
        cond = torch.cat([self.point(coeffs), (prev * has_prev[:, None, None]).flatten(1), has_prev[:, None]], 1)
        x = self.dec_in(cond).view(b, -1, self.coarse)
        x = F.interpolate(x, size=self.clip, mode="linear", align_corners=True)
        if audio_hidden is not None:
            x = x + self.dec_audio(audio_hidden)
        for conv in self.dec:
            x = x + F.gelu(conv(x))
        return self.dec_out(x).transpose(1, 2)


class AudioToSpace(nn.Module):
    """The audio of one clip (B, H, L) -> mapped point (B, K) and its range (std, B, K)."""

    def __init__(self, cfg: Config):
        super().__init__()
        h, k = cfg.motion.hidden, cfg.motion.bases
        self.min_std = cfg.motion.min_std
        self.conv = nn.Sequential(
            nn.Conv1d(cfg.audio.hidden, h, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv1d(h, h, 3, stride=2, padding=1), nn.GELU(),
        )
        self.out = nn.Sequential(nn.Linear(2 * h, h), nn.GELU(), nn.Linear(h, 2 * k))

    def forward(self, audio_hidden):
        x = self.conv(audio_hidden)
        mu, s = self.out(torch.cat([x.mean(2), x.amax(2)], 1)).chunk(2, dim=1)
        return mu, self.min_std + F.softplus(s)


class OSMNet(nn.Module):
    def __init__(self, cfg: Config, training_heads: bool = False):
        super().__init__()
        if cfg.audio.feature_dim <= 0:
            raise InternalError("config.audio.feature_dim must be set (from the dataset) before building the model")
        self.cfg = cfg
        self.audio = AudioEncoder(cfg)
        h = cfg.audio.hidden
        self.expr = nn.Sequential(nn.Conv1d(h, h, 3, padding=1), nn.GELU(), nn.Conv1d(h, N_ARKIT, 1))
        self.motion = MotionSpace(cfg)
        self.mapper = AudioToSpace(cfg)
        if cfg.expression.lip_channels not in LIP_CHANNELS:
            raise InternalError(f"expression.lip_channels must be one of {sorted(LIP_CHANNELS)}")
        if training_heads and cfg.expression.phone_weight > 0:
            from osmnet.data.phones import N_PHONES

            # Auxiliary phone classifier on the audio encoding: it shapes the encoder during
            # training and is dropped from the saved model, so generation never needs phones.
            self.phone_head = nn.Conv1d(h, N_PHONES, 1)
        if training_heads and cfg.expression.gap_weight > 0:
            # Auxiliary lip-gap head: the canonical inner-lip gap is a cleaner mouth-opening signal
            # than the tracked jawOpen; training only, like the phone head.
            self.gap_head = nn.Sequential(nn.Conv1d(h, h, 3, padding=1), nn.GELU(), nn.Conv1d(h, 1, 1))

    def expression(self, audio_hidden: torch.Tensor) -> torch.Tensor:
        """(B, H, T) -> ARKit weights (B, T, 52) in [0, 1]."""
        return torch.sigmoid(self.expr(audio_hidden)).transpose(1, 2)

    # ---- training losses -------------------------------------------------------------------
    def expression_loss(self, feats, weights, lm_b, lm_c, phones, gap, gram, vertex_sum, channel_w):
        """Landmark constraint through the basis (mouth-weighted squared vertex error, as the
        quadratic form x G x' - 2 x.b + c, see dataset.Windows.set_landmark_terms) + L1 to the
        tracked weights + lip correlation (+ the auxiliary phone cross-entropy and lip-gap
        correlation when enabled)."""
        hidden = self.audio(feats)
        pred = self.expression(hidden)
        quad = ((pred @ gram) * pred).sum(-1) - 2 * (pred * lm_b).sum(-1) + lm_c
        lm_loss = quad.mean() / vertex_sum
        w_loss = ((pred - weights).abs() * channel_w).mean() / channel_w.mean()
        lip = LIP_CHANNELS[self.cfg.expression.lip_channels]
        corr = (1 - _window_r(pred[:, :, lip], weights[:, :, lip])).mean()
        e = self.cfg.expression
        loss = e.landmark_weight * lm_loss + e.weight_loss * w_loss + e.lip_corr_weight * corr
        logs = {"landmark": lm_loss.item(), "weights": w_loss.item(), "lip_corr": corr.item()}
        if hasattr(self, "phone_head"):
            labelled = phones.sum(-1) > 0  # (B, T): frames with a label
            logp = F.log_softmax(self.phone_head(hidden), 1).transpose(1, 2)
            ce = (-(phones * logp).sum(-1) * labelled).sum() / labelled.sum().clamp(min=1)
            loss = loss + e.phone_weight * ce
            logs["phone"] = ce.item()
        if hasattr(self, "gap_head"):
            g = (1 - _window_r(self.gap_head(hidden).transpose(1, 2), gap[:, :, None])).mean()
            loss = loss + e.gap_weight * g
            logs["gap"] = g.item()
        return loss, logs

    def motion_loss(self, feats, clip, prev, has_prev, has_audio):
        """CVAE-style: reconstruct real clips through the space; KL pulls the audio range over them."""
        m = self.cfg.motion
        hidden = self.audio(feats) * has_audio[:, None, None]
        mu_q, logvar_q = self.motion.encode(clip)
        coeffs = mu_q + torch.randn_like(mu_q) * (0.5 * logvar_q).exp()
        keep = has_audio * (torch.rand_like(has_audio) >= m.audio_dropout).float()
        recon = self.motion.decode(coeffs, prev, has_prev, hidden * keep[:, None, None])
        rec = ((recon - clip) ** 2).mean()
        # velocity, including the step from the previous clip's last frame into this clip
        full_r = torch.cat([prev[:, -1:], recon], 1)
        full_c = torch.cat([prev[:, -1:], clip], 1)
        vel_err = ((full_r.diff(dim=1) - full_c.diff(dim=1)) ** 2)
        vel_err[:, 0] *= has_prev[:, None]
        vel = vel_err.mean()
        mu_p, std_p = self.mapper(hidden)
        mu_p = mu_p * has_audio[:, None]  # motion-only clips: the standard normal
        std_p = torch.where(has_audio[:, None] > 0, std_p, torch.ones_like(std_p))
        var_q = logvar_q.exp()
        kl = (torch.log(std_p) - 0.5 * logvar_q + (var_q + (mu_q - mu_p) ** 2) / (2 * std_p ** 2) - 0.5).sum(1).mean()
        loss = rec + m.velocity_weight * vel + m.kl_weight * kl
        return loss, {"recon": rec.item(), "velocity": vel.item(), "kl": kl.item()}
