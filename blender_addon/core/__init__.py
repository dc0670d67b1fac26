"""The add-on's no-bpy core: everything the add-on shares with `osmnet` and `backend`.

Standard library and numpy only (zmq is imported by `client` alone, when it is used), so plain
pytest, the model library, the backend and Blender's own Python all import the same code.
One home each: channel names, the take file, atomic writes, error kinds, the wire format, the
client, endpoint checks, mapping rules and head-pose math.
"""
