"""Run by tests/addon/test_package.py in a bpy venv WITHOUT pyzmq, as a user's Blender would be:
install the extension zip with Blender's own operator into a fresh user-resources folder
(BLENDER_USER_RESOURCES), enable it, and ask a real backend who it is through the bundled pyzmq.
Prints one JSON line with what it saw; the test asserts on it.

    python installed_check.py ZIP BACKEND_ADDRESS
"""
import importlib.util
import json
import sys
import time

zip_path, address = sys.argv[1], sys.argv[2]
out = {"zmq_before": importlib.util.find_spec("zmq") is not None}

import bpy  # noqa: E402

PKG = "bl_ext.user_default.osmnet_talking_head"
out["blender"] = bpy.app.version_string
out["python"] = ".".join(map(str, sys.version_info[:2]))
out["install"] = sorted(bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo="user_default", enable_on_install=True))
out["enabled"] = PKG in bpy.context.preferences.addons
out["extensions_dir"] = bpy.utils.user_resource("EXTENSIONS")

import zmq  # noqa: E402  (only the extension's bundled wheel can provide it here)

out["zmq_file"], out["zmq_version"] = zmq.__file__, zmq.__version__
out["repo_addon_loaded"] = "blender_addon" in sys.modules

runtime = sys.modules[PKG + ".runtime"]
bpy.context.preferences.addons[PKG].preferences.backend_address = address
out["check"] = sorted(bpy.ops.osmnet.backend_check())
st = bpy.context.window_manager.osmnet_status
deadline = time.monotonic() + 60
while runtime.drain() and time.monotonic() < deadline:  # what the modal timer does
    time.sleep(0.05)
out["status"], out["level"], out["model"] = st.text, st.level, st.model
print("INSTALLED-CHECK " + json.dumps(out))
