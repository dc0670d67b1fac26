"""Sound and pictures on the timeline: the speech as a sound strip in sync with the takes, speech
read from a trimmed sequencer strip, rendered 2D frames as an image strip, and the one-click
preview mp4 whose video and audio both last as long as the take."""
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import ui_support  # noqa: E402
from blender_addon.core import take as takefile
from blender_addon import compat, strips  # noqa: E402


@pytest.fixture
def scene():
    return ui_support.addon_scene()


def test_speech_file_is_placed_as_a_sound_strip_at_the_chosen_frame(scene, tmp_path):
    wav = ui_support.write_wav(tmp_path / "speech.wav", seconds=1.6, sr=22050)
    s = scene.osmnet
    s.audio_path = str(wav)
    s.timing = 'CUSTOM'
    s.custom_frame = 17
    speech = strips.read_speech(bpy.context)
    assert speech.sr == 22050 and speech.start_frame == 17
    assert speech.samples.dtype == np.float32 and abs(speech.samples.size - 1.6 * 22050) < 2
    strip = strips.place_sound(scene, speech)
    assert compat.strip_range(strip) == (17, 57)
    # generating again from the same file at the same frame reuses the strip
    assert strips.place_sound(scene, speech) == strip
    assert len([st for st in compat.sequencer_strips(scene) if st.type == 'SOUND']) == 1
    s.timing = 'PLAYHEAD'
    scene.frame_current = 30
    assert strips.read_speech(bpy.context).start_frame == 30


def test_speech_from_a_trimmed_sound_strip_is_only_the_visible_part(scene, tmp_path):
    sr = 16000
    wav = ui_support.write_wav(tmp_path / "long.wav", seconds=4.0, sr=sr)
    strip = compat.new_sound_strip(scene, "voice", str(wav), 1, 10)
    # hide the first and the last second (the handles' names differ between 4.x and 5.2)
    left = "left_handle_offset" if "left_handle_offset" in strip.bl_rna.properties else "frame_offset_start"
    right = "right_handle_offset" if "right_handle_offset" in strip.bl_rna.properties else "frame_offset_end"
    setattr(strip, left, 25)
    setattr(strip, right, 25)
    for st in compat.sequencer_strips(scene):
        st.select = False
    strip.select = True
    scene.sequence_editor.active_strip = strip
    scene.osmnet.audio_source = 'STRIP'
    speech = strips.read_speech(bpy.context)
    assert speech.start_frame == 35
    assert abs(speech.samples.size - 2.0 * sr) <= 1
    assert speech.offset == pytest.approx(1.0)
    full = strips._decode(str(wav))[0]
    np.testing.assert_allclose(speech.samples[:100], full[sr:sr + 100], atol=1e-6)


def test_missing_audio_file_is_a_clear_error(scene, tmp_path):
    scene.osmnet.audio_path = str(tmp_path / "nope.wav")
    with pytest.raises(strips.UserInputError, match="does not exist"):
        strips.read_speech(bpy.context)


def test_rendered_frames_become_an_image_strip_aligned_with_the_take(scene, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        strips.write_png(folder / strips.frame_name(i), rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))
    strip = strips.place_frames(scene, folder, 6, 12, "take 2D")
    assert strip.type == 'IMAGE' and compat.strip_range(strip) == (12, 18)
    img = bpy.data.images.load(str(folder / strips.frame_name(3)))
    assert tuple(img.size) == (48, 32)  # Blender reads the PNGs we wrote


@pytest.mark.slow
def test_render_preview_writes_an_mp4_with_video_and_audio_of_the_take_length(scene, tmp_path):
    ui_support.main_python_or_skip()
    face = ui_support.make_face()
    s = scene.osmnet
    s.target = face
    scene.render.resolution_x, scene.render.resolution_y = 160, 120
    wav = ui_support.write_wav(tmp_path / "speech.wav", seconds=2.0)
    s.audio_path, s.timing, s.custom_frame = str(wav), 'CUSTOM', 5
    strips.place_sound(scene, strips.read_speech(bpy.context))
    frames = 50
    t = np.arange(frames) / 25
    ch = {n: np.zeros(frames, np.float32) for n in takefile.ALL_CHANNELS}
    ch["jawOpen"] = (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t)).astype(np.float32)
    takefile.Take(25.0, ch).save(tmp_path / "t.json")
    scene.frame_current = 5
    bpy.ops.osmnet.take_import(filepath=str(tmp_path / "t.json"))
    s.preview_path = str(tmp_path / "out" / "preview.mp4")
    engine_before = scene.render.engine
    assert bpy.ops.osmnet.render_preview() == {'FINISHED'}
    info = ui_support.probe_media(tmp_path / "out" / "preview.mp4")
    assert info["video"]["codec"] == "h264" and info["video"]["decoded"] == frames
    assert info["video"]["duration"] == pytest.approx(2.0, abs=0.05)
    assert info["audio"]["duration"] == pytest.approx(2.0, abs=0.1)
    assert info["video"]["motion"] > 0.2  # the jaw moves on screen (a still picture gives ~0)
    assert scene.render.engine == engine_before  # scene settings are restored
    assert not list((tmp_path / "out").glob(".*partial*"))
