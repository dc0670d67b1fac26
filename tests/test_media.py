"""Reading real video and audio files with PyAV; clear errors for bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from osmnet.media import MediaError, iter_video_frames, probe_video
from osmnet.audio import load_audio


def test_probe_reads_rate_size_duration_and_audio_presence(shared_data):
    st = probe_video(shared_data / "talking" / "styletalk_feifeili_clip3.mp4")
    assert (st.fps, st.width, st.height, st.has_audio) == (30.0, 256, 256, False)
    assert st.duration == pytest.approx(st.frames / st.fps, abs=0.05)
    pc = probe_video(shared_data / "talking" / "pcavs_00010.mp4")
    assert (pc.fps, pc.width, pc.height, pc.has_audio) == (25.0, 224, 224, True)


def test_frames_come_in_order_as_rgb_and_match_the_probe(shared_data):
    path = shared_data / "talking" / "pcavs_00010.mp4"
    info = probe_video(path)
    times, shapes = [], set()
    for t, rgb in iter_video_frames(path):
        times.append(t)
        shapes.add((rgb.shape, rgb.dtype))
    assert len(times) == info.frames
    assert shapes == {((224, 224, 3), np.dtype(np.uint8))}
    assert np.allclose(np.diff(times), 1 / info.fps, atol=1e-3) and times[0] == pytest.approx(0, abs=1e-3)


def test_audio_inside_a_video_is_16k_mono_as_long_as_the_video(shared_data):
    path = shared_data / "talking" / "pcavs_00010.mp4"
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) / 16000 == pytest.approx(probe_video(path).duration, abs=0.1)
    assert 0.005 < wave.std() < 0.5  # speech, not silence or clipping noise


def test_other_rates_and_formats_are_resampled_to_16k(shared_data):
    ogg = sorted((shared_data / "audio").glob("*.ogg"))[0]
    native, rate = sf.read(ogg, dtype="float32")
    assert rate != 16000
    wave = load_audio(ogg)
    assert len(wave) == pytest.approx(len(native) * 16000 / rate, abs=400)
    # same loudness after resampling: the content was converted, not replaced
    assert wave.std() == pytest.approx(native.std(), rel=0.1)


def test_stereo_is_mixed_down_and_the_rate_converted(tmp_path):
    sr = 44100
    t = np.arange(sr) / sr
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "stereo.flac", np.stack([left, np.zeros_like(left)], 1), sr)
    wave = load_audio(tmp_path / "stereo.flac")
    assert len(wave) == pytest.approx(16000, abs=50)
    assert np.abs(wave[1000:-1000]).max() == pytest.approx(0.25, rel=0.05)  # mean of the two channels
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.argmax(spectrum) * 16000 / len(wave) == pytest.approx(440, abs=3)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="does not exist"):
        probe_video(tmp_path / "nope.mp4")
    with pytest.raises(MediaError, match="does not exist"):
        load_audio(tmp_path / "nope.wav")


def test_text_file_renamed_mp4_is_not_a_video(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("hello, I am not a video\n" * 20)
    with pytest.raises(MediaError, match="not a readable media file"):
        probe_video(fake)
    with pytest.raises(MediaError, match="not a readable media file"):
        list(iter_video_frames(fake))


def test_video_without_audio_and_audio_without_video(shared_data):
    with pytest.raises(MediaError, match="no audio stream"):
        load_audio(shared_data / "talking" / "styletalk_feifeili_clip3.mp4")
    with pytest.raises(MediaError, match="no video stream"):
        probe_video(shared_data / "talking" / "styletalk_feifeili_clip3.wav")


def test_a_still_image_is_not_a_video(shared_data):
    photo = sorted((shared_data / "faces").glob("*.jpg"))[0]
    with pytest.raises(MediaError, match="still image"):
        probe_video(photo)


@pytest.mark.parametrize("rate, ok", [(1, False), (4000, False), (8000, True), (384000, False)])
def test_files_at_rates_no_speech_has_are_refused_by_both_readers(tmp_path, rate, ok):
    """A 1 Hz header would turn 100 samples into 100 s of generated 'speech'."""
    import wave as wavmod

    from osmnet.media import load_untrusted_audio

    path = tmp_path / "odd.wav"
    with wavmod.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes((np.random.default_rng(0).standard_normal(rate // 2 + 100) * 3000).astype(np.int16).tobytes())
    readers = [lambda: load_audio(path), lambda: load_untrusted_audio(path.read_bytes(), 16000, max_seconds=600)]
    for read in readers:
        if ok:
            assert len(read()) > 0
        else:
            with pytest.raises(MediaError, match=rf"sampled at {rate} Hz; speech must be 8000-192000 Hz"):
                read()
