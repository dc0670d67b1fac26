"""The canonical face mesh that MediaPipe's pose and landmarks are measured against.

The Face Landmarker bundle (.task, a zip) carries `geometry_pipeline_metadata_landmarks.binarypb`:
a serialized `GeometryPipelineMetadata` protobuf with the 468-vertex canonical mesh (cm, with UV),
its 898 triangles and the per-landmark Procrustes weights. mediapipe 1.2.2 ships no compiled
Python class for that message, so it is read here with a minimal protobuf wire-format decoder.

Message layout (field number: meaning):
    GeometryPipelineMetadata: 1 canonical_mesh (Mesh3d), 2 repeated procrustes_landmark_basis,
                              3 input_source (enum)
    WeightedLandmarkRef:      1 landmark_id (uint32), 2 weight (float)
    Mesh3d:                   1 vertex_type (enum), 2 primitive_type (enum),
                              3 repeated float vertex_buffer (x, y, z, u, v per vertex),
                              4 repeated uint32 index_buffer (3 per triangle)
The real file stores both buffers unpacked (one tag per value); packed form is read too.
"""
from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from blender_addon.core.errors import EnvironmentProblem

METADATA_NAME = "geometry_pipeline_metadata_landmarks.binarypb"
N_VERTICES = 468
N_TRIANGLES = 898


class FaceMeshError(EnvironmentProblem):
    """The .task bundle or its canonical-mesh metadata could not be read."""


@dataclass(frozen=True)
class CanonicalMesh:
    vertices: np.ndarray  # (468, 3) float32, centimetres, canonical face space (+y up, +z to viewer)
    uv: np.ndarray  # (468, 2) float32
    triangles: np.ndarray  # (898, 3) int32
    procrustes_weights: np.ndarray  # (468,) float32; zero for landmarks not used in pose fitting


# ---- protobuf wire format ---------------------------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise FaceMeshError("truncated varint in canonical mesh metadata")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise FaceMeshError("malformed varint in canonical mesh metadata")


def _fields(buf: bytes):
    """Yield (field_number, wire_type, value) with value an int (varint/fixed) or bytes (length)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wtype = key >> 3, key & 7
        if wtype == 0:
            value, pos = _varint(buf, pos)
        elif wtype == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wtype == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wtype == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise FaceMeshError(f"unsupported protobuf wire type {wtype} in canonical mesh metadata")
        if pos > len(buf):
            raise FaceMeshError("truncated field in canonical mesh metadata")
        yield number, wtype, value


def _packed_varints(data: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(data):
        v, pos = _varint(data, pos)
        out.append(v)
    return out


def parse_geometry_metadata(buf: bytes) -> CanonicalMesh:
    """Decode the GeometryPipelineMetadata bytes into a CanonicalMesh."""
    weights = np.zeros(N_VERTICES, np.float32)
    floats: list[float] = []
    indices: list[int] = []
    saw_mesh = False
    for number, wtype, value in _fields(buf):
        if number == 2 and wtype == 2:
            lid, w = None, 0.0
            for n2, t2, v2 in _fields(value):
                if n2 == 1 and t2 == 0:
                    lid = v2
                elif n2 == 2 and t2 == 5:
                    w = struct.unpack("<f", v2)[0]
            if lid is None or not 0 <= lid < N_VERTICES:
                raise FaceMeshError(f"procrustes landmark id {lid} out of range")
            weights[lid] = w
        elif number == 1 and wtype == 2:
            saw_mesh = True
            for n2, t2, v2 in _fields(value):
                if n2 == 3 and t2 == 2:  # packed floats
                    floats.extend(struct.unpack(f"<{len(v2) // 4}f", v2))
                elif n2 == 3 and t2 == 5:  # unpacked float
                    floats.append(struct.unpack("<f", v2)[0])
                elif n2 == 4 and t2 == 2:
                    indices.extend(_packed_varints(v2))
                elif n2 == 4 and t2 == 0:
                    indices.append(v2)
    if not saw_mesh:
        raise FaceMeshError("metadata has no canonical_mesh")
    vb = np.asarray(floats, np.float32)
    if vb.size != N_VERTICES * 5:
        raise FaceMeshError(f"canonical mesh has {vb.size} vertex floats, expected {N_VERTICES * 5}")
    ib = np.asarray(indices, np.int64)
    if ib.size % 3 or ib.size // 3 != N_TRIANGLES or (ib.size and ib.max() >= N_VERTICES):
        raise FaceMeshError(f"canonical mesh index buffer is malformed ({ib.size} indices)")
    vb = vb.reshape(N_VERTICES, 5)
    return CanonicalMesh(vertices=np.ascontiguousarray(vb[:, :3]), uv=np.ascontiguousarray(vb[:, 3:]),
                         triangles=ib.reshape(-1, 3).astype(np.int32), procrustes_weights=weights)


def read_task_member(task_path: Path, name: str) -> bytes:
    """One file from the .task zip, with a clear error when the bundle is damaged."""
    try:
        with zipfile.ZipFile(task_path) as z:
            return z.read(name)
    except (zipfile.BadZipFile, OSError) as e:
        raise FaceMeshError(f"{task_path} is not a readable MediaPipe .task bundle ({e}); "
                            "delete it and let osmnet download it again, or pass a good copy") from None
    except KeyError:
        raise FaceMeshError(f"{task_path} has no {name}; is it the Face Landmarker bundle?") from None


@lru_cache(maxsize=4)
def _load(task_path: Path) -> CanonicalMesh:
    return parse_geometry_metadata(read_task_member(task_path, METADATA_NAME))


def load_canonical_mesh(task_path=None) -> CanonicalMesh:
    """The canonical mesh from the Face Landmarker bundle (resolved by osmnet.data.assets when None)."""
    from osmnet.data.assets import face_landmarker_path

    return _load(Path(face_landmarker_path(task_path)).resolve())
