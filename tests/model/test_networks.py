"""Config, networks, checkpoint format and the eye sampler, on synthetic arrays."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from osmnet.data.phones import N_PHONES

from osmnet.model import checkpoint, eyes
from osmnet.model.config import Config, ConfigError
from osmnet.model.networks import OSMNet
from blender_addon.core.take import ALL_CHANNELS


def test_landmark_quadratic_form_equals_the_weighted_mesh_error():
    """The cheap training form of the landmark constraint is the mesh error itself."""
    from osmnet.data.expression import ExpressionBasis
    from osmnet.data.dataset import Video, Windows

    rng = np.random.default_rng(0)
    basis = ExpressionBasis(rng.normal(0, 5, (468, 3)).astype(np.float32),
                            rng.normal(0, 0.3, (52, 468, 3)).astype(np.float32))
    lm = rng.normal(0, 5, (6, 468, 3)).astype(np.float32)
    vw = rng.uniform(1, 5, 468).astype(np.float32)
    win = Windows.__new__(Windows)
    win.videos = [Video("v", "s", np.zeros((6, 58), np.float32), None, lm, None)]
    win.set_landmark_terms(basis, vw)
    x = rng.uniform(0, 1, (6, 52)).astype(np.float32)
    direct = (vw * ((basis.apply(x) - lm) ** 2).sum(-1)).sum(1)
    quad = ((x @ win.gram) * x).sum(1) - 2 * (x * win.lm_b[0]).sum(1) + win.lm_c[0]
    np.testing.assert_allclose(quad, direct, rtol=2e-3)


def _cfg(dim=11):
    cfg = Config()
    cfg.audio.feature_dim, cfg.audio.hidden, cfg.motion.hidden = dim, 16, 16
    return cfg


def test_config_round_trips_through_a_dict_and_overrides_by_name():
    cfg = Config().override(["motion.bases=7", "audio.dilations=1,2", "train.use_motion_only=false"])
    again = Config.from_dict(cfg.to_dict())
    assert again == cfg
    assert (again.motion.bases, again.audio.dilations, again.audio.context) == (7, (1, 2), 3)
    assert again.train.use_motion_only is False


@pytest.mark.parametrize("bad", ["motion.nope=1", "nosection.x=1", "motion.bases=seven", "motion.bases"])
def test_config_refuses_unknown_keys_and_bad_values(bad):
    with pytest.raises(ConfigError):
        Config().override([bad])


def test_config_from_dict_names_an_unknown_key():
    with pytest.raises(ConfigError, match="typo"):
        Config.from_dict({"motion": {"typo": 1}})


def test_audio_window_each_output_frame_sees_only_its_context():
    cfg = _cfg()
    model = OSMNet(cfg).eval()
    ctx = cfg.audio.context
    x = torch.randn(1, 40 + 2 * ctx, 11)
    h = model.audio(x)
    assert h.shape == (1, cfg.audio.hidden, 40)
    y = x.clone()
    y[0, 0] += 5.0  # the first input frame is inside the window of output frame 0 only up to frame 0
    d = (model.audio(y) - h).abs().sum(1)[0]
    assert d[0] > 0 and torch.all(d[1:] == 0)
    z = x.clone()
    z[0, 20 + ctx] += 5.0  # a frame in the middle reaches exactly +-ctx output frames
    changed = torch.nonzero((model.audio(z) - h).abs().sum(1)[0] > 0).flatten()
    assert changed.min() == 20 - ctx and changed.max() == 20 + ctx


def test_motion_space_shapes_and_audio_range_is_positive():
    cfg = _cfg()
    m = OSMNet(cfg).eval()
    L, K = cfg.motion.clip_frames, cfg.motion.bases
    clip = torch.randn(3, L, 6)
    mu, logvar = m.motion.encode(clip)
    assert mu.shape == logvar.shape == (3, K)
    out = m.motion.decode(mu, torch.zeros(3, 2, 6), torch.zeros(3), torch.randn(3, cfg.audio.hidden, L))
    assert out.shape == (3, L, 6)
    mu_a, std_a = m.mapper(torch.randn(3, cfg.audio.hidden, L))
    assert mu_a.shape == (3, K) and torch.all(std_a >= cfg.motion.min_std)


def test_losses_are_finite_and_give_gradients_to_both_branches():
    cfg = _cfg()
    m = OSMNet(cfg)
    ctx, L, W = cfg.audio.context, cfg.motion.clip_frames, 20
    gram = torch.eye(52)
    le, logs = m.expression_loss(torch.randn(2, W + 2 * ctx, 11), torch.rand(2, W, 52), torch.randn(2, W, 52),
                                 torch.rand(2, W) + 5, torch.zeros(2, W, N_PHONES), torch.rand(2, W), gram, 468.0,
                                 torch.ones(52))
    lm, mlogs = m.motion_loss(torch.randn(4, L + 2 * ctx, 11), torch.randn(4, L, 6), torch.randn(4, 2, 6),
                              torch.tensor([1.0, 0, 1, 0]), torch.tensor([1.0, 1, 0, 0]))
    (le + lm).backward()
    assert all(np.isfinite(v) for v in {**logs, **mlogs}.values())
    for part in (m.expr, m.motion.enc, m.motion.dec_out, m.mapper, m.audio.proj):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def _ckpt(cfg):
    model = OSMNet(cfg)
    norms = {"feat_mean": np.zeros(11), "feat_std": np.ones(11), "silence": np.zeros(11), "pose_std": np.ones(6),
             "offset_default": np.zeros(11)}
    return checkpoint.Checkpoint(cfg, model.state_dict(), norms, {"blink_rate": 0.3}, {"command": "test"})


def test_checkpoint_round_trip_keeps_config_weights_and_info(tmp_path):
    cfg = _cfg()
    ck = _ckpt(cfg)
    path = checkpoint.save(ck, tmp_path / "m.pt")
    back = checkpoint.load(path)
    assert back.config == cfg and back.info == {"command": "test"} and back.eyes["blink_rate"] == 0.3
    model = back.build_model()
    for k, v in ck.state.items():
        assert torch.equal(model.state_dict()[k], v)
    assert not list(tmp_path.glob(".ckpt-*"))  # no temp file left behind


def test_checkpoint_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="not a readable"):
        checkpoint.load(tmp_path / "junk.pt")
    torch.save({"format": checkpoint.FORMAT, "version": 999}, tmp_path / "future.pt")
    with pytest.raises(checkpoint.CheckpointError, match="version 999"):
        checkpoint.load(tmp_path / "future.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(checkpoint.CheckpointError, match="not an osmnet checkpoint"):
        checkpoint.load(tmp_path / "other.pt")


def test_checkpoint_from_a_different_architecture_is_refused(tmp_path):
    ck = _ckpt(_cfg())
    ck.state = {k: v for k, v in ck.state.items() if not k.startswith("mapper")}
    checkpoint.save(ck, tmp_path / "m.pt")
    with pytest.raises(checkpoint.CheckpointError, match="do not fit"):
        checkpoint.load(tmp_path / "m.pt").build_model()


def _eye_video(T, rng, every=50):
    ch = np.zeros((T, len(ALL_CHANNELS)), np.float32)
    ch[:, eyes.EYE_INDEX[:2]] = 0.1
    for p in range(20, T - 5, every):
        ch[p - 1:p + 2, eyes.EYE_INDEX[:2]] += np.array([[0.3], [0.6], [0.3]])
    ch[:, eyes.EYE_INDEX[2:]] = 0.2 + 0.05 * np.cumsum(rng.normal(0, 0.1, (T, 8)), 0) / np.sqrt(T)
    return ch


def test_eye_fit_finds_the_real_blink_rate_and_sampling_reproduces_it():
    rng = np.random.default_rng(0)
    stats = eyes.fit([_eye_video(1000, rng), _eye_video(600, rng)], fps=25.0)
    assert stats["blink_source"] == "data"
    # one blink every 50 frames at 25 fps, capped at the resting rate the sampler allows
    assert stats["blink_rate"] == pytest.approx(min(0.5, eyes.MAX_RATE), rel=0.1)
    s = eyes.EyeSampler(stats, np.random.default_rng(1))
    curves = np.concatenate([s.next(n) for n in (7, 300, 1, 2192)])  # chunking must not matter
    assert curves.shape == (2500, 10) and np.all((curves >= 0) & (curves <= 1))
    peaks, _ = eyes.detect_blinks(curves[:, :2])
    assert 0.6 * stats["blink_rate"] < len(peaks) / 100.0 < 1.4 * stats["blink_rate"]  # 100 s sampled
    assert np.all(curves[peaks, :2].mean(1) >= 0.8)  # rig space: every sampled blink closes the lids
    whole = eyes.EyeSampler(stats, np.random.default_rng(1)).next(2500)
    np.testing.assert_allclose(curves, whole, atol=1e-6)


def test_the_phone_head_trains_the_encoder_only_while_training():
    cfg = _cfg()
    cfg.expression.phone_weight = 1.0
    ctx, W = cfg.audio.context, 20
    args = (torch.randn(2, W + 2 * ctx, 11), torch.rand(2, W, 52), torch.randn(2, W, 52), torch.rand(2, W) + 5)
    phones = torch.zeros(2, W, N_PHONES)
    phones[0, :, 3] = 1.0  # one labelled window, one without labels
    m = OSMNet(cfg, training_heads=True)
    gap = torch.rand(2, W)
    loss, logs = m.expression_loss(*args, phones, gap, torch.eye(52), 468.0, torch.ones(52))
    loss.backward()
    assert logs["phone"] > 0 and m.phone_head.weight.grad.abs().sum() > 0
    assert not hasattr(OSMNet(cfg), "phone_head")  # what checkpoints build for generation
    _, logs = OSMNet(cfg).expression_loss(*args, phones, gap, torch.eye(52), 468.0, torch.ones(52))
    assert "phone" not in logs


def test_the_lip_gap_head_follows_the_gap_only_while_training():
    cfg = _cfg()
    cfg.expression.gap_weight = 1.0
    ctx, W = cfg.audio.context, 20
    args = (torch.randn(2, W + 2 * ctx, 11), torch.rand(2, W, 52), torch.randn(2, W, 52), torch.rand(2, W) + 5,
            torch.zeros(2, W, N_PHONES))
    m = OSMNet(cfg, training_heads=True)
    gap = torch.rand(2, W)
    loss, logs = m.expression_loss(*args, gap, torch.eye(52), 468.0, torch.ones(52))
    loss.backward()
    assert 0 < logs["gap"] <= 2 and m.gap_head[0].weight.grad.abs().sum() > 0
    m.eval()  # no dropout: its prediction is scored by correlation, so a gap it predicts exactly costs 0
    with torch.no_grad():
        pred = m.gap_head(m.audio(args[0]))[:, 0]
    _, exact = m.expression_loss(*args, pred, torch.eye(52), 468.0, torch.ones(52))
    assert exact["gap"] < 1e-4
    assert not hasattr(OSMNet(cfg), "gap_head")
    _, logs = OSMNet(cfg).expression_loss(*args, gap, torch.eye(52), 468.0, torch.ones(52))
    assert "gap" not in logs
