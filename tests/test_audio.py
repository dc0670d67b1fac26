"""Per-frame audio features: the frame-count rule, chunk independence, and what they measure."""
from __future__ import annotations

import numpy as np
import pytest

from osmnet.audio import FEATURE_DIM, N_MELS, SUBFRAMES, audio_features, loudness, n_frames

SR = 16000
ENERGY, PITCH, VOICING = N_MELS * SUBFRAMES, N_MELS * SUBFRAMES + 1, N_MELS * SUBFRAMES + 2


def _tone(f0, seconds=1.0, amp=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * f0 * t) + amp / 3 * np.sin(2 * np.pi * 2 * f0 * t)).astype(np.float32)


@pytest.mark.parametrize("samples, fps, frames", [
    (0, 25, 0), (1, 25, 1), (640, 25, 1), (641, 25, 2), (16000, 25, 25), (16001, 25, 26),
    (16000, 30, 30), (8000, 24, 12), (10000, 22, 14),
])
def test_frame_count_is_ceil_of_duration_times_fps(samples, fps, frames):
    wave = np.zeros(samples, np.float32)
    assert n_frames(samples, SR, fps) == frames
    assert audio_features(wave, SR, fps).shape == (frames, FEATURE_DIM)
    assert loudness(wave, SR, fps).shape == (frames,)


def test_chunked_processing_gives_the_same_features(shared_data):
    from osmnet.audio import load_audio

    wave = load_audio(shared_data / "talking" / "pcavs_00010.mp4")
    whole = audio_features(wave, chunk_frames=10_000)
    chunked = audio_features(wave, chunk_frames=7)
    np.testing.assert_allclose(chunked, whole, atol=1e-4)


@pytest.mark.parametrize("f0", [90.0, 140.0, 220.0, 330.0])
def test_pitch_and_voicing_of_a_harmonic_tone(f0):
    feats = audio_features(_tone(f0))[3:-3]
    assert np.all(feats[:, VOICING] > 0.9)
    assert 100 * 2 ** np.median(feats[:, PITCH]) == pytest.approx(f0, rel=0.03)


def test_noise_and_silence_are_unvoiced():
    noise = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    assert np.median(audio_features(noise)[:, VOICING]) < 0.5
    silent = audio_features(np.zeros(SR, np.float32))
    assert np.all(silent[:, VOICING] == 0) and np.all(silent[:, PITCH] == 0)


def test_loudness_is_rms_in_db_and_energy_follows_it():
    amp = 0.5
    sine = (amp * np.sin(2 * np.pi * 200 * np.arange(SR) / SR)).astype(np.float32)
    assert np.median(loudness(sine)) == pytest.approx(20 * np.log10(amp / np.sqrt(2)), abs=0.2)
    assert loudness(np.zeros(SR, np.float32)).max() == pytest.approx(-100, abs=0.01)
    quiet, loud = audio_features(sine * 0.1), audio_features(sine)
    assert np.median(loud[:, ENERGY] - quiet[:, ENERGY]) == pytest.approx(np.log(100), abs=0.05)


def test_mel_bands_place_a_tone_by_frequency():
    low = audio_features(_tone(150.0))[5, :N_MELS]
    high = audio_features(_tone(1500.0))[5, :N_MELS]
    assert np.argmax(low) < np.argmax(high)


def test_frames_cover_their_own_time_interval():
    """A click in frame 10's interval shows up in frame 10's energy, not in frames far away."""
    wave = np.zeros(SR, np.float32)
    start = int(10 / 25 * SR) + 100
    wave[start:start + 200] = 0.5
    energy = audio_features(wave)[:, ENERGY]
    assert np.argmax(energy) == 10 and energy[12] < energy[10] - 5


def test_stereo_input_is_mixed_down():
    mono = _tone(200.0)
    stereo = np.stack([mono, mono], 1)
    np.testing.assert_allclose(audio_features(stereo), audio_features(mono), atol=1e-5)


@pytest.mark.parametrize("rate", [0, 100, 1_000_000])
def test_arrays_at_rates_no_speech_has_are_refused(rate):
    from osmnet.audio import SpeechError, read_speech

    with pytest.raises(SpeechError, match=rf"sampled at {rate} Hz; speech must be 8000-192000 Hz"):
        read_speech((np.zeros(16000, np.float32), rate))
    assert len(read_speech((np.zeros(8000, np.float32), 8000))) == 16000
