"""Viseme rigs: ARKit mouth curves -> Oculus/Meta 15 visemes and VRM's vowels, and finding them on a rig."""
import numpy as np
import pytest

from blender_addon.core import visemes
from blender_addon.core.channels import ALL_CHANNELS
from blender_addon.core.errors import UserInputError
from blender_addon.core.take import Take


def _values(frames=4, **arkit):
    v = {n: np.zeros(frames, np.float32) for n in ALL_CHANNELS}
    for k, x in arkit.items():
        v[k] = np.broadcast_to(np.asarray(x, np.float32), (frames,)).copy()
    return v


def _pose_values(proto: str, scale: float = 1.0):
    pose = visemes.pose_vector(visemes.MOUTH_POSES[proto]) * scale
    return {**_values(1), **{k: np.asarray(v) for k, v in visemes.pose_curves(pose[None]).items()}}


@pytest.mark.parametrize("scheme", sorted(visemes.SCHEMES))
def test_each_visemes_own_pose_drives_that_viseme(scheme):
    for channel in visemes.SCHEMES[scheme]:
        proto = visemes._prototype_of(channel)
        for scale in (1.0, 0.5):
            w = {k: float(v[0]) for k, v in visemes.viseme_curves(_pose_values(proto, scale), scheme).items()}
            if proto == "sil":
                assert w[channel] > 0.99
                continue
            others = {k: x for k, x in w.items() if k not in (channel, "viseme_sil")}
            assert w[channel] > max(others.values()), (channel, scale, w)
            if scale == 1.0:
                assert w[channel] > 0.85, (channel, w)


def test_a_resting_mouth_is_silence_and_weights_stay_in_range():
    w = visemes.viseme_curves(_values(3), "oculus")
    assert set(w) == set(visemes.OCULUS_VISEMES)
    assert np.allclose(w["viseme_sil"], 1.0)
    assert all(np.allclose(v, 0.0, atol=1e-6) for k, v in w.items() if k != "viseme_sil")
    vrm = visemes.viseme_curves(_values(3), "vrm")
    assert set(vrm) == set(visemes.VRM_VISEMES) and all(np.allclose(v, 0, atol=1e-6) for v in vrm.values())


def test_opening_the_jaw_moves_weight_from_silence_to_aa_smoothly():
    jaw = np.linspace(0.0, 0.65, 30)
    w = visemes.viseme_curves(_values(30, jawOpen=jaw, mouthLowerDownLeft=jaw * 0.46, mouthLowerDownRight=jaw * 0.46,
                                      mouthUpperUpLeft=jaw * 0.15, mouthUpperUpRight=jaw * 0.15), "oculus")
    assert w["viseme_aa"][-1] > 0.9 and w["viseme_sil"][0] > 0.99
    assert np.all(np.diff(w["viseme_aa"]) > -1e-3)  # no jumps back: the mix follows the curve
    assert np.max(np.abs(np.diff(w["viseme_aa"]))) < 0.1
    total = sum(w.values())
    assert np.allclose(total, 1.0, atol=1e-5)


def test_rounded_lips_are_u_not_aa():
    w = visemes.viseme_curves(_values(1, mouthPucker=0.7, mouthFunnel=0.3, jawOpen=0.1), "vrm")
    assert w["vrm_ou"][0] > 0.8 and w["vrm_aa"][0] < 0.1


def test_real_speech_take_gives_sensible_visemes(tracked_speech_take):
    take = tracked_speech_take
    w = visemes.viseme_curves(take, "oculus")
    stack = np.stack(list(w.values()))
    assert np.all(stack >= -1e-6) and np.all(stack <= 1 + 1e-6)
    assert np.allclose(stack.sum(axis=0), 1.0, atol=1e-4)
    jaw = take.channels["jawOpen"]
    # The clip starts and ends in silence: the rest viseme there, open visemes where the jaw is open.
    assert w["viseme_sil"][:10].mean() > 0.6
    openness = 1.0 - w["viseme_sil"]
    assert np.corrcoef(openness, jaw)[0, 1] > 0.6
    vrm = visemes.viseme_curves(take, "vrm")
    assert np.corrcoef(sum(vrm.values()), jaw)[0, 1] > 0.6


def test_a_face_resting_with_a_smile_is_silent_once_its_neutral_is_given():
    smiling = _values(3, mouthSmileLeft=0.45, mouthSmileRight=0.45, mouthStretchLeft=0.2, mouthStretchRight=0.2)
    assert visemes.viseme_curves(smiling, "oculus")["viseme_I"][0] > 0.4  # read as "ee" without a neutral
    rest = {"mouthSmileLeft": 0.45, "mouthSmileRight": 0.45, "mouthStretchLeft": 0.2, "mouthStretchRight": 0.2}
    assert visemes.viseme_curves(smiling, "oculus", neutral=rest)["viseme_sil"] == pytest.approx([1, 1, 1], abs=1e-6)
    smiling["jawOpen"][:] = 0.65
    smiling["mouthLowerDownLeft"][:] = smiling["mouthLowerDownRight"][:] = 0.3
    assert visemes.viseme_curves(smiling, "oculus", neutral=rest)["viseme_aa"][0] > 0.8


def test_take_and_dict_inputs_agree():
    v = _values(5, jawOpen=[0, 0.1, 0.3, 0.5, 0.2], mouthPucker=[0, 0, 0.2, 0.1, 0.4])
    a = visemes.viseme_curves(v, "oculus")
    b = visemes.viseme_curves(Take(25.0, v), "oculus")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_unknown_scheme_is_refused_with_the_choices():
    with pytest.raises(UserInputError, match="oculus"):
        visemes.viseme_curves(_values(2), "arkit")


@pytest.mark.parametrize("name, expected", [
    ("viseme_aa", ("oculus", "viseme_aa")), ("viseme_sil", ("oculus", "viseme_sil")),
    ("Viseme_PP", ("oculus", "viseme_PP")), ("viseme_kk.001", ("oculus", "viseme_kk")),
    ("vrc.v_ih", ("oculus", "viseme_I")), ("vrc.v_ou", ("oculus", "viseme_U")), ("vrc.v_e", ("oculus", "viseme_E")),
    ("aa", ("vrm", "vrm_aa")), ("oh", ("vrm", "vrm_oh")), ("Fcl_MTH_E", ("vrm", "vrm_ee")), ("I", ("vrm", "vrm_ih")),
    ("jawOpen", None), ("mouthSmileLeft", None), ("Basis", None), ("viseme_xx", None), ("eyeBlink_L", None),
])
def test_viseme_names_are_recognised(name, expected):
    assert visemes.match_viseme(name) == expected


RPM_KEYS = [f"viseme_{v}" for v in ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U")]


def test_scheme_detection_prefers_the_full_oculus_set():
    from blender_addon.core.channels import ARKIT_NAMES

    assert visemes.detect_viseme_scheme(list(ARKIT_NAMES) + RPM_KEYS) == "oculus"
    assert visemes.detect_viseme_scheme(["Basis", "Fcl_MTH_A", "Fcl_MTH_I", "Fcl_MTH_U", "Fcl_MTH_E", "Fcl_MTH_O"]) == "vrm"
    assert visemes.detect_viseme_scheme(["aa", "ih", "ou", "ee", "oh", "blink"]) == "vrm"
    assert visemes.detect_viseme_scheme(list(ARKIT_NAMES)) is None
    assert visemes.detect_viseme_scheme(["viseme_aa", "viseme_O"]) is None  # too few to call it a viseme rig


def test_viseme_routes_cover_every_mesh_with_the_keys():
    routes = visemes.viseme_routes({"Wolf3D_Head": ["Basis", *RPM_KEYS, "jawOpen"], "Wolf3D_Teeth": RPM_KEYS[:11]})
    assert len(routes) == 15 + 11
    assert ("viseme_aa", "Wolf3D_Head", "viseme_aa") in routes
    assert all(ch in visemes.VISEME_CHANNELS for ch, _, _ in routes)
    assert visemes.viseme_routes({"Face": ["jawOpen", "mouthClose"]}) == []


def test_add_viseme_channels_only_computes_what_routes_use():
    v = _values(3, jawOpen=0.5)
    out = visemes.add_viseme_channels(v, ["jawOpen", "vrm_aa"])
    assert set(out) - set(v) == set(visemes.VRM_VISEMES)
    assert visemes.add_viseme_channels(v, ["jawOpen"]) is v
