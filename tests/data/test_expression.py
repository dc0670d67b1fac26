"""The expression basis: a ridge fit that recovers known deltas, the shipped basis, the head export."""
from __future__ import annotations

import numpy as np
import pytest

from osmnet.data.expression import ExpressionBasis, ExpressionError, fit_basis, r2_score
from blender_addon.core.take import ALL_CHANNELS, ARKIT_NAMES


def _synthetic_clip(path, deltas, neutral, rng, frames=300, noise=0.01):
    """A clip whose landmarks are an identity offset + weights @ deltas + noise."""
    w = np.clip(rng.gamma(0.5, 0.2, size=(frames, 52)), 0, 1)
    w[:, ARKIT_NAMES.index("tongueOut")] = 0
    identity = rng.normal(0, 0.3, size=(468, 3))
    lm = neutral + identity + np.einsum("tk,kvd->tvd", w, deltas) + rng.normal(0, noise, (frames, 468, 3))
    channels = np.zeros((frames, len(ALL_CHANNELS)), np.float32)
    channels[:, 6:] = w
    np.savez(path, channels=channels, landmarks=np.concatenate([lm, np.zeros((frames, 10, 3))], 1).astype(np.float32))
    return path


def test_ridge_fit_recovers_known_deltas_and_scores_held_out_clips(tmp_path):
    rng = np.random.default_rng(0)
    neutral = rng.normal(0, 5, (468, 3))
    deltas = rng.normal(0, 0.5, (52, 468, 3))
    deltas[ARKIT_NAMES.index("tongueOut")] = 0
    clips = [_synthetic_clip(tmp_path / f"c{i}.npz", deltas, neutral, rng) for i in range(5)]
    basis = fit_basis(clips[:4], neutral)
    used = [i for i, n in enumerate(ARKIT_NAMES) if n != "tongueOut"]
    err = np.abs(basis.deltas[used] - deltas[used]).mean() / np.abs(deltas[used]).mean()
    assert err < 0.15
    assert r2_score(basis, clips[4:]) > 0.9
    shuffled = ExpressionBasis(basis.neutral, basis.deltas[rng.permutation(52)])
    assert r2_score(shuffled, clips[4:]) < 0.2  # the score can fail


def test_too_little_data_is_refused(tmp_path):
    rng = np.random.default_rng(1)
    clip = _synthetic_clip(tmp_path / "c.npz", np.zeros((52, 468, 3)), np.zeros((468, 3)), rng, frames=20)
    with pytest.raises(ExpressionError, match="only 20 frames"):
        fit_basis([clip], np.zeros((468, 3)))


def test_shipped_basis_opens_the_jaw_and_closes_the_eyes():
    basis = ExpressionBasis.load()
    assert basis.neutral.shape == (468, 3) and basis.deltas.shape == (52, 468, 3)
    assert basis.meta["r2_held_out"] > 0.3
    chin, upper_lid_left, lower_lid_left = 152, 386, 374
    jaw = basis.deltas[ARKIT_NAMES.index("jawOpen")]
    assert jaw[chin, 1] < -0.5  # chin moves down by more than 5 mm at full jawOpen
    w = np.zeros(52, np.float32)
    w[ARKIT_NAMES.index("eyeBlinkLeft")] = 1
    closed = basis.apply(w)
    gap_open = basis.neutral[upper_lid_left, 1] - basis.neutral[lower_lid_left, 1]
    gap_closed = closed[upper_lid_left, 1] - closed[lower_lid_left, 1]
    assert gap_closed < 0.5 * gap_open
    assert basis.apply(np.zeros((7, 52))).shape == (7, 468, 3)


def test_save_load_round_trip_and_bad_files(tmp_path):
    basis = ExpressionBasis.load()
    path = basis.save(tmp_path / "b.npz")
    back = ExpressionBasis.load(path)
    np.testing.assert_array_equal(back.deltas, basis.deltas)
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(ExpressionError, match="not an expression basis"):
        ExpressionBasis.load(tmp_path / "bad.npz")
    with pytest.raises(ExpressionError, match="does not exist"):
        ExpressionBasis.load(tmp_path / "missing.npz")


def test_head_export_writes_the_neutral_mesh_its_52_shapes_and_the_preview_npz(tmp_path, face_model):
    import trimesh

    from osmnet.cli import main

    out = tmp_path / "head"
    assert main(["head", "--out", str(out), "--model", str(face_model)]) == 0
    neutral = trimesh.load(out / "neutral.obj", process=False)
    assert neutral.vertices.shape == (468, 3) and neutral.faces.shape == (898, 3)
    assert neutral.visual.uv.shape == (468, 2)
    shapes = sorted(p.stem for p in (out / "shapes").glob("*.obj"))
    assert shapes == sorted(ARKIT_NAMES)
    jaw = trimesh.load(out / "shapes" / "jawOpen.obj", process=False)
    assert jaw.vertices[152, 1] < neutral.vertices[152, 1] - 0.005  # metres
    z = np.load(out / "preview_head.npz")
    assert z["vertices"].shape == (468, 3) and z["deltas"].shape == (52, 468, 3)
    assert list(z["names"]) == list(ARKIT_NAMES) and str(z["units"]) == "m"
    np.testing.assert_allclose(z["vertices"], neutral.vertices, atol=1e-6)
    assert (out / "preview_head.npz").stat().st_size < 1_000_000
