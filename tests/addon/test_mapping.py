"""Channel mapping: name variants are found, routes sum, gains/neutral/smoothing act, presets load."""
from __future__ import annotations

import json

import numpy as np
import pytest

import bpy
import rig
from blender_addon.core import mapping as mp
from blender_addon.core.take import ARKIT_NAMES


@pytest.mark.parametrize("name,channel", [
    ("eyeBlinkLeft", "eyeBlinkLeft"), ("EyeBlink_L", "eyeBlinkLeft"), ("eyeBlink_L", "eyeBlinkLeft"),
    ("eye_blink_left", "eyeBlinkLeft"), ("ARKit_eyeBlinkLeft", "eyeBlinkLeft"), ("A01_browDownLeft", "browDownLeft"),
    ("bs_mouthSmile_R", "mouthSmileRight"), ("blendShape1.jawOpen", "jawOpen"), ("EyeBlinkL", "eyeBlinkLeft"),
    ("eyeBlink.R", "eyeBlinkRight"), ("A25_Jaw_Open", "jawOpen"), ("TongueOut", "tongueOut"),
    ("Basis", None), ("Smile", None), ("jawOpen.001", None), ("mouthSmile", None), ("eyeBlink", None),
])
def test_shape_key_name_variants_map_to_the_arkit_channel(name, channel):
    assert mp.match_channel(name) == channel


def test_every_arkit_name_matches_itself_and_its_pascal_case_and_snake_case():
    for n in ARKIT_NAMES:
        snake = "".join("_" + c.lower() if c.isupper() else c for c in n)
        assert mp.match_channel(n) == mp.match_channel(n[0].upper() + n[1:]) == mp.match_channel(snake) == n


def test_auto_mapping_on_a_rig_finds_variants_on_every_mesh_and_the_head_bone():
    arm, face, teeth = rig.make_rig()
    m = mp.auto_mapping([face, teeth], arm)
    found = {(r.target.owner, r.target.name): r.channel for r in m.routes}
    want = {("Face", k): c for k, c in rig.FACE_KEYS.items() if c}
    want.update({("Teeth", k): c for k, c in rig.TEETH_KEYS.items() if c})
    assert found == want
    assert (m.head.armature, m.head.bone) == ("Rig", "DEF-head")


@pytest.mark.parametrize("bones,head", [
    (["root", "DEF-spine", "DEF-neck", "DEF-head", "head_end"], "DEF-head"),
    (["mixamorig:Hips", "mixamorig:Neck", "mixamorig:Head", "mixamorig:HeadTop_End"], "mixamorig:Head"),
    (["CC_Base_Hip", "CC_Base_Head", "CC_Base_NeckTwist01"], "CC_Base_Head"),
    (["Bone", "Bone.001"], None),
])
def test_head_bone_guess(bones, head):
    assert mp.guess_head_bone(bones) == head


def _t(name, owner="Face"):
    return mp.Target("shape_key", owner, name)


def test_routes_into_one_target_are_summed_and_one_channel_can_drive_many():
    m = mp.Mapping(routes=[mp.Route("mouthSmileLeft", _t("smile"), 0.5), mp.Route("mouthSmileRight", _t("smile"), 0.5),
                           mp.Route("jawOpen", _t("jaw")), mp.Route("jawOpen", _t("jaw", "Teeth"))])
    v = {"mouthSmileLeft": np.array([0.2, 0.4]), "mouthSmileRight": np.array([0.6, 0.0]), "jawOpen": np.array([0.3, 0.9])}
    out = m.target_curves(v, fps=25)
    np.testing.assert_allclose(out[_t("smile")], [0.4, 0.2])
    np.testing.assert_allclose(out[_t("jaw")], v["jawOpen"])
    np.testing.assert_allclose(out[_t("jaw", "Teeth")], v["jawOpen"])


def test_neutral_gain_offset_strength_and_enable_apply_in_that_order():
    m = mp.Mapping(routes=[mp.Route("jawOpen", _t("jaw")), mp.Route("cheekPuff", _t("puff"))],
                   channels={"jawOpen": mp.ChannelSetting(gain=2.0, offset=0.1), "cheekPuff": mp.ChannelSetting(enabled=False)},
                   strength=0.5, neutral={"jawOpen": 0.2})
    v = {"jawOpen": np.array([0.2, 0.6]), "cheekPuff": np.array([1.0, 1.0])}
    out = m.target_curves(v, fps=25)
    np.testing.assert_allclose(out[_t("jaw")], [0.1, 0.5])  # 0.5 * 2 * (v - 0.2) + 0.1
    assert _t("puff") not in out


def test_neutral_pose_is_the_mean_of_a_rest_stretch():
    v = {"jawOpen": np.r_[np.full(10, 0.1), np.linspace(0, 1, 20)]}
    assert mp.neutral_pose(v, 0, 10)["jawOpen"] == pytest.approx(0.1)
    with pytest.raises(mp.MappingError, match="holds no frames"):
        mp.neutral_pose(v, 40, 50)


def test_smoothing_removes_jitter_keeps_slow_motion_and_level_ends():
    t = np.arange(250) / 25
    slow = 0.5 + 0.3 * np.sin(2 * np.pi * 0.3 * t)
    jitter = 0.05 * np.random.default_rng(1).standard_normal(len(t))
    m = mp.Mapping(routes=[mp.Route("jawOpen", _t("jaw"))], smoothing=0.06)
    out = m.target_curves({"jawOpen": slow + jitter}, fps=25)[_t("jaw")]
    assert np.std(out - slow) < 0.5 * np.std(jitter)
    const = m.target_curves({"jawOpen": np.full(50, 0.7)}, fps=25)[_t("jaw")]
    np.testing.assert_allclose(const, 0.7)


def test_presets_round_trip_through_json(tmp_path):
    m = mp.Mapping(routes=[mp.Route("jawOpen", _t("jaw"), 0.8), mp.Route("headYaw", mp.Target("custom_prop", "Rig", "yaw")),
                           mp.Route("jawOpen", mp.Target("bone", "Rig", "jaw", "rotation_euler", 0), 0.3)],
                   channels={"jawOpen": mp.ChannelSetting(True, 1.5, -0.1)}, strength=0.7, smoothing=0.04,
                   neutral={"jawOpen": 0.05}, head=mp.HeadBinding("Rig", "head", "-X", "+Z", "+Y", use_location=True))
    path = mp.save_preset(m, tmp_path / "p.json")
    back = mp.load_preset(path)
    assert back == m
    assert back.routes[2].target.data_path == 'pose.bones["jaw"].rotation_euler'


@pytest.mark.parametrize("edit,match", [
    (lambda d: d.update(format="x"), "not a mapping preset"),
    (lambda d: d.update(version=7), "version 7"),
    (lambda d: d.update(colour="red"), "unknown keys"),
    (lambda d: d["head"].update(pitch="+X", yaw="+X"), "X, Y and Z once"),
    (lambda d: d["head"].update(roll="up"), "must each be one of"),
    (lambda d: d["routes"][0]["target"].update(kind="light"), "target kind"),
    (lambda d: d["routes"][0].pop("channel"), "malformed"),
])
def test_bad_presets_are_refused_with_the_reason(tmp_path, edit, match):
    d = mp.Mapping(routes=[mp.Route("jawOpen", _t("jaw"))]).to_dict()
    edit(d)
    (tmp_path / "p.json").write_text(json.dumps(d))
    with pytest.raises(mp.MappingError, match=match):
        mp.load_preset(tmp_path / "p.json")


def test_quotes_in_names_are_escaped_in_data_paths():
    arm, face, teeth = rig.make_rig()
    kb = face.data.shape_keys.key_blocks["Smile"]
    kb.name = 'Sm"ile'
    target = mp.Target("shape_key", "Face", 'Sm"ile')
    assert face.data.shape_keys.path_resolve(target.data_path) == kb.value  # Blender's own path parser
    face['mouth "open"'] = 0.25
    assert bpy.data.objects["Face"].path_resolve(mp.Target("custom_prop", "Face", 'mouth "open"').data_path) == 0.25
