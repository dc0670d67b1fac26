"""Viseme rigs from ARKit curves: the Oculus/Meta 15 visemes and VRM's five vowels.

Many heads (Ready Player Me, VRChat, VRoid/VRM) carry mouth shapes named after visemes instead of,
or beside, the 52 ARKit keys. A take only has ARKit curves, so this module turns the mouth part
of a take into viseme weights, as extra named curves that the mapping routes to shape keys.

How (docs/blender-addon.md, "Viseme rigs"): every viseme has a *prototype*, the ARKit mouth pose
it looks like (MOUTH_FEATURES, a few averaged mouth channels). Each frame's mouth pose x is
explained as a non-negative mix of prototypes, w >= 0, sum(w) <= 1 (the rest is silence/rest):

    w = argmin |D (P^T w - x)|^2 + ridge |w|^2

solved for all frames at once by projected gradient descent (numpy only: Blender has no scipy).
The problem is strictly convex, so w is unique and moves smoothly when the curves do; a half-open
jaw gives a half-weighted "aa", the rest pose gives silence. The same prototypes name Rhubarb's
mouth shapes in interop.py.

Public API
    OCULUS_VISEMES, VRM_VISEMES, SCHEMES        channel names of each scheme ("viseme_aa", "vrm_aa" ...)
    VISEME_CHANNELS                             every viseme channel name (for the mapping's routes)
    MOUTH_FEATURES ; mouth_features(values) -> (frames, F) ; pose_curves(pose, frames) -> {arkit: curve}
    solve_mix(x, prototypes) -> (frames, K) weights
    viseme_curves(take_or_values, scheme, neutral=None) -> {channel: float32 curve}
    match_viseme(shape_key_name) -> (scheme, channel) | None
    detect_viseme_scheme(shape_key_names) -> "oculus" | "vrm" | None
    viseme_routes(objects_keys) -> [(channel, owner, shape key)]   for the mapping to turn into Routes
    add_viseme_channels(values, wanted, neutral=None) -> values plus the viseme curves `wanted` names
"""
from __future__ import annotations

import re

import numpy as np

from .errors import UserInputError

# (feature, ARKit channels averaged into it). Left/right pairs are one feature: visemes are symmetric.
MOUTH_FEATURES = (
    ("jawOpen", ("jawOpen",)),
    ("mouthClose", ("mouthClose",)),
    ("mouthFunnel", ("mouthFunnel",)),
    ("mouthPucker", ("mouthPucker",)),
    ("mouthSmile", ("mouthSmileLeft", "mouthSmileRight")),
    ("mouthStretch", ("mouthStretchLeft", "mouthStretchRight")),
    ("mouthLowerDown", ("mouthLowerDownLeft", "mouthLowerDownRight")),
    ("mouthUpperUp", ("mouthUpperUpLeft", "mouthUpperUpRight")),
    ("mouthPress", ("mouthPressLeft", "mouthPressRight")),
    ("mouthRollLower", ("mouthRollLower",)),
    ("mouthRollUpper", ("mouthRollUpper",)),
    ("mouthShrugLower", ("mouthShrugLower",)),
    ("mouthShrugUpper", ("mouthShrugUpper",)),
    ("tongueOut", ("tongueOut",)),
)
FEATURE_NAMES = tuple(f for f, _ in MOUTH_FEATURES)
# How much a feature counts in the fit: the jaw carries most of what a viewer reads.
FEATURE_WEIGHTS = np.array([2.0 if f == "jawOpen" else 1.0 for f in FEATURE_NAMES])

# Prototype mouth poses (features not named are 0). Written for this project from the phonetics
# of each viseme: lips pressed (p b m), lower lip under the teeth (f v), tongue between the teeth
# (th), teeth nearly together with spread lips (s z), rounded and protruded lips (u w) ...
MOUTH_POSES = {
    "sil": {},
    "PP": {"mouthPress": 0.55, "mouthRollLower": 0.25, "mouthRollUpper": 0.2, "mouthShrugLower": 0.15},
    "FF": {"mouthRollLower": 0.6, "mouthUpperUp": 0.25, "jawOpen": 0.06, "mouthShrugUpper": 0.1},
    "TH": {"tongueOut": 0.45, "jawOpen": 0.15, "mouthLowerDown": 0.1},
    "DD": {"jawOpen": 0.14, "mouthLowerDown": 0.25, "mouthUpperUp": 0.15, "mouthStretch": 0.1},
    "kk": {"jawOpen": 0.28, "mouthStretch": 0.2, "mouthLowerDown": 0.05},
    "CH": {"mouthFunnel": 0.45, "mouthPucker": 0.1, "jawOpen": 0.12, "mouthUpperUp": 0.3, "mouthLowerDown": 0.3},
    "SS": {"jawOpen": 0.05, "mouthStretch": 0.4, "mouthSmile": 0.2, "mouthUpperUp": 0.1, "mouthLowerDown": 0.1},
    "nn": {"jawOpen": 0.2, "mouthClose": 0.1, "mouthShrugUpper": 0.15},
    "RR": {"mouthPucker": 0.35, "mouthFunnel": 0.25, "jawOpen": 0.15, "mouthShrugLower": 0.1},
    "aa": {"jawOpen": 0.65, "mouthLowerDown": 0.3, "mouthUpperUp": 0.1},
    "E": {"jawOpen": 0.35, "mouthStretch": 0.35, "mouthLowerDown": 0.3, "mouthUpperUp": 0.2, "mouthSmile": 0.1},
    "I": {"jawOpen": 0.12, "mouthSmile": 0.45, "mouthStretch": 0.45, "mouthUpperUp": 0.2, "mouthLowerDown": 0.15},
    "O": {"jawOpen": 0.45, "mouthFunnel": 0.6, "mouthPucker": 0.15},
    "U": {"jawOpen": 0.12, "mouthPucker": 0.75, "mouthFunnel": 0.3},
}

_OCULUS = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U")
OCULUS_VISEMES = tuple(f"viseme_{v}" for v in _OCULUS)
_VRM = {"aa": "aa", "ih": "I", "ou": "U", "ee": "E", "oh": "O"}  # VRM expression -> its prototype
VRM_VISEMES = tuple(f"vrm_{v}" for v in _VRM)
SCHEMES = {"oculus": OCULUS_VISEMES, "vrm": VRM_VISEMES}
VISEME_CHANNELS = frozenset(OCULUS_VISEMES + VRM_VISEMES)
# The silence channel of a scheme gets the weight left over (1 - sum of the others); VRM has none.
_SILENCE = {"oculus": "viseme_sil"}


def _prototype_of(channel: str) -> str:
    if channel.startswith("vrm_"):
        return _VRM[channel[4:]]
    return channel[len("viseme_"):]


def pose_vector(pose: dict) -> np.ndarray:
    unknown = set(pose) - set(FEATURE_NAMES)
    if unknown:
        raise UserInputError(f"mouth pose names unknown features {sorted(unknown)}; use {FEATURE_NAMES}")
    return np.array([float(pose.get(f, 0.0)) for f in FEATURE_NAMES])


def mouth_features(values) -> np.ndarray:
    """{ARKit channel: curve} (or a Take) -> (frames, F) mouth features; missing channels count as 0."""
    values = getattr(values, "channels", values)
    frames = len(next(iter(values.values())))
    out = np.zeros((frames, len(MOUTH_FEATURES)))
    for j, (_, chans) in enumerate(MOUTH_FEATURES):
        present = [np.asarray(values[c], dtype=np.float64) for c in chans if c in values]
        if present:
            out[:, j] = np.mean(present, axis=0)
    return out


def pose_curves(poses: np.ndarray) -> dict:
    """(frames, F) mouth features -> {ARKit channel: float32 curve} (both sides of a pair alike)."""
    poses = np.asarray(poses, dtype=np.float64)
    return {c: poses[:, j].astype(np.float32) for j, (_, chans) in enumerate(MOUTH_FEATURES) for c in chans}


def _project_capped_simplex(w: np.ndarray) -> np.ndarray:
    """Rows onto {w >= 0, sum(w) <= 1}: clip at 0; rows summing over 1 go onto the simplex."""
    v = np.maximum(w, 0.0)
    over = v.sum(axis=1) > 1.0
    if np.any(over):
        u = -np.sort(-w[over], axis=1)
        css = np.cumsum(u, axis=1) - 1.0
        k = np.arange(1, w.shape[1] + 1)
        rho = np.count_nonzero(u - css / k > 0, axis=1)
        theta = css[np.arange(len(rho)), rho - 1] / rho
        v[over] = np.maximum(w[over] - theta[:, None], 0.0)
    return v


def solve_mix(x: np.ndarray, prototypes: np.ndarray, ridge: float = 1e-3, iterations: int = 300) -> np.ndarray:
    """Per frame, the non-negative mix of `prototypes` (K, F) closest to x (frames, F), sum <= 1.

    Accelerated projected gradient (FISTA) on the weighted least squares with a small ridge,
    which keeps the answer unique when two prototypes look alike."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    p = np.asarray(prototypes, dtype=np.float64) * np.sqrt(FEATURE_WEIGHTS)
    xw = x * np.sqrt(FEATURE_WEIGHTS)
    gram = p @ p.T + ridge * np.eye(len(p))
    lin = xw @ p.T  # (frames, K)
    step = 1.0 / np.linalg.eigvalsh(gram)[-1]
    w = y = np.zeros((len(x), len(p)))
    t = 1.0
    for _ in range(iterations):
        w_next = _project_capped_simplex(y - step * (y @ gram - lin))
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        y = w_next + ((t - 1.0) / t_next) * (w_next - w)
        w, t = w_next, t_next
    return w


def viseme_curves(take_or_values, scheme: str, neutral: dict | None = None) -> dict:
    """The viseme weights of every frame as named curves ({"viseme_aa": curve, ...}), in [0, 1].

    `take_or_values` is a Take or {channel: curve}. `neutral` ({ARKit channel: value}, e.g. the
    mapping's captured neutral) is the face at rest: subtracted first, so a face that rests with a
    smile is not read as a constant "I". For "oculus", viseme_sil holds what the other 14 leave
    (they sum to 1); VRM has no silence key, a mouth at rest is all zeros."""
    if scheme not in SCHEMES:
        raise UserInputError(f"viseme scheme {scheme!r} is unknown; use one of {sorted(SCHEMES)}")
    names = [n for n in SCHEMES[scheme] if n != _SILENCE.get(scheme)]
    protos = np.stack([pose_vector(MOUTH_POSES[_prototype_of(n)]) for n in names])
    x = mouth_features(take_or_values)
    if neutral:
        x = np.maximum(x - mouth_features({k: np.array([float(v)]) for k, v in neutral.items()}), 0.0)
    w = solve_mix(x, protos)
    out = {n: w[:, i].astype(np.float32) for i, n in enumerate(names)}
    if scheme in _SILENCE:
        out = {_SILENCE[scheme]: np.clip(1.0 - w.sum(axis=1), 0.0, 1.0).astype(np.float32), **out}
    return out


def add_viseme_channels(values: dict, wanted, neutral: dict | None = None) -> dict:
    """`values` plus the viseme curves named in `wanted` (others ignored): what a mapping whose
    routes start at viseme channels needs before it computes its target curves. Each frame is
    solved on its own, so a window of a take gets the same curves as the whole take."""
    schemes = {s for s, names in SCHEMES.items() if set(names) & set(wanted)}
    if not schemes:
        return values
    out = dict(values)
    for s in sorted(schemes):
        out.update(viseme_curves(values, s, neutral))
    return out


# ---------------------------------------------------------------- names on rigs

_DUPLICATE = re.compile(r"\.\d{3}$")  # Blender's .001 suffix
_OCULUS_PREFIX = re.compile(r"^(?:vrc\.v_|viseme[_.:\- ]?|v_)", re.IGNORECASE)
_VRM_PREFIX = re.compile(r"^(?:fcl_mth_|mth_|vrm[_.:\- ]?)", re.IGNORECASE)
# Oculus tokens, lower-case; VRChat spells I/O/U as ih/oh/ou.
_OCULUS_TOKENS = {v.lower(): f"viseme_{v}" for v in _OCULUS}
_OCULUS_TOKENS.update({"ih": "viseme_I", "oh": "viseme_O", "ou": "viseme_U"})
# VRM 1.0 expressions (aa ih ou ee oh), VRM 0.x presets and VRoid keys (a i u e o).
_VRM_TOKENS = {v: f"vrm_{v}" for v in _VRM}
_VRM_TOKENS.update({"a": "vrm_aa", "i": "vrm_ih", "u": "vrm_ou", "e": "vrm_ee", "o": "vrm_oh"})


def match_viseme(shape_key_name: str):
    """('oculus', 'viseme_aa') for 'viseme_aa', 'Viseme_AA', 'vrc.v_aa'; ('vrm', 'vrm_oh') for
    'oh', 'O', 'Fcl_MTH_O'; None for anything else (ARKit names included)."""
    name = _DUPLICATE.sub("", shape_key_name.strip())
    stripped = _OCULUS_PREFIX.sub("", name, count=1)
    if stripped != name and name.lower().startswith(("viseme", "vrc.v_", "v_")):
        ch = _OCULUS_TOKENS.get(stripped.lower())
        if ch:
            return "oculus", ch
    stripped = _VRM_PREFIX.sub("", name, count=1)
    ch = _VRM_TOKENS.get(stripped.lower())
    return ("vrm", ch) if ch else None


def detect_viseme_scheme(shape_key_names) -> str | None:
    """Which viseme set a rig carries: 'oculus' when it has at least 8 of the 15 visemes, else
    'vrm' when it has at least 3 of the 5 vowels, else None."""
    found = {"oculus": set(), "vrm": set()}
    for n in shape_key_names:
        m = match_viseme(n)
        if m:
            found[m[0]].add(m[1])
    if len(found["oculus"]) >= 8:
        return "oculus"
    if len(found["vrm"]) >= 3:
        return "vrm"
    return None


def viseme_routes(objects_keys: dict, scheme: str | None = None) -> list:
    """{mesh object: [shape key names]} -> [(viseme channel, object, shape key)] for the scheme
    found on the rig (or `scheme`); the mapping turns these into routes."""
    names = [k for keys in objects_keys.values() for k in keys]
    scheme = scheme or detect_viseme_scheme(names)
    if scheme is None:
        return []
    out = []
    for owner, keys in objects_keys.items():
        for key in keys:
            m = match_viseme(key)
            if m and m[0] == scheme:
                out.append((m[1], owner, key))
    return out
