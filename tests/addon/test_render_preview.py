"""Render Preview and the 2D frames as a Blender animator meets them: the preview mp4 (playblast
by default, the scene's engine as an option) has the take's length, the chosen size and the sound
(read back with PyAV); it runs frame by frame with progress and an ETA and restores every setting;
and after "Render 2D Frames" a normal F12 render still renders the 3D scene."""
import os

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import ui_support  # noqa: E402
from blender_addon import compat, preview, strips  # noqa: E402
from blender_addon.core import take as takefile  # noqa: E402

FRAMES = 30


@pytest.fixture
def scene(tmp_path):
    """Factory scene (cube, camera, light) at 25 fps, a take on the face from frame 5, its sound."""
    scene = ui_support.addon_scene()
    s = scene.osmnet
    s.target = ui_support.make_face()
    scene.render.resolution_x, scene.render.resolution_y = 320, 240
    wav = ui_support.write_wav(tmp_path / "speech.wav", seconds=FRAMES / 25)
    s.audio_path, s.timing, s.custom_frame = str(wav), 'CUSTOM', 5
    strips.place_sound(scene, strips.read_speech(bpy.context))
    t = np.arange(FRAMES) / 25
    ch = {n: np.zeros(FRAMES, np.float32) for n in takefile.ALL_CHANNELS}
    ch["jawOpen"] = (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t)).astype(np.float32)
    takefile.Take(25.0, ch).save(tmp_path / "t.json")
    scene.frame_current = 5
    assert bpy.ops.osmnet.take_import(filepath=str(tmp_path / "t.json")) == {'FINISHED'}
    s.preview_path = str(tmp_path / "out" / "preview.mp4")
    return scene


def _render_settings(scene):
    r = scene.render
    return (r.engine, r.resolution_percentage, r.use_sequencer, r.filepath, r.image_settings.file_format,
            scene.frame_start, scene.frame_end, scene.frame_current, scene.display.render_aa)


@pytest.mark.slow
def test_playblast_preview_is_an_mp4_with_sound_at_the_chosen_size_and_step(scene, tmp_path):
    ui_support.main_python_or_skip()
    s = scene.osmnet
    s.preview_mode, s.preview_percentage, s.preview_frame_step = 'PLAYBLAST', 50, 2
    before = _render_settings(scene)
    assert bpy.ops.osmnet.render_preview() == {'FINISHED'}
    info = ui_support.probe_media(tmp_path / "out" / "preview.mp4")
    v = info["video"]
    assert v["codec"] == "h264" and v["decoded"] == FRAMES and v["size"] == [160, 120]
    assert v["duration"] == pytest.approx(FRAMES / 25, abs=0.05)
    assert info["audio"]["duration"] == pytest.approx(FRAMES / 25, abs=0.1)
    assert v["motion"] > 0.2  # the jaw moves on screen
    assert v["distinct"] <= FRAMES // 2 + 1  # frame step 2: every rendered frame is held twice
    assert _render_settings(scene) == before
    st = bpy.context.window_manager.osmnet_status
    assert st.level == 'INFO' and "preview.mp4" in st.text
    if bpy.app.background:  # no viewport here: the fast Workbench render stands in, and says so
        assert "Workbench" in st.text
    assert not list((tmp_path / "out").glob(".*partial*"))


@pytest.mark.slow
def test_engine_preview_renders_with_the_scenes_own_engine(scene, tmp_path):
    ui_support.main_python_or_skip()
    scene.render.engine = 'CYCLES'
    scene.cycles.samples, scene.cycles.device = 1, 'CPU'
    s = scene.osmnet
    s.preview_mode, s.preview_percentage, s.preview_frame_step = 'ENGINE', 25, 1
    job = preview.PreviewRender(bpy.context, 'ENGINE', 25, 1, 5, 9)
    engines = []
    while True:
        more = job.step()
        engines.append(scene.render.engine)
        if not more:
            break
    path = job.finish()
    assert set(engines) == {'CYCLES'}
    info = ui_support.probe_media(path)
    assert info["video"]["decoded"] == 5 and info["video"]["size"] == [80, 60]
    assert info["audio"]["duration"] == pytest.approx(5 / 25, abs=0.06)


def test_preview_steps_report_progress_and_an_eta_and_cancel_restores_everything(scene, tmp_path):
    before = _render_settings(scene)
    job = preview.PreviewRender(bpy.context, 'PLAYBLAST', 20, 1, 5, 8)
    assert job.total == 4 and job.progress == 0 and job.eta() is None
    assert job.step() is True
    assert job.progress == pytest.approx(0.25) and job.eta() > 0
    assert "frame 1/4" in job.status() and "left" in job.status()
    job.cancel()
    assert _render_settings(scene) == before
    assert not job.folder.exists()
    assert not (tmp_path / "out" / "preview.mp4").exists()


@pytest.mark.skipif(not bpy.app.background, reason="needs Blender without a window")
def test_a_playblast_that_cannot_draw_falls_back_to_the_workbench_stand_in(scene, tmp_path):
    job = preview.PreviewRender(bpy.context, 'PLAYBLAST', 20, 1, 5, 7)
    job.use_opengl = True  # as in a window; here render.opengl refuses (no OpenGL context)
    path = job.run()
    assert "viewport drawing failed" in job.note and "Workbench" in job.note
    assert os.path.getsize(path) > 0


def test_preview_without_a_camera_is_a_clear_error(scene):
    scene.camera = None
    with pytest.raises(preview.UserInputError, match="no camera"):
        preview.PreviewRender(bpy.context)
    assert bpy.ops.osmnet.render_preview.poll() is False


def _still(scene, path):
    scene.render.filepath = str(path)
    ims = scene.render.image_settings
    if "media_type" in ims.bl_rna.properties:  # 5.0+: choose a still image before its format
        ims.media_type = 'IMAGE'
    ims.file_format = 'PNG'
    bpy.ops.render.render(write_still=True, scene=scene.name)
    img = bpy.data.images.load(str(path), check_existing=False)
    px = np.array(img.pixels[:], dtype=np.float32).reshape(img.size[1], img.size[0], 4)
    bpy.data.images.remove(img)
    return px


def test_f12_after_render_2d_frames_still_renders_the_3d_scene(tmp_path):
    scene = ui_support.addon_scene()
    scene.render.engine = 'BLENDER_WORKBENCH'
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 64, 48, 100
    scene.frame_set(3)
    wav = ui_support.write_wav(tmp_path / "speech.wav", seconds=0.4)
    compat.new_sound_strip(scene, "speech", str(wav), 1, 1)
    before = _still(scene, tmp_path / "before.png")
    folder = tmp_path / "frames"
    folder.mkdir()
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 0] = 255
    for i in range(10):
        strips.write_png(folder / strips.frame_name(i), red)
    strip = strips.place_frames(scene, folder, 10, 1, "Take 1 2D")
    after = _still(scene, tmp_path / "after.png")  # F12 with the scene's own settings
    np.testing.assert_allclose(after, before, atol=1 / 255)  # the cube, not the portrait
    assert scene.render.use_sequencer  # nothing was switched off behind the artist's back
    assert not [st for st in compat.sequencer_strips(scene) if st.type == 'IMAGE']
    # the frames play in their own scene, with the sound, where rendering shows the portrait
    own = strip.id_data
    assert own != scene and own.name == strips.frames_scene_name(scene)
    assert compat.strip_range(strip) == (1, 11) and (own.frame_start, own.frame_end) == (1, 10)
    assert [st.type for st in compat.sequencer_strips(own) if st.type == 'SOUND'] == ['SOUND']
    own.frame_set(3)
    shown = _still(own, tmp_path / "own.png")
    assert shown[..., 0].mean() > 0.9 and shown[..., 1].mean() < 0.1
    # rendering the take again replaces its strip instead of stacking a second one
    strips.place_frames(scene, folder, 10, 1, "Take 1 2D")
    assert len([st for st in compat.sequencer_strips(own) if st.type == 'IMAGE']) == 1
    assert len([st for st in compat.sequencer_strips(own) if st.type == 'SOUND']) == 1
