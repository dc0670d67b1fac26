"""The canonical face mesh that MediaPipe's pose and landmarks are measured against.

The Face Landmarker bundle (.task, a zip) carries `geometry_pipeline_metadata_landmarks.binarypb`:
a serialized `GeometryPipelineMetadata` protobuf with the 468-vertex canonical mesh (cm, with UV),
its 898 triangles and the per-landmark Procrustes weights. mediapipe 1.2.2 ships no compiled
Python class for that message, so the message types are declared here (a FileDescriptorProto
built in code, no .proto file) and `google.protobuf`, which MediaPipe already installs, decodes it.

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

import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from blender_addon.core.errors import EnvironmentProblem

METADATA_NAME = "geometry_pipeline_metadata_landmarks.binarypb"
N_VERTICES = 468
N_TRIANGLES = 898
INNER_LIP = (13, 14)  # MediaPipe's inner-lip midpoints (upper, lower)


def lip_gap(landmarks: np.ndarray) -> np.ndarray:
    """(T, >=468, 3) landmarks -> (T,) inner-lip gap (the landmarks' units): how open the mouth is,
    measured on the mesh rather than scored as a blendshape."""
    return np.linalg.norm(landmarks[:, INNER_LIP[0]] - landmarks[:, INNER_LIP[1]], axis=1)


class FaceMeshError(EnvironmentProblem):
    """The .task bundle or its canonical-mesh metadata could not be read."""


@dataclass(frozen=True)
class CanonicalMesh:
    vertices: np.ndarray  # (468, 3) float32, centimetres, canonical face space (+y up, +z to viewer)
    uv: np.ndarray  # (468, 2) float32
    triangles: np.ndarray  # (898, 3) int32
    procrustes_weights: np.ndarray  # (468,) float32; zero for landmarks not used in pose fitting


# ---- the message types, declared for google.protobuf --------------------------------------------

@lru_cache(maxsize=1)
def _metadata_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="osmnet_geometry_metadata.proto", package="osmnet.geometry",
                                             syntax="proto2")

    def message(name, *fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            m.field.add(name=fname, number=number, type=ftype, label=label, type_name=type_name)

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message("Mesh3d", ("vertex_type", 1, F.TYPE_INT32, opt, None), ("primitive_type", 2, F.TYPE_INT32, opt, None),
            ("vertex_buffer", 3, F.TYPE_FLOAT, rep, None), ("index_buffer", 4, F.TYPE_UINT32, rep, None))
    message("WeightedLandmarkRef", ("landmark_id", 1, F.TYPE_UINT32, opt, None), ("weight", 2, F.TYPE_FLOAT, opt, None))
    message("GeometryPipelineMetadata",
            ("canonical_mesh", 1, F.TYPE_MESSAGE, opt, ".osmnet.geometry.Mesh3d"),
            ("procrustes_landmark_basis", 2, F.TYPE_MESSAGE, rep, ".osmnet.geometry.WeightedLandmarkRef"),
            ("input_source", 3, F.TYPE_INT32, opt, None))
    for m in fdp.message_type:  # proto2 type_name must be absent for scalar fields
        for f in m.field:
            if f.type != F.TYPE_MESSAGE:
                f.ClearField("type_name")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("osmnet.geometry.GeometryPipelineMetadata"))


def parse_geometry_metadata(buf: bytes) -> CanonicalMesh:
    """Decode the GeometryPipelineMetadata bytes into a CanonicalMesh (packed or unpacked buffers)."""
    from google.protobuf.message import DecodeError

    try:
        meta = _metadata_class().FromString(bytes(buf))
    except DecodeError as e:
        raise FaceMeshError(f"canonical mesh metadata is truncated or malformed ({e})") from None
    if not meta.HasField("canonical_mesh"):
        raise FaceMeshError("metadata has no canonical_mesh")
    weights = np.zeros(N_VERTICES, np.float32)
    for ref in meta.procrustes_landmark_basis:
        if not ref.HasField("landmark_id") or not 0 <= ref.landmark_id < N_VERTICES:
            raise FaceMeshError(f"procrustes landmark id {ref.landmark_id} out of range")
        weights[ref.landmark_id] = ref.weight
    vb = np.asarray(meta.canonical_mesh.vertex_buffer, np.float32)
    if vb.size != N_VERTICES * 5:
        raise FaceMeshError(f"canonical mesh has {vb.size} vertex floats, expected {N_VERTICES * 5}")
    ib = np.asarray(meta.canonical_mesh.index_buffer, np.int64)
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
