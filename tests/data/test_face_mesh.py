"""The canonical face mesh parsed from the real .task bundle by our protobuf wire-format reader."""
from __future__ import annotations

import struct
import zipfile

import numpy as np
import pytest

from osmnet.data.face_mesh import FaceMeshError, load_canonical_mesh, parse_geometry_metadata


@pytest.fixture(scope="module")
def mesh(face_model):
    return load_canonical_mesh(face_model)


def test_real_mesh_has_468_vertices_898_triangles_and_uvs(mesh):
    assert mesh.vertices.shape == (468, 3) and mesh.vertices.dtype == np.float32
    assert mesh.triangles.shape == (898, 3) and mesh.triangles.dtype == np.int32
    assert mesh.uv.shape == (468, 2)
    assert mesh.uv.min() >= 0 and mesh.uv.max() <= 1
    assert set(np.unique(mesh.triangles)) == set(range(468))


def test_real_mesh_is_a_face_sized_in_centimetres_and_mirror_symmetric(mesh):
    v = mesh.vertices
    size = v.max(0) - v.min(0)
    assert 12 < size[0] < 20 and 14 < size[1] < 22  # a face, in cm
    assert v[1, 2] > v[:, 2].mean() + 3  # the nose tip (landmark 1) sticks out towards +z
    assert v[10, 1] > 0 > v[152, 1]  # forehead up, chin down
    mirrored = v * np.array([-1, 1, 1])
    d = np.linalg.norm(mirrored[:, None] - v[None], axis=2).min(1)
    assert d.max() < 0.05  # every vertex has a mirror partner


def test_procrustes_weights_select_a_few_rigid_landmarks(mesh):
    w = mesh.procrustes_weights
    assert w.shape == (468,) and (w >= 0).all()
    assert 10 <= (w > 0).sum() <= 100


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number, wtype, payload):
    key = _varint(number << 3 | wtype)
    return key + (_varint(len(payload)) + payload if wtype == 2 else payload)


def test_packed_buffers_are_read_like_the_unpacked_ones_in_the_real_file(mesh):
    floats = np.concatenate([mesh.vertices, mesh.uv], 1).astype(np.float32).ravel()
    idx = b"".join(_varint(int(i)) for i in mesh.triangles.ravel())
    mesh_msg = (_field(1, 0, _varint(0)) + _field(3, 2, struct.pack(f"<{floats.size}f", *floats))
                + _field(4, 2, idx))
    basis = b"".join(_field(2, 2, _field(1, 0, _varint(int(i))) + _field(2, 5, struct.pack("<f", float(w))))
                     for i, w in enumerate(mesh.procrustes_weights) if w > 0)
    parsed = parse_geometry_metadata(_field(1, 2, mesh_msg) + basis + _field(3, 0, _varint(1)))
    np.testing.assert_array_equal(parsed.vertices, mesh.vertices)
    np.testing.assert_array_equal(parsed.triangles, mesh.triangles)
    np.testing.assert_array_equal(parsed.procrustes_weights, mesh.procrustes_weights)


@pytest.mark.parametrize("data, message", [
    (b"", "no canonical_mesh"),
    (b"\x0a\xff", "truncated"),
    (_field(1, 2, _field(3, 5, b"\0\0\0\0")), "vertex floats"),
])
def test_malformed_metadata_is_a_clear_error(data, message):
    with pytest.raises(FaceMeshError, match=message):
        parse_geometry_metadata(data)


def test_unreadable_task_bundle_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.task"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(Exception, match="not a readable"):
        load_canonical_mesh(bad)
    nometa = tmp_path / "nometa.task"
    with zipfile.ZipFile(nometa, "w") as z:
        for name in ("face_detector.tflite", "face_landmarks_detector.tflite", "face_blendshapes.tflite",
                     "geometry_pipeline_metadata_landmarks.binarypb"):
            z.writestr(name, b"")
    with pytest.raises(FaceMeshError, match="no canonical_mesh"):
        load_canonical_mesh(nometa)
