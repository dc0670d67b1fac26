"""Other tools' files in Blender: Audio2Face and Rhubarb imports become takes that play on the face,
the selected take exports to both, a batch folder lands line after line on the timeline, and a
viseme-only rig is driven from the ARKit curves."""
import json

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import rig  # noqa: E402
import ui_support  # noqa: E402
from blender_addon import compat, interop_ops, keyframes  # noqa: E402
from blender_addon.core import interop, visemes  # noqa: E402
from blender_addon.core.channels import ALL_CHANNELS, ARKIT_NAMES  # noqa: E402
from blender_addon.core.interop import Cue  # noqa: E402
from blender_addon.core.mapping import Mapping, Route, Target  # noqa: E402
from blender_addon.core.take import Take  # noqa: E402

CUES = [Cue(0.0, 0.2, "X"), Cue(0.2, 0.6, "D"), Cue(0.6, 0.9, "F"), Cue(0.9, 1.2, "A"), Cue(1.2, 1.6, "C"),
        Cue(1.6, 2.0, "X")]


@pytest.fixture
def scene():
    scene = ui_support.addon_scene(fps=25)
    scene.osmnet.target = ui_support.make_face()
    return scene


def _key(face, name, frame):
    bpy.context.scene.frame_set(frame)
    return face.data.shape_keys.key_blocks[name].value


def _take(frames=50, fps=25.0, seed=0):
    rng = np.random.default_rng(seed)
    ch = {n: np.zeros(frames, np.float32) for n in ALL_CHANNELS}
    for n in ARKIT_NAMES:
        ch[n] = np.clip(0.3 + np.cumsum(rng.normal(0, 0.04, frames)), 0, 1).astype(np.float32)
    return Take(fps, ch, {"seed": seed})


def test_buttons_explain_what_is_missing():
    ui_support.addon_scene()
    with pytest.raises(RuntimeError, match="Choose the face"):
        bpy.ops.osmnet.import_rhubarb(filepath="/tmp/none.tsv")
    with pytest.raises(RuntimeError, match="Select a take"):
        bpy.ops.osmnet.export_audio2face(filepath="/tmp/x.json")
    with pytest.raises(RuntimeError, match="Select a take"):
        bpy.ops.osmnet.export_rhubarb(filepath="/tmp/x.tsv")


def test_audio2face_import_plays_and_exports_back(scene, tmp_path):
    src = _take(frames=60, fps=30.0)  # another frame rate than the scene's: resampled on import
    src.meta["audio"] = "line.wav"  # Audio2Face's trackPath, relative to the export here
    ui_support.write_wav(tmp_path / "line.wav", seconds=2.0)
    interop.write_audio2face(src, tmp_path / "line.json")
    scene.frame_current = 10
    assert bpy.ops.osmnet.import_audio2face(filepath=str(tmp_path / "line.json")) == {'FINISHED'}
    item = scene.osmnet.active()
    assert item.name == "line" and item.start_frame == 10 and item.frames == 50
    sounds = [s for s in compat.all_strips(scene) if s.type == 'SOUND']
    assert [compat.strip_range(s)[0] for s in sounds] == [10]
    face = scene.osmnet.target
    for k in (0, 12, 49):  # scene frame 10 + k is take time k / 25 s
        expect = np.interp(k / 25, np.arange(60) / 30, src.channels["jawOpen"])
        assert _key(face, "jawOpen", 10 + k) == pytest.approx(expect, abs=1e-4)
    assert bpy.ops.osmnet.export_audio2face(filepath=str(tmp_path / "out.json")) == {'FINISHED'}
    back = interop.read_audio2face(tmp_path / "out.json")
    assert back.fps == 25.0 and back.frames == 50
    expect = np.interp(np.arange(50) / 25, np.arange(60) / 30, src.channels["mouthSmileLeft"])
    np.testing.assert_allclose(back.channels["mouthSmileLeft"], expect, atol=1e-4)


def test_a_broken_file_is_reported_and_adds_nothing(scene, tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"exportFps": 30, "facsNames": ["x"], "weightMat": [[0.1]]}))
    with pytest.raises(RuntimeError, match="none of its 1 poses"):
        bpy.ops.osmnet.import_audio2face(filepath=str(tmp_path / "bad.json"))
    (tmp_path / "bad.tsv").write_text("0.00\tX\n0.50\tZ\n0.90\tX\n")
    with pytest.raises(RuntimeError, match="mouth shape 'Z'"):
        bpy.ops.osmnet.import_rhubarb(filepath=str(tmp_path / "bad.tsv"))
    assert len(scene.osmnet.takes) == 0 and not bpy.data.actions


def test_rhubarb_cues_import_as_mouth_motion_and_export_as_the_same_cues(scene, tmp_path):
    sound = ui_support.write_wav(tmp_path / "hello.wav", seconds=2.0)
    interop.write_rhubarb_json(CUES, tmp_path / "hello.json", sound_file=str(sound))
    scene.frame_current = 1
    assert bpy.ops.osmnet.import_rhubarb(filepath=str(tmp_path / "hello.json")) == {'FINISHED'}
    item = scene.osmnet.active()
    assert item.frames == 50
    face = scene.osmnet.target
    assert _key(face, "jawOpen", 1 + 10) == pytest.approx(0.7, abs=1e-4)   # 0.4 s: inside D
    assert _key(face, "mouthPucker", 1 + 19) == pytest.approx(0.75, abs=1e-4)  # 0.76 s: inside F
    assert _key(face, "jawOpen", 1 + 2) == pytest.approx(0.0, abs=1e-6)
    sounds = [s for s in compat.all_strips(scene) if s.type == 'SOUND']
    assert len(sounds) == 1 and bpy.path.abspath(sounds[0].sound.filepath) == str(sound)
    assert bpy.ops.osmnet.export_rhubarb(filepath=str(tmp_path / "out.tsv")) == {'FINISHED'}
    cues, _ = interop.read_rhubarb(tmp_path / "out.tsv")
    assert [c.shape for c in cues] == [c.shape for c in CUES]
    assert max(abs(a.start - b.start) for a, b in zip(cues, CUES)) <= 0.041
    assert bpy.ops.osmnet.export_rhubarb(filepath=str(tmp_path / "basic.json"), file_format='JSON',
                                         shapes="ABCDEF") == {'FINISHED'}
    d = json.loads((tmp_path / "basic.json").read_text())
    assert [c["value"] for c in d["mouthCues"]] == ["A", "D", "F", "A", "C", "A"]  # no X: rest is A
    assert d["metadata"]["soundFile"] == ""


def _batch_folder(root, lines):
    for name, frames in lines.items():
        for k in range(2):
            t = _take(frames=frames + 5 * k, seed=k)
            t.meta.update({"audio": f"{name}.wav", "seed": 40 + k})
            t.save(root / "out" / name / f"take_{k:02d}.json")
    return root / "out"


def test_batch_folder_lands_line_after_line_with_markers_and_sound(scene, tmp_path):
    out = _batch_folder(tmp_path, {"l01_hello": 30, "l02_reply": 45, "l03_bye": 20})
    speech = tmp_path / "speech"
    speech.mkdir()
    ui_support.write_wav(speech / "l01_hello.wav", seconds=1.2)
    ui_support.write_wav(speech / "l02_reply.wav", seconds=1.8)
    (out / "batch.json").write_text(json.dumps({"format": "osmnet-batch", "version": 1, "lines": [
        {"name": "l02_reply", "status": "done", "audio": str(speech / "l02_reply.wav")},
        {"name": "l01_hello", "status": "done", "audio": str(speech / "l01_hello.wav")},
        {"name": "l04_lost", "status": "failed", "reason": "silent audio"},
        {"name": "l03_bye", "status": "done", "audio": "/elsewhere/l03_bye.wav"}]}))
    scene.frame_current = 100
    assert bpy.ops.osmnet.import_batch(directory=str(out), gap=10) == {'FINISHED'}
    items = list(scene.osmnet.takes)
    assert [t.name for t in items] == ["l02_reply #1", "l02_reply #2", "l01_hello #1", "l01_hello #2",
                                       "l03_bye #1", "l03_bye #2"]
    # Slots follow the report's order: each starts after the longest take of the line before, plus the gap.
    assert [t.start_frame for t in items] == [100, 100, 160, 160, 205, 205]
    markers = sorted((m.frame, m.name) for m in scene.timeline_markers)
    assert markers == [(100, "l02_reply"), (160, "l01_hello"), (205, "l03_bye")]
    sounds = sorted((int(compat.strip_range(s)[0]), s.name) for s in compat.all_strips(scene) if s.type == 'SOUND')
    assert sounds == [(100, "l02_reply"), (160, "l01_hello")]
    assert items[0].audio_path == str(speech / "l02_reply.wav") and items[4].audio_path == ""
    assert items[1].seed == 40  # batch.json has no seed here: the take's meta
    # Selecting a take plays it in its own slot.
    scene.osmnet.active_take = 2
    face = scene.osmnet.target
    src = Take.load(out / "l01_hello" / "take_00.json")
    assert _key(face, "jawOpen", 160 + 7) == pytest.approx(float(src.channels["jawOpen"][7]), abs=1e-4)
    # The report says which line failed and which had no sound.
    level, text = interop_ops.batch_summary(interop_ops.import_batch(bpy.context, str(out), gap=10))
    assert level == 'WARNING' and "l04_lost (silent audio)" in text and "no sound file found for 1 lines" in text


def test_batch_folder_without_report_imports_take_folders(scene, tmp_path):
    out = _batch_folder(tmp_path, {"b": 20, "a": 25})
    scene.frame_current = 1
    assert bpy.ops.osmnet.import_batch(directory=str(out), gap=0, add_sound_strips=False) == {'FINISHED'}
    assert [(t.name, t.start_frame) for t in scene.osmnet.takes] == [("a #1", 1), ("a #2", 1), ("b #1", 31), ("b #2", 31)]
    bpy.ops.osmnet.import_batch(directory=str(out), gap=0, add_sound_strips=False, takes_per_line=1)
    assert [t.name for t in scene.osmnet.takes][4:] == ["a #1 (2)", "b #1 (2)"]  # names stay unique
    with pytest.raises(RuntimeError, match="no batch lines"):
        bpy.ops.osmnet.import_batch(directory=str(tmp_path / "out" / "a"))


RPM_KEYS = [f"viseme_{v}" for v in ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U")]


def test_a_viseme_only_rig_is_keyed_from_the_arkit_curves(tmp_path):
    ui_support.addon_scene(fps=25)
    head = rig.make_mesh("AvatarHead", RPM_KEYS)
    routes = [Route(ch, Target("shape_key", owner, key))
              for ch, owner, key in visemes.viseme_routes({head.name: RPM_KEYS})]
    assert len(routes) == 15
    take = interop.cues_to_take(CUES, fps=25.0)  # wide open, rounded, pressed, open
    keyframes.bake_take(take, Mapping(routes=routes), bpy.context.scene, "visemes", start_frame=1)
    expect = visemes.viseme_curves(take, "oculus")
    kb = head.data.shape_keys.key_blocks
    for frame in (3, 11, 19, 26, 35):
        bpy.context.scene.frame_set(frame)
        for name in ("viseme_sil", "viseme_aa", "viseme_U", "viseme_PP"):
            assert kb[name].value == pytest.approx(float(expect[name][frame - 1]), abs=1e-3), (frame, name)
    bpy.context.scene.frame_set(11)
    assert kb["viseme_aa"].value > 0.9
    bpy.context.scene.frame_set(19)
    assert kb["viseme_U"].value > 0.5
    bpy.context.scene.frame_set(3)
    assert kb["viseme_sil"].value > 0.99
    # The mapping's captured neutral is the resting face the visemes are measured from.
    rest = {"jawOpen": 0.35, "mouthLowerDownLeft": 0.3, "mouthLowerDownRight": 0.3}
    keyframes.bake_take(take, Mapping(routes=routes, neutral=rest), bpy.context.scene, "visemes rest", start_frame=1)
    expect = visemes.viseme_curves(take, "oculus", neutral=rest)
    bpy.context.scene.frame_set(11)
    assert kb["viseme_aa"].value == pytest.approx(float(expect["viseme_aa"][10]), abs=1e-3)
    assert kb["viseme_aa"].value < 0.7


def test_generated_takes_of_real_speech_import_as_a_batch_line(scene, tmp_path, generated_take_paths):
    """What `osmnet batch` writes per line (takes generated by the shipped model from real speech,
    meta "audio" = the file name) imports with the speech found through the Audio Folder."""
    import shutil

    from conftest import SPEECH

    first, second, _ = generated_take_paths
    line = tmp_path / "out" / SPEECH.stem
    line.mkdir(parents=True)
    shutil.copy(first, line / "take_00.json")
    shutil.copy(second, line / "take_01.json")
    scene.frame_current = 1
    assert bpy.ops.osmnet.import_batch(directory=str(tmp_path / "out"), audio_folder=str(SPEECH.parent)) == {'FINISHED'}
    assert [t.name for t in scene.osmnet.takes] == [f"{SPEECH.stem} #1", f"{SPEECH.stem} #2"]
    item = scene.osmnet.takes[0]
    assert item.audio_path == str(SPEECH.resolve())  # so the line can be re-rolled from its speech
    strips = [s for s in compat.all_strips(scene) if s.type == 'SOUND']
    assert len(strips) == 1 and compat.strip_range(strips[0])[0] == 1
    src = Take.load(first)
    assert item.frames == round(src.duration * 25)
    assert [m.name for m in scene.timeline_markers] == [SPEECH.stem]


def test_the_other_tools_panel_draws_and_names_real_operators(scene):
    from test_ui_panels import _PanelSelf  # the layout there checks every name drawn

    log = []
    interop_ops.OSMNET_PT_interop.draw(_PanelSelf(log), bpy.context)
    ops = {name for kind, name in log if kind == "operator"}
    assert ops == {"osmnet.import_audio2face", "osmnet.import_rhubarb", "osmnet.import_batch",
                   "osmnet.export_audio2face", "osmnet.export_rhubarb"}
    assert hasattr(bpy.types, "OSMNET_PT_interop")
    # Imports change the file: they are undo steps.
    for cls in (interop_ops.OSMNET_OT_import_audio2face, interop_ops.OSMNET_OT_import_rhubarb,
                interop_ops.OSMNET_OT_import_batch):
        assert cls.bl_options == {'REGISTER', 'UNDO'}
