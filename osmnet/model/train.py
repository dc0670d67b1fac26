"""The training loop: both branches every step, dev losses on held-out speakers, best kept.

Runs on CPU or GPU; under `torchrun --nproc_per_node N` it uses DistributedDataParallel on gloo
(each rank draws its own seeded windows, gradients are averaged, rank 0 writes the checkpoint).
Deterministic for a given seed, world size and thread count.
"""
from __future__ import annotations

import copy
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from osmnet.model import calibrate, checkpoint, eyes
from osmnet.model.config import Config, ConfigError
from osmnet.model.networks import TRAINING_ONLY, OSMNet
from blender_addon.core.take import ARKIT_NAMES
from osmnet.data.dataset import Windows, compute_norms, load_videos, read_index, split_speakers
from osmnet.metrics import pearson


class Trainable(torch.nn.Module):
    """Both losses behind one forward, so DDP sees a single call per step."""

    def __init__(self, model: OSMNet, gram, vertex_w, channel_w):
        super().__init__()
        self.model = model
        self.register_buffer("gram", torch.as_tensor(gram, dtype=torch.float32))
        self.vertex_sum = float(np.sum(vertex_w))
        self.register_buffer("channel_w", torch.as_tensor(channel_w, dtype=torch.float32))

    def forward(self, expr_batch, motion_batch):
        le, logs = self.model.expression_loss(*expr_batch, self.gram, self.vertex_sum, self.channel_w)
        lm, mlogs = self.model.motion_loss(*motion_batch)
        return le + lm, {**logs, **mlogs}


def loss_weights(basis, cfg: Config):
    """Vertex weights (mouth heavier, found from where mouth/jaw shapes move the mesh) and channel weights."""
    mouth = [i for i, n in enumerate(ARKIT_NAMES) if n.startswith(("mouth", "jaw"))]
    move = np.sqrt((basis.deltas[mouth] ** 2).sum(-1).sum(0))
    vertex_w = 1.0 + cfg.expression.mouth_weight * move / max(1e-9, move.max())
    eye = {n for n in eyes.EYE_CHANNELS}
    channel_w = np.array([cfg.expression.eye_weight if n in eye else 1.0 for n in ARKIT_NAMES], np.float32)
    return vertex_w.astype(np.float32), channel_w


def _tensors(batch, device):
    return tuple(torch.as_tensor(x, device=device) for x in batch)


@torch.no_grad()
def dev_metrics(net: Trainable, win: Windows, device) -> dict:
    """Deterministic dev losses (fixed windows, fixed noise) and lip r(jawOpen) over whole videos."""
    net.eval()
    cfg = win.cfg
    jaw = ARKIT_NAMES.index("jawOpen")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        e_starts = win.fixed_starts(win.expr_ids, cfg.train.window, cfg.train.window)
        m_starts = win.fixed_starts([i for i in win.motion_ids if win.feats[i] is not None],
                                    cfg.motion.clip_frames, cfg.motion.clip_frames)
        loss, logs = net(_tensors(win.expression_batch(None, 0, e_starts), device),
                         _tensors(win.motion_batch(None, 0, m_starts), device))
    rs = []
    for i in win.expr_ids:
        feats = torch.as_tensor(win._audio(i, 0, win.videos[i].frames)[None], device=device)
        pred = net.model.expression(net.model.audio(feats))[0, :, jaw].cpu().numpy()
        rs.append(pearson(pred, win.videos[i].channels[:, 6 + jaw], empty=0.0))
    net.train()
    return {"loss": float(loss), **logs, "lip_r": float(np.mean(rs)) if rs else float("nan")}


def _selection_score(m: dict, cfg: Config) -> float:
    """Which dev evaluation is kept. "expression": the expression losses only -- the motion
    losses keep falling long after the lips start to overfit, and the head motion is
    calibrated afterwards anyway; "total": the whole training loss."""
    if cfg.train.select == "total":
        return m["loss"]
    e = cfg.expression
    return e.landmark_weight * m["landmark"] + e.weight_loss * m["weights"] + e.lip_corr_weight * m["lip_corr"]


def train(data, out, cfg: Config | None = None, epochs: int | None = None, seed: int | None = None,
          device: str = "cpu", command: str | None = None, log=print) -> dict:
    """Train on the prepared dataset `data`; write the best-on-dev checkpoint to `out`. Returns its info."""
    from osmnet.audio import FEATURE_DIM, silence_features
    from osmnet.data.expression import ExpressionBasis

    cfg = copy.deepcopy(cfg or Config())
    if epochs is not None:
        cfg.train.epochs = epochs
    if seed is not None:
        cfg.train.seed = seed
    if cfg.train.select not in ("expression", "total"):
        raise ConfigError(f"train.select must be 'expression' or 'total', got {cfg.train.select!r}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = 0
    if world > 1:
        dist.init_process_group("gloo")
        rank = dist.get_rank()
    torch.set_num_threads(max(1, cfg.train.threads))
    t0 = time.time()
    data = Path(data)
    read_index(data)  # a missing or empty dataset is the user's first problem: say so
    basis = ExpressionBasis.load(data / "expression_basis.npz")
    videos = load_videos(data, basis)
    train_v, dev_v = split_speakers(videos, cfg)
    cfg.audio.feature_dim = FEATURE_DIM
    silence = silence_features(cfg.fps)
    norms = compute_norms(train_v, silence, cfg)
    tw, dw = Windows(train_v, norms, cfg), Windows(dev_v, norms, cfg)
    vertex_w, channel_w = loss_weights(basis, cfg)
    tw.set_landmark_terms(basis, vertex_w)
    dw.set_landmark_terms(basis, vertex_w)
    eye_stats = eyes.fit([v.channels for v in train_v], cfg.fps, [v.loudness for v in train_v])

    torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
    net = Trainable(OSMNet(cfg, training_heads=True), tw.gram, vertex_w, channel_w).to(device)
    torch.manual_seed(cfg.train.seed * 1000 + rank)
    rng = np.random.default_rng([cfg.train.seed, rank])
    step_net = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    frames = sum(tw.videos[i].frames for i in tw.expr_ids)
    per_epoch = max(1, frames // (cfg.train.batch * cfg.train.window * world))
    total = per_epoch * cfg.train.epochs
    warm = min(100, total // 10 + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, s / total)))))
    best, best_state, history = None, None, []
    bar = tqdm(total=total, desc="train", unit="step", file=sys.stderr, disable=rank != 0)
    params = list(net.model.parameters())
    ema = [p.detach().clone() for p in params]
    for epoch in range(1, cfg.train.epochs + 1):
        for _ in range(per_epoch):
            loss, logs = step_net(_tensors(tw.expression_batch(rng, cfg.train.batch), device),
                                  _tensors(tw.motion_batch(rng, cfg.train.batch), device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            with torch.no_grad():  # exponential moving average of the weights: what gets evaluated and saved
                for e, p in zip(ema, params):
                    e.lerp_(p.detach(), 1.0 - cfg.train.ema)
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if epoch % cfg.train.dev_every == 0 or epoch == cfg.train.epochs:
            live = [p.detach().clone() for p in params]
            with torch.no_grad():
                for p, e in zip(params, ema):
                    p.copy_(e)
            m = dev_metrics(net, dw, device)
            history.append({"epoch": epoch, **m})
            m["select"] = _selection_score(m, cfg)
            if best is None or m["select"] < best["select"]:
                best = {"epoch": epoch, **m}
                best_state = {k: v.detach().cpu().clone() for k, v in net.model.state_dict().items()
                              if not k.startswith(TRAINING_ONLY)}  # the phone head is not shipped
            with torch.no_grad():
                for p, x in zip(params, live):
                    p.copy_(x)
    bar.close()
    info = {
        "command": command, "dataset": str(data), "seed": cfg.train.seed, "world_size": world,
        "steps": total, "train_seconds": round(time.time() - t0, 1),
        "train_speakers": sorted({v.speaker for v in train_v}), "dev_speakers": sorted({v.speaker for v in dev_v}),
        "test_speakers": sorted(cfg.train.test_speakers),
        "dev_best": best, "dev_history": history,
    }
    if world > 1:  # DDP must have kept every rank's weights identical; check rather than trust
        sums = [torch.zeros(1, dtype=torch.float64) for _ in range(world)]
        dist.all_gather(sums, sum(p.detach().double().sum() for p in net.parameters()).reshape(1))
        info["ranks_in_sync"] = bool(all(torch.equal(sums[0], x) for x in sums))
    ck = checkpoint.Checkpoint(cfg, best_state, norms, eye_stats, info)
    ck.sampling = calibrate.calibrate_expression(ck, train_v)
    ck.sampling.update(calibrate.calibrate_range(ck, train_v))
    info["range_calibration"] = {k: v for k, v in ck.sampling.items() if not k.startswith("expression_")}
    if rank == 0:
        checkpoint.save(ck, out)
        log(f"best dev epoch {best['epoch']}: loss {best['loss']:.4f}, lip r {best['lip_r']:.3f} -> {out}")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return info
