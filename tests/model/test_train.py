"""The training loop on a synthetic dataset: learns, is deterministic, splits by speaker, runs under DDP."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from osmnet.model import checkpoint
from osmnet.model.config import Config
from osmnet.model.train import train
from osmnet.data.dataset import DatasetError, load_videos, split_speakers
from synth_dataset import synth_data, tiny_checkpoint, tiny_config  # noqa: F401  (fixtures)


def test_training_writes_a_checkpoint_with_config_norms_eyes_and_dev_metrics(tiny_checkpoint):
    ck = checkpoint.load(tiny_checkpoint)
    assert ck.config.audio.feature_dim == 323
    assert set(ck.info["train_speakers"]).isdisjoint(ck.info["dev_speakers"])
    assert ck.info["dev_best"]["lip_r"] > 0.3  # jawOpen follows loudness in the synthetic data
    assert ck.eyes["blink_source"] == "data" and 0.1 < ck.eyes["blink_rate"] < 1.0
    assert ck.norms["pose_std"].shape == (6,) and (ck.norms["pose_std"] > 0).all()
    first, last = ck.info["dev_history"][0]["loss"], min(h["loss"] for h in ck.info["dev_history"])
    assert last <= first


def test_same_seed_gives_identical_weights(synth_data, tmp_path):
    cfg = tiny_config()
    cfg.train.epochs = 1
    a = train(synth_data, tmp_path / "a.pt", cfg, log=lambda *x: None)
    b = train(synth_data, tmp_path / "b.pt", cfg, log=lambda *x: None)
    c = train(synth_data, tmp_path / "c.pt", cfg, seed=1, log=lambda *x: None)
    sa, sb, sc = (checkpoint.load(tmp_path / f"{n}.pt").state for n in "abc")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a["dev_best"] == b["dev_best"]


def test_speaker_split_keeps_each_speaker_on_one_side(synth_data):
    videos = load_videos(synth_data)
    cfg = Config()
    train_v, dev_v = split_speakers(videos, cfg)
    assert dev_v and train_v
    assert {v.speaker for v in train_v}.isdisjoint({v.speaker for v in dev_v})
    cfg.train.dev_speakers = ("spk1",)
    train_v, dev_v = split_speakers(videos, cfg)
    assert {v.speaker for v in dev_v} == {"spk1"} and len(dev_v) == 2
    cfg.train.dev_speakers = ("nobody",)
    with pytest.raises(DatasetError, match="nobody"):
        split_speakers(videos, cfg)


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="osmnet prepare"):
        train(tmp_path, tmp_path / "x.pt", tiny_config())


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_with_ddp(synth_data, tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    out = tmp_path / "ddp.pt"
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "osmnet.cli", "train",
           "--data", str(synth_data), "--out", str(out), "--epochs", "2",
           "--set", "audio.hidden=24", "--set", "audio.dilations=1,2,1", "--set", "motion.hidden=24",
           "--set", "motion.bases=4", "--set", "motion.feature=8", "--set", "motion.clip_frames=16",
           "--set", "train.batch=4", "--set", "train.window=32", "--set", "train.threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    ck = checkpoint.load(out)
    assert ck.info["world_size"] == 2 and ck.info["ranks_in_sync"] is True
    assert ck.info["dev_history"][-1]["epoch"] == 2


def test_the_phone_and_lip_gap_heads_train_but_are_not_in_the_checkpoint(synth_data, tmp_path):
    from osmnet.generate import Generator

    cfg = tiny_config()
    cfg.expression.phone_weight = 0.5
    cfg.expression.gap_weight = 0.5
    info = train(synth_data, tmp_path / "p.pt", cfg, log=lambda *x: None)
    assert info["dev_best"]["phone"] > 0  # the auxiliary loss ran on the synthetic phone labels
    assert info["dev_best"]["gap"] > 0  # and the lip-gap loss on the landmarks' inner-lip gap
    ck = checkpoint.load(tmp_path / "p.pt")
    assert not any(k.startswith(("phone_head", "gap_head")) for k in ck.state)
    gen = Generator(ck)
    assert not hasattr(gen.model, "phone_head") and not hasattr(gen.model, "gap_head")
    assert len(gen.generate((np.zeros(16000, np.float32), 16000), takes=1)[0].channels["jawOpen"]) == 25
