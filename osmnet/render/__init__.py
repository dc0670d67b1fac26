"""Stage 4, photo + take -> frames: the portrait rig, warping, painting the eyes and mouth, the
generic 3D head export. CPU and GPU run the same code."""
