"""End to end with a real backend: `osmnet serve` (main venv) on a loopback port, the add-on's
operators and runtime in headless Blender, drain() called the way the modal timer calls it.

Until the default model ships, the server loads an untrained checkpoint with the real
architecture (made by the backend's own test helper); the path through zmq, the job table, the
streaming generator and the take Actions is the same.
"""
import time

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import ui_support  # noqa: E402
from blender_addon import compat, runtime, strips, takes  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    ui_support.main_python_or_skip()
    return ui_support.checkpoint_for_e2e(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture
def server(checkpoint):
    srv = ui_support.Serve(ui_support.free_port(), checkpoint)
    yield srv
    srv.kill()


@pytest.fixture
def scene(tmp_path):
    scene = ui_support.addon_scene()
    scene.osmnet.target = ui_support.make_face()
    yield scene
    runtime.cancel()
    runtime.close_client()


def _prefs():
    return bpy.context.preferences.addons["blender_addon"].preferences


def _job_ended():
    return not runtime.busy()


def test_generate_streams_takes_into_actions(server, scene, tmp_path):
    _prefs().backend_address = server.address
    s = scene.osmnet
    s.audio_path = str(ui_support.write_wav(tmp_path / "speech.wav", seconds=2.4))
    s.takes_count, s.seed, s.timing, s.custom_frame = 2, 7, 'CUSTOM', 10
    assert bpy.ops.osmnet.generate() == {'FINISHED'}
    st = bpy.context.window_manager.osmnet_status
    assert st.busy and len(s.takes) == 2 and all(t.state == 'GENERATING' for t in s.takes)
    assert ui_support.drain_until(_job_ended, 120), st.text
    assert st.level == 'INFO' and "2 takes ready" in st.text, st.text
    assert [t.state for t in s.takes] == ['READY', 'READY']
    for t in s.takes:
        assert t.frames == 60 and t.received == 60 and t.action.use_fake_user
        keys = [fc for fc in _fcurves(t.action) if fc.data_path == 'key_blocks["jawOpen"].value']
        assert keys and keys[0].keyframe_points[0].co.x == 10 and len(keys[0].keyframe_points) == 60
    a, b = (runtime_values(t) for t in s.takes)
    assert not np.allclose(a, b)  # two different takes
    # the speech is on the timeline where the takes start
    sound = [st_ for st_ in compat.sequencer_strips(scene) if st_.type == 'SOUND']
    assert len(sound) == 1 and compat.strip_range(sound[0])[0] == 10
    # selecting the second take makes the face play it
    s.active_take = 1
    import rig

    assert rig.playing(bpy.context.scene.osmnet.target.data.shape_keys)[0] == s.takes[1].action


def runtime_values(item):
    return takes.read_values(item)[0]


def _fcurves(action):
    return list(compat.iter_fcurves(action))


def test_same_seed_gives_the_same_take_and_reroll_changes_only_the_range(server, scene, tmp_path):
    _prefs().backend_address = server.address
    s = scene.osmnet
    s.audio_path = str(ui_support.write_wav(tmp_path / "speech.wav", seconds=2.0))
    s.takes_count, s.seed, s.timing = 1, 3, 'SCENE'
    scene.frame_start = 1
    for _ in range(2):
        bpy.ops.osmnet.generate()
        assert ui_support.drain_until(_job_ended, 120)
    first, second = (runtime_values(t) for t in s.takes)
    np.testing.assert_array_equal(first, second)

    s.active_take = 0
    scene.use_preview_range = True
    scene.frame_preview_start, scene.frame_preview_end = 11, 30  # take frames 10..29
    assert bpy.ops.osmnet.reroll() == {'FINISHED'}
    assert ui_support.drain_until(_job_ended, 120), bpy.context.window_manager.osmnet_status.text
    rerolled = s.takes[-1]
    assert rerolled.state == 'READY' and rerolled.name.endswith("re-roll 11-30")  # scene frames
    assert s.reroll_seed == 2  # the next re-roll gets another seed
    new = runtime_values(rerolled)
    assert new.shape == first.shape
    assert not np.allclose(new[10:30], first[10:30])
    np.testing.assert_allclose(new[:5], first[:5], atol=1e-4)
    np.testing.assert_allclose(new[35:], first[35:], atol=1e-4)
    base = s.takes[0].name
    assert bpy.ops.osmnet.reroll_accept() == {'FINISHED'}  # the re-rolled frames go into the take
    assert [t.name for t in s.takes] == [base, s.takes[1].name] and s.takes[s.active_take].name == base
    np.testing.assert_allclose(runtime_values(s.takes[0]), new, atol=1e-6)


def test_wrong_address_is_reported_without_hanging(scene, tmp_path):
    prefs = _prefs()
    prefs.backend_address = f"tcp://127.0.0.1:{ui_support.free_port()}"
    prefs.timeout = 1.5
    s = scene.osmnet
    s.audio_path = str(ui_support.write_wav(tmp_path / "speech.wav", seconds=1.0))
    t0 = time.monotonic()
    bpy.ops.osmnet.generate()
    assert ui_support.drain_until(_job_ended, 20)
    st = bpy.context.window_manager.osmnet_status
    assert st.level == 'ERROR' and "unreachable" in st.text and prefs.backend_address in st.text
    assert time.monotonic() - t0 < 10
    assert len(s.takes) == 0  # no empty takes left behind
    # the check button says the same
    bpy.ops.osmnet.backend_check()
    assert ui_support.drain_until(lambda: not runtime._state.jobs, 20)
    assert st.level == 'ERROR' and "unreachable" in st.text.lower()


def test_backend_killed_mid_job_is_reported_and_keeps_what_arrived(server, scene, tmp_path):
    prefs = _prefs()
    prefs.backend_address, prefs.timeout = server.address, 3.0
    s = scene.osmnet
    s.audio_path = str(ui_support.write_wav(tmp_path / "long.wav", seconds=30.0))
    s.takes_count = 4
    bpy.ops.osmnet.generate()
    assert ui_support.drain_until(lambda: any(t.received > 0 for t in s.takes) or not runtime.busy(), 120)
    server.kill()
    t0 = time.monotonic()
    assert ui_support.drain_until(_job_ended, 30)
    assert time.monotonic() - t0 < 15
    st = bpy.context.window_manager.osmnet_status
    assert st.level == 'ERROR' and "unreachable" in st.text, st.text
    assert all(t.state != 'GENERATING' for t in s.takes)
    # curves arrived chunk by chunk: what came before the crash is kept as a partial take
    kept = [t for t in s.takes if t.received > 0]
    assert kept and all(t.received < t.frames for t in kept) and all(t.action is not None for t in kept)


def test_render_2d_frames_arrive_as_an_image_strip_in_sync(server, scene, tmp_path):
    portrait = ui_support.SHARED_AUDIO.parent / "faces" / "makeittalk_anne.jpg"
    if not portrait.is_file():
        pytest.skip(f"shared portrait {portrait} not found")
    prefs = _prefs()
    prefs.backend_address, prefs.timeout = server.address, 30.0
    s = scene.osmnet
    s.audio_path = str(ui_support.write_wav(tmp_path / "speech.wav", seconds=0.8))
    s.takes_count, s.timing, s.custom_frame = 1, 'CUSTOM', 4
    bpy.ops.osmnet.generate()
    assert ui_support.drain_until(_job_ended, 120)
    assert len(s.takes) == 1, bpy.context.window_manager.osmnet_status.text
    s.active_take = 0
    s.portrait_path, s.render_size, s.frames_dir = str(portrait), '128', str(tmp_path / "frames")
    assert bpy.ops.osmnet.render_frames() == {'FINISHED'}
    assert ui_support.drain_until(_job_ended, 300)
    st = bpy.context.window_manager.osmnet_status
    assert st.level == 'INFO' and "Rendered 20 frames" in st.text, st.text
    pngs = sorted((tmp_path / "frames").glob("*/frame_*.png"))
    assert len(pngs) == 20
    own = bpy.data.scenes[strips.frames_scene_name(scene)]  # its own scene: F12 here stays 3D
    strip = compat.sequencer_strips(own).get(f"{s.takes[0].name} 2D")
    assert strip is not None and strip.type == 'IMAGE'
    assert compat.strip_range(strip) == (4, 24)  # the same frames as the take
    img = bpy.data.images.load(str(pngs[10]))
    assert tuple(img.size) == (128, 128)
    px = np.empty(128 * 128 * 4, np.float32)
    img.pixels.foreach_get(px)
    assert px.reshape(-1, 4)[:, :3].std() > 0.05  # a picture, not a blank frame


def test_a_bad_portrait_is_reported_by_the_backend(server, scene, tmp_path):
    prefs = _prefs()
    prefs.backend_address, prefs.timeout = server.address, 30.0
    s = scene.osmnet
    s.audio_path = str(ui_support.write_wav(tmp_path / "speech.wav", seconds=0.5))
    s.takes_count = 1
    bpy.ops.osmnet.generate()
    assert ui_support.drain_until(_job_ended, 120)
    s.active_take = 0
    blank = tmp_path / "blank.png"
    from blender_addon import strips
    strips.write_png(blank, np.full((128, 128, 3), 200, np.uint8))
    s.portrait_path = str(blank)
    bpy.ops.osmnet.render_frames()
    assert ui_support.drain_until(_job_ended, 120)
    st = bpy.context.window_manager.osmnet_status
    assert st.level == 'ERROR' and "face" in st.text.lower(), st.text


def test_cancel_stops_the_job_on_the_backend_and_keeps_what_arrived(server, scene, tmp_path):
    prefs = _prefs()
    prefs.backend_address, prefs.timeout = server.address, 10.0
    s = scene.osmnet
    s.audio_path = str(ui_support.write_wav(tmp_path / "long.wav", seconds=30.0))
    s.takes_count = 4
    bpy.ops.osmnet.generate()
    assert ui_support.drain_until(lambda: any(t.received > 0 for t in s.takes), 120)
    job = next(iter(runtime._state.jobs))
    runtime.cancel()  # what Esc in the modal operator does
    st = bpy.context.window_manager.osmnet_status
    assert not runtime.busy() and st.level == 'WARNING' and "cancelled" in st.text
    assert runtime.job_outcome(job)[0] == 'WARNING'
    kept = [t for t in s.takes if t.received > 0]
    assert kept and all(t.state == 'READY' and t.received < t.frames for t in kept)
    # the backend dropped the job and still answers
    bpy.ops.osmnet.backend_check()
    assert ui_support.drain_until(lambda: not runtime._state.jobs, 20)
    assert st.level == 'INFO' and "Connected" in st.text, st.text
    assert server.p.poll() is None


def test_a_manual_route_is_what_generate_keys(server, tmp_path):
    import rig

    scene = ui_support.addon_scene()
    face = rig.make_mesh("Cartoon", ["mouthOpen", "browsUp"])
    scene.osmnet.target = face
    row = next(r for r in scene.osmnet.mapping.rows if r.channel == "jawOpen")
    row.key = "mouthOpen"
    _prefs().backend_address = server.address
    s = scene.osmnet
    s.audio_path = str(ui_support.write_wav(tmp_path / "speech.wav", seconds=2.0))
    s.takes_count, s.timing = 1, 'SCENE'
    try:
        assert bpy.ops.osmnet.generate() == {'FINISHED'}
        assert ui_support.drain_until(_job_ended, 120), bpy.context.window_manager.osmnet_status.text
    finally:
        runtime.cancel()
        runtime.close_client()
    values = runtime_values(s.takes[0])[:, list(takes.ALL_CHANNELS).index("jawOpen")]
    action, slot = rig.playing(face.data.shape_keys)
    fc = compat.fcurve_collection(action, slot).find('key_blocks["mouthOpen"].value')
    assert fc is not None and len(fc.keyframe_points) == s.takes[0].frames
    got = np.array([k.co.y for k in fc.keyframe_points])
    np.testing.assert_allclose(got, np.clip(values, 0, 1), atol=1e-5)


def test_on_a_body_rig_generate_swap_reroll_accept_and_bake_keep_the_artists_animation(server, tmp_path):
    """The real backend's takes over a rig with keyed spine/arm and a hand-keyed shape key."""
    import rig

    scene = ui_support.addon_scene(fps=25)
    scene.frame_start = 1
    arm, face = rig.make_body_rig()
    scene.osmnet.target = arm
    artist = {n: rig.dump_action(bpy.data.actions[n]) for n in ("BodyAnim", "FaceAnim")}
    frames = (1, 12, 30, 44, 60)

    def body():
        out = []
        for f in frames:
            scene.frame_set(f)
            out.append((arm.pose.bones["spine"].rotation_euler.y, arm.pose.bones["upper_arm.L"].rotation_euler.x,
                        face.data.shape_keys.key_blocks["Smile"].value))
        return np.array(out)

    pose = body()
    _prefs().backend_address = server.address
    s = scene.osmnet
    s.audio_path = str(ui_support.write_wav(tmp_path / "speech.wav", seconds=2.4))
    s.takes_count, s.seed, s.timing = 2, 5, 'SCENE'
    try:
        assert bpy.ops.osmnet.generate() == {'FINISHED'}
        assert ui_support.drain_until(_job_ended, 120), bpy.context.window_manager.osmnet_status.text
        np.testing.assert_allclose(body(), pose, atol=1e-6)
        s.active_take = 1
        assert rig.playing_take(arm) == rig.playing_take(face.data.shape_keys) == s.takes[1].name
        np.testing.assert_allclose(body(), pose, atol=1e-6)
        scene.use_preview_range = True
        scene.frame_preview_start, scene.frame_preview_end = 11, 40
        s.reroll_what = 'BOTH'
        assert bpy.ops.osmnet.reroll() == {'FINISHED'}
        assert ui_support.drain_until(_job_ended, 120), bpy.context.window_manager.osmnet_status.text
        assert s.takes[-1].name.endswith("re-roll 11-40")
        np.testing.assert_allclose(body(), pose, atol=1e-6)
        assert bpy.ops.osmnet.reroll_accept() == {'FINISHED'}
        assert {n: rig.dump_action(bpy.data.actions[n]) for n in artist} == artist
        assert bpy.ops.osmnet.take_bake() == {'FINISHED'}
    finally:
        runtime.cancel()
        runtime.close_client()
    np.testing.assert_allclose(body(), pose, atol=1e-6)
    after = rig.dump_action(bpy.data.actions["BodyAnim"])
    assert [c for c in after if "pose.bones[\"head\"]" not in c[0]] == artist["BodyAnim"]
    smile = 'key_blocks["Smile"].value'
    assert [c for c in rig.dump_action(bpy.data.actions["FaceAnim"]) if c[0] == smile] == \
        [c for c in artist["FaceAnim"] if c[0] == smile]
