"""Test rigs built from bpy.data only: an armature with a head bone and meshes with shape keys."""
from __future__ import annotations

import bpy

# A mix of the name variants real rigs use; the test checks auto-detection finds them all.
FACE_KEYS = {
    "eyeBlinkLeft": "eyeBlinkLeft", "EyeBlink_R": "eyeBlinkRight", "ARKit_jawOpen": "jawOpen",
    "A38_Mouth_Pucker": "mouthPucker", "mouth_smile_left": "mouthSmileLeft", "bs_mouthSmile_R": "mouthSmileRight",
    "browInnerUp": "browInnerUp", "jawOpen.001": None, "Smile": None, "tongueOut": "tongueOut",
}
TEETH_KEYS = {"JawOpen": "jawOpen", "mouthClose": "mouthClose"}


def clear_file():
    bpy.ops.wm.read_factory_settings(use_empty=True)


def make_mesh(name: str, keys) -> bpy.types.Object:
    me = bpy.data.meshes.new(name)
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 0, 1)], [], [(0, 1, 2)])
    ob = bpy.data.objects.new(name, me)
    bpy.context.scene.collection.objects.link(ob)
    ob.shape_key_add(name="Basis")
    for k in keys:
        ob.shape_key_add(name=k, from_mix=False)
    return ob


def make_armature(name: str = "Rig", bone: str = "DEF-head", rotation_mode: str = "QUATERNION"):
    arm = bpy.data.armatures.new(name)
    ob = bpy.data.objects.new(name, arm)
    bpy.context.scene.collection.objects.link(ob)
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.mode_set(mode="EDIT")
    neck = arm.edit_bones.new("DEF-neck")
    neck.head, neck.tail = (0, 0.05, 1.4), (0, 0.05, 1.5)
    head = arm.edit_bones.new(bone)
    head.head, head.tail, head.parent = (0, 0.05, 1.5), (0, 0.05, 1.7), neck
    end = arm.edit_bones.new("head_end")
    end.head, end.tail, end.parent = (0, 0.05, 1.7), (0, 0.05, 1.75), head
    bpy.ops.object.mode_set(mode="OBJECT")
    ob.pose.bones[bone].rotation_mode = rotation_mode
    return ob


def make_rig(rotation_mode: str = "QUATERNION"):
    """-> (armature, face, teeth)."""
    return make_armature(rotation_mode=rotation_mode), make_mesh("Face", FACE_KEYS), make_mesh("Teeth", TEETH_KEYS)


def playing(id_):
    """(action, slot) of the take that plays on `id_`: the unmuted "OSM-Net | ..." NLA track."""
    from blender_addon import compat, layers

    for _take, track in layers.take_tracks(id_):
        if not track.mute and len(track.strips):
            strip = track.strips[0]
            return strip.action, compat.strip_slot(strip)
    return None, None


def playing_take(id_):
    action, _slot = playing(id_)
    return action.get("osmnet_take") if action is not None else None


def make_body_rig():
    """Armature 'Body' (spine, arm, neck, head) with a keyed body Action, and a face mesh with the
    52 ARKit keys plus a hand-keyed 'Smile', parented to it."""
    arm = make_armature("Body", bone="head")
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    spine = arm.data.edit_bones.new("spine")
    spine.head, spine.tail = (0, 0, 1.0), (0, 0, 1.4)
    arm.data.edit_bones["DEF-neck"].parent = spine
    upper = arm.data.edit_bones.new("upper_arm.L")
    upper.head, upper.tail, upper.parent = (0.2, 0, 1.35), (0.5, 0, 1.35), spine
    bpy.ops.object.mode_set(mode="OBJECT")
    for name, axis, values in (("spine", 1, (0.0, 0.3, -0.2)), ("upper_arm.L", 0, (0.0, 1.2, 0.4))):
        pb = arm.pose.bones[name]
        pb.rotation_mode = 'XYZ'
        for frame, v in zip((1, 30, 70), values):
            pb.rotation_euler[axis] = v
            pb.keyframe_insert("rotation_euler", index=axis, frame=frame)
    arm.animation_data.action.name = "BodyAnim"
    import ui_support

    face = ui_support.make_face("Face")
    face.shape_key_add(name="Smile", from_mix=False)
    face.parent = arm
    kb = face.data.shape_keys.key_blocks["Smile"]
    for frame, v in ((1, 0.0), (40, 0.9), (75, 0.1)):
        kb.value = v
        kb.keyframe_insert("value", frame=frame)
    face.data.shape_keys.animation_data.action.name = "FaceAnim"
    return arm, face


def dump_action(action):
    """Every curve of an Action with its keys, handles and interpolation (to compare bit for bit)."""
    from blender_addon import compat

    return sorted((fc.data_path, fc.array_index, [tuple(k.co) for k in fc.keyframe_points],
                   [(tuple(k.handle_left), tuple(k.handle_right), k.interpolation) for k in fc.keyframe_points])
                  for fc in compat.iter_fcurves(action))
