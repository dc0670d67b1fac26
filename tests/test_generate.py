"""Generation: streaming chunks, seeds, diversity, intensity, fps, re-roll, audio inputs, errors."""
from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest
import soundfile as sf

from osmnet.model import checkpoint
from osmnet.audio import audio_features, loudness
from osmnet.cli import main
from blender_addon.core.errors import UserInputError
from osmnet.generate import FeatureArray, GenerateError, Generator
from blender_addon.core.take import ALL_CHANNELS, Take
from synth_dataset import SR, speech_like, synth_data, tiny_checkpoint  # noqa: F401  (fixtures)

JAW = ALL_CHANNELS.index("jawOpen")


@pytest.fixture(scope="module")
def gen(tiny_checkpoint):
    return Generator.load(tiny_checkpoint)


@pytest.fixture(scope="module")
def speech():
    return speech_like(7.0, np.random.default_rng(3)), SR


def test_stream_interleaves_takes_and_generate_is_the_concatenated_stream(gen, speech):
    chunks = list(gen.stream(speech, takes=3, seed=4))
    assert [c.take for c in chunks[:3]] == [0, 1, 2]
    frames = int(np.ceil(7.0 * 25))
    for k in range(3):
        mine = [c for c in chunks if c.take == k]
        assert [c.start for c in mine] == list(np.cumsum([0] + [len(c.values) for c in mine[:-1]]))
        assert [c.done for c in mine] == [False] * (len(mine) - 1) + [True]
        assert sum(len(c.values) for c in mine) == frames
    takes = gen.generate(speech, takes=3, seed=4)
    for k, take in enumerate(takes):
        np.testing.assert_array_equal(take.array(), np.concatenate([c.values for c in chunks if c.take == k]))
        assert take.frames == frames and take.meta["seed"] == 4


def test_same_seed_is_identical_and_takes_differ(gen, speech):
    a = gen.generate(speech, takes=3, seed=7)
    b = gen.generate(speech, takes=3, seed=7)
    c = gen.generate(speech, takes=3, seed=8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.array(), y.array())
    head = [t.array()[:, :3] for t in a]
    assert np.sqrt(np.mean((head[0] - head[1]) ** 2)) > 0.1 * np.std(head[0])
    assert not np.array_equal(a[0].array(), c[0].array())
    # expression follows the audio, not the seed: lip sync is the same in every take
    np.testing.assert_allclose(a[0].channels["jawOpen"], a[1].channels["jawOpen"])


def _spread(takes):
    h = np.stack([t.array()[:, :3] for t in takes])
    return float(np.sqrt(((h - h.mean(0)) ** 2).mean()))


def test_diversity_zero_is_one_motion_and_larger_diversity_spreads_wider(gen, speech):
    zero = gen.generate(speech, takes=4, seed=1, diversity=0.0)
    assert _spread(zero) == pytest.approx(0.0, abs=1e-7)
    assert not np.array_equal(zero[0].channels["eyeBlinkLeft"], zero[1].channels["eyeBlinkLeft"])  # blinks still vary
    assert _spread(gen.generate(speech, takes=4, seed=1, diversity=2.0)) > _spread(
        gen.generate(speech, takes=4, seed=1, diversity=1.0)) > 0


def test_intensity_scales_head_motion_only(gen, speech):
    one = gen.generate(speech, takes=1, seed=2)[0].array()
    two = gen.generate(speech, takes=1, seed=2, intensity=2.0)[0].array()
    np.testing.assert_allclose(two[:, :6], 2 * one[:, :6], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(two[:, 6:], one[:, 6:], atol=1e-6)


def test_other_frame_rates_keep_duration_and_follow_the_25fps_curves(gen, speech):
    t25 = gen.generate(speech, takes=1, seed=3)[0]
    t30 = gen.generate(speech, takes=1, seed=3, fps=30)[0]
    assert t30.fps == 30 and t30.frames == int(np.ceil(7.0 * 30))
    np.testing.assert_allclose(t30.array(), t25.resample(30.0).array(), atol=1e-5)  # streamed = resampled whole


def test_block_features_match_whole_file_features(gen, speech):
    """Streaming computes features per block from the wave around it: same result as all at once."""
    wave, _ = speech
    from_wave = gen.generate(speech, takes=2, seed=5)
    from_feats = gen.generate(FeatureArray(audio_features(wave, SR, 25.0), loudness(wave, SR, 25.0)), takes=2, seed=5)
    ctx = gen.cfg.audio.context + 1  # at the file ends the wave version also hears the first/last 40 ms
    last_clip = (from_wave[0].frames - 1) // gen.cfg.motion.clip_frames * gen.cfg.motion.clip_frames
    for a, b in zip(from_wave, from_feats):
        np.testing.assert_allclose(a.array()[ctx:-ctx, 6:], b.array()[ctx:-ctx, 6:], atol=1e-4)
        # head motion: each clip hears its whole span, so only the last clip may hear the file end;
        # the energy-following re-integration carries the start's difference for ~3 / leak frames
        h0 = ctx + int(3 / gen.cfg.motion.energy_leak)
        np.testing.assert_allclose(a.array()[h0:last_clip - ctx, :6], b.array()[h0:last_clip - ctx, :6], atol=1e-4)


def test_blocks_leave_no_seam_in_the_expression(gen):
    """Streaming block by block gives the same curves as one pass of the network over the file."""
    wave = speech_like(12.0, np.random.default_rng(6))
    feats = FeatureArray(audio_features(wave, SR, 25.0))
    e = gen.cfg.expression
    e.rest_gate, e.variety = False, 0.0  # the network's own output: no pause gate, no per-take variety
    try:
        take = gen.generate(feats, takes=1)[0].array()
    finally:
        e.rest_gate, e.variety = True, 1.0
    whole = gen.sampler.raw_expression(feats)  # the whole recording in one pass
    whole = np.clip(whole * gen.sampler.expression_gain + gen.sampler.expression_offset, 0, 1)  # calibrated levels
    shape = [i for i in range(6, 58) if ALL_CHANNELS[i] not in ("eyeBlinkLeft", "eyeBlinkRight")
             and not ALL_CHANNELS[i].startswith("eyeLook")]
    np.testing.assert_allclose(take[1:-1, shape], whole[1:-1, [i - 6 for i in shape]], atol=1e-5)


def test_reroll_keeps_the_base_outside_and_joins_smoothly(gen, speech):
    base = gen.generate(speech, takes=1, seed=11)[0]
    s, e = 40, 120
    takes = gen.generate(speech, takes=2, seed=12, base=base, reroll=(s, e))
    b = base.array()
    acc_b = np.abs(np.diff(b[:, :6], 2, axis=0))  # the base's own frame-to-frame velocity changes
    for t in takes:
        x = t.array()
        assert t.frames == base.frames
        np.testing.assert_array_equal(x[:s], b[:s])
        np.testing.assert_array_equal(x[e:], b[e:])
        assert np.sqrt(np.mean((x[s:e, :3] - b[s:e, :3]) ** 2)) > 0.05 * np.std(b[:, :3])
        acc = np.abs(np.diff(x[:, :6], 2, axis=0))  # acc[i] is the velocity change at frame i + 1
        for at in (s, e - 1):  # no jump in value or velocity where the re-roll meets the base
            near = slice(at - 2, at + 1)
            assert np.all(acc[near] <= acc_b.max(0) + 1e-6)
            assert np.all(acc[near].max(0) <= 3 * acc_b[near].max(0) + 0.2 * acc_b.max(0) + 1e-6)
    assert not np.array_equal(takes[0].array()[s:e], takes[1].array()[s:e])


@pytest.mark.parametrize("sr,channels,fmt", [(44100, 2, "WAV"), (8000, 1, "FLAC"), (22050, 1, "OGG")])
def test_common_audio_files_at_any_rate(gen, tmp_path, sr, channels, fmt):
    wave = speech_like(2.0, np.random.default_rng(0))
    from scipy.signal import resample_poly

    w = resample_poly(wave, sr, SR).astype(np.float32)
    if channels == 2:
        w = np.stack([w, 0.5 * w], 1)
    path = tmp_path / f"speech.{fmt.lower()}"
    sf.write(path, w, sr, format=fmt)
    take = gen.generate(str(path), takes=1, seed=0)[0]
    assert abs(take.frames - 50) <= 1 and np.isfinite(take.array()).all()


@pytest.mark.parametrize("kwargs,match", [
    ({"takes": 0}, "takes"), ({"seed": -1}, "seed"), ({"diversity": float("nan")}, "diversity"),
    ({"intensity": -1.0}, "intensity"), ({"fps": 0.0}, "fps"), ({"reroll": (0, 5)}, "base"),
])
def test_bad_arguments_are_clear_errors(gen, speech, kwargs, match):
    with pytest.raises(GenerateError, match=match):
        list(gen.stream(speech, **kwargs))


@pytest.mark.parametrize("audio,match", [
    ((np.zeros(0, np.float32), SR), "no samples"), ((np.full(100, np.nan, np.float32), SR), "NaN"),
    ("/no/such/file.wav", "does not exist"), (42, "file path"),
])
def test_bad_audio_is_a_clear_error(gen, audio, match):
    with pytest.raises(UserInputError, match=match):
        list(gen.stream(audio))


def test_unknown_device_is_a_clear_error(tiny_checkpoint):
    with pytest.raises(GenerateError, match="device"):
        Generator.load(tiny_checkpoint, device="nosuchdevice")


def test_reroll_range_outside_the_base_is_refused(gen, speech):
    base = gen.generate(speech, takes=1)[0]
    with pytest.raises(GenerateError, match="START < END"):
        list(gen.stream(speech, base=base, reroll=(100, base.frames + 1)))


def test_first_chunk_arrives_long_before_the_whole_audio_is_done(gen):
    # 240 s x 4 takes, so the model's work outweighs the fixed start: at 40 s x 2 the first
    # chunk came at 0.14-0.44 of the whole on a loaded machine, at 240 s x 4 at 0.09-0.15
    wave = speech_like(240.0, np.random.default_rng(1))
    t0 = time.perf_counter()
    it = gen.stream((wave, SR), takes=4, seed=0)
    first = next(it)
    t_first = time.perf_counter() - t0
    rest = list(it)
    total = time.perf_counter() - t0
    assert first.start == 0 and len(first.values) < 1000 and rest[-1].done
    assert t_first < 0.35 * total


def test_should_stop_ends_the_stream_within_one_clip(gen, monkeypatch):
    """A cancel (should_stop true) stops the model at the next clip, not after the whole audio."""
    calls = []
    decode = gen.model.motion.decode
    monkeypatch.setattr(gen.model.motion, "decode", lambda *a: calls.append(1) or decode(*a))
    wave = (speech_like(40.0, np.random.default_rng(1)), SR)  # 8 blocks of 4 clips
    stopped = []
    chunks = []
    for ch in gen.stream(wave, takes=2, seed=0, should_stop=lambda: bool(stopped)):
        chunks.append(ch)
        stopped.append(True)  # cancel right after the first chunk
    assert len(calls) == 4  # only the first block's clips were decoded (of 32)
    assert {c.start for c in chunks} == {0} and not any(c.done for c in chunks)

    calls.clear()  # stop in the middle of a block: no more clips are decoded, no partial block yielded
    out = list(gen.stream(wave, takes=2, seed=0, should_stop=lambda: len(calls) >= 2))
    assert len(calls) == 2 and out == []
    assert gen.generate(wave, takes=2, should_stop=lambda: True) == []


def test_cli_generate_writes_identical_files_for_the_same_seed(tiny_checkpoint, tmp_path, capsys):
    wav = tmp_path / "s.wav"
    sf.write(wav, speech_like(3.0, np.random.default_rng(2)), SR)
    for out in ("a", "b"):
        assert main(["generate", str(wav), "--takes", "2", "--seed", "9", "--out", str(tmp_path / out),
                     "--checkpoint", str(tiny_checkpoint)]) == 0
    for k in range(2):
        a, b = (tmp_path / d / f"take_{k:02d}.json" for d in "ab")
        assert a.read_bytes() == b.read_bytes()
        assert Take.load(a).meta["take"] == k
    assert main(["generate", str(wav), "--out", str(tmp_path / "c"), "--checkpoint", str(tiny_checkpoint),
                 "--base", str(tmp_path / "a" / "take_00.json"), "--reroll", "10:40"]) == 0
    assert main(["generate", str(wav), "--out", str(tmp_path / "d"), "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ---- the shipped default --------------------------------------------------------------------

@pytest.fixture(scope="module")
def default_gen():
    return Generator.load()


def test_default_checkpoint_loads_without_network(monkeypatch):
    def no_network(*a, **k):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    g = Generator.load()
    assert g.name == "osmnet-default" and checkpoint.DEFAULT_CHECKPOINT.stat().st_size < 8_000_000
    assert g.ckpt.info["dev_best"]["lip_r"] > 0.25  # far above another clip's motion (about 0.07)


def test_silence_gives_a_calm_nearly_closed_mouth(default_gen):
    take = default_gen.generate((np.zeros(5 * SR, np.float32), SR), takes=2, seed=0)[0]
    jaw = take.channels["jawOpen"]
    assert jaw.max() < 0.15 and jaw.std() < 0.02
    assert np.degrees(np.abs(take.array()[:, :3])).max() < 15


def test_utterance_offset_from_spread_pieces_matches_the_whole_file(tiny_checkpoint):
    """With utterance normalization on, the file's mean feature is estimated from short pieces."""
    from osmnet.audio import utterance_offset

    ck = checkpoint.load(tiny_checkpoint)
    ck.config.audio.utterance_norm = True
    g = Generator(ck)
    wave = speech_like(30.0, np.random.default_rng(4))
    exact = utterance_offset(audio_features(wave, SR, 25.0), ck.config.audio.utterance_norm)
    est = g.sampler.utterance_offset(wave)
    spread = audio_features(wave, SR, 25.0).std(0)
    assert np.median(np.abs(est - exact) / (spread + 1e-6)) < 0.25
    silent = g.sampler.utterance_offset(np.zeros(5 * SR, np.float32))  # silence keeps the typical offset
    np.testing.assert_allclose(silent, ck.norms["offset_default"])


REST = ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "eyeSquintLeft", "eyeSquintRight", "mouthSmileLeft",
        "mouthSmileRight", "mouthPressLeft", "mouthPressRight", "mouthClose")
SPEECH_WAV = "talking/styletalk_reagan_clip1.wav"
RADIO_WAV = "audio/sadtalker_RD_Radio36_000.wav"


def _shared(shared_data, path):
    p = shared_data / path
    if not p.is_file():
        pytest.skip(f"{p} is not here (the shared real data sits beside the repository; or set OSMNET_SHARED)")
    return p


def test_a_silent_gap_in_real_speech_rests_every_rest_channel(default_gen, shared_data):
    """Rig space + the speech-activity gate: in 2 s of digital silence between sentences the mouth
    is closed and relaxed and the eyes are open (median over the gap; a blink may pass through)."""
    from osmnet.audio import load_audio

    wave = load_audio(_shared(shared_data, SPEECH_WAV))[: 12 * SR]
    gap = np.zeros(2 * SR, np.float32)
    takes = default_gen.generate((np.concatenate([wave[: 6 * SR], gap, wave[6 * SR:]]), SR), takes=3, seed=0)
    for t in takes:
        x = t.array()[150 + 5:200 - 5]  # frames 150..200 are the gap at 25 fps
        for name in REST:
            assert np.median(x[:, ALL_CHANNELS.index(name)]) < 0.10, name
        assert t.channels["jawOpen"][:150].max() > 0.25  # while speaking the jaw does open


def test_the_mouth_rests_in_the_noisy_natural_pauses_of_a_radio_recording(default_gen, shared_data):
    from osmnet.audio import load_audio
    from osmnet.model.evaluate import natural_pauses

    wave = load_audio(_shared(shared_data, RADIO_WAV))
    loud = loudness(wave, SR, 25.0)
    assert loud.min() > -80  # room noise, not digital silence, in its pauses
    x = default_gen.generate((wave, SR), takes=2, seed=0)[0].array()
    pause = natural_pauses(loud[: len(x)])
    assert pause.sum() >= 10
    jaw = x[: len(pause), ALL_CHANNELS.index("jawOpen")]
    assert np.median(jaw[pause]) < 0.10 < jaw[~pause].mean()


@pytest.mark.parametrize("what", ["head", "face", "both"])
def test_reroll_what_regenerates_only_what_was_asked(gen, speech, what):
    base = gen.generate(speech, takes=1, seed=11)[0]
    s, e = 40, 120
    new = gen.generate(speech, takes=1, seed=12, base=base, reroll=(s, e), what=what)[0]
    b, x = base.array(), new.array()
    assert new.meta["reroll_what"] == what
    np.testing.assert_array_equal(x[:s], b[:s])
    np.testing.assert_array_equal(x[e:], b[e:])
    head_changed = np.abs(x[s:e, :6] - b[s:e, :6]).max() > 1e-4
    brows = [ALL_CHANNELS.index(n) for n in ALL_CHANNELS if n.startswith(("brow", "eyeLook"))]
    face_changed = np.abs(x[s:e, brows] - b[s:e, brows]).max() > 1e-4
    assert head_changed == (what in ("head", "both"))
    assert face_changed == (what in ("face", "both"))


def test_reroll_what_must_be_head_face_or_both(gen, speech):
    base = gen.generate(speech, takes=1, seed=11)[0]
    with pytest.raises(GenerateError, match="head, face, both"):
        gen.generate(speech, takes=1, base=base, reroll=(0, 50), what="eyes")


def test_cli_reroll_what_face_keeps_the_base_head(tiny_checkpoint, tmp_path, speech):
    wav = tmp_path / "s.wav"
    sf.write(wav, speech[0], SR)
    assert main(["generate", str(wav), "--checkpoint", str(tiny_checkpoint), "--takes", "1", "--out",
                 str(tmp_path / "a")]) == 0
    base = tmp_path / "a" / "take_00.json"
    assert main(["generate", str(wav), "--checkpoint", str(tiny_checkpoint), "--takes", "1", "--seed", "3",
                 "--base", str(base), "--reroll", "10:90", "--what", "face", "--out", str(tmp_path / "b")]) == 0
    a, b = Take.load(base).array(), Take.load(tmp_path / "b" / "take_00.json").array()
    np.testing.assert_array_equal(a[:, :6], b[:, :6])
    assert np.abs(a[10:90, 6:] - b[10:90, 6:]).max() > 1e-4


def test_takes_differ_in_brows_and_blinks_but_not_in_the_lips(default_gen, shared_data):
    from osmnet.audio import load_audio

    wave = load_audio(_shared(shared_data, SPEECH_WAV))[: 10 * SR]
    a, b = (t.array() for t in default_gen.generate((wave, SR), takes=2, seed=0))
    brows = [ALL_CHANNELS.index(n) for n in ALL_CHANNELS if n.startswith("brow")]
    assert np.sqrt(np.mean((a[:, brows] - b[:, brows]) ** 2)) > 0.01
    lips = [ALL_CHANNELS.index(n) for n in ("jawOpen", "mouthFunnel", "mouthPucker", "mouthClose")]
    np.testing.assert_allclose(a[:, lips], b[:, lips], atol=1e-6)
