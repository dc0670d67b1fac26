"""Channel mapping on Blender objects: name detection on a real rig's meshes and bones, and data
paths Blender's own parser resolves. The rules themselves are tested without Blender in tests/core."""
from __future__ import annotations

import bpy
import rig
from blender_addon.core import mapping as mp


def test_auto_mapping_on_a_rig_finds_variants_on_every_mesh_and_the_head_bone():
    arm, face, teeth = rig.make_rig()
    m = mp.auto_mapping([face, teeth], arm)
    found = {(r.target.owner, r.target.name): r.channel for r in m.routes}
    want = {("Face", k): c for k, c in rig.FACE_KEYS.items() if c}
    want.update({("Teeth", k): c for k, c in rig.TEETH_KEYS.items() if c})
    assert found == want
    assert (m.head.armature, m.head.bone) == ("Rig", "DEF-head")


def test_quotes_in_names_are_escaped_in_data_paths():
    arm, face, teeth = rig.make_rig()
    kb = face.data.shape_keys.key_blocks["Smile"]
    kb.name = 'Sm"ile'
    target = mp.Target("shape_key", "Face", 'Sm"ile')
    assert face.data.shape_keys.path_resolve(target.data_path) == kb.value  # Blender's own path parser
    face['mouth "open"'] = 0.25
    assert bpy.data.objects["Face"].path_resolve(mp.Target("custom_prop", "Face", 'mouth "open"').data_path) == 0.25
