"""OSM-Net: one-to-many talking-head motion from speech (arXiv 2309.16148), for Blender."""

__version__ = "0.1.0"
