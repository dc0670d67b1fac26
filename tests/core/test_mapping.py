"""Channel mapping rules (no Blender): name variants, Character Creator names and Blender copies are
found, manual routes replace name matches, routes sum, gains/neutral/smoothing act, coverage and the
warning for a rig without ARKit names, presets load."""
from __future__ import annotations

import json

import numpy as np
import pytest

from blender_addon.core import mapping as mp
from blender_addon.core.channels import ARKIT_NAMES


@pytest.mark.parametrize("name,channel", [
    ("eyeBlinkLeft", "eyeBlinkLeft"), ("EyeBlink_L", "eyeBlinkLeft"), ("eyeBlink_L", "eyeBlinkLeft"),
    ("eye_blink_left", "eyeBlinkLeft"), ("ARKit_eyeBlinkLeft", "eyeBlinkLeft"), ("A01_browDownLeft", "browDownLeft"),
    ("bs_mouthSmile_R", "mouthSmileRight"), ("blendShape1.jawOpen", "jawOpen"), ("EyeBlinkL", "eyeBlinkLeft"),
    ("eyeBlink.R", "eyeBlinkRight"), ("A25_Jaw_Open", "jawOpen"), ("TongueOut", "tongueOut"),
    ("jawOpen.001", "jawOpen"), ("EyeBlink_L.002", "eyeBlinkLeft"), ("Brow_Raise_Inner_L", "browInnerUp"),
    ("Eye_L_Look_L", "eyeLookOutLeft"), ("Eye_R_Look_L", "eyeLookInRight"), ("Cheek_Raise_R", "cheekSquintRight"),
    ("Mouth_Smile_L", "mouthSmileLeft"), ("Jaw_Open", "jawOpen"), ("Mouth_Pucker_Up_R", "mouthPucker"),
    ("Basis", None), ("Smile", None), ("mouthSmile", None), ("eyeBlink", None), ("V_Open", None), ("jaw.0011", None),
])
def test_shape_key_name_variants_map_to_the_arkit_channel(name, channel):
    assert mp.match_channel(name) == channel


def test_every_arkit_name_matches_itself_and_its_pascal_case_and_snake_case():
    for n in ARKIT_NAMES:
        snake = "".join("_" + c.lower() if c.isupper() else c for c in n)
        assert mp.match_channel(n) == mp.match_channel(n[0].upper() + n[1:]) == mp.match_channel(snake) == n


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


def test_a_blender_copy_name_is_used_only_when_the_mesh_has_no_better_match():
    routes = mp.detect_routes({"Face": ["jawOpen", "jawOpen.001", "EyeBlink_L.001"], "Teeth": ["jawOpen.001"]})
    assert sorted((r.target.owner, r.target.name, r.channel) for r in routes) == [
        ("Face", "EyeBlink_L.001", "eyeBlinkLeft"), ("Face", "jawOpen", "jawOpen"), ("Teeth", "jawOpen.001", "jawOpen")]


def test_character_creator_pairs_both_follow_one_channel():
    routes = mp.detect_routes({"CC_Base_Body": ["Brow_Raise_Inner_L", "Brow_Raise_Inner_R", "Cheek_Puff_L", "Cheek_Puff_R"]})
    by = {}
    for r in routes:
        by.setdefault(r.channel, []).append(r.target.name)
    assert by == {"browInnerUp": ["Brow_Raise_Inner_L", "Brow_Raise_Inner_R"], "cheekPuff": ["Cheek_Puff_L", "Cheek_Puff_R"]}


def test_a_manual_route_replaces_the_automatic_match_of_its_channel_on_every_mesh_with_the_key():
    keys = {"Face": ["jawOpen", "mouthOpen"], "Teeth": ["mouthOpen"], "Eyes": ["eyeBlinkLeft"]}
    rules = mp.MappingRules(manual=[mp.ManualRoute("jawOpen", "mouthOpen", weight=0.8)])
    m = rules.build(keys)
    jaw = sorted((r.target.owner, r.target.name, r.weight) for r in m.routes if r.channel == "jawOpen")
    assert jaw == [("Face", "mouthOpen", 0.8), ("Teeth", "mouthOpen", 0.8)]
    assert [r.target.name for r in m.routes if r.channel == "eyeBlinkLeft"] == ["eyeBlinkLeft"]
    assert mp.MappingRules(manual=rules.manual, auto=False).build(keys).routes == [
        r for r in m.routes if r.channel == "jawOpen"]
    with pytest.raises(mp.MappingError, match="unknown channel 'jawOpn'"):
        mp.MappingRules(manual=[mp.ManualRoute("jawOpn", "mouthOpen")]).build(keys)


def test_coverage_lists_every_channel_and_what_it_drives():
    m = mp.MappingRules(channels={"eyeBlinkLeft": mp.ChannelSetting(enabled=False)}).build(
        {"Face": ["jawOpen", "eyeBlinkLeft", "Smile"], "Teeth": ["JawOpen"]})
    cov = mp.coverage(m)
    assert len(cov) == 52 and sum(bool(t) for t in cov.values()) == 1
    assert sorted((t.owner, t.name) for t in cov["jawOpen"]) == [("Face", "jawOpen"), ("Teeth", "JawOpen")]
    assert cov["eyeBlinkLeft"] == []  # switched off: drives nothing


def test_a_rig_with_no_arkit_names_gets_a_warning_with_suggestions_that_fix_it():
    keys = {"Head": ["mouthOpen", "mouthSmile", "Blink"]}
    m = mp.MappingRules().build(keys, head=mp.HeadBinding(armature="Rig", bone="Head"))
    warning = mp.coverage_warning(m, keys)
    assert "No shape key on Head matches an ARKit name: only the head will move" in warning
    assert "jawOpen -> mouthOpen" in warning
    fixed = mp.MappingRules(manual=mp.suggest_routes(keys, m)).build(keys)
    assert mp.coverage_warning(fixed, keys) is None
    smile = {(r.channel, r.weight) for r in fixed.routes if r.target.name == "mouthSmile"}
    assert smile == {("mouthSmileLeft", 0.5), ("mouthSmileRight", 0.5)}
    no_head = mp.MappingRules().build({"Head": ["Frown"]})
    assert "nothing will move" in mp.coverage_warning(no_head, {"Head": ["Frown"]})
    partial = mp.MappingRules().build({"Head": ["eyeBlinkLeft"]})
    assert "jawOpen (the main lip-sync channel) drives nothing" in mp.coverage_warning(partial, {"Head": ["eyeBlinkLeft"]})


def test_presets_round_trip_through_json(tmp_path):
    rules = mp.MappingRules(manual=[mp.ManualRoute("jawOpen", "mouthOpen", "", 0.8), mp.ManualRoute("headYaw", "x", "Rig")],
                            channels={"jawOpen": mp.ChannelSetting(True, 1.5, -0.1)}, strength=0.7, smoothing=0.04,
                            neutral={"jawOpen": 0.05}, auto=False,
                            head=mp.HeadBinding(kind="object", object="Head", use_location=True).with_axes("+X", "+Z", "-Y"))
    path = mp.save_preset(rules, tmp_path / "p.json")
    assert mp.load_preset(path) == rules


@pytest.mark.parametrize("edit,match", [
    (lambda d: d.update(format="x"), "not a mapping preset"),
    (lambda d: d.update(version=7), "version 7"),
    (lambda d: d.update(colour="red"), "unknown keys"),
    (lambda d: d["head"].update(pitch="+X", yaw="+X"), "X, Y and Z once"),
    (lambda d: d["head"].update(roll="up"), "must each be one of"),
    (lambda d: d["head"].update(kind="light"), "head kind"),
    (lambda d: d["manual"][0].pop("channel"), "malformed"),
    (lambda d: d.update(visemes="sometimes"), "visemes must be one of"),
])
def test_bad_presets_are_refused_with_the_reason(tmp_path, edit, match):
    d = mp.MappingRules(manual=[mp.ManualRoute("jawOpen", "mouthOpen")]).to_dict()
    edit(d)
    (tmp_path / "p.json").write_text(json.dumps(d))
    with pytest.raises(mp.MappingError, match=match):
        mp.load_preset(tmp_path / "p.json")


RPM_VISEMES = [f"viseme_{v}" for v in ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O",
                                       "U")]


def test_a_viseme_only_head_is_routed_through_its_visemes_and_not_warned():
    keys = {"AvatarHead": RPM_VISEMES}
    m = mp.MappingRules().build(keys)
    assert sorted(r.channel for r in m.routes) == sorted(RPM_VISEMES) and len(mp.viseme_targets(m)) == 15
    assert mp.coverage_warning(m, keys) is None
    off = mp.MappingRules(visemes="off").build(keys)
    assert off.routes == [] and "nothing will move" in mp.coverage_warning(off, keys)


def test_a_head_with_arkit_and_viseme_keys_opens_its_mouth_once_unless_asked():
    keys = {"Head": ["jawOpen", "mouthSmileLeft", *RPM_VISEMES]}
    assert {r.channel for r in mp.MappingRules().build(keys).routes} == {"jawOpen", "mouthSmileLeft"}
    assert len(mp.viseme_targets(mp.MappingRules(visemes="on").build(keys))) == 15
    manual = mp.MappingRules(manual=[mp.ManualRoute("viseme_aa", "jawOpen")], visemes="off").build(keys)
    assert [(r.channel, r.target.name) for r in manual.routes if r.channel == "viseme_aa"] == [("viseme_aa", "jawOpen")]
    with pytest.raises(mp.MappingError, match="visemes must be one of"):
        mp.MappingRules(visemes="sometimes").build(keys)
